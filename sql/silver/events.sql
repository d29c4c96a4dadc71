{{ config(materialized='partitioned', partition_by=['exchange', 'date'], tags=['events', 'silver'],
          lookback='0 seconds', order_by=['exchange', 'ts', 'conn_id', 'seq']) }}
{#-
  Connection events (connect, disconnect, gap, overflow, ...). Events carry no exchange time: `ts` is
  the receive time at which the collector recorded them. `symbol` NULL means the whole connection.
  Partitioned by exchange and date only, since connection-wide events have no symbol.
-#}
SELECT
    exchange,
    symbol,
    {{ utc_date('capture_ts::TIMESTAMPTZ') }} AS date,
    capture_ts::TIMESTAMPTZ AS ts,
    conn_id,
    seq,
    event_type,
    channel,
    close_code,
    "count",
    interval_start::TIMESTAMPTZ AS interval_start,
    interval_end::TIMESTAMPTZ AS interval_end,
    detail,
    event_type IN {{ break_event_types() }} AS is_break
FROM {{ source('bronze', 'events') }}
WHERE capture_ts >= {{ partition.lookback_start }} AND capture_ts < {{ partition.end }}
QUALIFY row_number() OVER (PARTITION BY exchange, conn_id, seq, event_type, capture_ts ORDER BY collected_at) = 1
