"""Benchmark records and the tables rendered from them, so that no figure in the docs is typed by hand.

Each benchmark that `python -m bench NAME` runs leaves `bench/records/NAME.figures.json`: its figures
(value, baseline, unit, what the baseline is), the command that made them (with the BENCH_*
settings it ran under), the machine, the date, the commit and the load average before and after.
docs/benchmarks.md holds one generated block per record:

    <!-- bench-record:NAME:start (generated: python -m bench.records --write-readme) -->
    ...
    <!-- bench-record:NAME:end -->

    python -m bench.records                 # print every record's table
    python -m bench.records --write-readme  # rewrite the blocks in docs/benchmarks.md

tests/unit/test_bench_records.py fails when a block disagrees with its record.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.figures import Figure, number

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "bench" / "records"
PAGE = ROOT / "docs" / "benchmarks.md"
SUFFIX = ".figures.json"
RESULTS_NAME = "bench/results/latest.json"  # every run's figures (bench/__main__.py), records or not
BLOCK = re.compile(r"<!-- bench-record:(?P<name>[a-z_]+):start[^>]*-->\n.*?<!-- bench-record:(?P=name):end -->", re.S)


def path_of(name: str) -> Path:
    return RECORDS / f"{name}{SUFFIX}"


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() or "unknown"


def write(name: str, figures: list[Figure], started: float, load_before: float) -> Path:
    """Record one benchmark's run (its figures replace the previous record's)."""
    # the settings it ran under (make exports BENCH_ARGS itself: the command names it already)
    settings = " ".join(
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_") and k != "BENCH_ARGS"
    )
    record = {
        "benchmark": name,
        "command": f"{settings + ' ' if settings else ''}make bench BENCH_ARGS={name}",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "commit": commit(),
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "figures": [figure.to_json() for figure in figures],
    }
    RECORDS.mkdir(parents=True, exist_ok=True)
    path = path_of(name)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return path


def keep(name: str, shown_by: str | None, figures: list[Figure], started: float, load_before: float) -> str:
    """Where a run's figures are kept: its record, NAME.figures.json, for a bench-record block of the
    page; or nowhere new for a bench whose figures its own record and report show (`SHOWN_BY` in its
    module: a figures file no block reads would be refused by the records' tests)."""
    if shown_by:
        return f"its own record (shown by {shown_by}); figures in {RESULTS_NAME}"
    return str(write(name, figures, started, load_before))


def load(name: str) -> dict[str, Any]:
    return dict(json.loads(path_of(name).read_text()))


def known() -> list[str]:
    """Every benchmark `python -m bench` can run."""
    return sorted(p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py"))


def recorded() -> list[str]:
    return sorted(p.name.removesuffix(SUFFIX) for p in RECORDS.glob(f"*{SUFFIX}"))


def ratio(figure: dict[str, Any]) -> str:
    """How many times better than its baseline (Figure.ratio); a dash where one side is zero."""
    return f"{figure['ratio']:.2f}×" if figure["baseline"] and figure["value"] else "—"


def render(record: dict[str, Any]) -> str:
    """The record's table, under a line saying where, when and how it was measured."""
    low, high = record["load_average_1min"]
    lines = [
        f"Measured {record['date'][:10]} at commit `{record['commit']}` on {record['machine']}, "
        f"load average {low}–{high} (`{record['command']}`):",
        "",
        "| benchmark | figure | value | baseline (same run) | ratio (× better) |",
        "|---|---|---|---|---|",
    ]
    for f in record["figures"]:
        value, baseline = number(f["value"], f["unit"]), number(f["baseline"], f["unit"])
        lines.append(
            f"| {f['benchmark']} | {f['name']} | {value} {f['unit']} | "
            f"{baseline} {f['unit']}, {f['baseline_name']} | {ratio(f)} |"
        )
    return "\n".join(lines)


def block(name: str) -> str:
    return (
        f"<!-- bench-record:{name}:start (generated: python -m bench.records --write-readme) -->\n"
        f"{render(load(name))}\n<!-- bench-record:{name}:end -->"
    )


def refreshed(page: str) -> str:
    """The page with every bench-record block rendered from its record (a block without one is an error)."""
    missing = [m["name"] for m in BLOCK.finditer(page) if not path_of(m["name"]).exists()]
    if missing:
        raise SystemExit(f"no record for {', '.join(missing)}: run make bench BENCH_ARGS=<name> first")
    return BLOCK.sub(lambda m: block(m["name"]), page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.records", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true", help=f"rewrite the blocks in {PAGE.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if args.write_readme:
        PAGE.write_text(refreshed(PAGE.read_text()))
        print(f"{PAGE.relative_to(ROOT)}: {len(BLOCK.findall(PAGE.read_text()))} tables rendered from bench/records")
        return 0
    for name in recorded():
        print(f"## {name}\n\n{render(load(name))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
