{#-
  VPIN volume buckets (docs/features.md "vpin"), one row per bucket completed on this UTC day, plus
  - kind='open':  at the partition start, the VPIN carried in from earlier days (so a snapshot
                  before the day's first completed bucket still finds its value in this partition);
  - kind='state': the series' bucket state at the end of the day (bucket in progress, V, the last
                  n bucket imbalances, auto-V and bvc history), read back by the next partition
                  through previous_partition().
  carry_state=true builds a series' days in date order, so day-by-day equals one full build.
  A bucket's ts is the ts of the trade that completed it (bvc: the end of the 1-minute bar).
-#}
{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['trades', 'gold', 'sequential'],
          carry_state=true, order_by=['exchange', 'symbol', 'ts', 'bucket_index', 'kind']) }}
WITH flow AS (
    SELECT exchange, symbol, ts, trade_id, side, amount, price
    FROM {{ ref('trades') }}
    WHERE ts >= {{ partition.start }} AND ts < {{ partition.end }}
),
series AS (
    SELECT exchange, symbol,
        list({'ts': ts, 'amount': amount, 'is_buy': side = 'buy', 'price': price}
             ORDER BY ts, TRY_CAST(trade_id AS HUGEINT) NULLS LAST, trade_id) AS trades
    FROM flow
    GROUP BY exchange, symbol
),
carried AS (
    SELECT exchange, symbol, state_f, state_i, recent_imbalance, recent_volume, recent_dp
    FROM {{ previous_partition(columns={
        'exchange': 'VARCHAR', 'symbol': 'VARCHAR', 'date': 'DATE', 'kind': 'VARCHAR', 'ts': 'TIMESTAMPTZ',
        'bucket_index': 'BIGINT', 'bucket_volume': 'DOUBLE', 'buy_volume': 'DOUBLE', 'sell_volume': 'DOUBLE',
        'vpin': 'DOUBLE', 'state_f': 'DOUBLE[]', 'state_i': 'BIGINT[]', 'recent_imbalance': 'DOUBLE[]',
        'recent_volume': 'DOUBLE[]', 'recent_dp': 'DOUBLE[]'}) }}
    WHERE kind = 'state'
),
computed AS (
    SELECT s.exchange, s.symbol,
        daedalus_vpin_buckets(
            s.trades, c.state_f, c.state_i, c.recent_imbalance, c.recent_volume, c.recent_dp,
            {{ partition.start }}, {{ vpin_params(partition.symbol) }}
        ) AS r
    FROM series s
    LEFT JOIN carried c ON c.exchange = s.exchange AND c.symbol = s.symbol
),
buckets AS (
    SELECT exchange, symbol,
        unnest(r.kind) AS kind,
        unnest(r.ts) AS ts,
        unnest(r.bucket_index) AS bucket_index,
        unnest(r.bucket_volume) AS bucket_volume,
        unnest(r.buy_volume) AS buy_volume,
        unnest(r.sell_volume) AS sell_volume,
        unnest(r.vpin) AS vpin,
        r.state_f AS s_f, r.state_i AS s_i, r.recent_imbalance AS s_imb, r.recent_volume AS s_vol,
        r.recent_dp AS s_dp
    FROM computed
)
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
    CASE WHEN kind = 'state' THEN s_f END AS state_f,
    CASE WHEN kind = 'state' THEN s_i END AS state_i,
    CASE WHEN kind = 'state' THEN s_imb END AS recent_imbalance,
    CASE WHEN kind = 'state' THEN s_vol END AS recent_volume,
    CASE WHEN kind = 'state' THEN s_dp END AS recent_dp
FROM buckets
ORDER BY exchange, symbol, ts, bucket_index, kind
