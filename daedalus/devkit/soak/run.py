"""`daedalus bench soak`: the lake under faults, cycle after cycle, checked as it runs (issue 24).

Each cycle runs the fake venues and the real collectors in a child process for `cycle_seconds`
(soak/venues.py: one venue fault injected there), then lands and builds through the real CLI in
child processes (so every kill -9 is real). Two seeded decks pick each cycle's faults, one from each:

- venue faults (soak/venues.py): disconnect, dropped_frames, checksum, stale_feed, rest_429,
  rest_error, rest_timeout, clock_step, and kill_collector (the collection child SIGKILLed at a random
  moment: its open segments are left for the next run and `land` to repair);
- lake faults: truncate_raw (a closed raw segment cut in half before `land`), truncate_bronze (a
  bronze file cut in half before `build`), kill_land, kill_build (after its N-th partition write),
  kill_watch (`daedalus watch` running during the collection, SIGKILLed), junk_staging (the empty
  staging tree of a build killed a day ago).

After every cycle: land and build end with exit 0; every loss is counted in `events` (the venue's
gap/stale/disconnect events after its fault, a `quarantine` row per truncation, naming real
exchanges, never the source); each venue fault is followed by a served book again within a bound
per kind (soak/checks.py); every served book at the cycle's end equals the fake's true book (top 10
levels); no bronze row landed twice; no temp file, init file or empty staging folder; gold grows when
no rows were cut. Over the run: open fds and RSS of this process and peak RSS and fds of the
collector flat. At the end the lake equals a clean rebuild from a copy of its bronze.

`speed` runs the venues' clock faster than the wall clock (`--speed`, or `--simulated-hours` picks
the number of cycles): each cycle continues the simulated clock where the last one stopped.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daedalus.devkit.soak import checks
from daedalus.devkit.soak.report import SoakReport
from daedalus.devkit.soak.venues import BOOK_LEVELS, VENUE_FAULTS

LAKE_FAULTS = ("truncate_raw", "truncate_bronze", "kill_land", "kill_build", "kill_watch", "junk_staging")
PROCESS_FAULTS = ("kill_collector",)
S3_FAULTS = ("s3_outage",)  # only with an S3 lake (`s3=True`, soak/s3.py)
LOCAL_ONLY_FAULTS = ("truncate_bronze", "junk_staging")  # bronze repair and staging folders: local lakes
FAULTS = VENUE_FAULTS + PROCESS_FAULTS + LAKE_FAULTS + S3_FAULTS
# drawn only when asked for (`faults`): a step of the collector host's clock needs libfaketime
# preloaded into the collection child (soak/clock.py) and makes its cycle 8 s longer
OPT_IN_FAULTS = ("host_clock_step",)
S3_RECOVERY_BOUND_SECONDS = 180.0  # from the endpoint's return to a build ending with exit 0
_LAKE_SETTINGS: dict[Path, dict] = {}  # root → config keys beyond the demo's (the S3 lake's)


def _config_file(root: Path) -> Path:
    """A config beside the lake with the demo's build settings (the CLI children read it)."""
    import yaml

    from daedalus.devkit.demo import demo_build_settings

    path = root.parent / f"{root.name}-soak.yaml"
    doc = {**demo_build_settings(), "storage": {"root": str(root)}, **_LAKE_SETTINGS.get(root, {})}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-c",
        "from daedalus.cli.app import main; main()",
        "--config",
        str(_config_file(root)),
    ]
    return subprocess.Popen(
        cmd + list(args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _run(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = _cli(root, *args, env=env)
    _, err = proc.communicate(timeout=900)
    return proc.returncode, err


def _why(err: str) -> str:
    """The first `error:` line of a child's stderr (else its end), short."""
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    return (lines[0] if lines else err.strip()[-300:])[:400]


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _resources() -> tuple[int, float]:
    import psutil

    p = psutil.Process()
    return p.num_fds(), p.memory_info().rss / 2**20


RAW_TMPFS_SIZE = "128m"  # raw/ holds one cycle of segments (a few MB): land empties it every cycle


def mount_small_disk(root: Path) -> Path | None:
    """A size-limited tmpfs on `root/raw` for the disk_full fault (raw/ is one filesystem: the collector
    renames active → ready inside it, `land` only reads it). Needs root (CAP_SYS_ADMIN); None when
    the machine refuses."""
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return None
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={RAW_TMPFS_SIZE}", "tmpfs", str(raw)], capture_output=True
    )
    return raw if r.returncode == 0 else None


def unmount_small_disk(raw: Path) -> None:
    """Keep what raw/ holds (open segments, journals) on the real disk, then unmount."""
    keep = raw.parent / ".soak-raw-copy"
    shutil.copytree(raw, keep, dirs_exist_ok=True)
    subprocess.run(["umount", "-l", str(raw)], check=False, capture_output=True)
    shutil.copytree(keep, raw, dirs_exist_ok=True)
    shutil.rmtree(keep, ignore_errors=True)


def _deck(rng: random.Random, kinds: tuple[str, ...]) -> Callable[[], str]:
    """Draw kinds at random from a seeded deck, reshuffled when empty (every kind comes up)."""
    deck: list[str] = []

    def draw() -> str:
        if not deck:
            deck.extend(kinds)
            rng.shuffle(deck)
        return deck.pop()

    return draw


def _collect(
    work: Path,
    root: Path,
    seconds: float,
    seed: int,
    fault: str,
    start_ms: int,
    speed: float,
    rng: random.Random,
) -> dict | None:
    """One collection cycle in a child; None when the fault was to SIGKILL it."""
    out = work / f"cycle-{seed}.json"
    args = {
        "root": str(root),
        "seconds": seconds,
        "seed": seed,
        "start_ms": start_ms,
        "speed": speed,
        "out": str(out),
        "fault": "none" if fault == "kill_collector" else fault,
    }
    env = dict(os.environ)
    if fault == "host_clock_step":  # its wall clock under libfaketime (soak/clock.py)
        from daedalus.devkit.soak.clock import faketime_env, libfaketime

        env.update(faketime_env(str(libfaketime()), work / f"clock-{seed}.rc"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "daedalus.devkit.soak.venues", json.dumps(args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if fault == "kill_collector":
        time.sleep(rng.uniform(0.4, 0.9) * seconds + 2.0)  # ~2 s of imports and connects first
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        return None
    _, err = proc.communicate(timeout=seconds + 300)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"soak collection cycle failed (exit {proc.returncode}): {err.strip()[-800:]}")
    report = json.loads(out.read_text())
    out.unlink()
    return report


def run_soak(
    root: str | Path,
    seconds: float,
    seed: int = 1,
    cycle_seconds: float = 8.0,
    echo: Callable[[str], None] = print,
    faults: list[str] | None = None,
    cycles: int | None = None,
    speed: float = 1.0,
    simulated_hours: float | None = None,
    s3: bool = False,
) -> SoakReport:
    """Cycles until `seconds` have passed (or exactly `cycles`, or until `simulated_hours` of venue
    clock); the first is fault-free. `faults` (default: every kind) feed the two seeded decks. `s3`
    (or an `s3_outage` in `faults`): the lake on moto_server behind a proxy (soak/s3.py)."""
    root = Path(root).resolve()
    rng = random.Random(seed)
    kinds = tuple(faults or (k for k in FAULTS if k not in OPT_IN_FAULTS))
    s3 = s3 or (faults is not None and "s3_outage" in faults)
    lake_s3 = None
    if s3:
        from daedalus.devkit.soak.s3 import SoakS3, moto_command

        command = moto_command()
        if command is None:
            echo("s3: left out, the lake stays local (moto is not installed: pip install 'moto[server]')")
        else:
            lake_s3 = SoakS3(command)
            _LAKE_SETTINGS[root] = lake_s3.settings(root)
            kinds = tuple(k for k in kinds if k not in LOCAL_ONLY_FAULTS) or ("none",)
    if lake_s3 is None:
        kinds = tuple(k for k in kinds if k not in S3_FAULTS) or ("none",)
    from daedalus.devkit.soak.clock import libfaketime

    if "host_clock_step" in kinds and libfaketime() is None:
        kinds = tuple(k for k in kinds if k != "host_clock_step") or ("none",)
        echo("host_clock_step: left out (libfaketime is not installed: apt-get install libfaketime)")
    small_disk = mount_small_disk(root) if "disk_full" in kinds else None
    if small_disk is None and "disk_full" in kinds:
        kinds = tuple(k for k in kinds if k != "disk_full")
        echo("disk_full: left out (mounting a small tmpfs on raw/ needs root; the machine refused)")
    try:
        report = _cycles(
            root, seconds, seed, cycle_seconds, echo, kinds, cycles, speed, simulated_hours, rng, lake_s3
        )
        if faults is not None:  # a run that asked for kinds must have injected each, or it tested nothing
            missing = [k for k in kinds if k != "none" and not report.faults[k]]
            why = "not injected: " + ", ".join(missing)
            report.check("every fault asked for was injected", not missing, why)
        return report
    finally:
        if small_disk is not None:
            unmount_small_disk(small_disk)
        if lake_s3 is not None:
            lake_s3.close()
            _LAKE_SETTINGS.pop(root, None)
            _config_file(root).unlink(missing_ok=True)


def _cycles(
    root: Path,
    seconds: float,
    seed: int,
    cycle_seconds: float,
    echo: Callable[[str], None],
    kinds: tuple[str, ...],
    cycles: int | None,
    speed: float,
    simulated_hours: float | None,
    rng: random.Random,
    lake_s3: Any = None,
) -> SoakReport:
    from daedalus.config import load_config
    from daedalus.devkit.soak.venues import soak_collect_config

    work = root.parent / f"{root.name}-soak-work"  # the collection children's reports (not in the lake)
    work.mkdir(parents=True, exist_ok=True)
    config = soak_collect_config(root, cycle_seconds)  # the collectors' (they write raw/ under root)
    lake = load_config(_config_file(root)) if lake_s3 else config  # the catalog's: the S3 lake
    mirror = work / "bronze-mirror"

    def bronze_at() -> Path:
        """Where bronze is read by the checks: the lake, or a local mirror of the bucket's bronze."""
        return lake_s3.mirror_bronze(mirror) if lake_s3 else root

    temp_dirs = [Path(config.duckdb.temp_directory).expanduser()]
    venue_deck = _deck(rng, tuple(k for k in kinds if k in VENUE_FAULTS + PROCESS_FAULTS) or ("none",))
    lake_deck = _deck(rng, tuple(k for k in kinds if k in LAKE_FAULTS + S3_FAULTS) or ("none",))
    report = SoakReport(speed=speed)
    started = time.monotonic()
    sim_ms = int(time.time() * 1000)
    sim_start = sim_ms
    gold_before = 0

    def more() -> bool:
        if cycles is not None:
            return report.cycles < cycles
        if simulated_hours is not None:
            return (sim_ms - sim_start) / 3_600_000 < simulated_hours
        return report.cycles == 0 or time.monotonic() - started < seconds

    while more():
        report.cycles += 1
        first = report.cycles == 1
        venue_fault = "none" if first else venue_deck()
        lake_fault = "none" if first else lake_deck()
        for k in (venue_fault, lake_fault):
            if k != "none":
                report.faults[k] += 1
        events_before = len(checks.quarantine_events(bronze_at()))
        watch = _cli(root, "watch", "--poll-interval", "1") if lake_fault == "kill_watch" else None
        cycle_start_ms = int(time.time() * 1000)
        got = _collect(
            work, root, cycle_seconds, rng.randrange(1 << 30), venue_fault, sim_ms + 1000, speed, rng
        )
        # a killed cycle's clock is unknown: skip past anything it can have reached
        sim_ms = got["sim_end_ms"] if got else sim_ms + int((cycle_seconds + 5) * speed * 1000)
        if watch is not None:
            watch.send_signal(signal.SIGKILL)
            watch.communicate(timeout=60)
        cut = _lake_fault_before_land(root, lake_fault, rng)
        rc, err = _run(root, "land")
        report.check("land recovers (exit 0)", rc == 0, _why(err))
        cut = _lake_fault_before_build(root, lake_fault, rng) or cut
        outage = _s3_outage(root, lake_s3, lake, rng, report) if lake_fault == "s3_outage" else None
        rc, err = _run(root, "build")
        report.check("build recovers (exit 0)", rc == 0, _why(err))
        if outage is not None:
            took = time.monotonic() - outage["reopened"]
            report.check(
                "build after an S3 outage exits 0 within bound",
                rc == 0 and took <= S3_RECOVERY_BOUND_SECONDS,
                f"exit {rc} after {took:.0f} s",
            )
            report.recovery_s.setdefault("s3_outage", []).append(took)
        events = checks.quarantine_events(bronze_at())
        if cut:
            report.check("loss counted in events", len(events) > events_before, f"{len(events)} events")
        report.check(
            "losses name exchanges", not [e for e in events if e[0] in checks.SOURCE_NAMES], str(events)
        )
        if got is not None:
            _venue_checks(lake, got, cycle_start_ms, report)
            report.collector_rss_mb.append(got["peak_rss_mb"])
        report.check("each bronze row once", checks.bronze_duplicates(bronze_at()) == 0)
        left = checks.leftovers(root, temp_dirs)
        report.check("no temp file, init file or empty staging folder", not left, ", ".join(left[:5]))
        gold = sum(n for name, (n, _) in checks.models(lake).items() if name.startswith("gold."))
        if not cut and got is not None:  # a killed collector's segments land after the next one starts
            report.check("gold grows", gold > gold_before, f"{gold_before} → {gold}")
        gold_before = gold
        fds, rss = _resources()
        report.fds.append(fds)
        report.rss_mb.append(rss)
        report.simulated_hours = (sim_ms - sim_start) / 3_600_000
        echo(
            f"cycle {report.cycles}: faults {venue_fault} + {lake_fault}, gold rows {gold}, "
            f"simulated {report.simulated_hours:.2f} h, fds {fds}, RSS {rss:.0f} MB"
        )
    if len(report.fds) > 2:
        report.check("open fds flat", report.fds[-1] - report.fds[1] <= 8, f"{report.fds}")
        report.check("RSS flat", report.rss_mb[-1] <= report.rss_mb[1] * 1.5 + 50, f"{report.rss_mb}")
    if len(report.collector_rss_mb) > 2:
        c = report.collector_rss_mb
        report.check("collector peak RSS flat", max(c[1:]) <= c[1] * 1.5 + 50, f"{c}")
    _compare_with_clean_rebuild(bronze_at(), lake, report)
    shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.monotonic() - started
    return report


def _venue_checks(config: Any, got: dict, cycle_start_ms: int, report: SoakReport) -> None:
    from daedalus.serve.catalog import open_catalog

    con = open_catalog(config)
    try:
        bad = checks.book_mismatches(con, got["books"], cycle_start_ms, got["end_ms"], BOOK_LEVELS)
        report.check("served books equal the fakes' true books", not bad, "; ".join(bad[:3]))
        fault = got.get("fault")
        if not fault or "at_ms" not in fault:
            return
        events, delay = checks.fault_evidence(con, fault)
        want = checks.EXPECTED_EVENTS[fault["kind"]]
        if want is not None:
            report.check(
                "venue loss counted in events",
                bool(set(want) & set(events)),
                f"{fault['kind']} on {fault['venue']}: events {events}",
            )
        bound = checks.RECOVERY_BOUND_SECONDS[fault["kind"]]
        report.check(
            "recovery within bound",
            delay is not None and delay <= bound,
            f"{fault['kind']} on {fault['venue']}: {delay} s > {bound} s",
        )
        if delay is not None:
            report.recovery_s.setdefault(fault["kind"], []).append(delay)
    finally:
        con.close()


def _lake_fault_before_land(root: Path, kind: str, rng: random.Random) -> bool:
    if kind == "truncate_raw":
        ready = sorted((root / "raw" / "ready").rglob("segment_*.parquet"), key=lambda p: -p.stat().st_size)
        if ready:
            _cut(ready[0])
            return True
    if kind == "junk_staging":
        stamp = f"{int(time.time()) - 25 * 3600}-{rng.randrange(16**10):010x}"
        (root / "_staging" / stamp / "silver" / "x").mkdir(parents=True)
    if kind == "kill_land":
        proc = _cli(root, "land")
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    return False


def _lake_fault_before_build(root: Path, kind: str, rng: random.Random) -> bool:
    if kind == "truncate_bronze":
        files = [p for p in (root / "bronze").rglob("*.parquet") if "/events/" not in p.as_posix()]
        if files:
            _cut(rng.choice(sorted(files)))
            return True
    if kind == "kill_build":
        env = {"DAEDALUS_TEST_KILL": f"after_write:{rng.randint(1, 8)}"}
        _cli(root, "build", env=env).communicate(timeout=900)
    return False


def _s3_outage(root: Path, lake_s3: Any, lake: Any, rng: random.Random, report: SoakReport) -> dict:
    """The S3 endpoint unreachable during a build and at the start of another (soak/s3.py): each
    build that fails says so in one `error:` line with the storage exit code, and nothing written
    before is lost (every bronze object kept, every catalog view readable)."""
    from daedalus.devkit.soak.s3 import outage

    def wait(proc: subprocess.Popen) -> tuple[int, str]:
        _, err = proc.communicate(timeout=900)
        return proc.returncode, err

    got = outage(lake_s3, lambda: _cli(root, "build"), wait, rng)
    for name, (rc, err) in (("cut_build", got["cut_build"]), ("build_in_outage", got["build_in_outage"])):
        lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("lake: ", "build: ", "  "))]
        one_line = len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
        if name == "cut_build" and rc == 0:
            continue  # it finished before the cut
        report.check(
            "build in an S3 outage exits 5 with one error line",
            rc == 5 and one_line,
            f"{name}: exit {rc}: {err[-600:]}",
        )
    lost = [k for k, e in got["bronze_before"].items() if got["bronze_after"].get(k) != e]
    report.check("S3 outage loses nothing written", not lost, ", ".join(lost[:3]))
    try:
        checks.models(lake)  # every view of the catalog reads what its manifest names
        readable = ""
    except Exception as e:  # noqa: BLE001 - what the check reports
        readable = f"{type(e).__name__}: {str(e)[:300]}"
    report.check("catalog readable after an S3 outage", not readable, readable)
    return got


def _compare_with_clean_rebuild(root: Path, config: Any, report: SoakReport) -> None:
    """The lake as the faults left it equals a build from scratch of a copy of its bronze (`root`:
    where that bronze is; the S3 lake's local mirror)."""
    from daedalus.devkit.demo import demo_config

    clean = root.parent / f"{root.name}-clean-rebuild"
    shutil.rmtree(clean, ignore_errors=True)
    shutil.copytree(root / "bronze", clean / "bronze")
    try:
        rc, err = _run(clean, "build")
        report.check("clean rebuild builds", rc == 0, _why(err))
        ours, theirs = checks.models(config), checks.models(demo_config(clean, 6.0))
        diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        report.check("lake equals a clean rebuild", not diff, ", ".join(diff))
    finally:
        shutil.rmtree(clean, ignore_errors=True)
        _config_file(clean).unlink(missing_ok=True)
