{#-
  What silver refuses to serve, in one place: silver.trades / silver.orderbook / silver.ticker keep
  the rows whose reason is NULL, and silver.rejects counts the others by the same expressions, so a
  row is either served or counted, never silently dropped (issue 17). DuckDB orders NaN above every
  number, so `price > 0` alone lets NaN and +inf through: every check starts with isfinite().
-#}

{#- The aggressor side of a bronze trade ('buy' | 'sell'), NULL when it cannot be told (docs/features.md
    "Trade side"; the reasons are in sql/silver/trades.sql). -#}
{% macro trade_side() -%}
CASE
    WHEN exchange LIKE 'coinbase%' AND side IN ('BUY', 'SELL')
        THEN CASE side WHEN 'BUY' THEN 'sell' ELSE 'buy' END
    WHEN lower(side) IN ('buy', 'sell') THEN lower(side)
    WHEN side IS NULL AND info_json IS NOT NULL AND json_extract(info_json, '$.m') IS NOT NULL
        THEN CASE WHEN json_extract(info_json, '$.m')::BOOLEAN THEN 'sell' ELSE 'buy' END
END
{%- endmacro %}

{#- Why a bronze trade is not served, or NULL when it is good. -#}
{% macro trade_reject_reason() -%}
CASE
    WHEN symbol IS NULL THEN 'symbol_null'
    WHEN "timestamp" IS NULL THEN 'timestamp_null'
    WHEN price IS NULL OR NOT isfinite(price) THEN 'price_not_finite'
    WHEN price <= 0 THEN 'price_not_positive'
    WHEN amount IS NULL OR NOT isfinite(amount) THEN 'amount_not_finite'
    WHEN amount <= 0 THEN 'amount_not_positive'
    WHEN ({{ trade_side() }}) IS NULL THEN 'unknown_side'
END
{%- endmacro %}

{#- Why a bronze order-book snapshot is not served, or NULL when it is good: one non-finite or
    non-positive price, or a non-finite or negative size, on any level makes the whole book untrusted
    (a crossed book with finite levels is served, flagged `crossed`, per docs/features.md). -#}
{% macro book_reject_reason() -%}
{#- One lambda per side tells a good book (nearly all of them) from a bad one, with no concatenated
    copy of the lists; only a bad book is looked at again to name its reason. -#}
CASE WHEN coalesce(list_bool_or(list_transform(bids, {{ book_level_bad() }})), false)
       OR coalesce(list_bool_or(list_transform(asks, {{ book_level_bad() }})), false) THEN
    CASE
        WHEN coalesce(list_bool_or(list_transform(coalesce(bids, []) || coalesce(asks, []),
                l -> l.price IS NULL OR l.size IS NULL OR NOT isfinite(l.price) OR NOT isfinite(l.size))), false)
            THEN 'level_not_finite'
        WHEN coalesce(list_bool_or(list_transform(coalesce(bids, []) || coalesce(asks, []),
                l -> l.price <= 0 OR l.size < 0)), false)
            THEN 'level_not_positive'
    END
END
{%- endmacro %}

{#- A level that is not a finite positive price with a finite non-negative size (NULL level included). -#}
{% macro book_level_bad() -%}
l -> NOT coalesce(isfinite(l.price) AND isfinite(l.size) AND l.price > 0 AND l.size >= 0, false)
{%- endmacro %}

{#- Why a bronze ticker row is not served, or NULL when it is good (NULL quotes and values are allowed:
    some feeds omit them; NaN or inf in any of them is not). -#}
{% macro ticker_reject_reason() -%}
CASE
    WHEN symbol IS NULL THEN 'symbol_null'
    WHEN NOT isfinite(bid) OR NOT isfinite(ask) OR NOT isfinite(bid_volume) OR NOT isfinite(ask_volume)
        THEN 'quote_not_finite'
    WHEN bid <= 0 OR ask <= 0 OR bid_volume < 0 OR ask_volume < 0 THEN 'quote_not_positive'
    WHEN NOT isfinite("last") OR NOT isfinite("open") OR NOT isfinite(high) OR NOT isfinite(low)
        OR NOT isfinite("close") OR NOT isfinite(vwap) OR NOT isfinite(base_volume)
        OR NOT isfinite(quote_volume) OR NOT isfinite(change) OR NOT isfinite(percentage)
        THEN 'value_not_finite'
END
{%- endmacro %}
