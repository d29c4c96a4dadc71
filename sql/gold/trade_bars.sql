{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['trades', 'gold', 'bars'],
          lookback='0 seconds',
          settings={'threads': 1}, order_by=['exchange', 'symbol', 'bar_seconds', 'bar_start']) }}
{#-
  Trade bars for every d in features.bar_durations (macros/bars.sql): OHLC of trade price in
  (ts, trade_id) order, counts, aggressor volumes, VWAP and trade imbalance. Trades without a known
  aggressor side count in volume and VWAP but in neither buy nor sell volume.
-#}
WITH rows_in AS (
    SELECT exchange, symbol, ts, trade_seq, trade_id, side, price, amount, notional
    FROM {{ ref('trades') }}
    WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
),
-- In base-bar order, one thread (settings): every bar's sums then add the same partials in the same
-- order whatever the row groups of the input file. Unordered, the hash table's output order followed
-- the input's chunking (gold.orderbook_bars: the same rows in other row groups gave a few bars' float
-- sums differing in the last bit).
base AS MATERIALIZED (
    SELECT
        exchange,
        symbol,
        {{ bar_start('ts', 1) }} AS b,  -- 1 s base bars: every duration is whole seconds
        arg_min(price, {'ts': ts, 'n': trade_seq, 'id': trade_id}) AS open,
        max(price) AS high,
        min(price) AS low,
        arg_max(price, {'ts': ts, 'n': trade_seq, 'id': trade_id}) AS close,
        count(*) AS n,
        sum(amount) FILTER (WHERE side = 'buy') AS buy,
        sum(amount) FILTER (WHERE side = 'sell') AS sell,
        sum(amount) AS vol,
        sum(notional) AS notional
    FROM rows_in
    GROUP BY ALL
    ORDER BY exchange, symbol, b
)
SELECT * EXCLUDE (sum_notional),
    sum_notional / nullif(volume, 0) AS vwap,
    (buy_volume - sell_volume) / nullif(buy_volume + sell_volume, 0) AS trade_imbalance
FROM (
{{ bars_rollup('base', features.bar_durations, [
    ('open', 'arg_min(open, b)'),
    ('high', 'max(high)'),
    ('low', 'min(low)'),
    ('close', 'arg_max(close, b)'),
    ('trade_count', 'sum(n)::BIGINT'),
    ('buy_volume', 'coalesce(sum(buy), 0)'),
    ('sell_volume', 'coalesce(sum(sell), 0)'),
    ('volume', 'sum(vol)'),
    ('sum_notional', 'sum(notional)'),
]) }}
)
