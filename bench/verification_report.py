"""The verification-cost table of docs/benchmarks.md, computed from the raw samples `bench.dedupe_verification`
recorded (bench/records/dedupe_verification.json): every percentile here is of per-call or
per-request samples, none is a difference of percentiles or a total divided by a count.

    python -m bench.verification_report                 # print the table
    python -m bench.verification_report --write-readme  # replace it in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.figures import Figure, percentile

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "bench" / "records" / "dedupe_verification.json"
PAGE = ROOT / "docs" / "benchmarks.md"  # where the table lives
MARKER = "dedupe-verification"
NAME = "dedupe"
GOAL_P95_MS = 15.0  # per candidate, per verify call
BANDS = ((1, 3), (4, 6), (7, 99))  # candidates per call


def load(path: Path = RECORD) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def per_candidate(data: dict[str, Any]) -> list[float]:
    """One sample per verify call: its milliseconds divided by its own candidates."""
    return [call["ms"] / call["candidates"] for call in data["model_ms"]["verify_calls"]]


def _pair(name: str, ours: list[float], baseline: list[float], baseline_name: str) -> list[Figure]:
    return [
        Figure(NAME, f"{name}: p50", statistics.median(ours), statistics.median(baseline), "ms", baseline_name),
        Figure(NAME, f"{name}: p95", percentile(ours, 95), percentile(baseline, 95), "ms", baseline_name),
    ]


def figures(data: dict[str, Any]) -> list[Figure]:
    requests, model = data["requests_ms"], data["model_ms"]
    calls = [call["ms"] for call in model["verify_calls"]]
    one_each = [ms for query in model["one_call_each"] for ms in query]
    stored = [read + call for read, call in zip(model["read_ms"], calls, strict=True)]
    size = f"{data['collection_vectors'] // 1000}k"
    return [
        *_pair(f"near copies, two stages, {size}", requests["near, two stages"], requests["near, retrieval only"],
               "retrieval only (one threshold), same handler"),
        *_pair(f"crops/rotations/mirrors/grayscale, two stages, {size}", requests["geometric, two stages"],
               requests["geometric, retrieval only"], "retrieval only (misses most of them, and stores them)"),
        *_pair("verification per candidate (each verify call ÷ its candidates)", per_candidate(data), one_each,
               "one verify call per candidate, in turn"),
        *_pair("verify call, one query's candidates", calls, [sum(q) for q in model["one_call_each"]],
               "one verify call per candidate, in turn, summed"),
        *_pair("a query's verification: stored features (one BatchGetItem) + one verify call", stored,
               [sum(q) for q in model["from_image"]], "each candidate's image from S3, described and verified"),
    ]  # fmt: skip


def _ms(value: float) -> str:
    return f"{value:,.3g}" if value < 100 else f"{value:,.0f}"


def table(data: dict[str, Any]) -> str:
    found = figures(data)
    requests, model = data["requests_ms"], data["model_ms"]
    calls = model["verify_calls"]
    candidates = sum(call["candidates"] for call in calls)
    n = {
        "near copies": f"{len(requests['near, two stages'])} requests each",
        "crops/rotations": f"{len(requests['geometric, two stages'])} requests each",
        "verification per candidate": f"n = {len(calls)} calls; baseline n = {candidates} calls",
        "verify call": f"n = {len(calls)} calls, {candidates / len(calls):.1f} candidates each on average",
        "a query's verification": f"n = {len(calls)} queries",
    }
    lines = [
        "| benchmark | figure (samples) | value p50 / p95 | baseline (same run) p50 / p95 | ratio |",
        "|---|---|---|---|---|",
    ]
    for p50, p95 in zip(found[::2], found[1::2], strict=True):
        name = p50.name.removesuffix(": p50")
        samples = next(text for prefix, text in n.items() if name.startswith(prefix))
        lines.append(
            f"| {NAME} | {name} ({samples}) | {_ms(p50.value)} / {_ms(p95.value)} ms | "
            f"{_ms(p50.baseline)} / {_ms(p95.baseline)} ms, {p50.baseline_name} | "
            f"{p50.ratio:.2f}× / {p95.ratio:.2f}× |"
        )
    bands = []
    for low, high in BANDS:
        band = [call["ms"] / call["candidates"] for call in calls if low <= call["candidates"] <= high]
        if band:
            label = f"{low}–{high}" if high < 99 else f"{low} or more"
            bands.append(f"{label}: {_ms(statistics.median(band))} ms (n = {len(band)})")
    one_each = [ms for query in model["one_call_each"] for ms in query]
    worst = percentile(per_candidate(data), 95)
    verdict = "met" if worst <= GOAL_P95_MS else "**missed**"
    lines += [
        "",
        "Per candidate at the median, by the call's number of candidates: " + "; ".join(bands) + ". "
        f"A one-candidate call (the baseline's): {_ms(statistics.median(one_each))} ms at the median.",
        "",
        f"Goal ≤ {GOAL_P95_MS:g} ms p95 per candidate, per verify call: {verdict} ({_ms(worst)} ms). "
        f"Measured by `{data['command']}`, commit {data['commit']}, {data['date'][:10]}, {data['machine']}, "
        "load average (1 min) at start and end "
        + " / ".join(f"{load:g}" for load in data.get("load_average_1min", []))
        + ".",
    ]
    return "\n".join(lines)


def readme_block(text: str) -> str:
    start = text.index("\n", text.index(f"<!-- {MARKER}:start")) + 1
    return text[start : text.index(f"<!-- {MARKER}:end -->")].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.verification_report",
        description="The verification-cost table of docs/benchmarks.md, from the recorded samples.",
    )
    parser.add_argument(
        "--write-readme",
        nargs="?",
        const=str(PAGE),
        metavar="PAGE",
        help="replace the table between the page's dedupe-verification markers (runs nothing)",
    )
    args = parser.parse_args(argv)
    rendered = table(load())
    if args.write_readme:
        from listing_vision.config import replace_between_markers

        replace_between_markers(args.write_readme, MARKER, rendered)
        print(f"{args.write_readme}: {MARKER} rendered from {RECORD.relative_to(ROOT)}")
    else:
        print(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
