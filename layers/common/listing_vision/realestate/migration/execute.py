"""execute: write the three fields, batch by batch. Resumable (listings whose split is fresh are
skipped unless forced: migrated, from the taxonomy and cached analyses their split record names;
a listing whose fields come out the same is not written, only its record); every write is guarded by
the version it was computed from, and a conflict is re-read and recomputed, never overwritten.
`to_split` and `split_outcome` are the decisions a dry run reports too."""

from __future__ import annotations

from collections.abc import Callable
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
    ranges,
    throttling_as_retryable,
)
from listing_vision.realestate.split_records import STALE_REASONS, SplitInputs, Staleness, staleness

Outcome = Literal["skipped_migrated", "skipped_no_cache", "unchanged", "updated"]
State = Staleness | Literal["unmigrated"]


def split_state(doc: ListingDoc, inputs: tuple[SplitInputs | None, SplitInputs]) -> State:
    """unmigrated (without the three fields, or left by ingest with images pending), or whether its
    split is still what its inputs give (`split_records.staleness`: fresh, or why not)."""
    if not all(f in doc.source for f in SPLIT_FIELDS) or doc.source.get("visual_features_pending"):
        return "unmigrated"
    return staleness(*inputs)


def to_split(doc: ListingDoc, force: bool, inputs: tuple[SplitInputs | None, SplitInputs]) -> bool:
    """Whether execute computes this listing's split: forced, not yet migrated (or left by ingest
    with images pending), or stale (the taxonomy or its cached analyses changed since, or its split
    was never recorded)."""
    return force or split_state(doc, inputs) != "fresh"


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
        """Migrate one batch: skip listings whose split is fresh (unless forced), write the three
        fields guarded by version (`bulk_size` updates a _bulk request); on a conflict re-read,
        recompute and try again. Then record what each split written or confirmed came from
        (`split_records`, one BatchWriteItem per 25 records that changed)."""
        with throttling_as_retryable():
            return self._execute_batch(zpids, force, bulk_size)

    def _execute_batch(self, zpids: list[str], force: bool, bulk_size: int | None) -> BatchReport:
        report = BatchReport()
        pending = list(dict.fromkeys(str(z) for z in zpids))
        to_record: dict[str, SplitInputs] = {}
        for round_number in range(MAX_CONFLICT_ROUNDS):
            docs = self.listings.get_docs(pending)
            inputs, cached = self._inputs_for(docs.values())
            states = {zpid: split_state(doc, inputs[zpid]) for zpid, doc in docs.items()}
            todo = [doc for doc in docs.values() if force or states[doc.zpid] != "fresh"]
            if round_number == 0:
                report.counts["not_found"] += len(set(pending) - set(docs))
                report.counts["skipped_migrated"] += len(docs) - len(todo)
                report.counts.update(f"stale_{state}" for state in states.values() if state in STALE_REASONS)
            splits, unclassified = self._split_for(todo, cached)  # only the three fields are written
            if round_number == 0 and unclassified:
                report.counts["phrases_offline_rule"] += unclassified  # distinct in this batch
            updates = []
            for doc in todo:
                coverage, fields = splits[doc.zpid]
                outcome = split_outcome(doc, fields)
                if fields is not None and coverage == "partial":
                    report.counts["partial_coverage"] += 1
                if fields is None or outcome != "updated":
                    report.counts[outcome] += 1  # nothing cached; or it comes out the same: no write
                    recorded, current = inputs[doc.zpid]
                    if fields is not None and recorded != current:
                        to_record[doc.zpid] = current  # the same split, from inputs not recorded yet
                    continue
                updates.append((doc, fields))
            results = self.listings.update_fields_guarded(updates, bulk_size)
            for result in results:
                recorded, current = inputs[result.zpid]
                if result.status == 200 and recorded != current:  # (after a rollback it may hold these)
                    to_record[result.zpid] = current
            conflicts = report.tally(results, "updated")
            if not conflicts:
                break
            report.counts["conflicts_retried"] += len(conflicts)
            pending = conflicts
        else:
            for zpid in pending:
                report.failed[zpid] = "version conflict persisted"
        if to_record:  # after the listings: a record lost with a dying batch only makes its split stale
            report.counts["recorded"] += self.records.put_many(self.listings.name, to_record)
        if report.failed:
            logger.warning("batch had failures", extra={"failed": report.failed})
        return report

    def execute(
        self,
        zpids: list[str] | None = None,
        batch_size: int = 100,
        force: bool = False,
        progress: Progress | None = None,
        written: Callable[[list[str], str | None, bool], None] | None = None,
    ) -> dict[str, Any]:
        """All (or the listed) listings, batch by batch, in this process (the CLI's path). `written`
        is told each batch once it is written, with its part of the index (`common.ranges`)."""
        self.listings.ensure_split_mapping()
        total = BatchReport()
        listings = 0
        for group, after, to_end in ranges(batches(self._ids(zpids), batch_size)):
            total.merge(self.execute_batch(group, force))
            if written:
                written(group, after, to_end)
            listings += len(group)
            if progress:
                progress(len(group))
        return {"operation": "execute", "listings": listings, **total.to_json()}
