"""Bronze contracts (docs/design.md "Bronze contracts"): one Arrow schema per channel.

Every row carries the envelope: `collected_at` (int64 ms receive time), `capture_ts` (ns, UTC, taken
when the socket read returned, before any queue), `exchange`, `symbol`, `conn_id`, `seq` (per
connection message counter). `timestamp` is the exchange's own time at the precision it gives.
"""

from __future__ import annotations

import pyarrow as pa

TS_NS_UTC = pa.timestamp("ns", tz="UTC")
LEVEL = pa.struct([("price", pa.float64()), ("size", pa.float64())])
LEVELS = pa.list_(LEVEL)

ENVELOPE = [
    pa.field("collected_at", pa.int64(), nullable=False),
    pa.field("capture_ts", TS_NS_UTC, nullable=False),
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("symbol", pa.string()),
    pa.field("conn_id", pa.string(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
]

TICKER = pa.schema(
    ENVELOPE
    + [pa.field("timestamp", TS_NS_UTC)]
    + [
        pa.field(name, pa.float64())
        for name in (
            "bid",
            "ask",
            "bid_volume",
            "ask_volume",
            "last",
            "open",
            "high",
            "low",
            "close",
            "vwap",
            "base_volume",
            "quote_volume",
            "change",
            "percentage",
        )
    ]
    + [pa.field("info_json", pa.string())]
)

TRADES = pa.schema(
    ENVELOPE
    + [
        pa.field("timestamp", TS_NS_UTC),
        pa.field("trade_id", pa.string()),
        pa.field("side", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("amount", pa.float64()),
        pa.field("cost", pa.float64()),
        pa.field("info_json", pa.string()),
        # where the row came from: NULL = the live socket, 'rest' = the venue's REST history (a healed
        # gap, collector/heal.py, or `daedalus backfill`); files written before it have no such column
        pa.field("source", pa.string()),
    ]
)

ORDERBOOK = pa.schema(
    ENVELOPE
    + [
        pa.field("timestamp", TS_NS_UTC),
        pa.field("nonce", pa.int64()),
        pa.field("bids", LEVELS),
        pa.field("asks", LEVELS),
    ]
)

# Every change the collector applied to a book, plus each (re)load and hourly checkpoint of the whole
# book it held (full-depth issue). One row per venue message: `kind` is `snapshot` (a (re)load at the
# depth the venue gave: replaces the book), `checkpoint` (the full book the collector held at a UTC
# hour boundary or after a resync: replaces the book, changes nothing), or `delta` (changed levels
# only, absolute size, size 0 = delete). `first_update_id`/`last_update_id` are the venue's update
# ids (Binance U/u, OKX seqId, Coinbase sequence_num), `prev_update_id` the id the venue says must
# precede (Binance futures pu, OKX prevSeqId); NULL where the venue gives none. `sync_rule` is the
# rule the venue documents for the market's book (collector/venue_ccxt.py SYNC_RULES), NULL where none
# is declared; files written before it have no such column (readers use union_by_name).
BOOK_UPDATES = pa.schema(
    ENVELOPE
    + [
        pa.field("timestamp", TS_NS_UTC),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("first_update_id", pa.int64()),
        pa.field("last_update_id", pa.int64()),
        pa.field("prev_update_id", pa.int64()),
        pa.field("bids", LEVELS),
        pa.field("asks", LEVELS),
        pa.field("sync_rule", pa.string()),
    ]
)
BOOK_UPDATE_KINDS = ("snapshot", "delta", "checkpoint")

# Candles fetched over REST by `daedalus backfill --ohlcv` (collector/backfill.py) where a venue serves
# no trade history that far back (Bybit: its last 60 trades): one row per bar, `timestamp` = the bar's
# open time, `timeframe` as ccxt names it ("1m", "1h", ...), `volume` in base units (ccxt's); the
# envelope's `seq` = the bar's open time in ms, `source` = 'rest'.
OHLCV = pa.schema(
    ENVELOPE
    + [
        pa.field("timestamp", TS_NS_UTC, nullable=False),
        pa.field("timeframe", pa.string(), nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("source", pa.string()),
    ]
)

# `backfill`: trades fetched over REST for a break of a trades series (collector/heal.py): `count` =
# rows written, interval_start/interval_end = receive times of the socket's last trade before and
# first trade after the gap (its capture_ts = interval_end: it lands in the break's date partition),
# `detail` starts with "complete" (the gap is closed: the build no longer counts break events of that
# series inside the interval) or "partial" (with the rows missing if known).
# One row per connect, disconnect (with close code), subscribe ack, resync, sequence gap, stale
# stream, queue overflow (with the count dropped), snapshot truncation, quarantined record.
EVENTS = pa.schema(
    ENVELOPE
    + [
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("channel", pa.string()),
        pa.field("close_code", pa.int32()),
        pa.field("count", pa.int64()),
        pa.field("interval_start", TS_NS_UTC),
        pa.field("interval_end", TS_NS_UTC),
        pa.field("detail", pa.string()),
    ]
)

EVENT_TYPES = (
    "connect",
    "disconnect",
    "subscribe_ack",
    "resync",
    "gap",
    "stale",
    "overflow",
    "truncation",
    "reconnect",
    "error",
    "quarantine",
    "segment_repair",
    "rate_limited",
    "notice",
    "backfill",
    "clock_step",  # the host's wall clock stepped (collector/clockwatch.py): `count` = the step in ms
)
# Events after which ETL treats the series as broken (docs/features.md "break").
BREAK_EVENT_TYPES = (
    "disconnect",
    "gap",
    "resync",
    "overflow",
    "stale",
    "reconnect",
    "segment_repair",
    "quarantine",
)

SCHEMAS: dict[str, pa.Schema] = {
    "ticker": TICKER,
    "trades": TRADES,
    "orderbook": ORDERBOOK,
    "book_updates": BOOK_UPDATES,
    "events": EVENTS,
    "ohlcv": OHLCV,
}
CHANNELS = tuple(SCHEMAS)
