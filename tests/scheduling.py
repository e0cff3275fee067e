"""How `make test` spreads the suite over its xdist workers: longest work first.

A module runs whole on one worker (its tests share fixtures and run in file order), and so does each
folder of RUN_TOGETHER. xdist hands out these units in collection order, so a long unit collected
late (the kill test, the synthesized stack's folder) started when the others were nearly done and
left one worker running alone at the end. Handing out the longest units first (LPT scheduling)
leaves only short ones for the end, where the workers finish close together.

A unit's length is its seconds in the last recorded run (DURATIONS, written by `make test-durations`
from build/test-durations.json, which each parallel run writes); a unit not recorded yet counts its
tests at UNRECORDED_TEST_S each.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

# Folders whose modules share session fixtures (the synthesized stack; the tiny CLIP export and its
# container): under `--dist loadscope` each runs whole on one worker, so those are built once.
RUN_TOGETHER = ("tests/infra/", "tests/integration/clip/")
DURATIONS = Path(__file__).parent / "durations.json"
RECORDED = Path("build/test-durations.json")
UNRECORDED_TEST_S = 1.0  # about an integration test's seconds here; a unit test takes far less


def unit_of(nodeid: str) -> str:
    """The scheduling unit of a test: its RUN_TOGETHER folder, or its module."""
    module = nodeid.split("::", 1)[0]
    return next((folder for folder in RUN_TOGETHER if module.startswith(folder)), module)


def recorded_seconds(path: Path = DURATIONS) -> dict[str, float]:
    return json.loads(path.read_text()) if path.exists() else {}


def longest_first(workqueue: OrderedDict[str, dict[str, bool]], seconds: dict[str, float]) -> None:
    """Reorder xdist's queue of units in place, longest expected first (ties keep collection order)."""

    def expected(unit: tuple[str, dict[str, bool]]) -> float:
        name, tests = unit
        return seconds.get(name, UNRECORDED_TEST_S * len(tests))

    ordered = sorted(workqueue.items(), key=expected, reverse=True)  # sorted() is stable
    workqueue.clear()
    workqueue.update(ordered)


class UnitTimer:
    """Sums each unit's setup, call and teardown seconds as the controller receives reports."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, report: Any) -> None:
        unit = unit_of(report.nodeid)
        self.seconds[unit] = self.seconds.get(unit, 0.0) + float(report.duration)

    def write(self, path: Path = RECORDED) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        rounded = {unit: round(value, 1) for unit, value in sorted(self.seconds.items())}
        path.write_text(json.dumps(rounded, indent=1) + "\n")
