"""`daedalus status` counts reconnects from the rows `events` holds: a connection-wide disconnect
(no channel, no symbol) counts for every stream of that connection (issue #16)."""

from __future__ import annotations

from test_segment import sample_row  # tests/unit is on sys.path (rootdir import mode)

from daedalus.collector.connection import event_row
from daedalus.collector.health import build_health, format_health
from daedalus.collector.queue import Record
from daedalus.collector.sink import BronzeSink
from daedalus.config import IngestionConfig


def test_disconnect_rows_count_as_reconnects_of_every_stream(tmp_path) -> None:
    sink = BronzeSink(tmp_path, IngestionConfig(batch_size=10_000))
    trade = sample_row("trades", 1)
    trade.update(exchange="binance", symbol="BTC/USDT")
    sink._add(Record("ccxt", "trades", trade))
    for i in range(13):  # connection-wide: what ccxt_collector emits on a dropped socket
        sink._add(
            Record(
                "ccxt",
                "events",
                event_row(
                    "disconnect",
                    exchange="binance",
                    conn_id="c",
                    seq=i,
                    detail="ws: ConnectionClosed",
                    close_code=1006,
                ),
            )
        )
    sink._add(
        Record(
            "ccxt",
            "events",
            event_row(
                "reconnect",
                exchange="binance",
                conn_id="c",
                seq=20,
                symbol="BTC/USDT",
                channel="trades",
                detail="serverShutdown",
            ),
        )
    )
    sink._add(
        Record(
            "ccxt",
            "events",
            event_row(
                "gap", exchange="binance", conn_id="c", seq=21, symbol="BTC/USDT", channel="trades", count=3
            ),
        )
    )
    sink._add(
        Record(
            "ccxt",
            "events",
            event_row(
                "disconnect",
                exchange="binance",
                conn_id="c",
                seq=22,
                detail="binance: collector stopping",
                close_code=1000,
            ),
        )
    )
    other = sample_row("trades", 2)
    other.update(exchange="okx", symbol="BTC/USDT")
    sink._add(Record("ccxt", "trades", other))
    queue = {
        "streams": {
            "ccxt/trades/binance/BTC/USDT": {"seconds_since_last_message": 0.1, "received": 5, "dropped": 0},
            "ccxt/trades/okx/BTC/USDT": {"seconds_since_last_message": 0.1, "received": 5, "dropped": 0},
        }
    }
    doc = build_health(queue, sink.stats())
    streams = doc["streams"]
    assert streams["ccxt/trades/binance/BTC/USDT"]["reconnects_last_hour"] == 14  # 13 wide + 1 own
    assert streams["ccxt/trades/binance/BTC/USDT"]["gaps_last_hour"] == 1
    assert streams["ccxt/-/binance/-"]["reconnects_last_hour"] == 13  # the stop is not counted
    assert streams["ccxt/trades/okx/BTC/USDT"]["reconnects_last_hour"] == 0
    line = next(ln for ln in format_health(doc).splitlines() if ln.startswith("ccxt/trades/binance/BTC/USDT"))
    assert line.split()[-1] == "14" and line.split()[-2] == "1"
