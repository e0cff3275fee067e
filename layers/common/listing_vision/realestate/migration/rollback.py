"""rollback: remove the three fields, or restore sources from a backup (never undoing a newer write), then prove it
by parts: each batch, once written, compares its part with the backup (`compare_batch`: its range of the
index, or, a rollback of chosen zpids, those listings only), and the parts add up (`Compared.merge`): in
this process batch by batch, on Step Functions in each Map batch with `finish` adding the records up.
`compare_with_backup` is the same proof in one pass over the index. Every write is guarded by version;
a conflict is re-read and redone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from listing_vision.errors import InvalidRequest
from listing_vision.realestate.backups import BackupReader, merge_by_id
from listing_vision.realestate.listings_index import ListingDoc
from listing_vision.realestate.migration.common import (
    MAX_CONFLICT_ROUNDS,
    BatchReport,
    MigrationBase,
    Progress,
    Tally,
    batches,
    ranges,
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
        compared = Compared()
        listings = 0
        ignore_split = mode == "remove"
        for group, after, to_end in ranges(batches(self._ids(zpids), batch_size)):
            sources = reader.sources_for(group) if mode == "restore" and reader is not None else None
            total.merge(self.rollback_batch(group, mode, backup_sources=sources))
            if reader is not None:  # the proof's part, as a Map batch makes it
                compared.merge(self._compare(group, after, to_end, reader, ignore_split, bool(zpids)))
            listings += len(group)
            if progress:
                progress(len(group))
        result: dict[str, Any] = {"operation": "rollback", "mode": mode, "listings": listings, **total.to_json()}
        if reader is not None:
            result["proof"] = compared.proof()
        return result

    def compare_with_backup(self, backup: BackupReader, ignore_split: bool = False) -> dict[str, Any]:
        """Every listing's source against the backup (both streamed in id order): identical, or
        identical but for the three fields. One pass over the index, in this invocation."""
        self.listings.refresh()
        return compare_part(self.listings.iter_docs_sorted(), backup.rows(), ignore_split).proof()

    def compare_batch(
        self, zpids: list[str], after: str | None, to_end: bool, backup: str, ignore_split: bool, chosen: bool = False
    ) -> dict[str, Any]:
        """A rollback batch's part of the proof, once it wrote its listings: every listing after
        `after` (the previous batch's last id) up to its own last (the last batch: to the end), or
        (`chosen`, a rollback of chosen zpids) its listings only, read by id (real time), against the
        backup's rows for them."""
        return self._compare(zpids, after, to_end, BackupReader(backup), ignore_split, chosen).to_json()

    def _compare(
        self, zpids: list[str], after: str | None, to_end: bool, backup: BackupReader, ignore_split: bool, chosen: bool
    ) -> Compared:
        if chosen:  # these listings only: a chosen rollback reads neither the rest of the index nor of the backup
            wanted = sorted(dict.fromkeys(str(z) for z in zpids))
            found = self.listings.get_docs(wanted)
            saved = sorted(backup.sources_for(wanted).items())
            return compare_part([found[zpid] for zpid in wanted if zpid in found], saved, ignore_split)
        last = None if to_end else max(zpids)
        ids = set(self.listings.iter_ids_between(after, last)) | set(zpids)
        found = self.listings.get_docs(sorted(ids))
        rows = backup.rows_between(after, last)
        return compare_part([found[zpid] for zpid in sorted(found)], rows, ignore_split)


@dataclass
class Compared:
    """What comparing some listings with the backup found. Parts add up (`merge`)."""

    compared: int = 0
    not_in_backup: int = 0
    differing: Tally = field(default_factory=lambda: Tally(20))
    missing: Tally = field(default_factory=lambda: Tally(20))  # in the backup, not in the index

    def merge(self, other: Compared) -> Compared:
        self.compared += other.compared
        self.not_in_backup += other.not_in_backup
        for mine, theirs in ((self.differing, other.differing), (self.missing, other.missing)):
            mine.count += theirs.count
            mine.first = sorted(mine.first + theirs.first)[: mine.keep]
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "not_in_backup": self.not_in_backup,
            "differing": {"count": self.differing.count, "first": self.differing.first},
            "missing": {"count": self.missing.count, "first": self.missing.first},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Compared:
        tallies = {name: Tally(20, data[name]["count"], list(data[name]["first"])) for name in ("differing", "missing")}
        return cls(data["compared"], data["not_in_backup"], **tallies)

    def proof(self) -> dict[str, Any]:
        return {
            "identical": not (self.differing.count or self.missing.count),
            "compared": self.compared,
            "differing": self.differing.first,
            "differing_count": self.differing.count,
            "missing": self.missing.first,
            "missing_count": self.missing.count,
            "not_in_backup": self.not_in_backup,
        }


def compare_part(
    listings: Iterable[ListingDoc], saved: Iterable[tuple[str, dict[str, Any]]], ignore_split: bool
) -> Compared:
    """These listings (id order) against the backup's rows for them (id order)."""
    found = Compared()
    for zpid, doc, source in merge_by_id(listings, saved):
        if doc is None:
            found.missing.add(zpid)
            continue
        found.compared += 1
        if source is None:
            found.not_in_backup += 1
            continue
        same = strip_split(doc.source) == strip_split(source) if ignore_split else doc.source == source
        if not same:
            found.differing.add(zpid)
    return found
