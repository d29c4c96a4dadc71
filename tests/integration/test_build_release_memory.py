"""A build hands the heap its models freed back to the OS after each model (daedalus/build/execute.py):
the next model starts from what is resident, so a model's leftovers would add to every later peak."""

from __future__ import annotations

from typing import Any

from toy import make_toy, trade_rows

from daedalus.build import api, execute


def test_memory_is_released_after_every_model(tmp_path: Any, monkeypatch: Any) -> None:
    toy = make_toy(tmp_path)
    toy.write_bronze("x", "2024-01-01", trade_rows("x", "BTC/USDT", "2024-01-01"))
    released: list[set[str]] = []
    monkeypatch.setattr(execute, "release_memory", lambda: released.append(set(toy.manifest()["models"])))
    result = api.build(toy.config(), udfs=False)
    built = set(result.stats)
    assert built == {"toy_trades", "toy_bars"}
    # once per model, each after that model was published
    assert len(released) == 2 and "toy_trades" in released[0] and released[1] >= built
