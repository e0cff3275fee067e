"""A measured proportion with its sample size and 95 % Wilson score interval.

Every quality figure the evaluations publish is a proportion (precision, recall, a share of
phrases classed right) of a small sample, so each carries `n` and an interval: the Wilson score
interval (Wilson 1927; Brown, Cai and DasGupta 2001 recommend it for small n), which stays inside
[0, 1] and is not degenerate at 0/n or n/n, unlike the normal approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of `successes` out of `n` (95 % by default); (0, 1) when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 ≤ successes ≤ n, not {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0/n and n/n the bound is exactly 0 or 1; rounding must not leave it a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Proportion:
    """`successes` of `n`, e.g. 73 amenities found of 73 labelled."""

    successes: int
    n: int

    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.successes, self.n)

    def as_json(self) -> dict[str, Any]:
        low, high = self.interval
        value = self.value
        return {
            "value": None if value is None else round(value, 4),
            "successes": self.successes,
            "n": self.n,
            "ci95": [round(low, 4), round(high, 4)],
        }

    def text(self) -> str:
        """'0.973 (n 73, 95 % CI 0.906–0.993)', or '— (n 0)'."""
        if not self.n:
            return "— (n 0)"
        low, high = self.interval
        return f"{self.successes / self.n:.3f} (n {self.n}, 95 % CI {low:.3f}–{high:.3f})"


def cell(figure: dict[str, Any]) -> str:
    """A figure from `Proportion.as_json` as a table cell: value, n and interval."""
    if not figure["n"]:
        return "— (n 0)"
    # From the counts, not the JSON's 4-place values: rounding twice could move the third decimal
    low, high = wilson(figure["successes"], figure["n"])
    return f"{figure['successes'] / figure['n']:.3f} (n {figure['n']}; {low:.3f}–{high:.3f})"
