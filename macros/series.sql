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
('disconnect', 'gap', 'resync', 'overflow', 'stale', 'reconnect', 'segment_repair', 'quarantine')
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

{#- Break placement on one clock (docs/features.md "Time"): CTEs ending in `name`, the rows of `rows` (with
    exchange, symbol, capture_ts) plus `n_breaks`, the number of break events of series (exchange,
    symbol, `channel`; a list of channels names one series spelled several ways) received strictly before the row's capture_ts. A row is after a break when
    n_breaks grew since the previous row of its series. An event names its series by symbol and
    channel; NULL in either means every symbol / every channel (connection-wide rows of older lakes).
    Events are read a minute beyond the rows' span on both sides: the receive clock of a row may lead or
    trail its exchange `ts`, which is what selects the rows. `rejected`: a bronze channel whose rows
    silver refuses (macros/quality.sql, counted in silver.rejects) count as break events of their
    series at their receive time: a refused row is a lost row. `rejected_rows` instead: a relation of
    the model holding those refused rows (exchange, symbol, capture_ts of the rows with exchange time
    in [lookback_start, end)), so bronze is not read twice. `counts_from`: the `name` of an earlier
    call of this model with the same channel and rejected rows, made with `shared=true` (its counts
    materialized): they are reused, so the events and refused rows are read once for both row sets. -#}
{% macro series_break_counts(rows, channel, name, rejected=none, rejected_rows=none, counts_from=none, shared=false) -%}
{%- set counts = counts_from or name %}
{%- if not counts_from %}
{{ series_break_events(channel, name, rejected=rejected, rejected_rows=rejected_rows) }},
{{ name }}_by_symbol AS {{ 'MATERIALIZED ' if shared }}(
    SELECT exchange, symbol, cap, count(*) OVER (PARTITION BY exchange, symbol ORDER BY cap) AS n
    FROM {{ name }}_events WHERE symbol IS NOT NULL
),
{{ name }}_by_exchange AS {{ 'MATERIALIZED ' if shared }}(
    SELECT exchange, cap, count(*) OVER (PARTITION BY exchange ORDER BY cap) AS n
    FROM {{ name }}_events WHERE symbol IS NULL
),
{%- endif %}
{{ name }} AS (
    SELECT r.*, coalesce(s.n, 0) + coalesce(e.n, 0) AS n_breaks
    FROM {{ rows }} r
    ASOF LEFT JOIN {{ counts }}_by_symbol s ON r.exchange = s.exchange AND r.symbol = s.symbol AND r.capture_ts > s.cap
    ASOF LEFT JOIN {{ counts }}_by_exchange e ON r.exchange = e.exchange AND r.capture_ts > e.cap
)
{%- endmacro %}

{#- The reject reason expression (macros/quality.sql) of a bronze channel. -#}
{% macro reject_reason_of(channel) -%}
{%- if channel == 'trades' -%}{{ trade_reject_reason() }}{%- elif channel == 'orderbook' -%}{{ book_reject_reason() }}{%- else -%}{{ ticker_reject_reason() }}{%- endif -%}
{%- endmacro %}

{#- The CTE `name`_events of `series_break_counts`: (exchange, symbol, cap) of every break event of
    series (exchange, symbol, `channel`) received in the rows' span ± a minute (symbol NULL: every symbol
    of the exchange), and of the refused bronze rows (`rejected` / `rejected_rows`). For a model that
    counts them itself (gold.orderbook_seq: its stream, udfs/seq_stream.py). -#}
{% macro series_break_events(channel, name, rejected=none, rejected_rows=none) -%}
{{ name }}_events AS (
    SELECT exchange, symbol, capture_ts::TIMESTAMPTZ AS cap
    FROM {{ source('bronze', 'events') }} brk
    WHERE event_type IN {{ break_event_types() }}
      {%- if channel == 'trades' %}
      -- a trades break inside a gap that a REST backfill closed completely is no break (collector/heal.py)
      AND NOT EXISTS (
          SELECT 1 FROM {{ source('bronze', 'events') }} fill
          WHERE fill.event_type = 'backfill' AND fill.detail LIKE 'complete%'
            AND fill.exchange = brk.exchange AND fill.symbol = brk.symbol AND brk.channel = 'trades'
            AND brk.capture_ts BETWEEN fill.interval_start AND fill.interval_end
            -- written after the gap closed: at most heal_seconds after the break (+ reconnect backoff)
            AND fill.capture_ts >= {{ partition.lookback_start }} - INTERVAL 60 SECONDS
            AND fill.capture_ts < {{ partition.end }} + INTERVAL 1 HOUR)
      {%- endif %}
      {%- if channel is string %}
      AND (channel = '{{ channel }}' OR channel IS NULL)
      {%- else %}
      AND (channel IN ('{{ channel | join("', '") }}') OR channel IS NULL)
      {%- endif %}
      AND capture_ts >= {{ partition.lookback_start }} - INTERVAL 60 SECONDS
      AND capture_ts < {{ partition.end }} + INTERVAL 60 SECONDS
    {%- if rejected_rows %}
    UNION ALL
    -- the refused rows, already read by the model (exchange, symbol, capture_ts; same window as below)
    SELECT exchange, symbol, capture_ts::TIMESTAMPTZ FROM {{ rejected_rows }}
    {%- elif rejected %}
    UNION ALL
    -- a bronze row silver refuses (silver.rejects) is a lost row of its series: a break like any loss
    SELECT exchange, symbol, capture_ts::TIMESTAMPTZ
    FROM {{ source('bronze', rejected) }}
    WHERE symbol IS NOT NULL AND {{ reject_reason_of(rejected) }} IS NOT NULL
      AND "timestamp" >= {{ partition.lookback_start }} AND "timestamp" < {{ partition.end }}
    {%- endif %}
)
{%- endmacro %}
