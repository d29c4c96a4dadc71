{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'gold'],
          lookback='0 seconds', order_by=['exchange', 'symbol', 'ts', 'seq']) }}
{#-
  One row per silver snapshot: the structural and band-depth features of FEATURES.md "Per snapshot"
  (macros/orderbook.sql; bands from features.bands_bps, truncation from features.max_levels), joined
  with the sequential columns that the UDF kernels compute in orderbook_seq on the same key.
  Per-snapshot features need no history, so no lookback; the sequential model carries its own.
-#}
WITH book AS (
    SELECT exchange, symbol, date, ts, seq, nonce, bid_levels, ask_levels, crossed, break_before, bids, asks
    FROM {{ ref('orderbook') }}
    WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
),
structural AS (
    {{ orderbook_structural('book', features.max_levels, features.bands_bps) }}
)
SELECT s.*, q.* EXCLUDE (exchange, symbol, date, ts, seq)
FROM structural s
LEFT JOIN {{ ref('orderbook_seq') }} q
    ON q.exchange = s.exchange AND q.symbol = s.symbol AND q.date = s.date AND q.ts = s.ts AND q.seq = s.seq
