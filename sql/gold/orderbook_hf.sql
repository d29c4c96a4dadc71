{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'gold'],
          lookback='0 seconds', order_by=['exchange', 'symbol', 'ts', 'seq'], slice_by='ts') }}
{#-
  One row per silver snapshot: the structural and band-depth features of docs/features.md "Per snapshot"
  (macros/orderbook.sql: one numba pass per row, daedalus_book_structural; bands from
  features.bands_bps, truncation from features.max_levels; a row silver rebuilt from book updates
  (full_book) brings band depths over the whole book instead), joined with the sequential columns
  that the UDF kernels compute in orderbook_seq on the same key.
  Per-snapshot features need no history, so no lookback; the sequential model carries its own.

  The join is on the snapshot key within one time slice (`slice_by`, etl.slice_hours), so the hash
  table and the final sort hold a slice of ~80 columns, never the day. Every silver snapshot must
  find its sequential row: a missing one is an error naming the fix, not a row of silent NULLs.
-#}
WITH book AS (
    SELECT exchange, symbol, date, ts, seq, nonce, bid_levels, ask_levels, crossed, break_before, bids, asks, full_book,
        {%- for lo in features.bands_bps[:-1] %}
        bid_depth_{{ band_name(features.bands_bps, loop.index0) }} AS book_bid_depth_{{ band_name(features.bands_bps, loop.index0) }},
        ask_depth_{{ band_name(features.bands_bps, loop.index0) }} AS book_ask_depth_{{ band_name(features.bands_bps, loop.index0) }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM {{ ref('orderbook') }}
    WHERE ts >= {{ partition.start }} AND ts < {{ partition.end }}
),
structural AS (
    {{ orderbook_structural('book', features.max_levels, features.bands_bps, full_bands=true) }}
),
sequential AS (
    SELECT * EXCLUDE (date), true AS __matched
    FROM {{ ref('orderbook_seq') }}
    WHERE ts >= {{ partition.start }} AND ts < {{ partition.end }}
)
SELECT s.*, q.* EXCLUDE (exchange, symbol, ts, seq, __matched)
FROM structural s
-- NOT DISTINCT: a venue without sequence numbers has seq NULL (still one row per key in silver)
LEFT JOIN sequential q ON q.exchange = s.exchange AND q.symbol = s.symbol AND q.ts = s.ts
    AND q.seq IS NOT DISTINCT FROM s.seq
WHERE CASE
    WHEN q.__matched IS NULL
    THEN error('gold.orderbook_hf: gold.orderbook_seq does not hold the same snapshots as silver.orderbook for '
               || s.exchange || ' ' || s.symbol || ' ' || CAST(s.date AS VARCHAR) || ' (build +orderbook_hf)')
    ELSE true
END
