"""One migration operation in a process of its own, for `bench_migration_memory` to read its peak RSS.

    python -m bench.migration_op OPERATION INDEX BACKUP

OPERATION: `import` (the floor: the library loaded, nothing run), `backup`, `verify`, `plan`,
`rollback` (`--mode restore` from BACKUP), or `hold_all` (the baseline: every listing's source in
one list, which is what verify and backup held before they streamed). Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from listing_vision.config import get_settings
from listing_vision.realestate.listings_index import ListingsIndex, opensearch_client
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitRecords
from listing_vision.realestate.vision_cache import VisionCache


def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM). Not the parent's `ru_maxrss` for children: Linux
    carries ru_maxrss across fork and exec, so a child of a large parent reports the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


OPERATIONS = ("import", "backup", "verify", "plan", "rollback", "hold_all")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.migration_op", description=__doc__.splitlines()[0])
    parser.add_argument("operation", choices=OPERATIONS)
    parser.add_argument("index", help="the OpenSearch index of listings")
    parser.add_argument("backup", help="the backup location (written by backup, read by verify and rollback)")
    args = parser.parse_args(argv)
    operation, index, backup = args.operation, args.index, args.backup
    listings = ListingsIndex(opensearch_client(), index)  # the bench's own index, beside the configured one
    migration = Migration(listings, VisionCache(), PhraseStore(), get_settings().artifacts_bucket, SplitRecords())
    result: dict[str, Any]
    if operation == "import":
        result = {}
    elif operation == "backup":
        result = migration.backup(backup)
    elif operation == "verify":
        result = migration.verify(backup)
    elif operation == "plan":
        result = migration.plan(100, operation="rollback", options={"mode": "remove"})
        migration.end_run(result["run_id"])  # a plan alone, measured: its lease freed for the next
    elif operation == "rollback":
        result = migration.rollback("restore", backup=backup, batch_size=200)
    elif operation == "hold_all":
        held = list(listings.iter_docs_sorted())
        result = {"held": len(held)}
    else:
        raise AssertionError(operation)  # argparse allows OPERATIONS only
    summary = {k: result.get(k) for k in ("count", "total", "listings", "batches", "held") if k in result}
    print(json.dumps({**summary, "peak_rss_kb": peak_rss_kb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
