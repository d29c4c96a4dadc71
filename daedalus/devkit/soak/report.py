"""What a soak run found: faults per kind, invariants held, resources, recovery times."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SoakReport:
    cycles: int = 0
    faults: Counter = field(default_factory=Counter)
    held: Counter = field(default_factory=Counter)  # invariant → times checked and held
    failures: list[str] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    collector_rss_mb: list[float] = field(default_factory=list)  # peak RSS of each collection child
    recovery_s: dict[str, list[float]] = field(default_factory=dict)  # venue fault → seconds to a book
    seconds: float = 0.0
    speed: float = 1.0
    simulated_hours: float = 0.0

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        if ok:
            self.held[name] += 1
        else:
            self.failures.append(f"cycle {self.cycles}: {name}" + (f" ({detail})" if detail else ""))

    def summary(self) -> str:
        lines = [
            f"soak: {self.cycles} cycles in {self.seconds:.0f}s, "
            f"{self.simulated_hours:.2f} simulated hours (speed ×{self.speed:g})"
        ]
        lines.append(
            "faults:     " + (", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none")
        )
        lines.append("invariants: " + ", ".join(f"{k} {v}x" for k, v in sorted(self.held.items())))
        if self.recovery_s:
            lines.append(
                "recovery:   "
                + ", ".join(f"{k} max {max(v):.1f}s" for k, v in sorted(self.recovery_s.items()))
            )
        if self.fds:
            rss = f"RSS {self.rss_mb[0]:.0f} → {self.rss_mb[-1]:.0f} MB"
            lines.append(f"open fds {self.fds[0]} → {self.fds[-1]}, {rss}")
        if self.collector_rss_mb:
            c = self.collector_rss_mb
            lines.append(f"collector peak RSS {c[0]:.0f} → {c[-1]:.0f} MB (max {max(c):.0f})")
        lines += [f"FAILED {f}" for f in self.failures] or ["every invariant held"]
        return "\n".join(lines)
