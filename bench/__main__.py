"""`python -m bench [name ...]`: run bench/bench_*.py, print one table, write bench/results/latest.json
and each benchmark's record, bench/records/NAME.figures.json (bench/records.py renders the docs' tables).

Each module defines `run(stack) -> list[Figure]`; all share one local stack. Benchmarks never run
inside `make test`: they measure, the tests check.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench import records
from bench.figures import Figure, number
from local.stack import LocalStack

BENCH_DIR = Path(__file__).parent
RESULTS = BENCH_DIR / "results" / "latest.json"


def discover(selected: list[str]) -> list[str]:
    names = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    if selected:
        unknown = set(selected) - {n.removeprefix("bench_") for n in names}
        if unknown:
            sys.exit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have: {', '.join(names)}")
        names = [n for n in names if n.removeprefix("bench_") in selected]
    return names


def table(figures: list[Figure]) -> str:
    rows = [("benchmark", "figure", "value", "baseline", "ratio (× better)")]
    for f in figures:
        rows.append(
            (
                f.benchmark,
                f.name,
                f"{number(f.value, f.unit)} {f.unit}",
                f"{number(f.baseline, f.unit)} {f.unit} ({f.baseline_name})",
                f"{f.ratio:.2f}×" if f.unit not in ("cos", "recall") else f"{f.ratio:.5f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all), e.g. aws_clients")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    started = time.time()
    with (
        tempfile.TemporaryDirectory() as state,
        LocalStack(state_dir=Path(state), port=0, keep_snapshot=False, log_requests=False) as stack,
    ):
        for name in discover(args.names):
            print(f"running {name} ...", flush=True)
            began, load_before = time.time(), os.getloadavg()[0]
            module = importlib.import_module(f"bench.{name}")
            measured = module.run(stack)
            shown_by = getattr(module, "SHOWN_BY", None)
            print(f"recorded in {records.keep(name.removeprefix('bench_'), shown_by, measured, began, load_before)}")
            figures.extend(measured)
    print()
    print(table(figures))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "machine": {
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "processor": platform.processor(),
                    "cpus": os.cpu_count(),
                },
                "figures": [f.to_json() for f in figures],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
