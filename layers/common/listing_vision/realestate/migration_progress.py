"""The visual-features migration's progress, read-only (GET /listings/migration, the review console's
listings tab): the monitoring figures `verify` checks (listings holding each split field, and all
three), read from the index in one `_search` with `exists` filters, and whether they reach verify's
success criterion; and the last finished run (`last_run`): its batches done and failed and verify's
report, as the run's `finish` recorded them in the artifacts bucket (`Plan.record_run`; null before
any run has finished). A run still going shows once it finishes."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from listing_vision.config import get_settings
from listing_vision.realestate import artifacts
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration.plan import last_run_location
from listing_vision.realestate.migration.verify import SUCCESS_FRACTION

VERIFY_SHOWN = ("passed", "failures", "total", "has_all_three", "has_all_three_pct", "other_fields_changed")


def last_run(bucket: str | None = None) -> dict[str, Any] | None:
    """The last finished run, as shown: what it did, its batches done and failed, verify's figures."""
    try:
        record = json.loads(artifacts.read_bytes(last_run_location(bucket or get_settings().artifacts_bucket)))
    except FileNotFoundError:
        return None
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
            return None
        raise
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
        "last_run": last_run(),
    }
