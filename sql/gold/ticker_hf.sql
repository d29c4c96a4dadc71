{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['ticker', 'gold'],
          lookback=seconds_interval(features.horizons | max),
          settings={'threads': 1}, order_by=['exchange', 'symbol', 'ts', 'seq']) }}
{#-
  Ticker features of docs/features.md "Ticker": mid, spread, spread_bps, volume_imbalance, UTC calendar
  columns, and trailing mean/std of mid and mean of spread_bps over (t − h, t] for h in horizons.

  Trailing windows as RANGE frames (one sort for all horizons). Five ASOF joins of running sums were
  ~2× faster but took ~320 MB for a day of ticks (85,839 rows), past the Pi profile's whole budget;
  a ticker day is small, so memory wins. Sums of mid stay exact — DECIMAL over mid shifted by the
  series' lowest mid in the input — so the variance carries no cancellation error, and a date built
  alone (same input: the partition plus `lookback`) equals the same date inside a full build.
  `mid_std_{h}s` is the sample standard deviation (n − 1), NULL with fewer than two mids.
-#}
WITH ticks AS (
    SELECT exchange, symbol, date, ts, seq, bid, ask, bid_volume, ask_volume,
        (bid + ask) / 2 AS mid,
        ask - bid AS spread
    FROM {{ ref('ticker') }}
    WHERE ts >= {{ partition.lookback_start }} AND ts < {{ partition.end }}
),
shifted AS (
    SELECT *,
        spread / mid * 10000 AS spread_bps,
        min(mid) OVER (PARTITION BY exchange, symbol) AS mid_base,
        CAST(mid - min(mid) OVER (PARTITION BY exchange, symbol) AS DECIMAL(18, 8)) AS x
    FROM ticks
),
-- Trailing (t − h, t] as a RANGE frame of h seconds less one microsecond (timestamps are µs), so a
-- row exactly h seconds back is out; RANGE ... CURRENT ROW takes every row tied with t.
windows AS (
    SELECT *
    {%- for h in features.horizons %}
        , count(x) OVER w{{ h }} AS n_{{ h }}
        , sum(x) OVER w{{ h }} AS s1_{{ h }}
        , sum(CAST(x AS DECIMAL(38, 8)) * CAST(x AS DECIMAL(38, 8))) OVER w{{ h }} AS s2_{{ h }}
        , count(spread_bps) OVER w{{ h }} AS sn_{{ h }}
        , sum(spread_bps) OVER w{{ h }} AS ss_{{ h }}
    {%- endfor %}
    FROM shifted
    WINDOW
    {%- for h in features.horizons %}
        w{{ h }} AS (PARTITION BY exchange, symbol ORDER BY ts
                     RANGE BETWEEN INTERVAL {{ (h * 1000000 - 1) | int }} MICROSECONDS PRECEDING AND CURRENT ROW){{ ',' if not loop.last }}
    {%- endfor %}
)
SELECT
    t.exchange, t.symbol, t.date, t.ts, t.seq,
    t.bid, t.ask, t.bid_volume, t.ask_volume,
    t.mid, t.spread, t.spread_bps,
    CASE WHEN t.bid_volume + t.ask_volume <> 0
         THEN (t.bid_volume - t.ask_volume) / (t.bid_volume + t.ask_volume) END AS volume_imbalance,
    hour(timezone('UTC', t.ts))::INTEGER AS hour,
    (isodow(timezone('UTC', t.ts)) - 1)::INTEGER AS day_of_week,
    isodow(timezone('UTC', t.ts)) >= 6 AS is_weekend
    {%- for h in features.horizons %}
    , CASE WHEN t.n_{{ h }} > 0 THEN t.s1_{{ h }}::DOUBLE / t.n_{{ h }} + t.mid_base END AS mid_mean_{{ h }}s
    , CASE WHEN t.n_{{ h }} > 1
           THEN sqrt(greatest((t.s2_{{ h }} - t.s1_{{ h }}::DOUBLE * t.s1_{{ h }}::DOUBLE / t.n_{{ h }})::DOUBLE, 0)
                     / (t.n_{{ h }} - 1)) END AS mid_std_{{ h }}s
    , CASE WHEN t.sn_{{ h }} > 0 THEN t.ss_{{ h }} / t.sn_{{ h }} END AS spread_bps_mean_{{ h }}s
    {%- endfor %}
FROM windows t
