-- silver.orderbook: every level has a price > 0 and a size >= 0, sides hold at most max_levels,
-- bid prices strictly decrease and ask prices strictly increase (best first).
SELECT exchange, symbol, ts, seq
FROM {{ ref('orderbook') }}
WHERE len(bids) > {{ features.max_levels }} OR len(asks) > {{ features.max_levels }}
   OR NOT coalesce(list_bool_and(list_transform(bids, l -> l.price > 0 AND l.size >= 0)), true)
   OR NOT coalesce(list_bool_and(list_transform(asks, l -> l.price > 0 AND l.size >= 0)), true)
   OR NOT coalesce(list_bool_and(list_transform(list_slice(bids, 2, len(bids)), (l, i) -> l.price < bids[i].price)), true)
   OR NOT coalesce(list_bool_and(list_transform(list_slice(asks, 2, len(asks)), (l, i) -> l.price > asks[i].price)), true)
