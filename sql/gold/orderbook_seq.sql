{#-
  The sequential columns of docs/features.md "Sequential", one row per silver.orderbook snapshot, computed
  by the numba kernels of udfs/series.py `series_sequential`, streamed (udfs/seq_stream.py, the relation
  kind `orderbook_seq` of udfs/relations.py).

  Order-correctness: the input query below hands each (exchange, symbol)'s snapshots (ts, seq), trades
  (ts, numeric trade_id, trade_id) and VPIN points (ts, bucket_index, kind DESC) as tagged rows in ONE
  order that DuckDB sorts (and spills): at equal ts the trades and points before the snapshots, which
  count those with ts ≤ t. The stream runs each series through the same numpy pipeline the whole-series
  UDF daedalus_orderbook_seq_books runs (register.py `series_inputs`), in chunks of book rows: each
  call also gets the rows before the chunk within the lookback below (computed again, never emitted),
  a chunk ends only between two distinct ts, and the trades-series break counts are carried as running
  maxima over the stream. So every emitted row equals one call over the whole series, bit for bit, for
  any chunk size and any `threads` (tests/unit/test_seq_stream.py), while Python holds a chunk and its
  lookback, not the series. OFI/MLOFI pair each row with the row before it in that order inside the
  call: only the first ofi_levels levels are read, and no predecessor join or window moves any list.

  Partition boundaries (and chunk boundaries, for the same reason): the lookback is the longest window
  (horizons, kyle_lambda_window, spread_regime_window) plus max_state_staleness_seconds. The extra
  staleness span guarantees that every row inside a window of the target rows has its predecessor in
  the input, or else a gap that is a break in every build (the first row of the input is a forced
  segment start, and it is one anyway if it falls inside such a window) — so a day built alone equals
  the same day of a full build, bit for bit (window sums depend only on the rows inside the window:
  udfs/kernels/windows.py). VPIN comes from gold.vpin_buckets (state carried across midnight): the
  value of the last point (bucket completed by trades with ts ≤ t, or the value carried in at a
  midnight) with ts ≤ t; the stream keeps only the last point before the rows it computes.
  Rows are written sorted by config(order_by).
-#}
{%- set f = features -%}
{%- set lookback_s = ((f.horizons + [f.kyle_lambda_window, f.spread_regime_window]) | max) + f.max_state_staleness_seconds -%}
{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'gold', 'sequential'],
          lookback=seconds_interval(lookback_s), order_by=['exchange', 'symbol', 'ts', 'seq'], slice_by='ts') }}
{%- set rows_sql %}
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
{{ series_break_counts('ranked', 'trades', 'snapshot_trade_breaks', rejected='trades', shared=true) }},
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
-- the same break events (and refused bronze trades) as the snapshots' counts, read once
{{ series_break_counts('trade_rows', 'trades', 'trade_breaks', counts_from='snapshot_trade_breaks') }},
flow AS (
    SELECT exchange, symbol, ts, trade_id, n_breaks,
        CASE WHEN side = 'buy' THEN amount ELSE 0.0 END AS buy,
        CASE WHEN side = 'sell' THEN amount ELSE 0.0 END AS sell
    FROM trade_breaks
),
seq_rows AS (
    -- The three inputs of each series as tagged rows for the stream (udfs/seq_stream.py), sorted here
    -- (DuckDB spills): at equal ts the VPIN points (tag 0) and the trades (1) come before the snapshots
    -- (2), which count those with ts ≤ t. Inside a tag, the order of the whole-series lists this
    -- replaced: snapshots by seq; trades by numeric trade_id, then trade_id, which fixes the summation
    -- order of trades sharing a timestamp so sums are reproducible to the bit; points by
    -- (bucket_index, kind DESC).
    SELECT exchange, symbol, ts, 2 AS tag, seq::HUGEINT AS tie_i, NULL::VARCHAR AS tie_s, NULL::VARCHAR AS tie_k,
        seq, crossed, break_before, trade_breaks, mid, spread, bids, asks,
        NULL::DOUBLE AS buy, NULL::DOUBLE AS sell, NULL::BIGINT AS breaks, NULL::DOUBLE AS vpin
    FROM book
    UNION ALL
    SELECT exchange, symbol, ts, 1, TRY_CAST(trade_id AS HUGEINT), trade_id, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        buy, sell, n_breaks, NULL
    FROM flow
    {%- if f.enable_vpin %}
    UNION ALL
    -- VPIN points up to the slice's end: the value carried in at each midnight ('open') and one per
    -- completed bucket; a snapshot takes the last point with ts ≤ t. The previous day's points are
    -- read too: a day with no trades yet (no partition of its own, or none built) still carries the
    -- last value in (docs/features.md "vpin": whatever day those trades fell on). The stream keeps
    -- only the last point before the rows it computes.
    SELECT exchange, symbol, ts, 0, bucket_index, NULL, kind,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, vpin
    FROM {{ ref('vpin_buckets') }}
    WHERE kind IN ('open', 'bucket') AND ts < {{ partition.end }}
    {%- endif %}
)
SELECT * EXCLUDE (tie_i, tie_s, tie_k)
FROM seq_rows
ORDER BY exchange, symbol, ts, tag, tie_i NULLS LAST, tie_s NULLS LAST, tie_k DESC
{%- endset %}
WITH per_snapshot AS (
    SELECT exchange, symbol, ts, seq,
        {%- for c in sequential_columns(f.horizons) %}
        {{ c.expr }} AS {{ c.name }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM {{ python_relation('orderbook_seq', {'params': etl.sequential_params(partition.symbol).model_dump(),
                                              'start': partition.start_dt.isoformat()}, rows_sql) }}
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
