-- Every bronze book_updates message (snapshot or delta) of the series-days just built is served
-- by silver.orderbook or counted, with its reason, in silver.orderbook_unserved: per connection and
-- day, served + counted = bronze messages (docs/contracts.md "Order books from book_updates").
-- A row here names a connection (and day) where they differ.
-- A load without exchange time (a REST snapshot) is served at its fill (the next stamped row of its
-- connection, on its receive date), else counted `no_exchange_time` at its receive time: such a row
-- is checked on its own, to appear exactly once in either model when either day was built.
WITH built AS (
    SELECT DISTINCT exchange, symbol, date FROM {{ ref('orderbook') }} WHERE kind IS NOT NULL
    UNION
    SELECT DISTINCT exchange, symbol, date FROM {{ ref('orderbook_unserved') }}
),
span AS (
    SELECT min(date) AS d0, max(date) AS d1 FROM built
),
served AS (
    SELECT exchange, symbol, conn_id, seq, date FROM {{ ref('orderbook') }} WHERE kind IN ('snapshot', 'delta')
),
counted AS (
    SELECT exchange, symbol, conn_id, seq, date FROM {{ ref('orderbook_unserved') }}
),
unstamped AS (
    -- the models' rule (macros/book_updates.sql `unstamped_fills`), over every bronze file
    SELECT u.exchange, u.symbol, u.conn_id, u.seq, u.capture_ts, u.fill_ts
    FROM {{ unstamped_fills(source('bronze', 'book_updates'), "(SELECT d0 FROM span)::TIMESTAMPTZ - INTERVAL 1 DAY",
                            "(SELECT d1 FROM span)::TIMESTAMPTZ + INTERVAL 2 DAY", ['kind']) }} u
    WHERE u.kind IN ('snapshot', 'delta')
),
unstamped_check AS (
    SELECT e.exchange, e.symbol, e.conn_id, {{ utc_date('coalesce(e.fill_ts, e.capture_ts)') }} AS date,
        1 AS bronze_messages,
        (SELECT count(*) FROM served s WHERE s.exchange = e.exchange AND s.symbol = e.symbol
             AND s.conn_id = e.conn_id AND s.seq = e.seq) AS served,
        (SELECT count(*) FROM counted c WHERE c.exchange = e.exchange AND c.symbol = e.symbol
             AND c.conn_id = e.conn_id AND c.seq = e.seq) AS counted
    FROM unstamped e
    WHERE EXISTS (SELECT 1 FROM built b WHERE b.exchange = e.exchange AND b.symbol = e.symbol
                  AND b.date IN ({{ utc_date('e.fill_ts') }}, {{ utc_date('e.capture_ts') }}))
),
stamped AS (
    SELECT exchange, symbol, conn_id, {{ utc_date('"timestamp"::TIMESTAMPTZ') }} AS date
    FROM {{ source('bronze', 'book_updates') }}, span
    WHERE symbol IS NOT NULL AND kind IN ('snapshot', 'delta') AND "timestamp" IS NOT NULL
      AND "timestamp"::TIMESTAMPTZ >= d0::TIMESTAMPTZ - INTERVAL 1 DAY
      AND "timestamp"::TIMESTAMPTZ < d1::TIMESTAMPTZ + INTERVAL 2 DAY
),
counts AS (
    SELECT exchange, symbol, conn_id, date, count(*) AS messages, 0 AS served, 0 AS counted
    FROM stamped GROUP BY ALL
    UNION ALL
    SELECT exchange, symbol, conn_id, date, 0, count(*), 0
    FROM served s ANTI JOIN unstamped u USING (exchange, symbol, conn_id, seq) GROUP BY ALL
    UNION ALL
    SELECT exchange, symbol, conn_id, date, 0, 0, count(*)
    FROM counted c ANTI JOIN unstamped u USING (exchange, symbol, conn_id, seq) GROUP BY ALL
)
SELECT exchange, symbol, conn_id, date, sum(messages) AS bronze_messages, sum(served) AS served, sum(counted) AS counted
FROM counts
SEMI JOIN built USING (exchange, symbol, date)
GROUP BY ALL
HAVING sum(messages) <> sum(served) + sum(counted)
UNION ALL
SELECT exchange, symbol, conn_id, date, bronze_messages, served, counted
FROM unstamped_check
WHERE served + counted <> 1
