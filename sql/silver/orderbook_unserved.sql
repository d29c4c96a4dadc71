{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date'], tags=['orderbook', 'silver'],
          lookback=seconds_interval(features.max_state_staleness_seconds), order_by=['exchange', 'symbol', 'conn_id', 'seq'], slice_by='ts',
          settings={'disabled_optimizers': 'build_side_probe_side'}) }}
{#-
  Every bronze `book_updates` book message (snapshot or delta) that silver.orderbook does not serve,
  one row each, with why (`reason`): update_id_gap, update_id_regressed, no_book, invalid_levels,
  unknown_level_removed, duplicate (a re-delivered segment, or the same message on a second
  connection), stale (a diff older than the load: skipped, not a break), no_exchange_time (a REST
  load no stamped row followed on its receive date, macros/book_updates.sql `unstamped_fills`). The same rows through the same kernel as silver.orderbook
  (macros/book_updates.sql), so per connection: silver.orderbook rows + these rows = bronze snapshot
  and delta rows (sql/tests/book_messages_accounted.sql). silver.rejects counts them per reason.
  The levels are only handed to the kernel where they decide what is served (strict deletes).
  Built after silver.orderbook in one build, a slice takes the unserved rows that model's stream of the
  same slice filed over the same bronze files (udfs/unserved_memo.py `take_slice`, macros/book_updates.sql
  `book_unserved_relation`) and neither reads bronze nor replays; built alone (or a file changed), it
  replays (`replay_sql`), its kernel calls still answered per connection where that stream filed them.
  `disabled_optimizers`: every join builds on its right side as written, the narrow keys, so the
  bronze level lists never fill a hash table (udfs/book_stream.py INPUT_SETTINGS, the same rows).
-#}
{%- set replay_sql -%}
WITH {{ book_update_rows() }},
upd_lean AS (
    SELECT * REPLACE (
        {%- if features.strict_book_deletes %}
        CASE WHEN exchange IN ('{{ features.strict_book_deletes | join("', '") }}') THEN bids ELSE [] END AS bids,
        CASE WHEN exchange IN ('{{ features.strict_book_deletes | join("', '") }}') THEN asks ELSE [] END AS asks
        {%- else %}
        []::STRUCT(price DOUBLE, size DOUBLE)[] AS bids, []::STRUCT(price DOUBLE, size DOUBLE)[] AS asks
        {%- endif %}
    )
    FROM upd_rows
),
rebuilt AS (
    SELECT exchange, symbol, conn_id, {{ book_rebuild_call(true) }} AS r
    FROM upd_lean
    GROUP BY exchange, symbol, conn_id
)
SELECT exchange, symbol, conn_id, unnest(r.seq) AS seq, unnest(r.ts) AS ts, unnest(r.capture_ts) AS capture_ts,
    unnest(r.kind) AS kind, unnest(r.last_update_id) AS last_update_id, unnest(r.reason) AS reason
FROM rebuilt
{%- endset %}
WITH {{ book_update_rows() }},
unserved AS (
    SELECT * FROM {{ book_unserved_relation(replay_sql) }}
),
unstamped AS (
    -- a load without exchange time no stamped row followed on its receive date: counted at that time
    SELECT exchange, symbol, conn_id, seq, NULL::TIMESTAMPTZ AS ts, capture_ts, kind, last_update_id,
        'no_exchange_time' AS reason
    FROM upd_fills
    WHERE fill_ts IS NULL AND kind IN ('snapshot', 'delta')
      AND capture_ts >= {{ partition.start }} AND capture_ts < {{ partition.end }}
)
SELECT exchange, symbol, {{ utc_date('ts') }} AS date, conn_id, seq, ts, capture_ts, kind, last_update_id, reason
FROM unserved
WHERE ts >= {{ partition.start }} AND ts < {{ partition.end }}
UNION ALL
SELECT exchange, symbol, {{ utc_date('capture_ts') }}, conn_id, seq, capture_ts, capture_ts, kind, last_update_id, reason
FROM unstamped
