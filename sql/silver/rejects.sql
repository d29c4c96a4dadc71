{{ config(materialized='partitioned', partition_by=['exchange', 'date'], tags=['silver', 'events'],
          lookback='0 seconds', order_by=['exchange', 'symbol', 'channel', 'reason']) }}
{#-
  The bronze rows silver refuses to serve, counted: one row per (exchange, symbol, channel, reason)
  and day, with how many rows and the receive-time span they cover. A bad value (NaN, inf, a price
  of 0 or below, an unknown trade side, a book level that is not a finite positive price) is not a
  fact, so it is neither served nor dropped unrecorded (issue 17). The reasons come from
  macros/quality.sql, the same expressions silver.trades / orderbook / ticker filter on, so every
  bronze row of a day is either in a silver model (before dedup) or counted here.
  Partitioned like silver.events (exchange, date): a day without a reject still writes one empty file.
-#}
WITH bad AS (
    -- a trade without exchange time (reason timestamp_null) is dated by its receive time, as in bronze
    SELECT exchange, symbol, 'trades' AS channel, {{ trade_reject_reason() }} AS reason,
           coalesce("timestamp", capture_ts)::TIMESTAMPTZ AS ts, capture_ts::TIMESTAMPTZ AS capture_ts
    FROM {{ source('bronze', 'trades') }}
    WHERE coalesce("timestamp", capture_ts) >= {{ partition.lookback_start }}
      AND coalesce("timestamp", capture_ts) < {{ partition.end }}
      AND {{ trade_reject_reason() }} IS NOT NULL
    UNION ALL
    SELECT exchange, symbol, 'orderbook', {{ book_reject_reason() }},
           "timestamp"::TIMESTAMPTZ, capture_ts::TIMESTAMPTZ
    FROM {{ source('bronze', 'orderbook') }}
    WHERE "timestamp" >= {{ partition.lookback_start }} AND "timestamp" < {{ partition.end }}
      AND symbol IS NOT NULL AND {{ book_reject_reason() }} IS NOT NULL
    UNION ALL
    -- A REST snapshot without exchange time that no stamped row followed on its receive date
    -- (macros/book_updates.sql `unstamped_fills`, the rule silver.orderbook stamps such a snapshot by,
    -- docs/features.md "Time"): it has no place in exchange time, so it is counted here at its receive time.
    SELECT exchange, symbol, 'orderbook', 'no_exchange_time', capture_ts, capture_ts
    FROM {{ unstamped_fills(source('bronze', 'orderbook'), partition.lookback_start, partition.end) }}
    WHERE fill_ts IS NULL
    UNION ALL
    -- book_updates messages silver.orderbook does not serve (one row each in silver.orderbook_unserved,
    -- with the kernel's reason: update_id_gap, stale, no_book, ...)
    SELECT exchange, symbol, 'book_updates', reason, ts, capture_ts
    FROM {{ ref('orderbook_unserved') }}
    WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
    UNION ALL
    SELECT exchange, symbol, 'ticker', {{ ticker_reject_reason() }},
           coalesce("timestamp", capture_ts)::TIMESTAMPTZ, capture_ts::TIMESTAMPTZ
    FROM {{ source('bronze', 'ticker') }}
    WHERE coalesce("timestamp", capture_ts) >= {{ partition.lookback_start }}
      AND coalesce("timestamp", capture_ts) < {{ partition.end }}
      AND {{ ticker_reject_reason() }} IS NOT NULL
    UNION ALL
    -- a book_updates message without a symbol belongs to no book: counted, never served
    SELECT exchange, NULL, 'book_updates', 'symbol_null',
           coalesce("timestamp", capture_ts)::TIMESTAMPTZ, capture_ts::TIMESTAMPTZ
    FROM {{ source('bronze', 'book_updates') }}
    WHERE symbol IS NULL AND kind IN ('snapshot', 'delta')
      AND coalesce("timestamp", capture_ts) >= {{ partition.lookback_start }}
      AND coalesce("timestamp", capture_ts) < {{ partition.end }}
    UNION ALL
    -- a book snapshot without a symbol belongs to no series: counted, never served
    SELECT exchange, NULL, 'orderbook', 'symbol_null',
           coalesce("timestamp", capture_ts)::TIMESTAMPTZ, capture_ts::TIMESTAMPTZ
    FROM {{ source('bronze', 'orderbook') }}
    WHERE symbol IS NULL
      AND coalesce("timestamp", capture_ts) >= {{ partition.lookback_start }}
      AND coalesce("timestamp", capture_ts) < {{ partition.end }}
)
SELECT
    exchange,
    symbol,
    {{ utc_date('ts') }} AS date,
    channel,
    reason,
    count(*)::BIGINT AS "count",
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    min(capture_ts) AS first_capture_ts,
    max(capture_ts) AS last_capture_ts
FROM bad
GROUP BY ALL
