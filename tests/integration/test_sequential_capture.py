"""The real Binance capture (tests/data) through silver and gold.orderbook_seq: values finite
where defined, NULL exactly where docs/features.md says, and OFI / rolling sums / TFI equal to the
brute-force reference on real books."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from daedalus.build import api
from daedalus.config import load_config
from daedalus.devkit.capture import load_capture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the reference package
from reference import sequential_reference as ref  # noqa: E402

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "binance-spot-btcusdt-20240808.jsonl.gz"
US = 1_000_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[list[dict], list[ref.Snap], list[ref.Trade]]:
    root = tmp_path_factory.mktemp("capture_lake")
    load_capture(CAPTURE, root)
    cfg = load_config(
        None,
        {
            "storage.root": str(root),
            "duckdb.temp_directory": str(root / "_tmp"),
            "etl.features.horizons": [5, 60],
            "etl.features.kyle_lambda_window": 60,
            "etl.features.spread_regime_window": 30,
        },
    )
    api.build(cfg, select=["+orderbook_seq"], run_tests=False, catalog=False)
    con = duckdb.connect()
    gold = con.execute(f"""SELECT * EXCLUDE (ts, date), epoch_us(ts) AS ts_us FROM read_parquet('{root}/gold/orderbook_seq/**/*.parquet',
                           hive_partitioning=false) ORDER BY ts, seq""")
    names = [d[0] for d in gold.description]
    rows = [dict(zip(names, r, strict=True)) for r in gold.fetchall()]
    book = con.execute(f"""SELECT epoch_us(ts), [(b.price, b.size) for b in bids], [(a.price, a.size) for a in asks], crossed,
                           break_before FROM read_parquet('{root}/silver/orderbook/**/*.parquet', hive_partitioning=false)
                           ORDER BY ts, seq""").fetchall()
    snaps = [ref.Snap(r[0], [tuple(x) for x in r[1]], [tuple(x) for x in r[2]], r[3], r[4]) for r in book]
    tr = con.execute(f"""SELECT epoch_us(ts), amount, side = 'buy' FROM read_parquet('{root}/silver/trades/**/*.parquet',
                         hive_partitioning=false) ORDER BY ts, trade_id""").fetchall()
    return rows, snaps, [ref.Trade(t, a, b) for t, a, b in tr]


def test_values_are_finite_where_defined(built) -> None:
    rows, snaps, trades = built
    assert len(rows) == len(snaps) > 3000 and len(trades) > 9000
    for r in rows:
        for k, v in r.items():
            if isinstance(v, float):
                assert math.isfinite(v), (k, r["ts_us"])
    some = {
        k: sum(r[k] is not None for r in rows)
        for k in ("ofi", "mlofi", "ofi_sum_60s", "tfi_5s", "kyle_lambda", "spread_pctile", "rv_5s")
    }
    assert all(v > 0.9 * len(rows) for k, v in some.items() if k != "kyle_lambda"), some
    assert some["kyle_lambda"] > 0.5 * len(rows)


def test_nulls_exactly_where_features_md_says(built) -> None:
    rows, snaps, trades = built
    starts = ref.segment_start_index(snaps, 300.0)
    ts = np.array([s.ts for s in snaps])
    tts = np.array([t.ts for t in trades])
    for i, (r, s) in enumerate(zip(rows, snaps, strict=True)):
        first = starts[i] == i
        prev = snaps[i - 1] if i else None
        sides = bool(s.bids and s.asks and prev and prev.bids and prev.asks)
        assert (r["log_return"] is None) == (first or not sides)
        assert (r["ofi"] is None) == (first or not sides or s.crossed or prev.crossed)
        assert (r["mlofi"] is None) == (r["ofi"] is None)
        # trade windows do not restart at book breaks (the capture has no trades-series break)
        assert r["trade_volume_5s"] is not None
        n_trades = int(np.searchsorted(tts, s.ts, "right") - np.searchsorted(tts, s.ts - 5 * US, "right"))
        assert (r["tfi_5s"] is None) == (n_trades == 0)
        assert r["vpin"] is None  # auto V: six minutes are inside the series' first hour
        lo60 = max(s.ts - 60 * US, snaps[starts[i]].ts - 1)
        obs = sum(
            1
            for j in range(int(np.searchsorted(ts, lo60, "right")), i + 1)
            if rows[j]["log_return"] is not None
        )
        if obs < 10:
            assert r["kyle_lambda"] is None
    assert rows[0]["spread_pctile"] is None and rows[0]["spread_regime"] is None


def test_ofi_sums_and_tfi_equal_reference_on_real_books(built) -> None:
    rows, snaps, trades = built
    ofi, mlofi = ref.ofi_ref(snaps, 300.0, 10, 0.5)
    for r, o, m in zip(rows, ofi, mlofi, strict=True):
        assert (r["ofi"] is None and o is None) or r["ofi"] == pytest.approx(o, rel=1e-12, abs=1e-12)
        assert (r["mlofi"] is None and m is None) or r["mlofi"] == pytest.approx(m, rel=1e-12, abs=1e-12)
    sums = ref.rolling_sum_ref(snaps, ofi, 300.0, 5)
    tfi, vol = ref.tfi_ref(snaps, trades, 300.0, 5)
    for r, s, t, v in zip(rows, sums, tfi, vol, strict=True):
        assert (r["ofi_sum_5s"] is None) == (s is None) and (
            s is None or r["ofi_sum_5s"] == pytest.approx(s, abs=1e-9)
        )
        assert (r["tfi_5s"] is None) == (t is None) and (
            t is None or r["tfi_5s"] == pytest.approx(t, abs=1e-12)
        )
        assert (r["trade_volume_5s"] is None) == (v is None) and (
            v is None or r["trade_volume_5s"] == pytest.approx(v, abs=1e-9)
        )
