{#-
  Time bars of docs/features.md "Bars": left-closed [start, start + d), labelled by start = floor(ts/d)·d
  (UTC), empty bars never written (a bar exists only where a row fell). Every bar of every duration
  is rolled up from one-second base bars (durations are whole seconds), so the rows are aggregated
  once and the seven durations cost seven small GROUP BYs over at most 86,400 base bars a day.

  `base_relation` must have exchange, symbol, b (base bar start) and the per-base-bar partials the
  caller names in `rollups`: a list of (output column, SQL over the base relation) pairs.
  A bar never spans two UTC dates when d divides a day (every default does); otherwise it is cut at
  midnight, because a partition only ever reads its own date, and the piece after midnight is
  labelled by that midnight.
-#}
{% macro bars_rollup(base_relation, durations, rollups) -%}
{%- for d in durations %}
{#- the piece of a bar cut at midnight is labelled by that midnight, so its label and `date` are those
    of the partition it is written to, and the two pieces keep distinct keys -#}
{%- set start = bar_start('b', d) if 86400 % (d | int) == 0
    else 'greatest(' ~ bar_start('b', d) ~ ', ' ~ bar_start('b', 86400) ~ ')' %}
SELECT
    exchange,
    symbol,
    {{ utc_date(start) }} AS date,
    {{ start }} AS bar_start,
    {{ d | int }}::INTEGER AS bar_seconds,
    {%- for name, expr in rollups %}
    {{ expr }} AS {{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
FROM {{ base_relation }}
GROUP BY exchange, symbol, {{ start }}
{{ 'UNION ALL' if not loop.last }}
{%- endfor %}
{%- endmacro %}
