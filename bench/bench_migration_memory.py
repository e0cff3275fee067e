"""Peak memory of the migration's whole-index operations, against the number of listings.

Each operation (backup, verify against that backup, plan, rollback --mode restore: verify and
rollback as the CLI runs them in process, by parts) runs in a process of its own
(`bench.migration_op`) against demo listings in the local stack's OpenSearch; its peak RSS is that
child's VmHWM, printed by the child as it ends (the parent's `ru_maxrss` for children is useless
here: Linux carries it across fork and exec, so every child reports the bench process's own size).
Sizes: 2,000, 20,000 and 100,000 listings
(`BENCH_RSS_SIZES=2000,20000` to change). The figure per operation is the peak at the largest size
against the peak at 20,000 (goal: ≤ 1.10×, i.e. ≤ 10 % growth). The baseline row holds every
listing's source in one list, as verify and backup did before they streamed.

Only the listings are loaded (no cache items): none of these operations reads the vision cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import Figure
from listing_vision.realestate.listings_index import opensearch_client
from local import demo_listings as demo
from local.stack import LocalStack

NAME = "migration_memory"
OPERATIONS = ("import", "backup", "verify", "plan", "rollback", "hold_all")
INDEX = "listings-rss-bench"


def sizes() -> list[int]:
    return [int(size) for size in os.environ.get("BENCH_RSS_SIZES", "2000,20000,100000").split(",")]


def peak_rss_mb(operation: str, backup: str) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one operation in a child process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.migration_op", operation, INDEX, backup],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate()
    if child.returncode:
        raise RuntimeError(f"{operation} failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])["peak_rss_kb"] / 1024, time.perf_counter() - started


def run(stack: LocalStack) -> list[Figure]:
    search = opensearch_client()
    if search.indices.exists(index=INDEX):
        search.indices.delete(index=INDEX)
    table: dict[int, dict[str, tuple[float, float]]] = {}
    loaded = 0
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes():
            started = time.perf_counter()
            demo.load(size, seed=0, index=INDEX, start=loaded, cache=False)
            loaded = size
            print(f"  {size:,} listings loaded in {time.perf_counter() - started:.0f} s", flush=True)
            backup = str(Path(folder) / f"backup-{size}.jsonl")
            table[size] = {operation: peak_rss_mb(operation, backup) for operation in OPERATIONS}
            print(
                f"  {size:,}: " + ", ".join(f"{op} {mb:.0f} MB ({s:.0f} s)" for op, (mb, s) in table[size].items()),
                flush=True,
            )
    search.indices.delete(index=INDEX)
    largest = max(table)
    reference = 20_000 if 20_000 in table else min(table)
    figures = []
    for operation in OPERATIONS:
        if operation == "import":
            continue
        goal = "the baseline" if operation == "hold_all" else "goal ≤ 1.10×"  # the goal is not the baseline's
        figures.append(
            Figure(
                NAME,
                f"{operation}: peak RSS at {largest:,} listings ({goal} the peak at {reference:,})",
                table[largest][operation][0],
                table[reference][operation][0],
                "MB",
                f"same operation at {reference:,} listings; "
                + ", ".join(f"{size:,}: {row[operation][0]:.0f} MB" for size, row in table.items()),
            )
        )
    figures.append(
        Figure(
            NAME,
            "the library imported, nothing run (the floor)",
            table[largest]["import"][0],
            table[reference]["import"][0],
            "MB",
            f"at {reference:,}",
        )
    )
    return figures
