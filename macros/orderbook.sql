{#-
  Per-snapshot order-book features of docs/features.md "Per snapshot" over `bids`/`asks` columns
  (list<struct<price, size>>, best first), computed row by row inside the scan pipeline — no UNNEST.

  Why this shape (issue 4 speed target): a DuckDB list lambda costs ~10 ns per element, so each side
  gets exactly two (its sizes, and its distances to mid); everything else is native list functions
  (list_sum, list_inner_product, list_extract) or plain scalar arithmetic over the first ten levels
  unrolled into columns (prefix sums for imbalance_k, vwap, slope), plus one mask lambda per band.

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
  The ten-level constants (imbalance depths 1/3/5/10, vwap over 5, slope over 10) are docs/features.md's.
  `full_bands`: `relation` also has `full_book` and `book_{bid,ask}_depth_<band>` (silver's band
  depths over the whole rebuilt book); rows with full_book take those instead of the stored levels'.
-#}
{% macro orderbook_structural(relation, max_levels, bands_bps, full_bands=false) -%}
{%- set levels10 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] -%}
{%- set sides = [('b', 'bid', 'bids'), ('a', 'ask', 'asks')] -%}
SELECT * EXCLUDE (
    bids, asks, bid_n, ask_n, b_sizes,
    {%- if full_bands %} full_book,{% for lo in bands_bps[:-1] %} book_bid_depth_{{ band_name(bands_bps, loop.index0) }}, book_ask_depth_{{ band_name(bands_bps, loop.index0) }},{% endfor %}{% endif %} a_sizes, b_dist, a_dist, b_n10, a_n10, b_mx, a_mx, b_my, a_my,
    {%- for s, _, _ in sides %}{% for m in levels10 %} {{ s }}_q{{ m }}, {{ s }}_x{{ m }}, {{ s }}_y{{ m }},{% endfor %}{% endfor %}
    {%- for s, _, _ in sides %}{% for m in [1, 2, 3, 4, 5] %} {{ s }}_p{{ m }}{{ ',' if not (s == 'a' and loop.last) }}{% endfor %}{% endfor %}
),
{%- for lo in bands_bps[:-1] %}
    {{ ratio_imbalance('bid_depth_' ~ band_name(bands_bps, loop.index0), 'ask_depth_' ~ band_name(bands_bps, loop.index0)) }}
        AS band_imbalance_{{ band_name(bands_bps, loop.index0) }},
{%- endfor %}
{%- for s, side, _ in sides %}
    -- OLS slope of cumulative size (y) against distance in bps (x) over levels 1…min(10, M)
    CASE WHEN {{ s }}_n10 >= 3 AND {{ s }}_mx IS NOT NULL THEN
        ({%- for m in levels10 %}{{ ' + ' if not loop.first }}CASE WHEN {{ m }} <= {{ s }}_n10 THEN ({{ s }}_x{{ m }} - {{ s }}_mx) * ({{ s }}_y{{ m }} - {{ s }}_my) ELSE 0 END{% endfor %})
        / nullif(({%- for m in levels10 %}{{ ' + ' if not loop.first }}CASE WHEN {{ m }} <= {{ s }}_n10 THEN ({{ s }}_x{{ m }} - {{ s }}_mx) * ({{ s }}_x{{ m }} - {{ s }}_mx) ELSE 0 END{% endfor %}), 0)
    END AS {{ side }}_slope{{ ',' if not loop.last }}
{%- endfor %}
FROM (
    SELECT *,
    {%- for s, side, _ in sides %}
        ({%- for m in levels10 %}{{ ' + ' if not loop.first }}coalesce({{ s }}_x{{ m }}, 0){% endfor %}) / {{ s }}_n10 AS {{ s }}_mx,
        ({%- for m in levels10 %}{{ ' + ' if not loop.first }}CASE WHEN {{ m }} <= {{ s }}_n10 THEN {{ s }}_y{{ m }} ELSE 0 END{% endfor %}) / {{ s }}_n10 AS {{ s }}_my{{ ',' if not loop.last }}
    {%- endfor %}
    FROM (
        SELECT *,
            spread / mid * 10000 AS spread_bps,
            CASE WHEN bid_size_1 + ask_size_1 <> 0
                 THEN (best_bid * ask_size_1 + best_ask * bid_size_1) / (bid_size_1 + ask_size_1) END AS microprice,
            {%- for k in [1, 3, 5, 10] %}
            CASE WHEN bid_n > 0 AND ask_n > 0
                 THEN {{ ratio_imbalance(prefix_size('b', k), prefix_size('a', k)) }} END AS imbalance_{{ k }},
            {%- endfor %}
            list_sum(b_sizes) AS bid_depth,
            list_sum(a_sizes) AS ask_depth,
            {{ ratio_imbalance('list_sum(b_sizes)', 'list_sum(a_sizes)') }} AS depth_imbalance,
            {%- for s, side, _ in sides %}
            CASE WHEN {{ prefix_size(s, 5) }} <> 0 THEN
                ({%- for m in [1, 2, 3, 4, 5] %}{{ ' + ' if not loop.first }}coalesce({{ s }}_p{{ m }} * {{ s }}_q{{ m }}, 0){% endfor %})
                / {{ prefix_size(s, 5) }} END AS {{ side }}_vwap_5,
            {%- endfor %}
            {%- for s, side, _ in sides %}
            {%- for lo in bands_bps[:-1] %}
            {%- set hi = bands_bps[loop.index] %}
            CASE {%- if full_bands %} WHEN full_book THEN book_{{ side }}_depth_{{ band_name(bands_bps, loop.index0) }}{% endif %}
                 WHEN mid IS NULL OR {{ side }}_n = 0 THEN NULL
                 WHEN {{ side }}_n >= {{ max_levels }} AND {{ s }}_dist[-1] < {{ hi }} THEN NULL
                 ELSE coalesce(list_inner_product({{ s }}_sizes,
                          list_transform({{ s }}_dist, d -> (d >= {{ lo }} AND d < {{ hi }})::DOUBLE)), 0)
            END AS {{ side }}_depth_{{ band_name(bands_bps, loop.index0) }},
            {%- endfor %}
            {%- endfor %}
            {%- for s, side, _ in sides %}
            CASE WHEN list_sum({{ s }}_sizes) <> 0
                 THEN list_inner_product({{ s }}_sizes, {{ s }}_sizes) / (list_sum({{ s }}_sizes) * list_sum({{ s }}_sizes))
            END AS {{ side }}_concentration,
            CASE WHEN mid IS NOT NULL THEN least({{ side }}_n, 10) END AS {{ s }}_n10,
            {%- for m in levels10 %}
            {{ prefix_size(s, m) }} AS {{ s }}_y{{ m }}{{ ',' if not (s == 'a' and loop.last) }}
            {%- endfor %}
            {%- endfor %}
        FROM (
            SELECT *,
            {%- for s, side, col in sides %}
                {%- for m in levels10 %}
                {{ s }}_sizes[{{ m }}] AS {{ s }}_q{{ m }},
                {{ s }}_dist[{{ m }}] AS {{ s }}_x{{ m }},
                {%- endfor %}
                {%- for m in [1, 2, 3, 4, 5] %}
                {{ col }}[{{ m }}].price AS {{ s }}_p{{ m }}{{ ',' if not (s == 'a' and loop.last) }}
                {%- endfor %}
            {%- endfor %}
            FROM (
                SELECT *,
                    list_transform(bids, l -> l.size) AS b_sizes,
                    list_transform(asks, l -> l.size) AS a_sizes,
                    list_transform(bids, l -> abs(l.price - mid) * 10000 / mid) AS b_dist,
                    list_transform(asks, l -> abs(l.price - mid) * 10000 / mid) AS a_dist
                FROM (
                    SELECT *,
                        bids[1].price AS best_bid, asks[1].price AS best_ask,
                        bids[1].size AS bid_size_1, asks[1].size AS ask_size_1,
                        (bids[1].price + asks[1].price) / 2 AS mid,
                        asks[1].price - bids[1].price AS spread,
                        len(bids) AS bid_n, len(asks) AS ask_n
                    FROM {{ relation }}
                )
            )
        )
    )
)
{%- endmacro %}
