"""The visual-features migration: split each listing's aggregated text into exterior, interior and
amenities fields from the cached per-image analyses, without re-analysing a single image.

Operations (each a Step Functions execution and a CLI command, see `migrate.py`; the task protocol
is `migration_tasks.py`), and the module of this package that holds each:
  coverage  (preview)   how much of a sample the cache covers (full / partial / none), how many of
                        its splits are stale, and how many of its feature phrases are classified
                        (taxonomy, phrase cache, offline rule)
  dry_run   (preview)   before and after for a sample or listed zpids, and what execute would do
                        with each (decided as execute decides); writes nothing
  backup    (backup)    every listing's source as JSONL parts (S3 or a path) with a manifest of
                        checksums
  plan      (plan)      the batches of zpids an execute (or rollback) fans out over, as an S3
                        manifest; and the batches' records under the run, which `finish` adds up
  execute   (execute)   write the three fields, batch by batch; resumable (listings whose split is
                        fresh are skipped unless forced: `split_records` holds the taxonomy and the
                        hash of the cached analyses each came from; a listing whose fields come
                        out the same is not written); every write is guarded by its version
  verify    (verify)    listings with each field (the success figure), spot checks, and proof
                        nothing else changed; of the listed zpids only, after a run over listed zpids;
                        by parts: after an execute (fanned out or in this process), each batch checks
                        its part of the index once written, and the parts add up (`check_batch`,
                        `verify_from_parts`); on its own, a Map of parts or parts read a few at once
                        (`verify_by_parts`)
  rollback  (rollback)  remove the three fields, or restore sources exactly from a backup, then
                        prove it by parts the same way (`compare_batch`: a range of the index, or
                        a chosen rollback's listings only)
What the jobs share (the stores and the reading helpers, the batch report, the errors the state
machine retries on) is in `common`. `Migration` is every operation over the stores it is given.

Every operation that visits every listing streams it in id order, a page at a time, so memory does
not grow with the index: plans are written an item at a time, backups a part at a time, and
verify and rollback merge the index with the backup as two sorted streams (`backups.merge_by_id`).

Only the three split fields are ever written; any other field of a listing stays byte-identical
(what a split came from is kept beside it, in the split records table).
A listing that changed between our read and our write is re-read and recomputed (optimistic
concurrency), never overwritten. The split's classes of phrases the taxonomy does not know are
read from the phrase cache in one bulk per batch; the migration never calls a model (the
`classify_phrases` operation, run before, does: `phrase_classification.py`).
"""

from __future__ import annotations

from typing import Any

from listing_vision.config import get_settings
from listing_vision.realestate.backups import BackupReader
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration.backup import Backup
from listing_vision.realestate.migration.common import (
    MAX_CONFLICT_ROUNDS,
    THROTTLING_CODES,
    BatchFailed,
    BatchReport,
    MigrationBase,
    Progress,
    Throttled,
    batches,
    strip_split,
    throttling_as_retryable,
)
from listing_vision.realestate.migration.execute import Execute, Outcome, split_outcome, split_state, to_split
from listing_vision.realestate.migration.plan import Plan
from listing_vision.realestate.migration.preview import WOULD, Preview
from listing_vision.realestate.migration.rollback import Rollback
from listing_vision.realestate.migration.verify import SUCCESS_FRACTION, Checked, Verify
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitRecords
from listing_vision.realestate.vision_cache import VisionCache


class Migration(Preview, Backup, Plan, Execute, Verify, Rollback):
    """Every operation, over the stores it is given (`MigrationBase`)."""

    @classmethod
    def from_settings(cls) -> Migration:
        """The configured stores: what the handler builds once per container, and the CLI."""
        stores = (ListingsIndex.from_settings(), VisionCache(), PhraseStore())
        return cls(*stores, get_settings().artifacts_bucket, SplitRecords())

    def execute_verified(
        self,
        zpids: list[str] | None = None,
        batch_size: int = 100,
        force: bool = False,
        backup: str | None = None,
        spot_checks: int = 10,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """execute in this process, each batch then checking its part as a Map batch does
        (`check_batch`), and verify's report from the parts (`verify_from_parts`): no second pass."""
        if backup:
            BackupReader(backup)  # a backup that is not there stops the run before anything is written
        checked = Checked()
        parts = []

        def check(group: list[str], after: str | None, to_end: bool) -> None:
            parts.append(len(group))
            checked.merge(self.check_batch(group, bool(zpids), after, to_end, backup, spot_checks), spot_checks)

        result = self.execute(zpids, batch_size, force, progress, written=check)
        if not zpids and not parts:  # an empty index: one part, the whole
            check([], None, True)
        result["verify"] = self.verify_from_parts(checked, backup, zpids=zpids)
        result["passed"] = result["verify"]["passed"] and not result["failed"]
        return result


__all__ = [
    "MAX_CONFLICT_ROUNDS",
    "SUCCESS_FRACTION",
    "THROTTLING_CODES",
    "WOULD",
    "BatchFailed",
    "BatchReport",
    "Migration",
    "MigrationBase",
    "Outcome",
    "Progress",
    "Throttled",
    "batches",
    "split_outcome",
    "split_state",
    "strip_split",
    "throttling_as_retryable",
    "to_split",
]
