{#-
  Per-snapshot order-book features of FEATURES.md "Per snapshot", as DuckDB list lambdas over the
  `bids`/`asks` columns (list<struct<price, size>>, best first). One pass per row, no UNNEST: list
  lambdas keep the whole computation inside the scan pipeline, which is what keeps gold.orderbook_hf
  close to the cost of reading the lists (issue 4 speed target).

  NULL rules (FEATURES.md: "missing levels are absent, never zero-filled"):
  - a side with no levels makes every feature that needs it NULL (mid, spread, microprice,
    imbalance_k, depth_imbalance, that side's depth/vwap/slope/concentration and every band);
  - a ratio whose denominator is 0 is NULL (zero sizes);
  - a band is NULL when that side holds exactly max_levels levels (it was truncated) and its
    deepest level lies at distance d < hi (the band may continue beyond what we can see).
  Distances are d = abs(P − mid) · 10000 / mid (bps), computed in that order everywhere (tests and the
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

{#- abs(P − mid) in bps for a level struct `l` (mid is a column of the enclosing row). -#}
{% macro level_bps(l, mid='mid') -%}
(abs({{ l }}.price - {{ mid }}) * 10000 / {{ mid }})
{%- endmacro %}

{#- Σ size of the first k levels (k=None: all); NULL for an empty side. -#}
{% macro side_size_sum(levels, k=none) -%}
{%- if k is none -%}
list_sum(list_transform({{ levels }}, l -> l.size))
{%- else -%}
list_sum(list_transform(list_slice({{ levels }}, 1, {{ k }}), l -> l.size))
{%- endif -%}
{%- endmacro %}

{#- (a − b)/(a + b), NULL when either is NULL or the sum is 0. -#}
{% macro ratio_imbalance(a, b) -%}
CASE WHEN ({{ a }}) + ({{ b }}) <> 0 THEN (({{ a }}) - ({{ b }})) / (({{ a }}) + ({{ b }})) END
{%- endmacro %}

{#- Σ P·Q / Σ Q over the first k levels; NULL when Σ Q is 0 or the side is empty. -#}
{% macro side_vwap(levels, k) -%}
CASE WHEN {{ side_size_sum(levels, k) }} <> 0
     THEN list_sum(list_transform(list_slice({{ levels }}, 1, {{ k }}), l -> l.price * l.size))
          / {{ side_size_sum(levels, k) }} END
{%- endmacro %}

{#- Σ Q over levels with lo ≤ d < hi, with the truncation rule; needs `mid` and `<side>_n` columns. -#}
{% macro band_depth(levels, n_levels, lo, hi, max_levels, mid='mid') -%}
CASE WHEN {{ mid }} IS NULL OR {{ n_levels }} = 0 THEN NULL
     WHEN {{ n_levels }} >= {{ max_levels }} AND {{ level_bps(levels ~ '[-1]', mid) }} < {{ hi }} THEN NULL
     ELSE coalesce(list_sum(list_transform(
            list_filter({{ levels }}, l -> {{ level_bps('l', mid) }} >= {{ lo }} AND {{ level_bps('l', mid) }} < {{ hi }}),
            l -> l.size)), 0)
END
{%- endmacro %}

{#-
  The whole per-snapshot feature set over `relation`, which must have `bids` and `asks` (trimmed to
  max_levels). Every other column of `relation` is passed through unchanged (the lists are dropped).
  Staged subqueries materialise mid, the side totals and the slope points once per row instead of
  re-evaluating them inside every expression that uses them.
-#}
{% macro orderbook_structural(relation, max_levels, bands_bps, slope_levels=10, vwap_levels=5) -%}
SELECT * EXCLUDE (bids, asks, bid_n, ask_n, bid_total, ask_total, bid_pts, ask_pts, bid_mx, bid_my, ask_mx, ask_my),
{%- for lo in bands_bps[:-1] %}
  {{ ratio_imbalance('bid_depth_' ~ band_name(bands_bps, loop.index0), 'ask_depth_' ~ band_name(bands_bps, loop.index0)) }} AS band_imbalance_{{ band_name(bands_bps, loop.index0) }},
{%- endfor %}
{%- for side in ['bid', 'ask'] %}
  CASE WHEN {{ side }}_pts IS NOT NULL
        AND list_sum(list_transform({{ side }}_pts, p -> (p.x - {{ side }}_mx) * (p.x - {{ side }}_mx))) <> 0
       THEN list_sum(list_transform({{ side }}_pts, p -> (p.x - {{ side }}_mx) * (p.y - {{ side }}_my)))
            / list_sum(list_transform({{ side }}_pts, p -> (p.x - {{ side }}_mx) * (p.x - {{ side }}_mx)))
  END AS {{ side }}_slope{{ ',' if not loop.last }}
{%- endfor %}
FROM (
  SELECT *,
    list_avg(list_transform(bid_pts, p -> p.x)) AS bid_mx, list_avg(list_transform(bid_pts, p -> p.y)) AS bid_my,
    list_avg(list_transform(ask_pts, p -> p.x)) AS ask_mx, list_avg(list_transform(ask_pts, p -> p.y)) AS ask_my
  FROM (
    SELECT *,
      spread / mid * 10000 AS spread_bps,
      CASE WHEN bid_size_1 + ask_size_1 <> 0
           THEN (best_bid * ask_size_1 + best_ask * bid_size_1) / (bid_size_1 + ask_size_1) END AS microprice,
      {%- for k in [1, 3, 5, 10] %}
      CASE WHEN bid_n > 0 AND ask_n > 0
           THEN {{ ratio_imbalance(side_size_sum('bids', k), side_size_sum('asks', k)) }} END AS imbalance_{{ k }},
      {%- endfor %}
      bid_total AS bid_depth,
      ask_total AS ask_depth,
      {{ ratio_imbalance('bid_total', 'ask_total') }} AS depth_imbalance,
      {{ side_vwap('bids', vwap_levels) }} AS bid_vwap_{{ vwap_levels }},
      {{ side_vwap('asks', vwap_levels) }} AS ask_vwap_{{ vwap_levels }},
      {%- for side in ['bid', 'ask'] %}
      {%- for lo in bands_bps[:-1] %}
      {{ band_depth(side ~ 's', side ~ '_n', lo, bands_bps[loop.index], max_levels) }} AS {{ side }}_depth_{{ band_name(bands_bps, loop.index0) }},
      {%- endfor %}
      {%- endfor %}
      {%- for side in ['bid', 'ask'] %}
      CASE WHEN {{ side }}_total <> 0
           THEN list_sum(list_transform({{ side }}s, l -> (l.size / {{ side }}_total) * (l.size / {{ side }}_total))) END
        AS {{ side }}_concentration,
      -- slope points: x = distance in bps, y = cumulative size from the best level (levels 1…min(10, M))
      CASE WHEN mid IS NOT NULL AND {{ side }}_n >= 3 THEN
        list_transform(list_slice({{ side }}s, 1, {{ slope_levels }}), (l, i) -> struct_pack(
          x := {{ level_bps('l') }},
          y := list_sum(list_transform(list_slice({{ side }}s, 1, i), z -> z.size))))
      END AS {{ side }}_pts{{ ',' if not loop.last }}
      {%- endfor %}
    FROM (
      SELECT *,
        bids[1].price AS best_bid, asks[1].price AS best_ask,
        bids[1].size AS bid_size_1, asks[1].size AS ask_size_1,
        (bids[1].price + asks[1].price) / 2 AS mid,
        asks[1].price - bids[1].price AS spread,
        len(bids) AS bid_n, len(asks) AS ask_n,
        {{ side_size_sum('bids') }} AS bid_total,
        {{ side_size_sum('asks') }} AS ask_total
      FROM {{ relation }}
    )
  )
)
{%- endmacro %}

