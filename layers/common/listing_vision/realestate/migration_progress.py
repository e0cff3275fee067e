"""The visual-features migration's progress, read-only (GET /listings/migration, the review console's
listings tab): the monitoring figures `verify` checks (listings holding each split field, and all
three), read from the index in one `_search` with `exists` filters, and whether they reach verify's
success criterion; and the last finished run (`last_run`): its batches done and failed and verify's
report, as the run's `finish` recorded them in the artifacts bucket (`Plan.record_run`; null before
any run has finished); and the run going (`current_run`, which `plan` records and `finish` marks
ended): its batches planned and how many have left a record so far (a count of the records' keys,
listed a page at a time). Which batches failed is known only at finish (a batch with no record then
failed), so a run going shows no failures."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from listing_vision.config import get_settings
from listing_vision.realestate import artifacts, run_lease
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration.plan import batch_records_prefix, current_run_location, last_run_location
from listing_vision.realestate.migration.verify import SUCCESS_FRACTION

# ListObjectsV2 pages (1,000 keys each) counted for a run going: 100,000 batch records, past any plan.
RECORD_PAGES = 100
VERIFY_SHOWN = ("passed", "failures", "total", "has_all_three", "has_all_three_pct", "other_fields_changed")


def _record(location: str) -> dict[str, Any] | None:
    try:
        record = json.loads(artifacts.read_bytes(location))
    except FileNotFoundError:  # artifacts.ArtifactNotFound: no such object (or file)
        return None
    except ValueError:  # not JSON: no run wrote it
        return None
    except ClientError as error:
        # the search function may list only the runs' batch records: another missing key reads as AccessDenied
        if error.response.get("Error", {}).get("Code") == "AccessDenied":
            return None
        raise
    return record if isinstance(record, dict) else None


def _seconds(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def current_run(bucket: str | None = None) -> dict[str, Any] | None:
    """The run going, as shown: what it does, when it started, its batches planned and recorded so
    far; None when none is going (none planned yet, or the last one planned has finished)."""
    bucket = bucket or get_settings().artifacts_bucket
    record = _record(current_run_location(bucket))
    # Going while it holds the lease: not finished, its execution running or its process heard from
    if record is None or not record.get("run_id") or run_lease.ended(record):
        return None
    if record.get("holder"):  # a run in a process (the CLI's) counts its batches itself, leaving no records
        recorded, complete = int(record.get("batches_done") or 0), True
    else:
        recorded, complete = artifacts.count_objects(bucket, batch_records_prefix(str(record["run_id"])), RECORD_PAGES)
    return {
        "run_id": record["run_id"],
        "operation": record.get("operation"),
        "started_at": _seconds(record.get("started_at")),
        "batches": _seconds(record.get("batches")) or 0,
        "batches_recorded": recorded,
        "recorded_complete": complete,
        "running": True,
        # what holds the run's lease: its Step Functions execution, or the process running it
        **{key: record[key] for key in ("execution", "holder") if record.get(key)},
    }


def last_run(bucket: str | None = None) -> dict[str, Any] | None:
    """The last finished run, as shown: what it did, its batches done and failed, verify's figures."""
    record = _record(last_run_location(bucket or get_settings().artifacts_bucket))
    if record is None:
        return None
    batches = int(record.get("batches") or 0)
    failed = int(record.get("batches_failed") or 0)
    verify = record.get("verify")
    return {
        "run_id": record.get("run_id"),
        "operation": record.get("operation"),
        "finished_at": record.get("finished_at"),
        "batches": batches,
        "batches_done": batches - failed,
        "batches_failed": failed,
        "failed_batches": list(record.get("failed_batches") or []),
        "listings_failed": record.get("listings_failed"),
        "passed": record.get("passed"),
        "verify": {key: verify.get(key) for key in VERIFY_SHOWN if key in verify} if isinstance(verify, dict) else None,
    }


def progress(listings: ListingsIndex) -> dict[str, Any]:
    figures = listings.field_presence(SPLIT_FIELDS)
    total = figures["total"]

    def share(count: int) -> dict[str, Any]:
        return {"listings": count, "pct": round(100 * count / total, 1) if total else 0.0}

    return {
        "total": total,
        "fields": {name: share(figures[name]) for name in SPLIT_FIELDS},
        "all_fields": share(figures["all_fields"]),
        "target_pct": round(100 * SUCCESS_FRACTION, 1),
        "meets_target": bool(total) and figures["all_fields"] / total >= SUCCESS_FRACTION,
        "current_run": current_run(),
        "last_run": last_run(),
    }
