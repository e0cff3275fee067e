"""rollback: remove the three fields, or restore sources from a backup (never undoing a newer write), then prove it
(`compare_with_backup`, which `finish` also runs after a fanned-out rollback). Every write is
guarded by version; a conflict is re-read and redone."""

from __future__ import annotations

from typing import Any, Literal

from listing_vision.errors import InvalidRequest
from listing_vision.realestate.backups import BackupReader, merge_by_id
from listing_vision.realestate.migration.common import (
    MAX_CONFLICT_ROUNDS,
    BatchReport,
    MigrationBase,
    Progress,
    Tally,
    batches,
    strip_split,
)


class Rollback(MigrationBase):
    def rollback_batch(
        self,
        zpids: list[str],
        mode: Literal["remove", "restore"] = "remove",
        backup: str | None = None,
        backup_sources: dict[str, dict[str, Any]] | None = None,
        bulk_size: int | None = None,
    ) -> BatchReport:
        """Remove the three fields (re-indexing the source without them, since there are no
        scripts) or put back the backup's source, each write guarded by version. A restore writes a
        listing only while it still holds what the migration left (the backup's fields, the three
        split fields aside); one changed since is counted `changed_since_backup`, listed in
        `left_alone` and not written. A restoring batch reads only the backup parts its zpids fall in."""
        if mode == "restore" and backup_sources is None:
            if not backup:
                raise InvalidRequest("rollback mode 'restore' needs a backup location.", code="backup_required")
            backup_sources = BackupReader(backup).sources_for(zpids)
        report = BatchReport()
        pending = list(dict.fromkeys(str(z) for z in zpids))
        for _ in range(MAX_CONFLICT_ROUNDS):
            docs = self.listings.get_docs(pending)
            replacements = []
            for doc in docs.values():
                if mode == "restore":
                    assert backup_sources is not None
                    if doc.zpid not in backup_sources:
                        report.counts["not_in_backup"] += 1
                        continue
                    target = backup_sources[doc.zpid]
                    if strip_split(doc.source) != strip_split(target):
                        # Changed since the backup in fields the migration never writes (an ingest
                        # update): a newer write, which a restore must not undo. Listed, left alone.
                        report.counts["changed_since_backup"] += 1
                        report.left_alone.append(doc.zpid)
                        continue
                else:
                    target = strip_split(doc.source)
                if target == doc.source:
                    report.counts["unchanged"] += 1
                    continue
                replacements.append((doc, target))
            conflicts = report.tally(self.listings.replace_sources_guarded(replacements, bulk_size), "rolled_back")
            if not conflicts:
                break
            report.counts["conflicts_retried"] += len(conflicts)
            pending = conflicts
        return report

    def rollback(
        self,
        mode: Literal["remove", "restore"] = "remove",
        backup: str | None = None,
        zpids: list[str] | None = None,
        batch_size: int = 200,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        if mode == "restore" and not backup:
            raise InvalidRequest("rollback mode 'restore' needs a backup location.", code="backup_required")
        reader = BackupReader(backup) if backup else None
        if mode == "restore" and reader is not None:
            reader.validate()  # a corrupt part refuses the restore before anything is written
        total = BatchReport()
        listings = 0
        for group in batches(self._ids(zpids), batch_size):
            sources = reader.sources_for(group) if mode == "restore" and reader is not None else None
            total.merge(self.rollback_batch(group, mode, backup_sources=sources))
            listings += len(group)
            if progress:
                progress(len(group))
        result: dict[str, Any] = {"operation": "rollback", "mode": mode, "listings": listings, **total.to_json()}
        if reader is not None:
            result["proof"] = self.compare_with_backup(reader, ignore_split=(mode == "remove"))
        return result

    def compare_with_backup(self, backup: BackupReader, ignore_split: bool = False) -> dict[str, Any]:
        """Every listing's source against the backup (both streamed in id order): identical, or
        identical but for the three fields."""
        self.listings.refresh()
        differing, missing = Tally(20), Tally(20)
        compared = extra = 0
        for zpid, doc, saved in merge_by_id(self.listings.iter_docs_sorted(), backup.rows()):
            if doc is None:
                missing.add(zpid)
                continue
            compared += 1
            if saved is None:
                extra += 1
                continue
            same = strip_split(doc.source) == strip_split(saved) if ignore_split else doc.source == saved
            if not same:
                differing.add(zpid)
        return {
            "identical": not (differing.count or missing.count),
            "compared": compared,
            "differing": differing.first,
            "differing_count": differing.count,
            "missing": missing.first,
            "missing_count": missing.count,
            "not_in_backup": extra,
        }
