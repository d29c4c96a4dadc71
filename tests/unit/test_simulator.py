"""The simulator: a deterministic market whose diffs rebuild its book, and capture pacing."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

from daedalus.devkit.simulator.market import BookDiff, SimulatedMarket, Trade
from daedalus.devkit.simulator.replay import load_capture, paced


def _run(seed: int, steps: int) -> list:
    m = SimulatedMarket(seed=seed)
    out = []
    for _ in range(steps):
        out.extend(m.step())
    return out


def test_same_seed_same_market_other_seed_other_market() -> None:
    assert _run(5, 300) == _run(5, 300)
    assert _run(5, 300) != _run(6, 300)


def test_diffs_rebuild_the_book_and_ids_are_consecutive() -> None:
    m = SimulatedMarket(seed=9)
    replica = {s: (dict(b.bids), dict(b.asks)) for s, b in copy.deepcopy(m.books).items()}
    last_id = {s: b.update_id for s, b in m.books.items()}
    trades = 0
    for _ in range(2000):
        for ev in m.step():
            if isinstance(ev, Trade):
                trades += 1
                assert ev.qty > 0
                continue
            assert isinstance(ev, BookDiff)
            assert ev.first_id == last_id[ev.symbol] + 1  # Binance: U = previous u + 1
            last_id[ev.symbol] = ev.last_id
            bids, asks = replica[ev.symbol]
            for side, levels in ((bids, ev.bids), (asks, ev.asks)):
                for p, q in levels:
                    if q == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
    for s, book in m.books.items():
        assert replica[s] == (book.bids, book.asks), s
        assert book.best_bid() < book.best_ask()  # never crossed
        assert len(book.bids) >= 20 and len(book.asks) >= 20
    assert trades > 500


def test_a_market_order_trades_at_the_levels_it_consumes() -> None:
    m = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=2)
    for _ in range(500):
        before = copy.deepcopy(m.books["BTC/USDT"])
        events = m.step()
        trades = [e for e in events if isinstance(e, Trade)]
        for t in trades:
            side = before.bids if t.buyer_is_maker else before.asks  # a seller hits bids
            assert t.price in side and t.qty <= side[t.price] + 1e-9


def test_paced_delays_are_capture_gaps_divided_by_speed(tmp_path: Path) -> None:
    path = tmp_path / "cap.jsonl.gz"
    lines = [
        (1_000_000_000, {"stream": "x@trade", "data": {"s": "XY", "t": 1}}),
        (1_000_000_000, {"lastUpdateId": 5, "bids": [], "asks": []}),
        (1_500_000_000, {"stream": "x@trade", "data": {"s": "XY", "t": 2}}),
        (3_500_000_000, {"stream": "x@bookTicker", "data": {"s": "XY", "u": 6}}),
    ]
    with gzip.open(path, "wt") as f:
        for ns, msg in lines:
            f.write(f"{ns} {json.dumps(msg)}\n")
    cap = load_capture(path)
    assert cap.snapshot["lastUpdateId"] == 5 and cap.symbol_id == "XY"
    assert [d for d, _, _ in paced(cap, 10)] == [0.0, 0.05, 0.2]
    assert [d for d, _, _ in paced(cap, 0)] == [0.0, 0.0, 0.0]  # speed 0: as fast as possible
    assert [p["t"] for p in cap.trades()] == [1, 2] and len(cap.book_tickers()) == 1


def test_two_runs_never_share_a_trade_id() -> None:
    # `daedalus demo` twice into one lake: the second run starts later on the clock, and silver
    # deduplicates trades on their id, so a reused id would silently drop the second run's trade.
    def ids(start_ms: int, steps: int) -> tuple[list[int], int]:
        m = SimulatedMarket({"BTC/USDT": 60_000.0}, seed=7, start_ms=start_ms, step_ms=20)
        out = [ev.trade_id for _ in range(steps) for ev in m.step() if isinstance(ev, Trade)]
        return out, m.now_ms

    first, end_ms = ids(1_723_161_600_000, 500)
    second, _ = ids(end_ms, 500)  # same seed, started when the first run ended
    assert first and second
    assert not set(first) & set(second)
    assert second == sorted(second) and min(second) > max(first)
