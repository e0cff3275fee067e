"""A benchmark figure and the helpers every benchmark uses."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measured value beside its baseline. `higher_is_better` tells how to read the ratio:
    the ratio is always 'how many times better than the baseline' (> 1 is an improvement)."""

    benchmark: str
    name: str
    value: float
    baseline: float
    unit: str
    baseline_name: str
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.value / self.baseline if self.baseline else float("inf")
        return self.baseline / self.value if self.value else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def number(value: float, unit: str) -> str:
    # Similarities need their decimals; everything else reads best at 3–4 significant digits.
    if unit in ("cos", "recall"):
        return f"{value:.5f}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.4g}"


def timed_ms(action: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    """Wall-clock milliseconds of each of `repeats` calls, after `warmup` unmeasured ones."""
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1] if len(samples) > 1 else samples[0]
