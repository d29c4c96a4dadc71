"""BookLog (collector/book_log.py): applied changes cut into book_updates rows by ccxt's nonce.

The book here is what ccxt hands the log: a dict with `nonce`, `timestamp` and sorted `bids`/`asks`
level lists (ccxt's OrderBook is a dict subclass); the collector's tap calls the log after each level
ccxt stored, as these tests do."""

from __future__ import annotations

from daedalus.collector.book_log import BookLog, levels


def _book(nonce=None, ts=None, bids=(), asks=()) -> dict:
    return {"nonce": nonce, "timestamp": ts, "bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}


def test_one_row_per_nonce_with_final_sizes_and_no_transient_levels() -> None:
    log = BookLog()
    book = _book(nonce=10, ts=1000)
    log.change(book, True, 100.0, 1.0, False)  # a held level resized
    log.change(book, True, 100.0, 2.0, False)  # ... twice in one message: the final size
    log.change(book, False, 105.0, 3.0, True)  # new level ...
    log.change(book, False, 105.0, 0.0, False)  # ... removed in the same message: not a change
    log.change(book, False, 101.0, 0.0, False)  # a held level removed
    book["nonce"], book["timestamp"] = 11, 1100  # ccxt sets the nonce after applying the message
    log.change(book, False, 101.0, 4.0, True)  # the next message re-adds it
    book["nonce"], book["timestamp"] = 12, 1200
    rows = log.take(book)
    assert rows == [
        ("delta", [{"price": 100.0, "size": 2.0}], [{"price": 101.0, "size": 0.0}], 11, 1100),
        ("delta", [], [{"price": 101.0, "size": 4.0}], 12, 1200),
    ]
    assert log.take(book) == []  # taken once


def test_a_message_of_no_op_deletes_still_makes_a_row() -> None:
    log = BookLog()
    book = _book(nonce=5)
    log.open(book)
    book["nonce"] = 6
    assert log.take(book) == [("delta", [], [], 6, None)]


def test_load_with_levels_is_a_row_of_its_own_and_an_empty_load_absorbs_its_levels() -> None:
    log = BookLog()
    # Binance/Bybit: reset(snapshot) with levels, then the next message's changes are a delta
    book = _book(nonce=100, bids=[(99.0, 1.0), (98.0, 2.0)], asks=[(101.0, 1.0)])
    log.reset(book)
    log.change(book, True, 99.5, 3.0, True)
    book["nonce"] = 101
    rows = log.take(book)
    assert [r[0] for r in rows] == ["snapshot", "delta"]
    assert rows[0][1:4] == (
        [{"price": 99.0, "size": 1.0}, {"price": 98.0, "size": 2.0}],
        [{"price": 101.0, "size": 1.0}],
        100,
    )
    # OKX/Kraken: a new empty book, then the snapshot's levels (and a trim) in the same message
    log = BookLog()
    book = _book()
    log.reset(book)
    for price, size in ((99.0, 1.0), (98.0, 2.0), (97.0, 5.0)):
        log.change(book, True, price, size, True)
    log.change(book, True, 97.0, 0.0, False)  # ccxt trimmed the book to its depth
    book["nonce"] = 7
    assert log.take(book) == [
        ("snapshot", [{"price": 99.0, "size": 1.0}, {"price": 98.0, "size": 2.0}], [], 7, None)
    ]


def test_an_empty_load_replaced_before_any_level_makes_no_row() -> None:
    log = BookLog()
    log.reset(_book())  # Binance's placeholder book, before its REST snapshot
    book = _book(nonce=50, asks=[(10.0, 1.0)])
    log.close(book, None)  # the tapped reset closes what was open before loading
    log.reset(book)
    assert [r[0] for r in log.take(book)] == ["snapshot"]


def test_levels_are_best_first() -> None:
    assert levels({1.0: 1.0, 3.0: 1.0, 2.0: 1.0}, True) == [
        {"price": p, "size": 1.0} for p in (3.0, 2.0, 1.0)
    ]
    assert levels({1.0: 1.0, 3.0: 1.0, 2.0: 1.0}, False) == [
        {"price": p, "size": 1.0} for p in (1.0, 2.0, 3.0)
    ]


def test_a_trim_after_the_nonce_moved_joins_the_message_row() -> None:
    """ccxt's depth trim is no venue message: Binance sets the nonce after the levels, so a trim sees
    the next nonce; its deletes belong to the message's row (once a second row with the same id)."""
    log = BookLog()
    book = _book(nonce=10, bids=[(100.0, 1.0), (90.0, 1.0)])
    log.change(book, True, 99.0, 2.0, True)  # the message's level
    book["nonce"] = 11
    log.trimming = True
    log.change(book, True, 90.0, 0.0, False)  # the deepest level trimmed
    log.trimming = False
    assert log.take(book) == [
        ("delta", [{"price": 99.0, "size": 2.0}, {"price": 90.0, "size": 0.0}], [], 11, None)
    ]
    # a trim of a load just finished shortens the load's row
    log = BookLog()
    book = _book(nonce=20, bids=[(100.0, 1.0), (99.0, 1.0), (98.0, 1.0)], asks=[(101.0, 1.0)])
    log.reset(book)
    assert log.trim_load(True, [98.0])
    assert log.take(book) == [
        (
            "snapshot",
            [{"price": 100.0, "size": 1.0}, {"price": 99.0, "size": 1.0}],
            [{"price": 101.0, "size": 1.0}],
            20,
            None,
        )
    ]
    assert not log.trim_load(True, [99.0])  # no load left to trim: the caller trims unlogged
