"""execute: write the three fields, batch by batch. Resumable (migrated listings are skipped unless
forced; a forced listing whose fields come out the same is not written); every write is guarded by
the version it was computed from, and a conflict is re-read and recomputed, never overwritten.
`to_split` and `split_outcome` are the decisions a dry run reports too."""

from __future__ import annotations

from typing import Any, Literal

from listing_vision.observability import logger
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingDoc
from listing_vision.realestate.migration.common import (
    MAX_CONFLICT_ROUNDS,
    BatchReport,
    MigrationBase,
    Progress,
    batches,
    throttling_as_retryable,
)

Outcome = Literal["skipped_migrated", "skipped_no_cache", "unchanged", "updated"]


def to_split(doc: ListingDoc, force: bool) -> bool:
    """Whether execute computes this listing's split: not yet migrated, forced, or left by ingest with
    images still pending (recomputed from whatever the cache holds now)."""
    return force or not all(f in doc.source for f in SPLIT_FIELDS) or bool(doc.source.get("visual_features_pending"))


def split_outcome(doc: ListingDoc, fields: dict[str, str] | None) -> Outcome:
    """What execute does with a listing whose split it computed: nothing cached, the same fields
    (no write), or a write."""
    if fields is None:
        return "skipped_no_cache"
    if all(doc.source.get(name) == value for name, value in fields.items()):
        return "unchanged"
    return "updated"


class Execute(MigrationBase):
    def execute_batch(self, zpids: list[str], force: bool = False, bulk_size: int | None = None) -> BatchReport:
        """Migrate one batch: skip migrated listings (unless forced), write the three fields guarded
        by version (`bulk_size` updates a _bulk request); on a conflict re-read, recompute and try again."""
        with throttling_as_retryable():
            return self._execute_batch(zpids, force, bulk_size)

    def _execute_batch(self, zpids: list[str], force: bool, bulk_size: int | None) -> BatchReport:
        report = BatchReport()
        pending = list(dict.fromkeys(str(z) for z in zpids))
        for round_number in range(MAX_CONFLICT_ROUNDS):
            docs = self.listings.get_docs(pending)
            report.counts["not_found"] += len(set(pending) - set(docs)) if round_number == 0 else 0
            todo = [doc for doc in docs.values() if to_split(doc, force)]  # only the three fields are written
            if round_number == 0:
                report.counts["skipped_migrated"] += len(docs) - len(todo)
            splits, unclassified = self._split_for(todo)
            if round_number == 0 and unclassified:
                report.counts["phrases_offline_rule"] += unclassified  # distinct in this batch
            updates = []
            for doc in todo:
                coverage, fields = splits[doc.zpid]
                outcome = split_outcome(doc, fields)
                if fields is not None and coverage == "partial":
                    report.counts["partial_coverage"] += 1
                if fields is None or outcome != "updated":
                    report.counts[outcome] += 1  # nothing cached; or forced, and it comes out the same: no write
                    continue
                updates.append((doc, fields))
            conflicts = report.tally(self.listings.update_fields_guarded(updates, bulk_size), "updated")
            if not conflicts:
                break
            report.counts["conflicts_retried"] += len(conflicts)
            pending = conflicts
        else:
            for zpid in pending:
                report.failed[zpid] = "version conflict persisted"
        if report.failed:
            logger.warning("batch had failures", extra={"failed": report.failed})
        return report

    def execute(
        self,
        zpids: list[str] | None = None,
        batch_size: int = 100,
        force: bool = False,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """All (or the listed) listings, batch by batch, in this process (the CLI's path)."""
        self.listings.ensure_split_mapping()
        total = BatchReport()
        listings = 0
        for group in batches(self._ids(zpids), batch_size):
            total.merge(self.execute_batch(group, force))
            listings += len(group)
            if progress:
                progress(len(group))
        return {"operation": "execute", "listings": listings, **total.to_json()}
