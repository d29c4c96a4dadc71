{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'gold', 'bars'],
          lookback='0 seconds',
          settings={'threads': 1}, order_by=['exchange', 'symbol', 'bar_seconds', 'bar_start']) }}
{#-
  Order-book bars for every d in features.bar_durations (macros/bars.sql): OHLC of mid, snapshot
  count, spread and imbalance means, and the sums of the sequential columns of orderbook_hf.
  Means skip NULL values (a row without a mid, e.g. a missing side, still counts as a snapshot).
-#}
{%- set base_sql %}
WITH rows_in AS (
    SELECT exchange, symbol, ts, seq, mid, spread_bps, imbalance_1, microprice, ofi, mlofi, log_return
    FROM {{ ref('orderbook_hf') }}
    WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
)
SELECT
    exchange,
    symbol,
    {{ bar_start('ts', 1) }} AS b,  -- 1 s base bars: every duration is whole seconds
    arg_min(mid, {'ts': ts, 'seq': seq}) FILTER (WHERE mid IS NOT NULL) AS open,
    max(mid) AS high,
    min(mid) AS low,
    arg_max(mid, {'ts': ts, 'seq': seq}) FILTER (WHERE mid IS NOT NULL) AS close,
    count(*) AS n,
    sum(spread_bps) AS spread_sum,
    count(spread_bps) AS spread_n,
    max(spread_bps) AS spread_max,
    sum(imbalance_1) AS imb_sum,
    count(imbalance_1) AS imb_n,
    sum(microprice) AS micro_sum,
    count(microprice) AS micro_n,
    sum(ofi) AS ofi_sum,
    sum(mlofi) AS mlofi_sum,
    sum(log_return * log_return) AS rv_sum
FROM rows_in
GROUP BY ALL
ORDER BY exchange, symbol, b
{%- endset %}
-- The base bars in base-bar order, read on one thread (settings): every bar's sums then add the same
-- partials in the same order whatever the row groups of the input file. Unordered, the hash table's
-- output order followed the input's chunking, and a day of orderbook_hf merged from 1 h vs 6 h slices
-- (same rows, other row groups) gave a few bars' float sums differing in the last bit.
-- A table made before this query runs (udfs/relations.py `table_sql`), not a MATERIALIZED CTE: the
-- base's hash table and sort are freed before the rollups and the final sort start (24 h day, Pi
-- profile: −20 MB peak). NOT MATERIALIZED: the seven rollups scan the table itself.
WITH base AS NOT MATERIALIZED (
    SELECT * FROM {{ temp_table(base_sql) }}
)
{{ bars_rollup('base', features.bar_durations, [
    ('open', 'arg_min(open, b) FILTER (WHERE open IS NOT NULL)'),
    ('high', 'max(high)'),
    ('low', 'min(low)'),
    ('close', 'arg_max(close, b) FILTER (WHERE close IS NOT NULL)'),
    ('snapshot_count', 'sum(n)::BIGINT'),
    ('mean_spread_bps', 'sum(spread_sum) / nullif(sum(spread_n), 0)'),
    ('max_spread_bps', 'max(spread_max)'),
    ('mean_imbalance_1', 'sum(imb_sum) / nullif(sum(imb_n), 0)'),
    ('mean_microprice', 'sum(micro_sum) / nullif(sum(micro_n), 0)'),
    ('sum_ofi', 'sum(ofi_sum)'),
    ('sum_mlofi', 'sum(mlofi_sum)'),
    ('realized_variance', 'sum(rv_sum)'),
]) }}
