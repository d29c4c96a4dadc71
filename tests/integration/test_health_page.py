"""The lake's health page and `daedalus coverage` on a demo-like lake with known faults (issue 27).

The lake: two symbols, six hours of synthetic bronze (daedalus/devkit/synth.py) with one disconnect
each (so two, at hours the generator reports), built; then a raw trades segment of BTC/USDT with a
corrupt row group is landed (`daedalus land` quarantines the row group and records a `quarantine`
event naming its series and count) and the lake is built again. Exactly those three holes must show,
in their hours, on the page as headless Chromium renders it and in `coverage --json`, and nothing
else. The page is also checked as a person sees it: a screenshot whose pixels of each status colour
form the expected number of cells, and no console message.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from daedalus.build import api
from daedalus.collector.quarantine import convert_rows
from daedalus.collector.schemas import SCHEMAS
from daedalus.config import load_config
from daedalus.devkit.synth import generate
from daedalus.land.landing import land
from daedalus.serve.health_page import STATUS_COLORS

SEC = 1_000_000_000
CHANNELS = ["orderbook", "ticker", "trades"]
LOST_ROWS = 100  # one corrupt row group of the quarantined segment


def chromium() -> str:
    """The browser, or a failure in CI (`.ci/run` installs Debian's chromium), a skip elsewhere."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = "chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium()  # before the lake is built: a skip outside CI costs nothing


def run_chromium(*args: str) -> subprocess.CompletedProcess:
    # no sandbox: CI runs as root in a container; the resolver maps every host to nothing so the page
    # cannot reach beyond this machine even if it tried.
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def corrupt_row_group(path: Path, row_group: int, column: str) -> None:
    """Overwrite one column chunk's pages with garbage: that row group cannot decode."""
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(row_group).column(meta.schema.to_arrow_schema().names.index(column))
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(path.read_bytes())
    for k in range(start + 20, start + col.total_compressed_size - 4):
        data[k] = (k * 31 + 7) % 256
    path.write_bytes(bytes(data))


def quarantined_segment(root: Path, hour: dt.datetime) -> Path:
    """500 BTC/USDT trades from hour:10 on, one a second, in row groups of 100; the third is corrupt."""
    t0 = int((hour + dt.timedelta(minutes=10)).timestamp()) * SEC
    rows = [
        {
            "collected_at": (t0 + i * SEC) // 1_000_000,
            "capture_ts": t0 + i * SEC + 5_000_000,
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "conn_id": "late-1",
            "seq": i,
            "timestamp": t0 + i * SEC,
            "trade_id": f"late-{i}",
            "side": ("buy", "sell")[i % 2],
            "price": 60000.0,
            "amount": 0.01,
        }
        for i in range(500)
    ]
    conv = convert_rows("trades", rows, SCHEMAS["trades"])
    d = root / "raw" / "ready" / "ccxt" / "trades"
    d.mkdir(parents=True, exist_ok=True)
    seg = d / f"segment_{hour:%Y%m%dT%H}0000000000Z_late.parquet"
    pq.write_table(conv.table, seg, row_group_size=100, compression="zstd")
    corrupt_row_group(seg, 2, "price")
    return seg


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daedalus", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("health")
    root = tmp / "lake"
    summary = generate(
        root,
        symbols=["BTC/USDT", "ETH/USDT"],
        hours=6,
        snapshot_ms=2000,
        trades_per_sec=1.0,
        gaps_per_day=1,
        ticker_ms=5000,
        levels=10,
    )
    cfg = tmp / "daedalus.yaml"
    cfg.write_text(
        f"storage:\n  root: {root}\nduckdb:\n  threads: 1\n"
        "etl:\n  features:\n    vpin_bucket_volume: 2.0\n"  # VPIN from the first hour on (no 'auto' day)
    )
    config = load_config(str(cfg))
    api.build(config)
    day = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    gaps = {
        sym: dt.datetime.fromisoformat(start).replace(minute=0, second=0, microsecond=0)
        for sym, start, _ in summary.gaps
    }
    assert sorted(gaps) == ["BTC/USDT", "ETH/USDT"]  # one disconnect per symbol: two in all
    q_hour = next(
        day + dt.timedelta(hours=h) for h in range(1, 6) if day + dt.timedelta(hours=h) not in gaps.values()
    )
    quarantined_segment(root, q_hour)
    report = land(config)
    assert len(report.quarantined) == 1
    api.build(config)  # a second build: the landed rows and the quarantine event, two builds of history
    return {"root": root, "cfg": cfg, "tmp": tmp, "gaps": gaps, "q_hour": q_hour}


def expected_holes(lake: dict) -> set[tuple[str, str, str, str]]:
    """(symbol, channel, hour, status) of every cell that must show a hole."""
    iso = lambda t: t.strftime("%Y-%m-%dT%H:00:00Z")  # noqa: E731
    out = {(sym, ch, iso(h), "break") for sym, h in lake["gaps"].items() for ch in CHANNELS}
    out.add(("BTC/USDT", "trades", iso(lake["q_hour"]), "lost"))
    return out


def test_coverage_json_shows_exactly_the_three_holes(lake):
    out = cli(lake["cfg"], "coverage", "--json")
    assert out.returncode == 10, out.stderr  # the lake's rows are from 2024: every series is stale
    doc = json.loads(out.stdout)
    assert len(doc["series"]) == 6 and len(doc["stale"]) == 6
    holes = {(h["symbol"], h["channel"], h["hour"], h["status"]) for h in doc["holes"]}
    assert holes == expected_holes(lake)
    incidents = sorted((i["symbol"], i["hour"], i["status"], tuple(i["channels"])) for i in doc["incidents"])
    assert len(incidents) == 3
    events = {e["id"]: e for e in doc["events"]}
    assert sorted(e["event_type"] for e in events.values()) == ["disconnect", "disconnect", "quarantine"]
    (loss,) = [e for e in events.values() if e["loss"]]
    assert (loss["symbol"], loss["channel"], loss["count"]) == ("BTC/USDT", "trades", LOST_ROWS)
    lost_cells = [c for s in doc["series"] for c in s["cells"] if c["status"] == "lost"]
    assert [(c["lost"], c["losses"], c["events"]) for c in lost_cells] == [(LOST_ROWS, 1, [loss["id"]])]
    # a clean lake otherwise: silver serves every bronze row, and the landed half of the segment counts
    assert all(c["rows"] == c["bronze"] for s in doc["series"] for c in s["cells"])
    q = int(lake["q_hour"].hour)
    btc = next(s for s in doc["series"] if (s["symbol"], s["channel"]) == ("BTC/USDT", "trades"))
    synth = (
        lake["root"]
        / "bronze"
        / "trades"
        / "exchange=binance"
        / "date=2024-01-01"
        / f"synth-BTC-USDT-{q:02d}.parquet"
    )
    assert btc["cells"][q]["rows"] == pq.ParquetFile(synth).metadata.num_rows + 400
    # everything else: rows in the six generated hours, nothing after them
    for s in doc["series"]:
        for i, c in enumerate(s["cells"]):
            if (s["symbol"], s["channel"], c["hour"], c["status"]) in holes:
                continue
            assert c["status"] == ("ok" if i < 6 else "none"), (s["symbol"], s["channel"], c)
    # two builds recorded: the second rebuilt what the landed segment touched (trades), not ticker
    models = doc["builds"]["models"]
    assert [type(x).__name__ for x in models["trades"]["history"]] == ["float", "float"]
    assert [x is None for x in models["ticker"]["history"]] == [False, True]
    assert models["ticker"]["status"] == "PASS" and models["ticker"]["last_seconds"] > 0
    fresh = cli(lake["cfg"], "coverage", "--max-age", "100000 days")
    assert fresh.returncode == 0, fresh.stderr
    assert "3 hole(s), 3 event(s), 0 stale series" in fresh.stdout
    btc_trades = next(
        line for line in fresh.stdout.splitlines() if line.startswith("binance BTC/USDT trades")
    )
    strip = btc_trades.split()[3]
    expect = ["#"] * 6 + ["."] * 18
    expect[lake["gaps"]["BTC/USDT"].hour] = "B"
    expect[lake["q_hour"].hour] = "L"
    assert strip == "".join(expect)
    bad = cli(lake["cfg"], "coverage", "--max-age", "soon")
    assert bad.returncode == 2 and "error: --max-age: 'soon'" in bad.stderr
    bad = cli(lake["cfg"], "coverage", "--start", "2024-13-01")
    assert bad.returncode == 2 and "error: --start: '2024-13-01' is not a date" in bad.stderr
    # two days from the day before: 48 hours, the same holes 24 cells later
    two = json.loads(cli(lake["cfg"], "coverage", "--json", "--start", "2023-12-31", "--days", "2").stdout)
    assert len(two["hours"]) == 48 and two["hours"][24] == "2024-01-01T00:00:00Z"
    assert {(h["symbol"], h["channel"], h["hour"], h["status"]) for h in two["holes"]} == expected_holes(lake)
    assert all(c["status"] == "none" for s in two["series"] for c in s["cells"][:24])


def test_status_shows_the_same_holes_beside_the_collector(lake):
    """`daedalus status`: no collector writes here (no health file), so it is the lake's part alone,
    the same three holes as `coverage`, exit 10 while stale; with a health file both parts show."""
    out = cli(lake["cfg"], "status", "--json")
    assert out.returncode == 10, out.stderr
    doc = json.loads(out.stdout)
    assert doc["collector"] is None
    holes = {(h["symbol"], h["channel"], h["hour"], h["status"]) for h in doc["lake"]["holes"]}
    assert holes == expected_holes(lake)
    fresh = cli(lake["cfg"], "status", "--max-age", "100000 days")
    assert fresh.returncode == 0, fresh.stderr
    assert "collector:" in fresh.stdout and "no collector health file" in fresh.stdout
    assert "3 hole(s), 3 event(s), 0 stale series" in fresh.stdout
    from daedalus.collector.health import health_path

    health = health_path(str(lake["root"]))
    health.parent.mkdir(parents=True, exist_ok=True)
    health.write_text(json.dumps({"updated_at": time.time() - 600, "streams": {}}))
    both = cli(lake["cfg"], "status", "--max-age", "100000 days")
    assert both.returncode == 1, both.stderr  # the collector stopped: that comes first
    assert "NOT UPDATED" in both.stdout and "3 hole(s)" in both.stdout
    health.unlink()


class Cells(HTMLParser):
    """Strip cells (series → [(hour, status, link)]) and event rows (id → (type, hour)) of a DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.series: dict[str, list[tuple[str, str, str | None]]] = {}
        self.events: dict[str, tuple[str, str]] = {}
        self.current: str | None = None
        self.link: str | None = None
        self.viewport = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "meta" and a.get("name") == "viewport":
            self.viewport = "width=device-width" in a.get("content", "")
        if "data-series" in a:
            self.current = a["data-series"]
            self.series[self.current] = []
        if tag == "a" and self.current:
            self.link = a.get("href")
        if tag == "rect" and a.get("class") == "cell":
            self.series[self.current].append((a["data-hour"], a["data-status"], self.link))
        if tag == "tr" and a.get("id", "").startswith("ev-"):
            self.events[a["id"]] = (a["data-event-type"], a["data-hour"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self.link = None


def components(mask: np.ndarray) -> list[int]:
    """Sizes of the 4-connected regions of a boolean image."""
    seen = np.zeros_like(mask)
    sizes = []
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        stack, n = [(y, x)], 0
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            n += 1
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        sizes.append(n)
    return sizes


def test_page_in_chromium_shows_the_holes_and_no_console_message(browser, lake):
    from PIL import Image  # with the dev extra (matplotlib's dependency)

    site = lake["tmp"] / "site"
    out = cli(lake["cfg"], "docs", "--output", str(site))
    assert out.returncode == 0, out.stderr
    page = site / "health.html"
    text = page.read_text()
    assert "<script" not in text and "https://" not in text
    assert text.replace('xmlns="http://www.w3.org/2000/svg"', "").count("http://") == 0  # nothing fetched
    assert "href='health.html'" in (site / "index.html").read_text()

    # the browser's own console: a page that logs must be caught (else this check could never fail)
    probe = lake["tmp"] / "probe.html"
    probe.write_text("<!doctype html><script>console.error('probe-message')</script>")
    assert any(
        "probe-message" in line for line in console_lines(run_chromium("--dump-dom", probe.as_uri()).stderr)
    )

    dom = run_chromium("--dump-dom", page.as_uri())
    assert console_lines(dom.stderr) == []
    cells = Cells()
    cells.feed(dom.stdout)
    assert cells.viewport
    assert sorted(cells.series) == [f"binance {s} {c}" for s in ("BTC/USDT", "ETH/USDT") for c in CHANNELS]
    shown = {
        (key.split()[1], key.split()[2], hour, status)
        for key, row in cells.series.items()
        for hour, status, _ in row
        if status not in ("ok", "none")
    }
    assert shown == expected_holes(lake)
    for row in cells.series.values():
        assert len(row) == 24
        for hour, status, link in row:
            if status in ("ok", "none"):
                assert link is None
                continue
            kind, ev_hour = cells.events[link.lstrip("#")]  # the click lands on the event behind it
            assert ev_hour == hour and kind == ("quarantine" if status == "lost" else "disconnect")
    assert 'data-symbol="binance BTC/USDT"' in dom.stdout and 'data-symbol="binance ETH/USDT"' in dom.stdout
    assert dom.stdout.count("<polyline") >= 6 + 11  # 3 panels per symbol + a sparkline per model
    assert "no values" not in dom.stdout  # mid, spread and VPIN all drawn

    shot = lake["tmp"] / "health.png"
    phone = lake["tmp"] / "health-phone.png"
    run_chromium("--window-size=1200,2600", f"--screenshot={shot}", page.as_uri())
    run_chromium("--window-size=390,1800", f"--screenshot={phone}", page.as_uri())
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2600, 1200) and Image.open(phone).size == (390, 1800)

    def cells_of(status: str) -> int:
        rgb = tuple(int(STATUS_COLORS[status][i : i + 2], 16) for i in (1, 3, 5))
        return sum(n >= 300 for n in components((img == rgb).all(axis=2)))  # a cell; the legend swatch is 144

    ok = sum(status == "ok" for row in cells.series.values() for _, status, _ in row)
    assert (cells_of("break"), cells_of("lost"), cells_of("ok")) == (6, 1, ok)
    assert cells_of("rejected") == cells_of("empty") == 0
    print(f"screenshots: {shot} {phone}")


def test_rejects_silent_hours_and_freshness(tmp_path):
    """A bad quote is `rejected` in its hour, an hour whose trades file is missing is `empty` (no
    event says why: the worst kind of hole), and freshness is measured against the clock given."""
    import duckdb
    import pyarrow as pa

    from daedalus.serve.health import gather

    root = tmp_path / "lake"
    generate(root, symbols=["BTC/USDT"], hours=4, snapshot_ms=5000, trades_per_sec=0.5, gaps_per_day=0)
    day = root / "bronze" / "ticker" / "exchange=binance" / "date=2024-01-01"
    ticker = pq.read_table(day / "synth-BTC-USDT-02.parquet")
    bid = ticker.column("bid").to_pylist()
    bid[7] = float("nan")
    pq.write_table(
        ticker.set_column(ticker.schema.get_field_index("bid"), "bid", pa.array(bid)),
        day / "synth-BTC-USDT-02.parquet",
    )
    (
        root / "bronze" / "trades" / "exchange=binance" / "date=2024-01-01" / "synth-BTC-USDT-01.parquet"
    ).unlink()
    config = load_config(None, {"storage.root": str(root), "duckdb.threads": 1})
    api.build(config, select="silver.trades silver.ticker silver.events silver.rejects")

    newest = {
        ch: duckdb.sql(
            f"SELECT epoch(max(ts)) FROM read_parquet('{root}/silver/{ch}/**/*.parquet')"
        ).fetchone()[0]
        for ch in ("ticker", "trades")
    }
    h = gather(config, now=max(newest.values()) + 30, max_age_seconds=60)
    strips = {s.channel: "".join(c.status[0] for c in s.cells[:5]) for s in h.series}
    assert strips == {"ticker": "ooron", "trades": "oeoon"}  # ok, rejected, empty, none
    ticker_series = next(s for s in h.series if s.channel == "ticker")
    assert ticker_series.cells[2].rejected == 1
    assert [c.bronze - c.rows for c in ticker_series.cells[:4]] == [0, 0, 1, 0]  # the rejected quote
    assert {s.channel: s.age_seconds for s in h.series} == pytest.approx(
        {ch: max(newest.values()) + 30 - t for ch, t in newest.items()}, abs=1e-3
    )
    assert h.stale() == []
    for t in newest.values():  # 60.5 s after a series' newest row: it is stale, and any older one
        stale = gather(config, now=t + 60.5, max_age_seconds=60).stale()
        assert stale == [f"binance BTC/USDT {c}" for c, u in sorted(newest.items()) if u < t + 0.5]
    assert [(i["hour"][11:13], i["status"], i["channels"]) for i in h.incidents()] == [
        ("01", "empty", ["trades"]),
        ("02", "rejected", ["ticker"]),
    ]

    (tmp_path / "nothing").mkdir()  # a root that does not exist is refused earlier (exit 2, issue 24)
    empty = load_config(None, {"storage.root": str(tmp_path / "nothing")})
    out = subprocess.run(
        [sys.executable, "-m", "daedalus", "--root", empty.storage.root, "coverage"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 5 and "no catalog yet" in out.stderr
