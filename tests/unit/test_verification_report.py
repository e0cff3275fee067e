"""The verification-cost block of docs/benchmarks.md is computed from the raw samples the dedupe bench
recorded: per-call samples, never a difference of percentiles or a total divided by a count."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench import goals
from bench import verification_report as report
from bench.figures import percentile


def record(calls: list[tuple[float, int]]) -> dict[str, Any]:
    """A record with the given verify calls (ms, candidates); the rest of the samples fixed."""
    return {
        "command": "BENCH_DEDUPE_ONLY=verification python -m bench dedupe",
        "commit": "abc",
        "date": "2026-12-06T00:00:00Z",
        "machine": "test",
        "collection_vectors": 10_000,
        "requests_ms": {
            "near, two stages": [150.0, 160.0, 170.0],
            "near, retrieval only": [90.0, 91.0, 99.0],
            "geometric, two stages": [160.0, 170.0, 210.0],
            "geometric, retrieval only": [90.0, 92.0, 140.0],
        },
        "model_ms": {
            "read_ms": [3.0] * len(calls),
            "verify_calls": [{"ms": ms, "candidates": n} for ms, n in calls],
            "one_call_each": [[10.0] * n for _, n in calls],
            "from_image": [[120.0] * n for _, n in calls],
        },
    }


def test_the_committed_docs_block_is_the_one_the_recorded_samples_give() -> None:
    # Given the committed record of the dedupe bench's verification samples
    data = report.load()
    # Then the docs block between the dedupe-verification markers is exactly its table
    assert report.readme_block(report.PAGE.read_text()) == report.table(data)
    # and the goals table's verdict on the goal is the block's
    met = "per verify call: met" in report.table(data)
    (row,) = [line for line in goals.table().splitlines() if "p95 per candidate, per verify call" in line]
    assert ("| met |" in row) == met and ("| **missed** |" in row) == (not met)
    # and each call's sample counts its own candidates
    assert all(call["candidates"] >= 1 and call["ms"] > 0 for call in data["model_ms"]["verify_calls"])


def test_per_candidate_percentiles_come_from_each_calls_own_samples() -> None:
    # Given three calls: one candidate in 30 ms, eight in 40 ms, four in 20 ms
    data = record([(30.0, 1), (40.0, 8), (20.0, 4)])
    # When the figures are computed
    found = {f.name: f for f in report.figures(data)}
    name = "verification per candidate (each verify call ÷ its candidates)"
    # Then the per-candidate p50 is the median of 30, 5 and 5 ms (not 90 ms ÷ 13 candidates)
    assert found[f"{name}: p50"].value == 5.0
    assert found[f"{name}: p95"].value == percentile([30.0, 5.0, 5.0], 95)
    # and the per-call figures are the calls' own times, against the loop's summed times
    assert found["verify call, one query's candidates: p50"].value == statistics.median([30.0, 40.0, 20.0])
    assert found["verify call, one query's candidates: p50"].baseline == 40.0  # 10, 80, 40 ms summed
    # and the goal line says missed when a one-candidate call's p95 is over 15 ms
    assert "**missed**" in report.table(data)
    assert "met" in report.table(record([(9.0, 1), (40.0, 8), (20.0, 4)])).split("Goal")[1]


def test_a_block_that_disagrees_with_its_samples_is_caught_and_rewritten(tmp_path: Path) -> None:
    # Given the committed record with one verify call made slower
    data = report.load()
    data["model_ms"]["verify_calls"][0]["ms"] += 1000.0
    # When its table is rendered, then the page's block no longer matches it
    assert report.table(data) != report.readme_block(report.PAGE.read_text())
    # and --write-readme puts the committed record's table into a copy of the page between its markers
    readme = tmp_path / "benchmarks.md"
    shutil.copy(report.PAGE, readme)
    text = readme.read_text().replace(report.readme_block(readme.read_text()), "stale")
    readme.write_text(text)
    assert report.main(["--write-readme", str(readme)]) == 0
    assert report.readme_block(readme.read_text()) == report.table(json.loads(report.RECORD.read_text()))
