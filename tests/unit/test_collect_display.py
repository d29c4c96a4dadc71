"""What `daedalus collect` prints while it runs: rates and totals from two health documents."""

from __future__ import annotations

import asyncio
import json

from daedalus.cli.collect_display import log_line, show_progress, stream_rows


def _doc(t: float, received: int, written: int, reconnects: int = 0) -> dict:
    return {
        "updated_at": t,
        "received": received,
        "dropped": 2,
        "queue_depth": 3,
        "queue_maxsize": 100,
        "streams": {
            "ccxt/trades/binance/BTC/USDT": {
                "received": received,
                "written": written,
                "dropped": 2,
                "gaps_last_hour": 1,
                "reconnects_last_hour": reconnects,
            }
        },
    }


def test_rates_and_log_line() -> None:
    prev, doc = _doc(100.0, 1000, 900), _doc(104.0, 1400, 1300, reconnects=2)
    assert stream_rows(prev, doc) == [
        ("ccxt/trades/binance/BTC/USDT", "100.0", "1400", "1300", "2", "1", "2")
    ]
    assert stream_rows(None, doc)[0][1] == "0.0"
    assert log_line(prev, doc) == (
        "collect: 1 streams, 100.0 msgs/s, received 1400, written 1300, dropped 2, "
        "gaps/h 1, reconnects/h 2, queue 3/100"
    )


def test_periodic_log_lines_without_a_terminal(tmp_path, capsys) -> None:
    path = tmp_path / "health.json"

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(show_progress(path, stop, tty=False, interval=0.05))
        await asyncio.sleep(0.12)  # no health file yet: nothing printed, no error
        path.write_text(json.dumps(_doc(1.0, 10, 10)))
        await asyncio.sleep(0.12)
        stop.set()
        await task

    asyncio.run(run())
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(ln.startswith("collect: 1 streams, ") for ln in lines)
    assert "received 10, written 10" in lines[-1]
