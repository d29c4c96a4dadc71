"""`daedalus backfill` bad input: one line naming the cause, the documented exit code, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from daedalus.cli import app as cli
from daedalus.errors import ConfigError, ExchangeError


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code, capsys.readouterr().err  # type: ignore[return-value]


@pytest.mark.parametrize(
    "args,needle,code",
    [
        (
            ["--exchange", "binance", "--start", "yesterday", "--end", "2024-08-09"],
            "--start: 'yesterday'",
            ConfigError.exit_code,
        ),
        (
            ["--exchange", "gate", "--start", "2024-08-08", "--end", "2024-08-09"],
            "gate serves no trade history",
            ExchangeError.exit_code,
        ),
        (
            ["--exchange", "binance", "--start", "2024-08-08", "--end", "2024-08-09"],
            "set BINANCE_API_KEY",
            ExchangeError.exit_code,
        ),
        (
            ["--exchange", "nosuchx", "--start", "2024-08-08", "--end", "2024-08-09"],
            "unknown ccxt.pro exchange",
            ExchangeError.exit_code,
        ),
        (
            ["--exchange", "bybit", "--ohlcv", "7q", "--start", "2024-08-08", "--end", "2024-08-09"],
            "--ohlcv '7q' is not a bybit timeframe",
            ExchangeError.exit_code,
        ),
        (
            ["--exchange", "kraken", "--start", "2024-08-09", "--end", "2024-08-08"],
            "--end",
            ExchangeError.exit_code,
        ),
    ],
)
def test_bad_backfill_input_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needle: str,
    code: int,
) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    got, err = _run(["--root", str(tmp_path), "backfill", "--symbol", "BTC/USDT", *args], capsys)
    assert got == code
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "raw").exists() and not (tmp_path / "_state" / "backfill").exists()
