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
WITH raw AS NOT MATERIALIZED (
    SELECT
        exchange,
        symbol,
        "timestamp"::TIMESTAMPTZ AS ts,
        seq,
        nonce,
        capture_ts::TIMESTAMPTZ AS capture_ts,
        conn_id,
        bids,
        asks
    FROM {{ source('bronze', 'orderbook') }}
    WHERE "timestamp" >= {{ partition.lookback_start }} AND "timestamp" < {{ partition.end }}
      AND symbol IS NOT NULL
      AND {{ book_reject_reason() }} IS NULL  -- counted by silver.rejects (macros/quality.sql)
),
keys AS (
    -- The same snapshot landed twice (a re-delivered segment) has the same exchange time and seq.
    SELECT exchange, symbol, ts, seq, count(*) AS copies
    FROM raw
    GROUP BY exchange, symbol, ts, seq
),
break_events AS (
    SELECT exchange, symbol, capture_ts::TIMESTAMPTZ AS ts
    FROM {{ source('bronze', 'events') }}
    WHERE event_type IN {{ break_event_types() }}
      AND capture_ts >= {{ partition.lookback_start }} AND capture_ts < {{ partition.end }}
),
-- Running count of break events up to each instant, per symbol and per whole connection (symbol
-- NULL); a snapshot is after a break when the count grew since the previous snapshot.
symbol_breaks AS (
    SELECT exchange, symbol, ts, count(*) OVER (PARTITION BY exchange, symbol ORDER BY ts) AS n
    FROM break_events WHERE symbol IS NOT NULL
),
exchange_breaks AS (
    SELECT exchange, ts, count(*) OVER (PARTITION BY exchange ORDER BY ts) AS n
    FROM break_events WHERE symbol IS NULL
),
counted AS (
    SELECT k.*, coalesce(sb.n, 0) + coalesce(eb.n, 0) AS breaks_so_far
    FROM keys k
    ASOF LEFT JOIN symbol_breaks sb ON k.exchange = sb.exchange AND k.symbol = sb.symbol AND k.ts >= sb.ts
    ASOF LEFT JOIN exchange_breaks eb ON k.exchange = eb.exchange AND k.ts >= eb.ts
),
flags AS (
    SELECT exchange, symbol, ts, seq, copies,
        coalesce(
            breaks_so_far > lag(breaks_so_far) OVER series
            OR epoch_us(ts) - epoch_us(lag(ts) OVER series) > {{ (features.max_state_staleness_seconds * 1000000) | int }},
            true
        ) AS break_before
    FROM counted
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
