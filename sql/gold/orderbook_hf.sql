{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'gold'],
          lookback='0 seconds', settings={'preserve_insertion_order': true}) }}
{#-
  One row per silver snapshot: the structural and band-depth features of FEATURES.md "Per snapshot"
  (macros/orderbook.sql; bands from features.bands_bps, truncation from features.max_levels), joined
  with the sequential columns that the UDF kernels compute in orderbook_seq on the same key.
  Per-snapshot features need no history, so no lookback; the sequential model carries its own.

  The join is POSITIONAL: silver.orderbook and orderbook_seq hold the same snapshots of the partition
  in the same (ts, seq) order (both models sort their files on it), so row i of one is row i of the
  other. A hash join plus a re-sort of ~80 columns × 864,000 rows did not fit in
  `duckdb.memory_limit: 512MB` (issue 4 budget); the positional join streams. Order is kept by
  preserve_insertion_order, and the WHERE clause turns any misalignment into an error instead of
  silently pairing the wrong rows.
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
POSITIONAL JOIN {{ ref('orderbook_seq') }} q
WHERE CASE
    WHEN q.ts IS DISTINCT FROM s.ts OR q.seq IS DISTINCT FROM s.seq OR q.symbol IS DISTINCT FROM s.symbol
    THEN error('gold.orderbook_hf: gold.orderbook_seq does not hold the same snapshots as silver.orderbook for '
               || s.exchange || ' ' || s.symbol || ' ' || CAST(s.date AS VARCHAR) || ' (build +orderbook_hf)')
    ELSE true
END
