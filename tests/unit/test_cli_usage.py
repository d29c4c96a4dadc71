"""Every command-line mistake is one line on stderr and exit code 2, click's suggestion kept; every
`typer.Exit` code reaches the shell (issue #16). Runs the real `daedalus.cli.app.main`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from daedalus.cli import app as cli
from daedalus.cli.argv import expand_command_line


def _leaf_commands() -> list[tuple[list[str], object]]:
    root = typer.main.get_command(cli.app)
    out: list[tuple[list[str], object]] = []

    def walk(path: list[str], cmd: object) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                walk([*path, name], sub)
        else:
            out.append((path, cmd))

    walk([], root)
    return out


LEAVES = _leaf_commands()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    captured = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def _wrong_value(path: list[str], cmd: object) -> tuple[list[str], str]:
    """argv giving one option of `cmd` a value it rejects, and the option's name the error must name."""
    for p in cmd.params:  # type: ignore[attr-defined]
        if not p.opts[0].startswith("--") or p.opts[0] == "--help":
            continue
        annotation = p.type_descriptor.annotation
        if annotation in (int, float):
            return [*path, p.opts[0], "not-a-number"], p.opts[0]
    for p in cmd.params:  # type: ignore[attr-defined]
        if getattr(p, "is_flag", False) and p.opts[0] != "--help":
            return [*path, f"{p.opts[0]}=yes"], p.opts[0]
    return [*path, "an-extra-argument", "another"], "extra argument"


def test_the_walk_found_every_verb() -> None:
    names = {" ".join(p) for p, _ in LEAVES}
    assert {"build", "query", "status", "land", "demo", "bench explain", "sync", "collect"} <= names


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_wrong_option_is_one_line_and_exit_2(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main([*path, "--no-such-option"], capsys)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: No such option: --no-such-option")
    assert f"see 'daedalus {' '.join(path)} --help'" in lines[0]


@pytest.mark.parametrize("path,cmd", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_wrong_value_is_one_line_and_exit_2(
    path: list[str], cmd: object, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, named = _wrong_value(path, cmd)
    code, out, err = run_main(argv, capsys)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and named in lines[0]


@pytest.mark.parametrize(
    "argv,suggestion",
    [
        (["biuld"], "Did you mean 'build'?"),
        (["build", "--selct", "x"], "Possible options: --help, --select"),
    ],
)
def test_click_suggestions_are_kept(
    argv: list[str], suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(argv, capsys)
    assert (code, len(err.splitlines())) == (2, 1)
    assert suggestion in err


def test_bad_memory_limit_blames_its_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_main(["--root", str(tmp_path), "--memory-limit", "1TBX", "ls"], capsys)
    assert code == 2
    assert (
        len(err.splitlines()) == 1 and "'duckdb.memory_limit'" in err and "'1TBX' is not a DuckDB size" in err
    )


def test_env_memory_limit_blamed_on_the_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "daedalus", "--root", str(tmp_path), "ls"],
        capture_output=True,
        text=True,
        env={"DAEDALUS__DUCKDB__MEMORY_LIMIT": "lots", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "'duckdb.memory_limit'" in proc.stderr and "threads" not in proc.stderr


def test_help_shows_no_python_type_metavars(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["build", "--help"], capsys)
    assert code == 0
    assert "<bool>" not in out and "<list[str]>" not in out and "<str>" not in out
    assert "TEXT ..." in out  # --select is repeatable


def test_status_exit_code_reaches_the_shell(tmp_path: Path) -> None:
    """A stale health file: `daedalus status` promises exit 1 (lost through typer.Exit before)."""
    from daedalus.collector.health import health_path

    path = health_path(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"updated_at": time.time() - 600, "streams": {}}))
    proc = subprocess.run(
        [sys.executable, "-m", "daedalus", "--root", str(tmp_path), "status"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "NOT UPDATED" in proc.stdout


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_has_help_with_an_example(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main([*path, "--help"], capsys)
    assert code == 0
    assert "Example: daedalus" in out
    assert "<bool>" not in out and "<list[" not in out


@pytest.mark.parametrize("verb", ["build", "run", "test", "land", "ls", "catalog"])
def test_a_typo_root_makes_no_lake(verb: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Issue 24: `--root /typo build` exited 0 and created catalog.duckdb and _state/ there."""
    typo = tmp_path / "typo"
    code, out, err = run_main(["--root", str(typo), verb], capsys)
    assert code == 2, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"storage.root {typo} (--root): no such folder, so no lake" in lines[0]
    assert not typo.exists()


def test_land_on_an_empty_root_says_so_with_a_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--root", str(tmp_path), "land"])
    captured = capsys.readouterr()
    assert exc.value.code in (0, None)
    assert "landed 0 segments" in captured.out
    assert f"nothing to land: no closed segment under {tmp_path}/raw/ready/" in captured.err
    assert "daedalus collect" in captured.err


def test_init_creates_the_lake_its_config_names(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        cli.main(["init", str(tmp_path / "proj")])
    capsys.readouterr()
    assert (tmp_path / "proj" / "lake").is_dir()


@pytest.mark.parametrize("seconds", ["-1", "0", "nan", "inf"])
def test_demo_seconds_must_be_finite_and_positive(
    seconds: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 24: `demo --seconds nan` ran 104 s; -1 and 0 were accepted."""
    code, _out, err = run_main(["demo", "--seconds", seconds, "--root", str(tmp_path / "lake")], capsys)
    assert code == 2 and "is not a finite positive number of seconds" in err
    assert not (tmp_path / "lake").exists()


def test_space_separated_select_on_the_command_line():
    assert expand_command_line(
        ["--root", "x", "build", "--select", "a", "b", "--exclude", "c", "d", "--dry-run"]
    ) == [
        "--root",
        "x",
        "build",
        "--select",
        "a",
        "--select",
        "b",
        "--exclude",
        "c",
        "--exclude",
        "d",
        "--dry-run",
    ]
    assert expand_command_line(["ls", "--select=a", "b"]) == ["ls", "--select=a", "--select", "b"]
    assert expand_command_line(["compile", "--select", "a", "b"]) == ["compile", "--select", "a", "b"]


def test_one_option_style_in_the_cli_package() -> None:
    """Options are `Annotated[type, typer.Option(...)] = default` everywhere in daedalus/cli (not
    `x: type = typer.Option(default, ...)`), and flags shared by commands are one alias."""
    import ast

    cli_dir = Path(cli.__file__).parent
    old_style = []
    for path in sorted(cli_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                defaults = node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
                for d in defaults:
                    if isinstance(d, ast.Call) and getattr(d.func, "attr", "") in ("Option", "Argument"):
                        old_style.append(f"{path.name}:{d.lineno}")
    assert old_style == []
    params = {
        tuple(p): {o.name: o for o in cmd.params}  # type: ignore[attr-defined]
        for p, cmd in LEAVES
        if p in (["status"], ["coverage"])
    }
    for flag in ("days", "max_age"):
        status, coverage = params[("status",)][flag], params[("coverage",)][flag]
        assert status.help == coverage.help and status.default == coverage.default, flag
