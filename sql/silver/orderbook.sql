{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'silver'],
          lookback=seconds_interval(features.max_state_staleness_seconds), order_by=['exchange', 'symbol', 'ts', 'seq'], slice_by='ts') }}
{#-
  One typed row per bronze snapshot. The lookback (max_state_staleness_seconds) is exactly what
  `break_before` needs: a predecessor further back than that is a break whatever happened between.

  Everything that needs ordering or grouping (dedup, previous snapshot, ASOF to events) runs on the
  narrow keys only; the wide rows (the level lists, ~30 MB per hour of one symbol) stream through a
  single hash join against those keys, so no window, ASOF or aggregate ever moves the lists.
  Built in time slices (`slice_by`, etl.slice_hours): the final sort carries the lists, and a slice
  of them fits a small memory_limit where a whole day does not.
-#}
WITH unstamped AS (
    -- A snapshot loaded over REST (Binance's lastUpdateId book) has no exchange time: it takes the
    -- time of the first update applied to it, the next row of its series on its connection. The ts
    -- filter below selects stamped rows, so these are picked by receive time instead.
    SELECT exchange, symbol, conn_id, seq
    FROM {{ source('bronze', 'orderbook') }}
    WHERE "timestamp" IS NULL AND symbol IS NOT NULL
      AND capture_ts >= {{ partition.lookback_start }} - INTERVAL 60 SECONDS
      AND capture_ts < {{ partition.end }} + INTERVAL 60 SECONDS
),
stamp_fill AS (
    SELECT u.exchange, u.symbol, u.conn_id, u.seq, n.ts AS fill_ts
    FROM unstamped u
    ASOF JOIN (
        SELECT exchange, symbol, conn_id, seq, "timestamp"::TIMESTAMPTZ AS ts
        FROM {{ source('bronze', 'orderbook') }}
        WHERE "timestamp" IS NOT NULL AND symbol IS NOT NULL
          AND capture_ts >= {{ partition.lookback_start }} - INTERVAL 60 SECONDS
          AND capture_ts < {{ partition.end }} + INTERVAL 120 SECONDS
    ) n ON n.exchange = u.exchange AND n.symbol = u.symbol AND n.conn_id = u.conn_id AND u.seq < n.seq
),
raw AS NOT MATERIALIZED (
    SELECT exchange, symbol, "timestamp"::TIMESTAMPTZ AS ts, seq, nonce, capture_ts::TIMESTAMPTZ AS capture_ts,
        conn_id, bids, asks
    FROM {{ source('bronze', 'orderbook') }}
    WHERE "timestamp" >= {{ partition.lookback_start }} AND "timestamp" < {{ partition.end }}
      AND symbol IS NOT NULL
      AND {{ book_reject_reason() }} IS NULL  -- counted by silver.rejects (macros/quality.sql)
    UNION ALL
    SELECT b.exchange, b.symbol, f.fill_ts AS ts, b.seq, b.nonce, b.capture_ts::TIMESTAMPTZ AS capture_ts,
        b.conn_id, b.bids, b.asks
    FROM {{ source('bronze', 'orderbook') }} b
    JOIN stamp_fill f ON f.exchange = b.exchange AND f.symbol = b.symbol AND f.conn_id = b.conn_id AND f.seq = b.seq
    WHERE b."timestamp" IS NULL
      AND b.capture_ts >= {{ partition.lookback_start }} - INTERVAL 60 SECONDS
      AND b.capture_ts < {{ partition.end }} + INTERVAL 60 SECONDS
      AND f.fill_ts >= {{ partition.lookback_start }} AND f.fill_ts < {{ partition.end }}
      AND {{ book_reject_reason() }} IS NULL
),
keys AS (
    -- The same snapshot landed twice (a re-delivered segment) has the same exchange time and seq.
    -- capture_ts is the receive clock that events are placed on (its first copy).
    SELECT exchange, symbol, ts, seq, count(*) AS copies, min(capture_ts) AS capture_ts
    FROM raw
    GROUP BY exchange, symbol, ts, seq
),
{{ series_break_counts('keys', 'orderbook', 'breaks_so_far', rejected='orderbook') }},
flags AS (
    SELECT exchange, symbol, ts, seq, copies,
        coalesce(
            n_breaks > lag(n_breaks) OVER series
            OR epoch_us(ts) - epoch_us(lag(ts) OVER series) > {{ (features.max_state_staleness_seconds * 1000000) | int }},
            true
        ) AS break_before
    FROM breaks_so_far
    WINDOW series AS (PARTITION BY exchange, symbol ORDER BY ts, seq)
),
joined AS NOT MATERIALIZED (
    -- Inlined in both branches below: materialising it would copy every list once more.
    SELECT r.*, f.copies, f.break_before
    FROM raw r
    JOIN flags f ON f.exchange = r.exchange AND f.symbol = r.symbol AND f.ts = r.ts AND f.seq = r.seq
),
deduplicated AS (
    SELECT * FROM joined WHERE copies = 1
    UNION ALL
    -- only the (rare) keys landed more than once go through a window: keep the first received copy
    SELECT * FROM joined WHERE copies > 1
    QUALIFY row_number() OVER (PARTITION BY exchange, symbol, ts, seq ORDER BY capture_ts, conn_id) = 1
)
SELECT
    exchange,
    symbol,
    {{ utc_date('ts') }} AS date,
    ts,
    seq,
    nonce,
    capture_ts,
    conn_id,
    bids,
    asks,
    len(bids)::INTEGER AS bid_levels,
    len(asks)::INTEGER AS ask_levels,
    coalesce(bids[1].price >= asks[1].price, false) AS crossed,
    break_before
FROM (
    SELECT * REPLACE (
        -- A level without a positive price or a non-negative size is not a level; trim to max_levels.
        list_slice(list_filter(bids, l -> l.price > 0 AND l.size >= 0), 1, {{ features.max_levels }}) AS bids,
        list_slice(list_filter(asks, l -> l.price > 0 AND l.size >= 0), 1, {{ features.max_levels }}) AS asks
    )
    FROM deduplicated
)
