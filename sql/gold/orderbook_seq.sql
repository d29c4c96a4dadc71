{#-
  The sequential columns of docs/features.md "Sequential", one row per silver.orderbook snapshot, computed
  by the numba kernels behind daedalus_orderbook_seq (udfs/register.py).

  Order-correctness: each (exchange, symbol) becomes ONE row holding its whole ordered series,
  list(... ORDER BY ts, seq), the UDF is called once per series and returns lists in the same order,
  and UNNEST restores one row per snapshot. No kernel ever sees a partial or reordered series, so
  the result is the same for any `threads`. OFI/MLOFI pair each row with the row before it in that
  list, inside the same call (daedalus_orderbook_seq_books): only the first ofi_levels levels go into
  the list, never the whole books, and no predecessor join or window moves any list.

  Partition boundaries: the lookback is the longest window (horizons, kyle_lambda_window,
  spread_regime_window) plus max_state_staleness_seconds. The extra staleness span guarantees that
  every row inside a window of the target day has its predecessor in the input, or else a gap that
  is a break in every build — so a day built alone equals the same day of a full build, bit for bit
  (window sums depend only on the rows inside the window: udfs/kernels/windows.py).
  VPIN comes from gold.vpin_buckets (state carried across midnight): the value of the last bucket
  completed by trades with ts ≤ t, looked up inside the same UDF call (the day's bucket points are
  one more ordered list). Rows are written sorted by config(order_by).
-#}
{%- set f = features -%}
{%- set lookback_s = ((f.horizons + [f.kyle_lambda_window, f.spread_regime_window]) | max) + f.max_state_staleness_seconds -%}
{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'gold', 'sequential'],
          lookback=seconds_interval(lookback_s), order_by=['exchange', 'symbol', 'ts', 'seq'], slice_by='ts') }}
WITH src AS NOT MATERIALIZED (
    SELECT exchange, symbol, ts, seq, capture_ts, crossed, break_before, bids, asks
    FROM {{ ref('orderbook') }}
    WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
),
ranked AS (
    -- the narrow keys the break counts are placed on
    SELECT exchange, symbol, ts, seq, capture_ts
    FROM src
),
-- Trades-series breaks counted on the receive clock for snapshots and trades alike (docs/features.md
-- "Time"): a snapshot's trade windows hold only trades with its count.
{{ series_break_counts('ranked', 'trades', 'snapshot_trade_breaks', rejected='trades') }},
book AS (
    -- Per row, no order needed: mid and spread of the touch, and the MLOFI levels, which the series
    -- call pairs with the previous row of the series (OFI/MLOFI: no predecessor join here).
    SELECT s.exchange, s.symbol, s.ts, s.seq, s.crossed, s.break_before, r.n_breaks AS trade_breaks,
        (s.bids[1].price + s.asks[1].price) / 2 AS mid,
        s.asks[1].price - s.bids[1].price AS spread,
        list_slice(s.bids, 1, {{ f.ofi_levels }}) AS bids,
        list_slice(s.asks, 1, {{ f.ofi_levels }}) AS asks
    FROM src s
    -- NOT DISTINCT: a venue without sequence numbers has seq NULL (still one row per key in silver)
    JOIN snapshot_trade_breaks r ON r.exchange = s.exchange AND r.symbol = s.symbol AND r.ts = s.ts
        AND r.seq IS NOT DISTINCT FROM s.seq
),
trade_rows AS (
    SELECT exchange, symbol, ts, trade_id, side, amount, capture_ts
    FROM {{ ref('trades') }}
    WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
),
{{ series_break_counts('trade_rows', 'trades', 'trade_breaks', rejected='trades') }},
flow AS (
    SELECT exchange, symbol, ts, trade_id, n_breaks,
        CASE WHEN side = 'buy' THEN amount ELSE 0.0 END AS buy,
        CASE WHEN side = 'sell' THEN amount ELSE 0.0 END AS sell
    FROM trade_breaks
),
book_series AS (
    SELECT exchange, symbol,
        list({'ts': ts, 'seq': seq, 'crossed': crossed, 'break_before': break_before, 'mid': mid, 'spread': spread,
              'bids': bids, 'asks': asks, 'trade_breaks': trade_breaks} ORDER BY ts, seq) AS snapshots
    FROM book
    GROUP BY exchange, symbol
),
flow_series AS (
    -- (ts, trade_id) order, numeric ids compared as numbers: it fixes the summation order of trades
    -- sharing a timestamp, so sums are reproducible to the bit.
    SELECT exchange, symbol,
        list({'ts': ts, 'buy': buy, 'sell': sell, 'breaks': n_breaks}
             ORDER BY ts, TRY_CAST(trade_id AS HUGEINT) NULLS LAST, trade_id) AS trades
    FROM flow
    GROUP BY exchange, symbol
),
{%- if f.enable_vpin %}
vpin_series AS (
    -- VPIN points up to the slice's end: the value carried in at each midnight ('open') and one per
    -- completed bucket, in (ts, bucket_index) order; the kernel takes the last point with ts ≤ t.
    -- The previous day's points are read too: a day with no trades yet (no partition of its own, or
    -- none built) still carries the last value in (docs/features.md "vpin": whatever day those trades fell on).
    SELECT exchange, symbol, list({'ts': ts, 'vpin': vpin} ORDER BY ts, bucket_index, kind DESC) AS points
    FROM {{ ref('vpin_buckets') }}
    WHERE kind IN ('open', 'bucket') AND ts < {{ partition.end }}
    GROUP BY exchange, symbol
),
{%- endif %}
computed AS (
    SELECT b.exchange, b.symbol,
        daedalus_orderbook_seq_books(
            b.snapshots, t.trades, {{ 'v.points' if f.enable_vpin else 'NULL' }},
            {{ sequential_params(partition.symbol) }}
        ) AS r
    FROM book_series b
    LEFT JOIN flow_series t ON t.exchange = b.exchange AND t.symbol = b.symbol
    {%- if f.enable_vpin %}
    LEFT JOIN vpin_series v ON v.exchange = b.exchange AND v.symbol = b.symbol
    {%- endif %}
),
per_snapshot AS (
    SELECT exchange, symbol,
        unnest(r.ts) AS ts,
        unnest(r.seq) AS seq,
        unnest(r.seg_start) AS seg_start,
        {%- for c in sequential_columns(f.horizons) %}
        unnest(r.{{ c.expr }}) AS {{ c.name }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM computed
)
SELECT
    s.exchange,
    s.symbol,
    {{ partition.date }} AS date,
    s.ts,
    s.seq,
    {%- for c in sequential_columns(f.horizons) %}
    s.{{ c.name }}{{ ',' if not loop.last }}
    {%- endfor %}
FROM per_snapshot s
WHERE s.ts >= {{ partition.start }}
