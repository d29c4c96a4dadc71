{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'silver'],
          lookback=seconds_interval(features.max_state_staleness_seconds), order_by=['exchange', 'symbol', 'ts', 'seq'], slice_by='ts',
          settings={'disabled_optimizers': 'cte_filter_pusher'}) }}
{#-
  One typed row per book message the exchange sent and the book accepted (docs/features.md "Books — what
  silver serves"): after every accepted bronze `book_updates` snapshot or delta (full depth, rebuilt
  by the numba kernel, streamed batch by batch through udfs/book_stream.py; checkpoints only seed and validate the rebuild)
  or, for series without updates (lakes written before them), per bronze `orderbook` snapshot.

  Both channels for one connection: its `book_updates` win and its `orderbook` rows are not read
  (they are the same books cut to a depth); a connection with only snapshots builds as before.

  Updates (udfs/kernels/book.py, rows: macros/book_updates.sql): each connection's rows replay in
  seq order, streamed batch by batch (udfs/book_stream.py), by the row's sync rule, from its last snapshot or checkpoint with exchange time before
  the slice (hourly checkpoints: found within `anchor_seconds`, macros/book_updates.sql), so a slice or a day rebuilds from its
  own rows plus that one load and equals a build from the connection's start. Bands are summed over
  the whole rebuilt book. A delta that cannot apply breaks the book until the next load: its rows are
  not served (silver.orderbook_unserved counts them, with why) and the next served row carries
  `break_before` and the reason (`break_reason`).

  Snapshots: the lookback (max_state_staleness_seconds) is exactly what `break_before` needs: a
  predecessor further back than that is a break whatever happened between. Everything that needs
  ordering or grouping (dedup, previous snapshot, ASOF to events) runs on the narrow keys only
  (`scanned`: bronze keys over the slice and its lookback, the level check once per row, no lists);
  the slice's lists (~30 MB per hour of one symbol) are read again from bronze and stream through a
  single hash join against the winners' keys, so no window, ASOF, aggregate or materialized copy ever
  holds them (a winner sharing its keys with another copy takes a second, normally empty, read).
  Built in time slices (`slice_by`, etl.slice_hours): the final sort carries the lists, and a slice
  of them fits a small memory_limit where a whole day does not.

  `cte_filter_pusher` is off for this model: it pushed the OR of the filters of `scanned`'s readers
  (rejected / own and not rejected) into `scanned`, which then ran the level check on every row
  several more times (a 1 h slice from snapshots: ~0.8 s → ~0.5 s).
-#}
{%- set bands = features.bands_bps %}
WITH {{ book_update_rows() }},
upd_out AS (
    SELECT exchange, symbol, conn_id, seq, ts, capture_ts, kind, last_update_id AS nonce, break_before, reason,
        bids, asks, bid_bands, ask_bands
    FROM {{ book_rebuild_stream() }}
),
from_updates AS (
    SELECT exchange, symbol, {{ utc_date('ts') }} AS date, ts, seq, nonce, capture_ts, conn_id, bids, asks,
        len(bids)::INTEGER AS bid_levels, len(asks)::INTEGER AS ask_levels,
        coalesce(bids[1].price >= asks[1].price, false) AS crossed,
        break_before, kind,
        CASE WHEN break_before THEN nullif(reason, '') END AS break_reason, true AS full_book,
        {%- for lo in bands[:-1] %}
        bid_bands[{{ loop.index }}] AS bid_depth_{{ band_name(bands, loop.index0) }},
        ask_bands[{{ loop.index }}] AS ask_depth_{{ band_name(bands, loop.index0) }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM upd_out
    WHERE ts >= {{ partition.start }}
),
upd_conns AS (
    SELECT DISTINCT exchange, symbol, conn_id FROM upd_keys
),
stamp_fill AS (
    -- A snapshot loaded over REST (Binance's lastUpdateId book) has no exchange time: it takes the
    -- time of the next stamped row of its series on its connection, by the rule of book_updates
    -- (macros/book_updates.sql `unstamped_fills`: searched by receive clock, on its receive date),
    -- so it is picked by receive time here, its fill deciding the slice.
    SELECT exchange, symbol, conn_id, seq, fill_ts
    FROM {{ unstamped_fills(source('bronze', 'orderbook'), utc_day_start(partition.lookback_start),
                            utc_day_start(partition.end) ~ ' + INTERVAL 1 DAY') }}
    WHERE fill_ts IS NOT NULL
),
scanned AS MATERIALIZED (
    -- Bronze keys over the slice and its lookback, read once with the level check (once per row):
    -- every narrow step (keys, breaks, the rejected rows' break counts) scans this copy. No lists:
    -- the lookback rows only decide `break_before` of the first rows, and the slice's own lists
    -- are read again by `deduplicated` (a second read of one slice's lists costs less than holding them).
    SELECT o.exchange, o.symbol, o."timestamp"::TIMESTAMPTZ AS ts, o.seq, o.capture_ts::TIMESTAMPTZ AS capture_ts,
        o.conn_id, u.conn_id IS NULL AS own,
        -- rejects: silver.rejects, macros/quality.sql
        {{ book_reject_reason() }} IS NOT NULL AS rejected
    FROM {{ source('bronze', 'orderbook') }} o
    LEFT JOIN upd_conns u ON u.exchange = o.exchange AND u.symbol = o.symbol AND u.conn_id = o.conn_id
    WHERE o."timestamp" >= {{ partition.lookback_start }} AND o."timestamp" < {{ partition.end }}
      AND o.symbol IS NOT NULL
),
book_rejected AS (
    SELECT exchange, symbol, capture_ts FROM scanned WHERE rejected
),
unstamped AS MATERIALIZED (
    -- the (few) unstamped rows served here, with their lists: read once, for the keys and the lists
    SELECT b.exchange, b.symbol, f.fill_ts AS ts, b.seq, b.nonce, b.capture_ts::TIMESTAMPTZ AS capture_ts,
        b.conn_id, b.bids, b.asks
    FROM {{ source('bronze', 'orderbook') }} b
    JOIN stamp_fill f ON f.exchange = b.exchange AND f.symbol = b.symbol AND f.conn_id = b.conn_id AND f.seq = b.seq
    WHERE b."timestamp" IS NULL
      AND b.capture_ts >= {{ utc_day_start(partition.lookback_start) }}
      AND b.capture_ts < {{ utc_day_start(partition.end) }} + INTERVAL 1 DAY
      AND f.fill_ts >= {{ partition.lookback_start }} AND f.fill_ts < {{ partition.end }}
      AND {{ book_reject_reason() }} IS NULL
      AND NOT EXISTS (SELECT 1 FROM upd_conns u
                      WHERE u.exchange = b.exchange AND u.symbol = b.symbol AND u.conn_id = b.conn_id)
),
raw AS (
    -- the keys of the rows served from snapshots: good levels, not a connection with updates (all of
    -- them on an updates lake), whose refused rows still count as breaks of the series
    SELECT exchange, symbol, ts, seq, capture_ts, conn_id
    FROM scanned
    WHERE own AND NOT rejected
    UNION ALL
    SELECT exchange, symbol, ts, seq, capture_ts, conn_id FROM unstamped
),
copies_by AS (
    -- Narrow: how many copies of each key arrived on which connection at which receive time.
    SELECT exchange, symbol, ts, seq, conn_id, capture_ts, count(*) AS n
    FROM raw
    GROUP BY ALL
),
keys AS (
    -- The same snapshot landed twice (a re-delivered segment) has the same exchange time and seq.
    -- capture_ts is the receive clock that events are placed on (its first copy). The winner (first
    -- received copy, then lowest conn_id) is picked here on the narrow keys, so the wide rows only
    -- pass one join; `tied`: the winner's (conn_id, capture_ts) arrived more than once.
    SELECT exchange, symbol, ts, seq, copies, capture_ts, win_conn, win_capture, tied
    FROM (
        SELECT exchange, symbol, ts, seq, conn_id AS win_conn, capture_ts AS win_capture, n > 1 AS tied,
            sum(n) OVER k AS copies, min(capture_ts) OVER k AS capture_ts,
            row_number() OVER (k ORDER BY capture_ts, conn_id) AS rk
        FROM copies_by
        WINDOW k AS (PARTITION BY exchange, symbol, ts, seq)
    )
    WHERE rk = 1
),
{{ series_break_counts('keys', 'orderbook', 'breaks_so_far', rejected_rows='book_rejected') }},
refused_keys AS (
    -- keys of refused rows of own connections in the slice (rare): a winner sharing one is `special`,
    -- its bronze copies are checked again in `deduplicated` (only there can a refused copy match the winner)
    SELECT DISTINCT exchange, symbol, ts, seq, conn_id, capture_ts
    FROM scanned
    WHERE own AND rejected AND ts >= {{ partition.start }}
),
flags AS (
    SELECT exchange, symbol, ts, seq, win_conn, win_capture, tied, break_before
    FROM (
        SELECT exchange, symbol, ts, seq, win_conn, win_capture, tied,
            coalesce(
                n_breaks > lag(n_breaks) OVER series
                OR epoch_us(ts) - epoch_us(lag(ts) OVER series) > {{ (features.max_state_staleness_seconds * 1000000) | int }},
                true
            ) AS break_before
        FROM breaks_so_far
        WINDOW series AS (PARTITION BY exchange, symbol ORDER BY ts, seq)
    )
    -- the lookback rows only set the first rows' break_before: none of them is served
    WHERE ts >= {{ partition.start }}
),
flags_marked AS (
    SELECT f.*, f.tied OR r.seq IS NOT NULL AS special
    FROM flags f
    LEFT JOIN refused_keys r ON r.exchange = f.exchange AND r.symbol = f.symbol AND r.ts = f.ts AND r.seq = f.seq
        AND r.conn_id IS NOT DISTINCT FROM f.win_conn AND r.capture_ts IS NOT DISTINCT FROM f.win_capture
),
deduplicated AS (
    -- The slice's lists, read once more (the stamped rows by exchange time, and the unstamped ones)
    -- and streamed through one join against the narrow winners: a plain winner's only copy is the
    -- row that matches its keys, and a good one.
    SELECT r.*, f.break_before
    FROM (
        SELECT o.exchange, o.symbol, o."timestamp"::TIMESTAMPTZ AS ts, o.seq, o.nonce,
            o.capture_ts::TIMESTAMPTZ AS capture_ts, o.conn_id, o.bids, o.asks
        FROM {{ source('bronze', 'orderbook') }} o
        WHERE o."timestamp" >= {{ partition.start }} AND o."timestamp" < {{ partition.end }} AND o.symbol IS NOT NULL
        UNION ALL
        SELECT * FROM unstamped WHERE ts >= {{ partition.start }}
    ) r
    JOIN flags_marked f ON f.exchange = r.exchange AND f.symbol = r.symbol AND f.ts = r.ts AND f.seq = r.seq
        AND f.win_conn IS NOT DISTINCT FROM r.conn_id AND f.win_capture IS NOT DISTINCT FROM r.capture_ts
    WHERE NOT f.special
    UNION ALL
    -- The (rare) winner received twice on one connection at one instant, or sharing its keys with a
    -- refused copy: keep one good copy. Its own read of the lists (none when no winner is special:
    -- the join's empty side skips it), so the plain rows above pass no window and no second copy.
    SELECT r.*, f.break_before
    FROM (
        SELECT o.exchange, o.symbol, o."timestamp"::TIMESTAMPTZ AS ts, o.seq, o.nonce,
            o.capture_ts::TIMESTAMPTZ AS capture_ts, o.conn_id, o.bids, o.asks
        FROM {{ source('bronze', 'orderbook') }} o
        WHERE o."timestamp" >= {{ partition.start }} AND o."timestamp" < {{ partition.end }} AND o.symbol IS NOT NULL
        UNION ALL
        SELECT * FROM unstamped WHERE ts >= {{ partition.start }}
    ) r
    JOIN (SELECT * FROM flags_marked WHERE special) f ON f.exchange = r.exchange AND f.symbol = r.symbol
        AND f.ts = r.ts AND f.seq = r.seq AND f.win_conn IS NOT DISTINCT FROM r.conn_id
        AND f.win_capture IS NOT DISTINCT FROM r.capture_ts
    -- f.special is true here; naming it keeps the level check on the joined rows only (not pushed
    -- below the join onto every row of the read)
    WHERE CASE WHEN f.special THEN {{ book_reject_reason() }} IS NULL END
    QUALIFY row_number() OVER (PARTITION BY r.exchange, r.symbol, r.ts, r.seq) = 1
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
    break_before,
    NULL::VARCHAR AS kind,
    NULL::VARCHAR AS break_reason,
    false AS full_book,
    {%- for lo in bands[:-1] %}
    NULL::DOUBLE AS bid_depth_{{ band_name(bands, loop.index0) }},
    NULL::DOUBLE AS ask_depth_{{ band_name(bands, loop.index0) }}{{ ',' if not loop.last }}
    {%- endfor %}
FROM (
    SELECT * REPLACE (
        -- A level without a positive price or a non-negative size is not a level; trim to max_levels.
        list_slice(list_filter(bids, l -> l.price > 0 AND l.size >= 0), 1, {{ features.max_levels }}) AS bids,
        list_slice(list_filter(asks, l -> l.price > 0 AND l.size >= 0), 1, {{ features.max_levels }}) AS asks
    )
    FROM deduplicated
)
UNION ALL
SELECT * FROM from_updates
