{#-
  Helpers shared by the silver and gold models: time conversions, the UTC date of a timestamp, the
  event types that break a series, and the bar bucket. Kept here so every model spells them the same way.
-#}

{#- The UTC calendar date of a TIMESTAMPTZ (independent of the session TimeZone). -#}
{% macro utc_date(ts) -%}
CAST(timezone('UTC', {{ ts }}) AS DATE)
{%- endmacro %}

{#- Bronze `events` types after which a series is broken (collector/schemas.py BREAK_EVENT_TYPES;
    a unit test keeps the two lists equal). -#}
{% macro break_event_types() -%}
('disconnect', 'gap', 'resync', 'overflow', 'stale', 'reconnect', 'segment_repair')
{%- endmacro %}

{#- Start of the left-closed bar of `seconds` containing ts: floor(epoch / d) · d, in UTC. Integer
    microsecond arithmetic so a timestamp exactly on a boundary opens the new bar. -#}
{% macro bar_start(ts, seconds) -%}
to_timestamp((epoch_us({{ ts }}) // {{ (seconds * 1000000) | int }}) * {{ seconds | int }})
{%- endmacro %}

{#- A lookback interval literal for config(): whole seconds, rounded up. -#}
{% macro seconds_interval(seconds) -%}
{{ (seconds | round(0, 'ceil')) | int }} seconds
{%- endmacro %}
