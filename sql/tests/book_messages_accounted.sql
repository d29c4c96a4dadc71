-- Every bronze book_updates message (snapshot or delta) of the series-days just built is served
-- by silver.orderbook or counted, with its reason, in silver.orderbook_unserved: per connection and
-- day, served + counted = bronze messages (docs/contracts.md "Order books from book_updates").
-- A row here names a connection where they differ.
WITH built AS (
    SELECT DISTINCT exchange, symbol, date FROM {{ ref('orderbook') }} WHERE kind IS NOT NULL
    UNION
    SELECT DISTINCT exchange, symbol, date FROM {{ ref('orderbook_unserved') }}
),
span AS (
    SELECT min(date) AS d0, max(date) AS d1 FROM built
),
bronze AS (
    -- a load without exchange time takes the next stamped row's, as silver.orderbook does
    SELECT exchange, symbol, conn_id, kind,
        coalesce("timestamp"::TIMESTAMPTZ,
                 first_value("timestamp"::TIMESTAMPTZ IGNORE NULLS) OVER (PARTITION BY exchange, symbol, conn_id ORDER BY seq
                     ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
                 capture_ts::TIMESTAMPTZ) AS ts
    FROM {{ source('bronze', 'book_updates') }}, span
    WHERE symbol IS NOT NULL
      AND coalesce("timestamp", capture_ts)::TIMESTAMPTZ >= d0::TIMESTAMPTZ - INTERVAL 1 DAY
      AND coalesce("timestamp", capture_ts)::TIMESTAMPTZ < d1::TIMESTAMPTZ + INTERVAL 2 DAY
),
counts AS (
    SELECT exchange, symbol, conn_id, {{ utc_date('ts') }} AS date, count(*) AS messages, 0 AS served, 0 AS counted
    FROM bronze WHERE kind IN ('snapshot', 'delta') GROUP BY ALL
    UNION ALL
    SELECT exchange, symbol, conn_id, date, 0, count(*), 0
    FROM {{ ref('orderbook') }} WHERE kind IN ('snapshot', 'delta') GROUP BY ALL
    UNION ALL
    SELECT exchange, symbol, conn_id, date, 0, 0, count(*)
    FROM {{ ref('orderbook_unserved') }} GROUP BY ALL
)
SELECT exchange, symbol, conn_id, date, sum(messages) AS bronze_messages, sum(served) AS served, sum(counted) AS counted
FROM counts
SEMI JOIN built USING (exchange, symbol, date)
GROUP BY ALL
HAVING sum(messages) <> sum(served) + sum(counted)
