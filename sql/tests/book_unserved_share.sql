-- A series-day whose lost book messages (not served for a gap, a regression, refused levels, an
-- unknown delete or no book; stale and duplicate messages, and a trailing REST load without exchange
-- time, lose nothing) exceed
-- etl.features.max_unserved_book_share of its bronze book_updates messages: a silent loss must
-- never pass a build. A row here names the series, the day and the count.
WITH unserved AS (
    SELECT exchange, symbol, date, count(*) FILTER (WHERE reason NOT IN ('stale', 'duplicate', 'no_exchange_time')) AS lost,
        count(*) AS unserved
    FROM {{ ref('orderbook_unserved') }}
    GROUP BY ALL
),
served AS (
    SELECT exchange, symbol, date, count(*) AS served
    FROM {{ ref('orderbook') }}
    WHERE kind IN ('snapshot', 'delta')
    GROUP BY ALL
)
SELECT exchange, symbol, date, lost AS unserved_messages, coalesce(served, 0) + unserved AS messages,
    round(lost / (coalesce(served, 0) + unserved), 6) AS unserved_share,
    {{ features.max_unserved_book_share }} AS max_unserved_book_share
FROM unserved
LEFT JOIN served USING (exchange, symbol, date)
WHERE lost > {{ features.max_unserved_book_share }} * (coalesce(served, 0) + unserved)
