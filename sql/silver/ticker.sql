{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['ticker', 'silver'],
          lookback='0 seconds', order_by=['exchange', 'symbol', 'ts', 'seq']) }}
{#-
  One row per ticker message. `ts` is the exchange time; some feeds (Binance bookTicker) carry none,
  and then the receive time stands in and `ts_is_receive_time` says so (bronze dates such rows by
  capture_ts too, so they are found in the same partition).
-#}
SELECT
    exchange,
    symbol,
    {{ utc_date('coalesce("timestamp", capture_ts)::TIMESTAMPTZ') }} AS date,
    coalesce("timestamp", capture_ts)::TIMESTAMPTZ AS ts,
    seq,
    capture_ts::TIMESTAMPTZ AS capture_ts,
    "timestamp" IS NULL AS ts_is_receive_time,
    bid, ask, bid_volume, ask_volume, "last", "open", high, low, "close", vwap,
    base_volume, quote_volume, change, percentage,
    info_json
FROM {{ source('bronze', 'ticker') }}
WHERE coalesce("timestamp", capture_ts) >= {{ partition.lookback_start }}
  AND coalesce("timestamp", capture_ts) < {{ partition.end }}
  AND symbol IS NOT NULL
  AND {{ ticker_reject_reason() }} IS NULL  -- counted by silver.rejects (macros/quality.sql)
QUALIFY row_number() OVER (
    PARTITION BY exchange, symbol, coalesce("timestamp", capture_ts), seq ORDER BY capture_ts, conn_id) = 1
