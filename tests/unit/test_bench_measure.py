"""The measurement helpers of `daedalus bench` on workloads whose figures are known in advance.

Memory: a child process that holds N MiB of touched bytes must show a peak of at least N MiB, and
not much more than N plus an interpreter. No test asserts a duration (the clock is injected).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from daedalus.devkit.bench.measure import (
    MB,
    RESULT_MARK,
    PeakRSS,
    Timer,
    dir_bytes,
    median,
    parse_result,
    ratio,
    run_worker,
    tree_rss,
)
from daedalus.devkit.bench.report import render
from daedalus.devkit.bench.suite import Target, link_bronze, model_seconds

INTERPRETER_SLACK = 120 * MB  # a Python interpreter with psutil imported, generously

HOLD = """
import sys, time
data = b"\\x01" * ({mib} * 1024 * 1024)  # bytes are written (memset), so every page is resident
print("ready", flush=True)
time.sleep({hold})
"""


def _hold(mib: int, hold: float = 1.0) -> str:
    return HOLD.format(mib=mib, hold=hold)


def test_peak_rss_of_a_process_holding_known_memory() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _hold(150)], stdout=subprocess.PIPE, text=True)
    try:
        with PeakRSS(proc.pid, interval=0.01) as m:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(0.1)
            m.sample()
        assert 150 * MB <= m.peak <= 150 * MB + INTERPRETER_SLACK
        assert m.samples >= 2
    finally:
        proc.kill()
        proc.wait()


MAPPED = """
import mmap, sys, time
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    total = sum(m[i] for i in range(0, len(m), 4096))  # touch every page: resident, file-backed
    data = b"\\x01" * (60 * 1024 * 1024)  # and 60 MiB of its own
    print("ready", flush=True)
    time.sleep(30)
"""


def test_private_memory_leaves_out_file_backed_pages(tmp_path: Path) -> None:
    """A process with a 120 MiB file mapped and read, and 60 MiB allocated: RSS holds both, private
    only what it allocated (the bench's `private` column, measure.py `tree_memory`)."""
    path = tmp_path / "mapped"
    path.write_bytes(os.urandom(120 * MB))
    proc = subprocess.Popen([sys.executable, "-c", MAPPED, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with PeakRSS(proc.pid, interval=0.01) as m:
            time.sleep(0.1)
        assert m.peak >= 180 * MB
        assert 60 * MB <= m.peak_private <= 60 * MB + INTERPRETER_SLACK
        assert m.peak - m.peak_private >= 120 * MB
    finally:
        proc.kill()
        proc.wait()


def test_tree_rss_counts_descendants() -> None:
    """A parent holding little, its child holding 100 MiB: the tree holds ≥ 100 MiB, the parent alone not."""
    parent = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {_hold(100, 30)!r}], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        print("ready", flush=True)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        p = psutil.Process(proc.pid)
        whole = tree_rss(p)
        children_only = tree_rss(p, include_root=False)
        parent_only = p.memory_info().rss
        assert whole >= 100 * MB
        assert children_only >= 100 * MB
        assert parent_only < 100 * MB
        assert whole == pytest.approx(children_only + parent_only, rel=0.05)
    finally:
        for c in psutil.Process(proc.pid).children(recursive=True):
            c.kill()
        proc.kill()
        proc.wait()


def test_run_worker_parses_result_and_takes_the_larger_peak() -> None:
    code = textwrap.dedent("""
        from daedalus.devkit.bench.measure import emit_result, self_max_rss
        data = b"\\x01" * (120 * 1024 * 1024)
        print("noise that is not a result")
        emit_result({"answer": 42, "max_rss": self_max_rss()})
    """)
    run = run_worker(["-c", code], interval=0.01)
    assert run.ok and run.error is None
    assert run.result["answer"] == 42
    # ru_maxrss of the worker saw the 120 MiB even if no sample landed while it was held
    assert 120 * MB <= run.peak_rss <= 120 * MB + INTERPRETER_SLACK
    assert run.result["max_rss"] >= 120 * MB


def test_run_worker_failure_is_reported_not_raised() -> None:
    run = run_worker(["-c", "raise SystemExit('cannot build: Out of Memory')"])
    assert not run.ok
    assert run.returncode == 1
    assert run.error == "exit 1: cannot build: Out of Memory"


def test_worker_error_field_counts_as_failure() -> None:
    run = run_worker(["-c", f'print({RESULT_MARK!r} + \'{{"error": "BuildError: x"}}\')'])
    assert run.returncode == 0
    assert not run.ok
    assert run.error == "BuildError: x"


def test_parse_result_takes_the_last_marked_line() -> None:
    out = f"hello\n{RESULT_MARK}{json.dumps({'a': 1})}\nprogress 50%\n{RESULT_MARK}{json.dumps({'a': 2})}\n"
    assert parse_result(out) == {"a": 2}
    assert parse_result("no result here\n") == {}


def test_dir_bytes_counts_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.parquet").write_bytes(b"1" * 1000)
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "a" / "b" / "y.parquet").write_bytes(b"2" * 234)
    os.symlink(tmp_path / "a" / "x.parquet", tmp_path / "a" / "link.parquet")
    assert dir_bytes(tmp_path / "a") == 1234
    assert dir_bytes(tmp_path / "missing") == 0


def test_peak_rss_tracks_the_largest_size_of_a_watched_directory(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    m = PeakRSS(interval=0.01, watch_dir=spill, dir_every=1)
    (spill / "a.tmp").write_bytes(b"0" * 5000)
    m.sample()
    (spill / "a.tmp").unlink()  # DuckDB deletes its spill files when the query ends
    m.sample()
    assert m.peak_dir_bytes == 5000


def test_timer_with_an_injected_clock() -> None:
    ticks = iter([100.0, 102.5])
    with Timer(clock=lambda: next(ticks)) as t:
        pass
    assert t.seconds == 2.5


def test_median_and_ratio() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert median([float("nan"), 5.0]) == 5.0
    assert ratio(6.0, 1.5) == 4.0
    assert ratio(None, 1.0) is None and ratio(1.0, 0.0) is None and ratio(1.0, None) is None


def test_target_check_both_directions() -> None:
    assert Target("x", 3.9, 4, "×").ok is True
    assert Target("x", 4.1, 4, "×").ok is False
    assert Target("x", 25.0, 20, "M rows/s", op=">=").ok is True
    assert Target("x", 19.9, 20, "M rows/s", op=">=").ok is False
    assert Target("x", None, 20, "").ok is None


def test_model_seconds_sums_named_models_and_layers() -> None:
    from daedalus.devkit.bench.measure import WorkerRun

    models = {
        "orderbook": {"seconds": 2.0, "layer": "silver"},
        "trades": {"seconds": 0.5, "layer": "silver"},
        "orderbook_seq": {"seconds": 3.0, "layer": "gold"},
        "vpin_buckets": {"seconds": 0.25, "layer": "gold"},
    }
    run = WorkerRun(0, 10.0, 0, result={"models": models})
    assert model_seconds(run, ("orderbook_seq", "vpin_buckets")) == 3.25
    assert model_seconds(run, layer="silver") == 2.5
    assert model_seconds(run, ("nope",)) is None
    assert (
        model_seconds(WorkerRun(1, 1.0, 0, result={"models": models})) is None
    )  # a failed build has no figure


def test_link_bronze_links_the_selected_dates(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d, size in (("2024-01-01", 10), ("2024-01-02", 20)):
        p = src / "bronze" / "orderbook" / "exchange=x" / f"date={d}" / "f.parquet"
        p.parent.mkdir(parents=True)
        p.write_bytes(b"0" * size)
    dst = tmp_path / "dst"
    assert link_bronze(src, dst, ["2024-01-02"]) == 20
    linked = dst / "bronze" / "orderbook" / "exchange=x" / "date=2024-01-02" / "f.parquet"
    assert linked.stat().st_ino == (src / linked.relative_to(dst)).stat().st_ino  # a hard link, no copy
    assert not (dst / "bronze" / "orderbook" / "exchange=x" / "date=2024-01-01").exists()


def test_floor_worker_reads_every_level(tmp_path: Path) -> None:
    """The floor task on a small synthetic lake counts exactly the levels pyarrow finds in the files."""
    from daedalus.devkit.synth import generate

    generate(tmp_path, hours=0.05, snapshot_ms=500, levels=5, gaps_per_day=0)
    files = sorted((tmp_path / "bronze" / "orderbook").rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f, columns=["bids", "asks"]) for f in files])
    levels = sum(pc.sum(pc.list_value_length(table[c])).as_py() for c in ("bids", "asks"))
    spec = {
        "task": "floor",
        "root": str(tmp_path),
        "repeat": 2,
        "overrides": {"storage.root": str(tmp_path), "duckdb.temp_directory": str(tmp_path / "_tmp")},
    }
    run = run_worker(["-m", "daedalus.devkit.bench.worker", json.dumps(spec)])
    assert run.ok, run.error
    assert run.result["snapshots"] == table.num_rows == 360  # 0.05 h at 500 ms
    assert run.result["levels"] == levels
    assert len(run.result["seconds"]) == 2


def test_report_marks_missed_targets() -> None:
    doc = {
        "meta": {"hours_per_day": 1},
        "targets": [
            Target("issue 4: SQL gold models / floor", 5.5, 4, "×").as_dict(),
            Target("issue 5: kernels alone", 25.0, 20, "M rows/s", op=">=").as_dict(),
        ],
    }
    console = Console(record=True, width=200)
    render(doc, console)
    text = console.export_text()
    lines = {ln.split("│")[1].strip(): ln for ln in text.splitlines() if ln.count("│") >= 4}
    assert "missed" in lines["issue 4: SQL gold models / floor"]
    assert "5.50 ×" in lines["issue 4: SQL gold models / floor"]
    assert "met" in lines["issue 5: kernels alone"]


def test_flatten_profile_lists_each_operator_with_its_own_time() -> None:
    from daedalus.devkit.bench.explain import ModelProfile, flatten_profile

    tree = {
        "latency": 3.0,
        "children": [
            {
                "operator_name": "ORDER_BY",
                "operator_timing": 0.5,
                "operator_cardinality": 10,
                "extra_info": {"Order By": ["ts ASC", "seq ASC"]},
                "children": [
                    {
                        "operator_name": "WINDOW",
                        "operator_timing": 2.0,
                        "operator_cardinality": 10,
                        "extra_info": {"Projections": "LAG(ts)"},
                        "children": [
                            {
                                "operator_name": "READ_PARQUET ",
                                "operator_timing": 0.25,
                                "operator_cardinality": 10,
                                "children": [],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    ops = flatten_profile(tree)
    assert [(o.name, o.seconds, o.rows, o.depth) for o in ops] == [
        ("ORDER_BY", 0.5, 10, 1),
        ("WINDOW", 2.0, 10, 2),
        ("READ_PARQUET", 0.25, 10, 3),
    ]
    assert ops[0].detail == "Order By: ts ASC, seq ASC"
    prof = ModelProfile("m", "p", 3.0, ops)
    assert [o.name for o in prof.top(2)] == ["WINDOW", "ORDER_BY"]
