"""collector/ccxt_shortcuts.py: the cheaper stand-ins give exactly what ccxt gives."""

from __future__ import annotations

import random

from ccxt.base.exchange import Exchange


def test_iso8601_is_ccxts_text_for_every_input() -> None:
    from daedalus.collector.ccxt_shortcuts import iso8601

    edge = [None, 0, 1, 999, 1000, -1, 8_640_000_000_000_000, 8_640_000_000_000_001]
    edge += [253_402_300_799_999, 253_402_300_800_000, True, False, 1.5, float("nan"), "123", "12a", ""]
    rng = random.Random(23)
    ms = [rng.randrange(0, 4 * 10**12) for _ in range(5000)]
    ms += [1_723_161_599_000 + i for i in range(2500)]  # across second, minute, hour and day changes
    for value in edge + ms + list(reversed(ms)):
        assert iso8601(value) == Exchange.iso8601(value), value
    assert iso8601(1_723_161_600_123) == "2024-08-09T00:00:00.123Z"


def test_binance_depth_diffs_go_straight_to_ccxts_book_handler() -> None:
    from daedalus.collector.ccxt_collector import stamped_exchange_class
    from daedalus.collector.ccxt_shortcuts import direct_dispatch
    from daedalus.collector.venues import ccxt_venue

    for exchange_id in ("binance", "binanceusdm", "binancecoinm", "binanceus"):
        cls = stamped_exchange_class(exchange_id)
        assert cls.iso8601(1_723_161_600_123) == "2024-08-09T00:00:00.123Z"
        direct = direct_dispatch(ccxt_venue(exchange_id), cls)
        assert direct is not None, exchange_id
        ex = cls({})
        diff = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 2, "b": [], "a": []}
        assert direct(ex, diff) == ex.handle_order_book
        # anything ccxt's handle_message would unwrap or route elsewhere keeps going through it
        for frame in (
            {"stream": "btcusdt@depth", "data": diff},
            {**diff, "id": 7},
            {**diff, "status": 400},
            {**diff, "e": "trade"},
            {"result": None, "id": 1},
            [diff],
            "pong",
        ):
            assert direct(ex, frame) is None, frame
    # other venues, and an exchange class whose own handle_message ccxt's would no longer be: none
    assert direct_dispatch(ccxt_venue("okx"), stamped_exchange_class("okx")) is None
    binance = stamped_exchange_class("binance")
    changed = type("Changed", (binance,), {"handle_message": lambda self, client, message: None})
    assert direct_dispatch(ccxt_venue("binance"), changed) is None
