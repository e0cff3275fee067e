"""The goals table of docs/benchmarks.md: each goal the issues set, judged from the result file that measures it.

No figure in the table is typed: each row reads its result (bench/records, bench/gpu, evaluation/results)
and compares it with the goal's bound, so a rerun that moves a figure moves the verdict with it. A
goal whose benchmark has no record yet says so, with the command that makes one.

    python -m bench.goals                 # print the table
    python -m bench.goals --write-readme  # replace it in docs/benchmarks.md

tests/unit/test_bench_goals.py fails when the page's table disagrees with the files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import gpu_report, migration_report, records, verification_report
from bench import migration_model as model
from bench.bench_migration_latency import MODELLED
from bench.figures import percentile
from evaluation import duplicate_detection, phrase_classes
from evaluation import results as evaluation_results

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
MARKER = "goals"


@dataclass(frozen=True)
class Reading:
    figure: str  # the measured value, with its sample size where it has one
    met: bool
    source: str  # the command, date and commit that measured it


@dataclass(frozen=True)
class Goal:
    area: str
    goal: str
    read: Callable[[], Reading | None]  # None: nothing measured it yet
    makes_it: str  # the command that (re)measures it


def _stamp(data: dict[str, Any]) -> str:
    commit = f", `{data['commit'][:7]}`" if data.get("commit") else ""
    return f"`{data['command']}`, {data['date'][:10]}{commit}"


def _proportion(row: dict[str, Any]) -> str:
    low, high = (100 * bound for bound in row["ci95"])
    return f"{100 * row['value']:.1f} % (n = {row['n']}; 95 % interval {low:.1f}–{high:.1f} %)"


def _dedupe(group: str) -> Callable[[], Reading | None]:
    def read() -> Reading | None:
        data = evaluation_results.load("dedupe")
        row = evaluation_results.find(data, f"{group}: recall", "test", threshold="configured")
        return Reading(_proportion(row), row["value"] >= duplicate_detection.GOALS[group], _stamp(data))

    return read


def _phrases(figure: str, goal: str) -> Callable[[], Reading | None]:
    def read() -> Reading | None:
        data = evaluation_results.load("phrases")
        row = evaluation_results.find(data, figure, "test")
        return Reading(_proportion(row), row["value"] >= phrase_classes.GOALS[goal], _stamp(data))

    return read


def _verification() -> Reading | None:
    data = verification_report.load()
    samples = verification_report.per_candidate(data)
    p95 = percentile(samples, 95)
    return Reading(
        f"{p95:.1f} ms p95 (n = {len(samples)} verify calls)", p95 <= verification_report.GOAL_P95_MS, _stamp(data)
    )


def _migration_speedup() -> Reading | None:
    record = migration_report.load()
    listings = model.Measured.from_json(record["measured"]).listings
    speedup = record["loop_s_per_listing"] * listings / record["wall_s"]
    source = f"`make bench BENCH_ARGS=migration_latency`, {record['date'][:10]}"
    return Reading(f"{speedup:.0f}× ({listings:,} listings)", speedup >= 50, source)


def _million() -> Reading | None:
    record = migration_report.load()
    measured = model.Measured.from_json(record["measured"])
    predictions = [
        (model.predict(measured, model.AWS, 1_000_000, batch, concurrency), concurrency, batch)
        for concurrency, batch in MODELLED
    ]
    prediction, concurrency, batch = min(predictions, key=lambda p: p[0].seconds)
    source = f"`make bench BENCH_ARGS=migration_latency`, {record['date'][:10]}"
    nodes = migration_report.nodes_needed(prediction.docs_per_s)
    figure = (
        f"{prediction.seconds / 60:.1f} min at best (MaxConcurrency {concurrency}, batches of {batch}; a domain of"
        f" {nodes} × {migration_report.DOMAIN_INSTANCE} takes its {prediction.docs_per_s:,.0f} updates/s;"
        f" ${prediction.dollars:.2f})"
    )
    return Reading(figure, prediction.seconds <= 15 * 60, source)


def _gpu(vcpus: int, bound: float) -> Callable[[], Reading | None]:
    def read() -> Reading | None:
        rows = gpu_report.load(gpu_report.RUNS[1])
        served = [
            r for r in rows if r.get("step") == "workers" and r["vcpus"] == vcpus and r["scenario"] == "64 embedded"
        ]
        best = max(served, key=lambda r: r["img_per_s"])
        layout = f"{best['workers']} model servers" + (", fp16" if best["fp16"] else "")
        source = f"`bench/gpu_serving.py` on an H200 host, 2026-12-04 ({gpu_report.RUNS[1]})"
        return Reading(f"{best['img_per_s']:,.0f} img/s ({layout})", best["img_per_s"] >= bound, source)

    return read


def _recorded(name: str, contains: str, but: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A `bench.records` record and its figures whose name contains `contains` (and does not start
    with `but`: a baseline's figure); None while it has none."""
    if not records.path_of(name).exists():
        return None
    data = records.load(name)
    rows = [f for f in data["figures"] if contains in f["name"] and not (but and f["name"].startswith(but))]
    return (data, rows) if rows else None


def _record(
    name: str, contains: str, bound: Callable[[dict[str, Any]], float], but: str | None = None
) -> Callable[[], Reading | None]:
    """The worst of a `bench.records` record's figures whose name contains `contains` (but those
    starting with `but`), against its bound (a figure is met at or below it), or None while the
    benchmark has no record."""

    def read() -> Reading | None:
        found = _recorded(name, contains, but)
        if found is None:
            return None
        data, rows = found
        worst = max(rows, key=lambda f: f["value"] / bound(f))
        count = f"; {len(rows)} figures" if len(rows) > 1 else ""
        shown = f"{worst['value']:.3g} {worst['unit']}, bound {bound(worst):.3g} ({worst['name']}{count})"
        return Reading(shown, all(f["value"] <= bound(f) for f in rows), _stamp(data))

    return read


def _none_lost() -> Reading | None:
    """The generation record's lost images (ours, three concurrent jobs): met only at none."""
    found = _recorded("generation", "images lost")
    if found is None:
        return None
    data, rows = found
    lost = rows[0]["value"]
    return Reading(f"{lost:g} of 12 images lost ({rows[0]['name']})", lost == 0, _stamp(data))


def _speedup(name: str, contains: str, at_least: float) -> Callable[[], Reading | None]:
    """The least of a record's ratios (× better than the same run's baseline) among figures whose name
    contains `contains`, met when every one is at least `at_least`; None while there is no record."""

    def read() -> Reading | None:
        found = _recorded(name, contains)
        if found is None:
            return None
        data, rows = found
        worst = min(rows, key=lambda f: f["ratio"])
        count = f"; {len(rows)} figures" if len(rows) > 1 else ""
        shown = f"{worst['ratio']:.2f}× ({worst['name']}{count})"
        return Reading(shown, all(f["ratio"] >= at_least for f in rows), _stamp(data))

    return read


GOALS = (
    Goal("Duplicate detection", "re-exports found ≥ 99 % (held-out designs)", _dedupe("re-exports"), "make eval"),
    Goal(
        "Duplicate detection",
        "crops, rotations, mirrors, grayscale found ≥ 90 % (held-out designs)",
        _dedupe("crops, rotations, mirrors, grayscale"),
        "make eval",
    ),
    Goal(
        "Duplicate detection",
        f"verification ≤ {verification_report.GOAL_P95_MS:g} ms p95 per candidate, per verify call",
        _verification,
        "python -m bench.dedupe_verification",
    ),
    Goal("Phrase classes", "amenity recall ≥ 95 % (test)", _phrases("amenity recall", "amenity_recall"), "make eval"),
    Goal(
        "Phrase classes",
        "amenity precision ≥ 98 % (test)",
        _phrases("amenity precision", "amenity_precision"),
        "make eval",
    ),
    Goal(
        "Phrase classes",
        "negations kept out of the amenities ≥ 95 % (test)",
        _phrases("negations kept out of the amenities", "negation"),
        "make eval",
    ),
    Goal(
        "Migration",
        "≥ 50× the seed's loop at injected AWS latencies",
        _migration_speedup,
        "make bench BENCH_ARGS=migration_latency",
    ),
    Goal(
        "Migration",
        "1,000,000 listings modelled ≤ 15 min",
        _million,
        "make bench BENCH_ARGS=migration_latency",
    ),
    Goal(
        "Migration",
        "peak memory at 100,000 listings ≤ 1.10× the peak at 20,000",
        # every operation but the baseline (hold_all: every source in one list, the code before streaming)
        _record("migration_memory", "peak RSS at", lambda f: 1.10 * f["baseline"], but="hold_all"),
        "make bench BENCH_ARGS=migration_memory",
    ),
    Goal("Endpoint", "≥ 2,000 img/s on a 16-vCPU GPU host (embedding only)", _gpu(16, 2000), "bench/gpu_serving.py"),
    Goal("Endpoint", "≥ 400 img/s on a 4-vCPU GPU host (embedding only)", _gpu(4, 400), "bench/gpu_serving.py"),
    Goal(
        "Endpoint",
        "the CPU host path with features ≥ 2× a single-thread Pillow baseline",
        # the host path: the handler with the model on a stand-in of negligible cost (a GPU runs the model)
        _speedup("clip_host", "host path with features", 2.0),
        "make bench BENCH_ARGS=clip_host",
    ),
    Goal(
        "Cold start",
        "every handler imports in ≤ 1.5 s",
        _record("cold_start", ": handler import", lambda f: 1.5),
        "make bench BENCH_ARGS=cold_start",
    ),
    Goal(
        "Generation",
        "a job's 4 images in parallel ≤ 1.15× its slowest call",
        _record("generation", "one job, 4 images in parallel", lambda f: 1.15 * f["baseline"]),
        "make bench BENCH_ARGS=generation",
    ),
    Goal(
        "Generation",
        "3 concurrent jobs under the provider's limit ≤ 10 % over the limiter's lower bound",
        _record("generation", "3 jobs, 12 images under 5/min", lambda f: 1.10 * f["baseline"]),
        "make bench BENCH_ARGS=generation",
    ),
    Goal("Generation", "no image lost under the provider's limit", _none_lost, "make bench BENCH_ARGS=generation"),
)


def table(goals: tuple[Goal, ...] = GOALS) -> str:
    lines = ["| area | goal | measured | verdict | measured by |", "|---|---|---|---|---|"]
    for goal in goals:
        reading = goal.read()
        if reading is None:
            lines.append(f"| {goal.area} | {goal.goal} | no record yet | — | run `{goal.makes_it}` |")
            continue
        verdict = "met" if reading.met else "**missed**"
        lines.append(f"| {goal.area} | {goal.goal} | {reading.figure} | {verdict} | {reading.source} |")
    return "\n".join(lines)


def block(text: str) -> str:
    return f"<!-- {MARKER}:start (generated: python -m bench.goals --write-readme) -->\n{text}\n<!-- {MARKER}:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.goals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true", help="replace the table in docs/benchmarks.md")
    args = parser.parse_args(argv)
    if not args.write_readme:
        print(table())
        return 0
    from listing_vision.config import replace_between_markers

    replace_between_markers(str(PAGE), MARKER, table())
    print("docs/benchmarks.md: goals table rendered from the result files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
