"""The visual-features migration's progress, read-only (GET /listings/migration, the review console's
listings tab): the monitoring figures `verify` checks (listings holding each split field, and all
three), read from the index in one `_search` with `exists` filters, and whether they reach verify's
success criterion. Batch results and verify reports stay with the Step Functions executions."""

from __future__ import annotations

from typing import Any

from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration.verify import SUCCESS_FRACTION


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
    }
