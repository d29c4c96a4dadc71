{#-
  The sequential columns of docs/features.md "Sequential", one row per silver.orderbook snapshot, computed
  by the numba kernels of udfs/series.py `series_sequential`, streamed (udfs/seq_stream.py, the relation
  kind `orderbook_seq` of udfs/relations.py).

  Order-correctness: the input query below hands each (exchange, symbol)'s snapshots (ts, seq), trades
  (ts, numeric trade_id, trade_id) and VPIN points (ts, bucket_index, kind DESC) as tagged rows in ONE
  order that DuckDB sorts (and spills): at equal ts the trades and points before the snapshots, which
  count those with ts ≤ t; the trades-series break events (no ts) ahead of them all, from which the
  stream counts each row's breaks on its capture_ts. The stream runs each series through the same numpy pipeline the whole-series
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
trade_rows AS (
    SELECT exchange, symbol, ts, trade_id, side, amount, capture_ts
    FROM {{ ref('trades') }}
    WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
),
-- Trades-series breaks counted on the receive clock for snapshots and trades alike (docs/features.md
-- "Time"): a snapshot's trade windows hold only trades with its count. The stream counts them, for
-- each book row and trade, the events received strictly before its capture_ts (a NULL capture_ts:
-- none), as the ASOF joins of macros/series.sql `series_break_counts` did, without sorting every row
-- by capture_ts for them: each event comes as a row of every series it breaks, ahead of its rows.
{{ series_break_events('trades', 'trade_break', rejected='trades') }},
break_rows AS (
    SELECT k.exchange, k.symbol, e.cap
    FROM (SELECT DISTINCT exchange, symbol FROM src UNION SELECT DISTINCT exchange, symbol FROM trade_rows) k
    -- symbol NULL: an event of every symbol of the exchange
    JOIN trade_break_events e ON e.exchange = k.exchange AND (e.symbol = k.symbol OR e.symbol IS NULL)
    WHERE e.cap IS NOT NULL
),
book AS (
    -- Per row, no order needed: mid and spread of the touch, and the MLOFI levels, which the series
    -- call pairs with the previous row of the series (OFI/MLOFI: no predecessor join here).
    SELECT exchange, symbol, ts, seq, capture_ts, crossed, break_before,
        (bids[1].price + asks[1].price) / 2 AS mid,
        asks[1].price - bids[1].price AS spread,
        list_slice(bids, 1, {{ f.ofi_levels }}) AS bids,
        list_slice(asks, 1, {{ f.ofi_levels }}) AS asks
    FROM src
),
flow AS (
    SELECT exchange, symbol, ts, trade_id, capture_ts,
        CASE WHEN side = 'buy' THEN amount ELSE 0.0 END AS buy,
        CASE WHEN side = 'sell' THEN amount ELSE 0.0 END AS sell
    FROM trade_rows
),
seq_rows AS (
    -- The inputs of each series as tagged rows for the stream (udfs/seq_stream.py), sorted here
    -- (DuckDB spills): first the break events (tag -1, ts NULL), then by ts; at equal ts the VPIN
    -- points (tag 0) and the trades (1) come before the snapshots (2), which count those with ts ≤ t.
    -- Inside a tag, the order of the whole-series lists this replaced: snapshots by seq; trades by
    -- numeric trade_id, then trade_id, which fixes the summation order of trades sharing a timestamp
    -- so sums are reproducible to the bit; points by (bucket_index, kind DESC).
    SELECT exchange, symbol, ts, 2 AS tag, seq::HUGEINT AS tie_i, NULL::VARCHAR AS tie_s, NULL::VARCHAR AS tie_k,
        seq, capture_ts, crossed, break_before, mid, spread, bids, asks,
        NULL::DOUBLE AS buy, NULL::DOUBLE AS sell, NULL::DOUBLE AS vpin
    FROM book
    UNION ALL
    SELECT exchange, symbol, ts, 1, TRY_CAST(trade_id AS HUGEINT), trade_id, NULL,
        NULL, capture_ts, NULL, NULL, NULL, NULL, NULL, NULL,
        buy, sell, NULL
    FROM flow
    UNION ALL
    SELECT exchange, symbol, NULL, -1, NULL, NULL, NULL,
        NULL, cap, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL
    FROM break_rows
    {%- if f.enable_vpin %}
    UNION ALL
    -- VPIN points up to the slice's end: the value carried in at each midnight ('open') and one per
    -- completed bucket; a snapshot takes the last point with ts ≤ t. The previous day's points are
    -- read too: a day with no trades yet (no partition of its own, or none built) still carries the
    -- last value in (docs/features.md "vpin": whatever day those trades fell on). The stream keeps
    -- only the last point before the rows it computes.
    SELECT exchange, symbol, ts, 0, bucket_index, NULL, kind,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, vpin
    FROM {{ ref('vpin_buckets') }}
    WHERE kind IN ('open', 'bucket') AND ts < {{ partition.end }}
    {%- endif %}
)
SELECT * EXCLUDE (tie_i, tie_s, tie_k)
FROM seq_rows
ORDER BY exchange, symbol, ts NULLS FIRST, tag, tie_i NULLS LAST, tie_s NULLS LAST, tie_k DESC
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
