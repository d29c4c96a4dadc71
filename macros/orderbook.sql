{#-
  Per-snapshot order-book features of docs/features.md "Per snapshot" over `bids`/`asks` columns
  (list<struct<price, size>>, best first), computed row by row inside the scan pipeline — no UNNEST.

  Why this shape (issue 23): ~60 list expressions (a lambda per side for sizes, distances and each
  band's mask) cost the model more than reading the book; one arrow UDF call per vector runs one
  numba loop over each row's levels instead (udfs/kernels/structural.py).

  NULL rules (docs/features.md: "missing levels are absent, never zero-filled"):
  - a side with no levels makes every feature that needs it NULL: mid, spread, microprice, every
    imbalance_k and depth_imbalance (both sides needed), and that side's depth, vwap, slope,
    concentration and bands (no mid → no distances);
  - a ratio whose denominator is 0 is NULL (zero sizes), and so is the slope when all distances of
    its levels are equal (no variance in x);
  - a band is NULL when that side holds exactly max_levels levels (it was truncated) and its deepest
    level lies at distance d < hi (the band may continue beyond what we can see).
  Distances are d = abs(P − mid) · 10000 / mid in bps, computed in that order everywhere (the tests'
  plain-Python reference too) so a level exactly on a band edge falls on the same side of it.
-#}

{#- A band edge as it appears in a column name: 5 → "5", 2.5 → "2p5". -#}
{% macro bps_label(edge) -%}
{%- if edge == (edge | int) -%}{{ edge | int }}{%- else -%}{{ (edge | string) | replace('.', 'p') }}{%- endif -%}
{%- endmacro %}

{#- Column suffix of band i of bands_bps, e.g. "0_5bps". -#}
{% macro band_name(bands_bps, i) -%}
{{ bps_label(bands_bps[i]) }}_{{ bps_label(bands_bps[i + 1]) }}bps
{%- endmacro %}

{#- (a − b)/(a + b), NULL when either is NULL or the sum is 0. -#}
{% macro ratio_imbalance(a, b) -%}
CASE WHEN ({{ a }}) + ({{ b }}) <> 0 THEN (({{ a }}) - ({{ b }})) / (({{ a }}) + ({{ b }})) END
{%- endmacro %}

{#- Prefix sum of the first k sizes of side `s` ('b'/'a') from the unrolled columns s_q1 … s_q10. -#}
{% macro prefix_size(s, k) -%}
({%- for m in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] if m <= k -%}{{ ' + ' if not loop.first }}coalesce({{ s }}_q{{ m }}, 0){%- endfor -%})
{%- endmacro %}

{#-
  The whole per-snapshot feature set over `relation`, which must have `bids` and `asks` (already
  trimmed to max_levels). Every other column of `relation` is passed through; the lists are dropped.
  One call of daedalus_book_structural per row (udfs/kernels/structural.py: the same arithmetic, in
  the same order, as the list expressions this macro held before issue 23, so values are equal to the
  bit); the ten-level constants (imbalance depths 1/3/5/10, vwap over 5, slope over 10) are there.
  `full_bands`: `relation` also has `full_book` and `book_{bid,ask}_depth_<band>` (silver's band
  depths over the whole rebuilt book); rows with full_book take those instead of the stored levels'.
-#}
{% macro orderbook_structural(relation, max_levels, bands_bps, full_bands=false) -%}
{%- set sides = [('bid', 'bid_bands'), ('ask', 'ask_bands')] -%}
{%- set scalars = ['best_bid', 'best_ask', 'bid_size_1', 'ask_size_1', 'mid', 'spread', 'spread_bps', 'microprice',
                   'imbalance_1', 'imbalance_3', 'imbalance_5', 'imbalance_10', 'bid_depth', 'ask_depth',
                   'depth_imbalance', 'bid_vwap_5', 'ask_vwap_5'] -%}
SELECT * EXCLUDE (__bid_slope, __ask_slope),
{%- for lo in bands_bps[:-1] %}
    {{ ratio_imbalance('bid_depth_' ~ band_name(bands_bps, loop.index0), 'ask_depth_' ~ band_name(bands_bps, loop.index0)) }}
        AS band_imbalance_{{ band_name(bands_bps, loop.index0) }},
{%- endfor %}
    __bid_slope AS bid_slope,
    __ask_slope AS ask_slope
FROM (
    SELECT * EXCLUDE (bids, asks, __s
        {%- if full_bands %}, full_book{% for lo in bands_bps[:-1] %}, book_bid_depth_{{ band_name(bands_bps, loop.index0) }}, book_ask_depth_{{ band_name(bands_bps, loop.index0) }}{% endfor %}{% endif %}),
    {%- for c in scalars %}
        __s.{{ c }} AS {{ c }},
    {%- endfor %}
    {%- for side, field in sides %}
    {%- for lo in bands_bps[:-1] %}
        {%- if full_bands %}
        CASE WHEN full_book THEN book_{{ side }}_depth_{{ band_name(bands_bps, loop.index0) }} ELSE __s.{{ field }}[{{ loop.index }}] END
        {%- else %}
        __s.{{ field }}[{{ loop.index }}]
        {%- endif %} AS {{ side }}_depth_{{ band_name(bands_bps, loop.index0) }},
    {%- endfor %}
    {%- endfor %}
        __s.bid_concentration AS bid_concentration,
        __s.ask_concentration AS ask_concentration,
        __s.bid_slope AS __bid_slope,
        __s.ask_slope AS __ask_slope
    FROM (
        SELECT *, daedalus_book_structural(bids, asks, {{ max_levels }},
            [{%- for e in bands_bps %}{{ e }}{{ ', ' if not loop.last }}{% endfor %}]::DOUBLE[]) AS __s
        FROM {{ relation }}
    )
)
{%- endmacro %}
