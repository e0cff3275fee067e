"""The migration-at-scale tables of docs/benchmarks.md, generated from the record `bench_migration_latency` wrote.

    python -m bench.migration_report                 # print the tables
    python -m bench.migration_report --write-readme  # replace them in docs/benchmarks.md

The record (bench/records/migration_latency.json) holds what the run measured: requests by kind
and phase, the code's CPU, the wall times. The 1,000,000-listing rows are computed from it here by
`migration_model` (so a change to the model's constants shows at once), with the domain each
concurrency needs by `infra.migration_sizing`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from bench import migration_model as model
from bench.bench_migration_latency import CONCURRENCY, MODELLED, RECORD
from infra import migration_sizing

DOMAIN_INSTANCE = "r6g.xlarge.search"


def load(path: Path = RECORD) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def measured_table(record: dict[str, Any]) -> str:
    measured = model.Measured.from_json(record["measured"])
    check = model.cross_check(measured, CONCURRENCY)
    listings = measured.listings
    loop_s = record["loop_s_per_listing"] * listings
    per_listing = record["requests_per_listing"]
    kinds = ", ".join(f"{kind} {n:.3g}" for kind, n in sorted(per_listing.items()))
    loop_requests = record["loop_requests_per_listing"]
    one_pass_cpu = f"{measured.one_pass.cpu_s:.2f} s" if measured.one_pass else "not measured"
    ours_requests = sum(per_listing.values())
    rows = [
        "| figure | this migration | the seed's loop, same run | ratio |",
        "|---|---|---|---|",
        f"| wall time, {listings:,} listings at the injected latencies | {record['wall_s']:.1f} s | {loop_s:,.0f} s"
        f" (scaled from 200) | {loop_s / record['wall_s']:.0f}× |",
        f"| requests per listing | {ours_requests:.3f} ({kinds}) | {loop_requests:.1f} (GetItem per image,"
        f" update per listing) | {loop_requests / ours_requests:.0f}× |",
        f"| the migration code's CPU per listing (thread time, emulators excluded) |"
        f" {1000 * measured.map.cpu_s / listings:.2f} ms in batches (of which their verify parts"
        f" {1000 * measured.verify_cpu_s / listings:.2f} ms); plan {measured.plan.cpu_s:.2f} s,"
        f" finish {measured.finish.cpu_s:.2f} s | verify in one pass (finish before):"
        f" {one_pass_cpu} | |",
        f"| cross-check: the model's prediction of this run at the injected latencies | {check.seconds:.1f} s"
        f" (plan {check.plan_s:.1f}, Map {check.map_s:.1f}, finish {check.finish_s:.1f}) | measured"
        f" {record['wall_s']:.1f} s | {record['wall_s'] / check.seconds:.1f}× slower measured |",
    ]
    return "\n".join(rows)


def nodes_needed(docs_per_s: float, instance: str = DOMAIN_INSTANCE) -> int:
    return max(1, math.ceil(docs_per_s / migration_sizing.safe_updates_per_s(1, instance)))


def million_table(record: dict[str, Any], listings: int = 1_000_000) -> str:
    measured = model.Measured.from_json(record["measured"])
    loop_min = listings * record["loop_s_per_listing"] / 60
    rows = [
        "| MaxConcurrency | batch | time | plan / Map / finish | a batch | OpenSearch asked | domain that takes it"
        " | cost (Lambda, DynamoDB, Step Functions, S3) | verify in one pass in finish (before): time, finish"
        " | seed's loop |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for concurrency, batch_size in MODELLED:
        p = model.predict(measured, model.AWS, listings, batch_size, concurrency)
        before = model.predict(measured, model.AWS, listings, batch_size, concurrency, shape=model.ONE_PASS)
        cost = " + ".join(f"${p.cost[k]:.2f}" for k in ("lambda", "dynamodb", "step_functions", "s3"))
        rows.append(
            f"| {concurrency} | {batch_size} | **{p.seconds / 60:.1f} min** | {p.plan_s:.0f} s / {p.map_s:.0f} s /"
            f" {p.finish_s:.0f} s | {p.batch_s:.2f} s | {p.docs_per_s:,.0f} updates/s |"
            f" {nodes_needed(p.docs_per_s)} × {DOMAIN_INSTANCE} | ${p.dollars:.2f} ({cost}) |"
            f" {before.seconds / 60:.1f} min, {before.finish_s:.0f} s | {loop_min:,.0f} min |"
        )
    return "\n".join(rows)


def tables(record: dict[str, Any]) -> str:
    return (
        f"Measured {record['date']} (`make bench BENCH_ARGS=migration_latency`):\n\n"
        + measured_table(record)
        + "\n\n1,000,000 listings at in-region latencies (`bench/migration_model.py`: constants, sources):\n\n"
        + million_table(record)
    )


if __name__ == "__main__":  # pragma: no cover - documentation helper
    from listing_vision.config import replace_between_markers

    text = tables(load())
    if sys.argv[1:2] == ["--write-readme"]:
        replace_between_markers(sys.argv[2] if len(sys.argv) > 2 else "docs/benchmarks.md", "migration-model", text)
    else:
        print(text)
