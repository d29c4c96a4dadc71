{#-
  VPIN volume buckets (docs/features.md "vpin"), one row per bucket completed on this UTC day, plus
  - kind='open':  at the partition start, the VPIN carried in from earlier days (so a snapshot
                  before the day's first completed bucket still finds its value in this partition);
  - kind='state': the series' bucket state at the end of the day (bucket in progress, V, the last
                  n bucket imbalances, auto-V and bvc history), read back by the next partition
                  through previous_partition().
  carry_state=true builds a series' days in date order, so day-by-day equals one full build.
  A bucket's ts is the ts of the trade that completed it (bvc: the end of the 1-minute bar).

  Streamed (udfs/vpin_stream.py, the relation kind `vpin_buckets`): the rows below, each series' carried
  state (tag 0) and its trades (tag 1), are NOT sorted here and no list of a day's trades is made (a
  24 h symbol-day: that list held ~230 MB, a sort of the trades ~80 MB). The trades come in
  silver.trades' file order, (ts, ...), which the stream checks; trades sharing a ts it puts in the
  order (ts, TRY_CAST(trade_id AS HUGEINT) NULLS LAST, trade_id) itself, then it makes the rows of
  daedalus_vpin_buckets (udfs/register.py) with the same call on the same trades, bit for bit.
-#}
{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['trades', 'gold', 'sequential'],
          carry_state=true, order_by=['exchange', 'symbol', 'ts', 'bucket_index', 'kind']) }}
{%- set rows_sql %}
SELECT exchange, symbol, 0 AS tag, NULL::TIMESTAMPTZ AS ts, NULL::DOUBLE AS amount, NULL::BOOLEAN AS is_buy,
    NULL::DOUBLE AS price, NULL::VARCHAR AS trade_id, NULL::HUGEINT AS tie_num,
    state_f, state_i, recent_imbalance, recent_volume, recent_dp
FROM {{ previous_partition(columns={
    'exchange': 'VARCHAR', 'symbol': 'VARCHAR', 'date': 'DATE', 'kind': 'VARCHAR', 'ts': 'TIMESTAMPTZ',
    'bucket_index': 'BIGINT', 'bucket_volume': 'DOUBLE', 'buy_volume': 'DOUBLE', 'sell_volume': 'DOUBLE',
    'vpin': 'DOUBLE', 'state_f': 'DOUBLE[]', 'state_i': 'BIGINT[]', 'recent_imbalance': 'DOUBLE[]',
    'recent_volume': 'DOUBLE[]', 'recent_dp': 'DOUBLE[]'}) }}
WHERE kind = 'state'
UNION ALL
SELECT exchange, symbol, 1, ts, amount, side = 'buy', price, trade_id, TRY_CAST(trade_id AS HUGEINT),
    NULL::DOUBLE[], NULL::BIGINT[], NULL::DOUBLE[], NULL::DOUBLE[], NULL::DOUBLE[]
FROM {{ ref('trades') }}
WHERE ts >= {{ partition.start }} AND ts < {{ partition.end }}
{%- endset %}
SELECT
    exchange,
    symbol,
    {{ partition.date }} AS date,
    kind,
    ts,
    bucket_index,
    bucket_volume,
    buy_volume,
    sell_volume,
    vpin,
    state_f,
    state_i,
    recent_imbalance,
    recent_volume,
    recent_dp
FROM {{ python_relation('vpin_buckets', {'params': vpin_param_values(partition.symbol),
                                         'start': partition.start_dt.isoformat()}, rows_sql) }}
ORDER BY exchange, symbol, ts, bucket_index, kind
