{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['ticker', 'gold'],
          lookback=seconds_interval(features.horizons | max),
          settings={'threads': 1}, order_by=['exchange', 'symbol', 'ts', 'seq']) }}
{#-
  Ticker features of FEATURES.md "Ticker": mid, spread, spread_bps, volume_imbalance, UTC calendar
  columns, and trailing mean/std of mid and mean of spread_bps over (t − h, t] for h in horizons.

  Trailing windows as running sums differenced through an ASOF join (one sort, one pass per horizon)
  rather than RANGE frames, whose cost grows with every aggregate (issue 4: ~10× a scan). Running
  sums of mid are kept exact — DECIMAL over mid shifted by the series' lowest mid in the input — so
  the difference of two running sums carries no cancellation error and a date built alone (same
  input: the partition plus `lookback`) equals the same date inside a full build, bit for bit.
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
-- One row per distinct ts: every row at time t sees all rows with timestamp ≤ t (ties included).
per_ts AS (
    SELECT exchange, symbol, ts,
        count(x) AS n, sum(x) AS s1, sum(CAST(x AS DECIMAL(38, 8)) * CAST(x AS DECIMAL(38, 8))) AS s2,
        count(spread_bps) AS sn, sum(spread_bps) AS ss
    FROM shifted
    GROUP BY exchange, symbol, ts
),
running AS (
    SELECT exchange, symbol, ts,
        sum(n) OVER w AS n, sum(s1) OVER w AS s1, sum(s2) OVER w AS s2,
        sum(sn) OVER w AS sn, sum(ss) OVER w AS ss
    FROM per_ts
    WINDOW w AS (PARTITION BY exchange, symbol ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
windows AS (
    SELECT r.exchange, r.symbol, r.ts
    {%- for h in features.horizons %}
        , r.n - coalesce(w{{ h }}.n, 0) AS n_{{ h }}
        , r.s1 - coalesce(w{{ h }}.s1, 0) AS s1_{{ h }}
        , r.s2 - coalesce(w{{ h }}.s2, 0) AS s2_{{ h }}
        , r.sn - coalesce(w{{ h }}.sn, 0) AS sn_{{ h }}
        , r.ss - coalesce(w{{ h }}.ss, 0) AS ss_{{ h }}
    {%- endfor %}
    FROM running r
    {%- for h in features.horizons %}
    -- the running sums up to the last instant ≤ t − h: what leaves the window (t − h, t]
    ASOF LEFT JOIN running w{{ h }}
        ON w{{ h }}.exchange = r.exchange AND w{{ h }}.symbol = r.symbol
       AND w{{ h }}.ts <= r.ts - INTERVAL {{ h | int }} SECOND
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
    , CASE WHEN w.n_{{ h }} > 0 THEN w.s1_{{ h }}::DOUBLE / w.n_{{ h }} + t.mid_base END AS mid_mean_{{ h }}s
    , CASE WHEN w.n_{{ h }} > 1
           THEN sqrt(greatest((w.s2_{{ h }} - w.s1_{{ h }}::DOUBLE * w.s1_{{ h }}::DOUBLE / w.n_{{ h }})::DOUBLE, 0)
                     / (w.n_{{ h }} - 1)) END AS mid_std_{{ h }}s
    , CASE WHEN w.sn_{{ h }} > 0 THEN w.ss_{{ h }} / w.sn_{{ h }} END AS spread_bps_mean_{{ h }}s
    {%- endfor %}
FROM shifted t
JOIN windows w ON w.exchange = t.exchange AND w.symbol = t.symbol AND w.ts = t.ts
