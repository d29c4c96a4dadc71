"""The partitions of the relations a build reads: bronze channels and models with files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daedalus.lake import FileInfo


@dataclass
class InputPart:
    """One partition of one input relation (a bronze channel or a model with files)."""

    relation: str  # "source:trades" | "model:trades"
    pid: str
    keys: dict[str, str]
    files: list[FileInfo]
    planned: bool = False  # to be rebuilt in this build: its files are not final yet

    @property
    def id(self) -> str:
        return f"{self.relation}/{self.pid}" if self.pid else self.relation


@dataclass(frozen=True)
class RowGroupSpan:
    """One row group of a bronze file as its footer describes it (None: no statistic written)."""

    bytes: int  # compressed, all columns
    lo_ms: int | None  # collected_at range, ms since the epoch
    hi_ms: int | None
    symbol_lo: str | None
    symbol_hi: str | None


class PartRegistry(dict):
    """The partitions of one relation by id, with an index by date rebuilt after any change
    (executors assign into it directly, so the index invalidates itself)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._by_date: dict[str, list[InputPart]] | None = None

    def __setitem__(self, key: str, value: InputPart) -> None:
        super().__setitem__(key, value)
        self._by_date = None

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._by_date = None

    def pop(self, *args: Any) -> Any:
        self._by_date = None
        return super().pop(*args)

    def by_date(self) -> dict[str, list[InputPart]]:
        if self._by_date is None:
            idx: dict[str, list[InputPart]] = {}
            for ip in self.values():
                idx.setdefault(ip.keys.get("date", ""), []).append(ip)
            self._by_date = idx
        return self._by_date
