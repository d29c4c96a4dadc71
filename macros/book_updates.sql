{#-
  The rows of bronze `book_updates` one slice of silver.orderbook replays, shared by silver.orderbook
  (served books) and silver.orderbook_unserved (the book messages not served, with why): both call
  the same kernel on the same rows, so served + counted = the bronze messages (docs/contracts.md
  "Order books from book_updates").
-#}

{#- Bronze book_updates with `sync_rule` also where no file has it yet (lakes written before it:
    NULL, the rebuild infers the rule from the ids). -#}
{% macro book_updates_source() -%}
(SELECT * FROM {{ source('bronze', 'book_updates') }}
 UNION ALL BY NAME SELECT NULL::VARCHAR AS sync_rule WHERE false)
{%- endmacro %}

{#- Bronze rows of `rel` without exchange time (Binance's REST load) received in [lo, hi), each with
    `fill_ts`: the exchange time of the next stamped row of its connection by seq, searched by the
    receive clock (received within 1 h after it: the follower is the next message on the connection),
    never by an exchange-time window, so every slice that reads the row gives it the same fate. The
    fill only counts on the row's own receive date (UTC): bronze dates the row by `capture_ts` and its
    follower by exchange time, so only then does one date folder hold both and every partition that
    reads the row see the same follower (a collector clock off across midnight would otherwise serve
    it in one partition and count it in another). NULL: served nowhere, counted `no_exchange_time`
    at its receive time. Unstamped rows are few (one per load): only key columns, the stamped ones
    read only to look up their follower. -#}
{% macro unstamped_fills(rel, lo, hi, extra=[]) -%}
(SELECT * REPLACE (CASE WHEN {{ utc_date('fill_ts') }} = {{ utc_date('capture_ts') }} THEN fill_ts END AS fill_ts)
 FROM (
 SELECT u.exchange, u.symbol, u.conn_id, u.seq, u.capture_ts{% for c in extra %}, u.{{ c }}{% endfor %},
    arg_min(n.ts, n.seq) AS fill_ts
 FROM (
     SELECT exchange, symbol, conn_id, seq, capture_ts::TIMESTAMPTZ AS capture_ts{% for c in extra %}, {{ c }}{% endfor %}
     FROM {{ rel }}
     WHERE "timestamp" IS NULL AND symbol IS NOT NULL AND capture_ts >= {{ lo }} AND capture_ts < {{ hi }}
 ) u
 LEFT JOIN (
     SELECT exchange, symbol, conn_id, seq, "timestamp"::TIMESTAMPTZ AS ts, capture_ts::TIMESTAMPTZ AS capture_ts
     FROM {{ rel }}
     WHERE "timestamp" IS NOT NULL AND symbol IS NOT NULL
       AND capture_ts >= {{ lo }} AND capture_ts < {{ hi }} + INTERVAL 1 HOUR
 ) n ON n.exchange = u.exchange AND n.symbol = u.symbol AND n.conn_id = u.conn_id AND n.seq > u.seq
     AND n.capture_ts >= u.capture_ts AND n.capture_ts <= u.capture_ts + INTERVAL 1 HOUR
 GROUP BY ALL))
{%- endmacro %}

{#- The UTC day start of a TIMESTAMPTZ expression (a day bound of the unstamped rows' receive time). -#}
{% macro utc_day_start(ts) -%}
timezone('UTC', {{ utc_date(ts) }}::TIMESTAMP)
{%- endmacro %}

{#- CTEs ending in `upd_rows`: each connection's rows from its last load (snapshot or checkpoint)
    with exchange time before the slice (searched `anchor_seconds` back: hourly checkpoints) up to
    the slice end, for the connections with a row in the slice (one default for both models: they
    must replay the same rows), with `n_breaks` (break events
    received before each row), `invalid` (silver refuses the levels, macros/quality.sql) and `hold`
    (the same message — same exchange time, seq, kind and ids — came first on another connection: a
    new connection receiving the same frames again; applied on its connection, served once).
    A row without exchange time takes its fill (`upd_fills`, `unstamped_fills`): read where the fill
    lies in the window; without a fill it is replayed nowhere (silver.orderbook_unserved counts it). -#}
{% macro book_update_rows(anchor_seconds=7200) -%}
{%- set win_lo %}{{ partition.start }} - INTERVAL {{ anchor_seconds + 60 }} SECONDS{% endset %}
{%- set win_hi %}{{ partition.end }} + INTERVAL 60 SECONDS{% endset %}
{#- the UTC days of win_lo and win_hi, as literals (the memo below needs one text per day) #}
{%- set day_lo = partition.utc_midnight('start', -(anchor_seconds + 60)) %}
{%- set day_hi = partition.utc_midnight('end', 60, days=1) %}
upd_fills AS (
    -- A fill lies on the row's receive date: a fill in the window means a receive time in these days.
    -- Finding it scans those whole days, the same for every slice of a day and for both book models:
    -- a memo, computed once per build (udfs/relations.py `memo_sql`).
    SELECT * FROM {{ memo('SELECT * FROM ' ~ unstamped_fills(source('bronze', 'book_updates'), day_lo, day_hi,
                                     ['kind', 'first_update_id', 'last_update_id', 'prev_update_id'])) }}
),
upd_keys AS (
    SELECT exchange, symbol, conn_id, seq, kind, "timestamp"::TIMESTAMPTZ AS ts0, NULL::TIMESTAMPTZ AS fill_ts,
        capture_ts::TIMESTAMPTZ AS capture_ts, first_update_id, last_update_id, prev_update_id
    FROM {{ source('bronze', 'book_updates') }} u
    WHERE symbol IS NOT NULL AND u."timestamp" >= {{ win_lo }} AND u."timestamp" < {{ win_hi }}
    UNION ALL
    SELECT exchange, symbol, conn_id, seq, kind, NULL, fill_ts, capture_ts, first_update_id, last_update_id, prev_update_id
    FROM upd_fills
    WHERE fill_ts >= {{ win_lo }} AND fill_ts < {{ win_hi }}
),
upd_stamped AS (
    SELECT exchange, symbol, conn_id, seq, kind, capture_ts, coalesce(ts0, fill_ts) AS ts
    FROM upd_keys
),
upd_anchor AS (
    SELECT exchange, symbol, conn_id, max(seq) AS anchor_seq
    FROM upd_stamped
    WHERE kind IN ('snapshot', 'checkpoint') AND ts < {{ partition.start }}
    GROUP BY ALL
),
upd_live AS (
    -- Connections with a row in the slice: the others would only be replayed up to where they
    -- ended and serve nothing (a connection that closed after its last checkpoint before the slice).
    SELECT DISTINCT exchange, symbol, conn_id
    FROM upd_stamped
    WHERE ts >= {{ partition.start }} AND ts < {{ partition.end }}
),
upd_pick AS (
    -- From the anchor on (or the slice's own rows for a connection without one), up to the slice end.
    SELECT k.exchange, k.symbol, k.conn_id, k.seq, min(k.ts) AS ts, min(k.capture_ts) AS capture_ts
    FROM upd_stamped k
    SEMI JOIN upd_live l ON l.exchange = k.exchange AND l.symbol = k.symbol AND l.conn_id = k.conn_id
    LEFT JOIN upd_anchor a ON a.exchange = k.exchange AND a.symbol = k.symbol AND a.conn_id = k.conn_id
    WHERE k.ts < {{ partition.end }}
      AND (k.seq >= a.anchor_seq OR (a.anchor_seq IS NULL AND k.ts >= {{ partition.start }}))
    GROUP BY ALL
),
upd_floor AS (
    -- The lowest seq replayed per series: `hold` is looked up only for the replayed rows, and a key
    -- below every replayed seq names none of them, so the keys before the anchors (most of the
    -- `anchor_seconds` read: two thirds of a 1 h slice's) need no grouping below. Exact: the filter
    -- drops whole (ts, seq) groups, never part of one.
    SELECT exchange, symbol, min(seq) AS seq
    FROM upd_pick
    GROUP BY ALL
),
upd_shared_keys AS (
    -- (ts, seq) keys on more than one connection: rare, so the identity check below runs on few rows
    SELECT k.exchange, k.symbol, k.ts0, k.seq
    FROM upd_keys k
    SEMI JOIN upd_floor f ON f.exchange = k.exchange AND f.symbol = k.symbol AND k.seq >= f.seq
    WHERE k.kind IN ('snapshot', 'delta')
    GROUP BY ALL
    HAVING min(k.conn_id) <> max(k.conn_id)
),
upd_repeated AS (
    -- The same message on more than one connection: the first received copy is served, the later
    -- ones are held.
    SELECT k.exchange, k.symbol, k.ts0, k.seq, k.kind, k.first_update_id, k.last_update_id, k.prev_update_id,
        arg_min(k.conn_id, k.capture_ts) AS first_conn
    FROM upd_keys k
    SEMI JOIN upd_shared_keys d ON d.exchange = k.exchange AND d.symbol = k.symbol AND d.seq = k.seq
        AND d.ts0 IS NOT DISTINCT FROM k.ts0
    WHERE k.kind IN ('snapshot', 'delta')
    GROUP BY ALL
    HAVING min(k.conn_id) <> max(k.conn_id)
),
{{ series_break_counts('upd_pick', ['orderbook', 'book_updates'], 'upd_breaks') }},
upd_rows AS NOT MATERIALIZED (
    SELECT b.exchange, b.symbol, b.conn_id, b.seq, p.ts, p.capture_ts, p.n_breaks, b.kind,
        {{ book_reject_reason() }} IS NOT NULL AS invalid,
        coalesce(r.first_conn <> b.conn_id, false) AS hold,
        b.sync_rule, b.first_update_id, b.last_update_id, b.prev_update_id, b.bids, b.asks
    FROM {{ book_updates_source() }} b
    JOIN upd_breaks p ON p.exchange = b.exchange AND p.symbol = b.symbol AND p.conn_id = b.conn_id AND p.seq = b.seq
    LEFT JOIN upd_repeated r ON r.exchange = b.exchange AND r.symbol = b.symbol AND r.seq = b.seq
        AND r.kind = b.kind AND r.ts0 IS NOT DISTINCT FROM b."timestamp"::TIMESTAMPTZ
        AND r.first_update_id IS NOT DISTINCT FROM b.first_update_id
        AND r.last_update_id IS NOT DISTINCT FROM b.last_update_id
        AND r.prev_update_id IS NOT DISTINCT FROM b.prev_update_id
    WHERE b.symbol IS NOT NULL
      AND ((b."timestamp" >= {{ win_lo }} AND b."timestamp" < {{ win_hi }})
           OR (b."timestamp" IS NULL AND b.capture_ts >= {{ day_lo }} AND b.capture_ts < {{ day_hi }}))
)
{%- endmacro %}

{#- One call of the rebuild per connection over `upd_rows` (udfs/register_book.py); `unserved`: the
    book messages not served, with their reason, instead of the served books. -#}
{% macro book_rebuild_call(unserved) -%}
daedalus_book_rebuild(
    list({'seq': seq, 'ts': ts, 'capture_ts': capture_ts, 'kind': kind, 'first_update_id': first_update_id,
          'last_update_id': last_update_id, 'prev_update_id': prev_update_id, 'bids': bids, 'asks': asks,
          'n_breaks': n_breaks, 'sync_rule': sync_rule, 'invalid': invalid, 'hold': hold} ORDER BY seq, capture_ts),
    {{ features.max_levels }}, {{ features.bands_bps | list }}::DOUBLE[], {{ features.max_state_staleness_seconds }}::DOUBLE,
    {%- if features.strict_book_deletes %}
    exchange IN ('{{ features.strict_book_deletes | join("', '") }}')
    {%- else %} false{% endif %},
    {{ partition.start }},
    {{ 'true' if unserved else 'false' }}
)
{%- endmacro %}

{#- silver.orderbook's served books from `upd_rows`, streamed (udfs/book_stream.py, the relation kind
    `book_rebuild` of udfs/relations.py): the rows sorted per connection by seq replay through the
    resumable kernel batch by batch, so neither DuckDB nor Python holds a connection's slice whole. A
    row without `sync_rule` (a lake written before it) takes the rule its connection's unnamed rows
    imply (udfs/register_book.py `infer_rule`, the same test in SQL); new lakes skip that scan. -#}
{% macro book_rebuild_stream() -%}
{%- set rows_sql -%}
WITH {{ book_update_rows() }},
upd_rule AS (
    SELECT exchange, symbol, conn_id,
        CASE WHEN bool_or(kind = 'delta' AND NOT invalid AND prev_update_id IS NOT NULL) THEN 'prev_chain'
             WHEN bool_or(kind = 'delta' AND NOT invalid AND first_update_id IS NOT NULL) THEN 'contiguous'
             WHEN bool_or(kind = 'delta' AND NOT invalid AND last_update_id IS NOT NULL) THEN 'increasing'
             ELSE 'none' END AS inferred_rule
    FROM upd_rows
    WHERE sync_rule IS NULL
    GROUP BY ALL
)
SELECT r.exchange, r.symbol, r.conn_id, r.seq, r.ts, r.capture_ts, r.kind, r.first_update_id, r.last_update_id,
    r.prev_update_id, r.bids, r.asks, r.n_breaks, coalesce(r.sync_rule, u.inferred_rule) AS sync_rule, r.invalid,
    r.hold, r.sync_rule IS NULL AS unnamed,
    {%- if features.strict_book_deletes %}
    r.exchange IN ('{{ features.strict_book_deletes | join("', '") }}')
    {%- else %} false{% endif %} AS strict,
    {{ partition.start }} AS slice_start
FROM upd_rows r
LEFT JOIN upd_rule u ON u.exchange = r.exchange AND u.symbol = r.symbol AND u.conn_id = r.conn_id
ORDER BY r.exchange, r.symbol, r.conn_id, r.seq, r.capture_ts
{%- endset -%}
{{ python_relation('book_rebuild', {'max_levels': features.max_levels, 'bands': features.bands_bps | list,
                                    'staleness_s': features.max_state_staleness_seconds}, rows_sql) }}
{%- endmacro %}

{#- silver.orderbook_unserved's replayed rows of the slice (exchange, symbol, conn_id, seq, ts, capture_ts,
    kind, last_update_id, reason; udfs/book_stream.py `unserved_stream`): what silver.orderbook's stream of
    the same slice (`book_rebuild_stream`, named here: the same text) filed when it ran to its end over the
    same bronze files, without reading them again; else `replay_sql`'s rows. -#}
{% macro book_unserved_relation(replay_sql) -%}
{{ python_relation('book_unserved', {'served': book_rebuild_stream().split()[-1]}, replay_sql) }}
{%- endmacro %}
