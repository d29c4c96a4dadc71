-- silver.orderbook: every level has a price > 0 and a size >= 0, sides hold at most max_levels,
-- bid prices strictly decrease and ask prices strictly increase (best first).
-- One numba pass over both sides (udfs/kernels/levels.py): the same rule as four list lambdas,
-- which cost more than building the model.
SELECT exchange, symbol, ts, seq
FROM {{ ref('orderbook') }}
WHERE daedalus_levels_invalid(bids, asks, {{ features.max_levels }})
