"""verify: the success criteria, checked after an execute. Listings with each field (the success
figure, counted by OpenSearch), spot checks, and, given a backup, proof nothing but the three fields
changed; of the listed zpids only, after a run over listed zpids.

The checks that read listings run over a part of the index at a time (`check_part`): the whole
index in id order for `verify` itself, merged with the backup as two sorted streams
(`backups.merge_by_id`); after a fanned-out execute, each Map batch checks its own part just after
writing it (`verify_batch`: the id range from the previous batch's last id to its own last, so the
parts cover the index, listings added since the plan included) and `finish` only adds up the
batches' parts (`verify_from_parts`). A part's spot checks are drawn by a key made from the id, so
the ten kept across parts are the ten any single pass would keep. `verify` on its own makes the same
parts: on Step Functions a Map batch each (`verify_batch` only, nothing written), in this process
`verify_by_parts`, a few parts at once; `verify_one_pass` is the single pass they all equal.

A listing written after its part was checked (an upload or a re-analysis landing in a range
already checked while the run goes on) is read by no part. Its split fields are in the success
figure all the same (counted by OpenSearch at the end, and ingest writes the three fields); the
parts' count of listings is set against that count, and the listings no part read are reported
(`added_while_running`; given a backup, counted as not in it: they came after it), as those the
parts read that are gone since (`removed_while_running`; given a backup, counted as lost)."""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from listing_vision.concurrency import thread_map
from listing_vision.realestate.backups import BackupReader, merge_by_id
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingDoc
from listing_vision.realestate.migration.common import MigrationBase, Tally, batches, ranges, strip_split

SUCCESS_FRACTION = 0.90
PART_SIZE = 500  # listings a part of `verify_by_parts` checks (a backup's part, a verify Map batch)
PARTS_AT_ONCE = 4  # parts `verify_by_parts` reads at once (a window of PARTS_WINDOW held)
PARTS_WINDOW = 64
# Listings a part of `verify_by_parts` holds at once (an mget each): PARTS_AT_ONCE of them are the
# one pass's page of 200 (a listing with its photos' vectors is ~0.15 MB once parsed).
PART_PAGE = 50


def spot_key(zpid: str, seed: int = 0) -> float:
    """A listing's draw for the spot checks: uniform in [0, 1), the same whichever part reads it."""
    digest = hashlib.sha256(f"{seed}:{zpid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Checked:
    """What reading some listings (merged with the backup, given one) found. Parts add up (`merge`)."""

    presence: Counter[str] = field(default_factory=Counter)  # as `field_presence`, for these listings
    changed_other: Tally = field(default_factory=Tally)
    missing: Tally = field(default_factory=Tally)  # in the index, not in the backup
    gone: Tally = field(default_factory=Tally)  # in the backup, not in the index
    spots: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)  # a heap, smallest key first

    def offer(self, key: float, zpid: str, spot: dict[str, Any], keep: int) -> None:
        """Keep the `keep` spots of largest key (reservoir sampling by key)."""
        if len(self.spots) < keep:
            heapq.heappush(self.spots, (key, zpid, spot))
        elif keep and key > self.spots[0][0]:
            heapq.heapreplace(self.spots, (key, zpid, spot))

    def merge(self, other: Checked, keep: int) -> Checked:
        self.presence.update(other.presence)
        for mine, theirs in (
            (self.changed_other, other.changed_other),
            (self.missing, other.missing),
            (self.gone, other.gone),
        ):
            mine.count += theirs.count
            mine.first = sorted(mine.first + theirs.first)[: mine.keep]
        for key, zpid, spot in other.spots:
            self.offer(key, zpid, spot, keep)
        return self

    def to_json(self) -> dict[str, Any]:
        tallies = {
            name: {"count": tally.count, "first": tally.first}
            for name, tally in (("changed_other", self.changed_other), ("missing", self.missing), ("gone", self.gone))
        }
        spots = [{"key": key, **spot} for key, _, spot in self.spots]
        return {"presence": dict(self.presence), **tallies, "spots": spots}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checked:
        tallies = {name: Tally(count=data[name]["count"], first=list(data[name]["first"])) for name in _TALLIES}
        spots = [(spot["key"], spot["zpid"], {k: v for k, v in spot.items() if k != "key"}) for spot in data["spots"]]
        heapq.heapify(spots)
        return cls(Counter(data["presence"]), spots=spots, **tallies)


_TALLIES = ("changed_other", "missing", "gone")


def check_part(
    listings: Iterable[ListingDoc],
    saved: Iterable[tuple[str, dict[str, Any]]],
    backup: bool,
    spot_checks: int,
    seed: int = 0,
) -> Checked:
    """One pass over these listings (id order) merged with the backup's rows for them (id order)."""
    checked = Checked()
    for zpid, doc, source in merge_by_id(listings, saved):
        if doc is None:
            checked.gone.add(zpid)
            continue
        present = [name for name in SPLIT_FIELDS if doc.source.get(name) is not None]  # as `exists`
        checked.presence.update(["total", *present])
        checked.presence["all_fields"] += len(present) == len(SPLIT_FIELDS)
        if backup:
            if source is None:
                checked.missing.add(zpid)
            elif strip_split(doc.source) != strip_split(source):
                checked.changed_other.add(zpid)
        if spot_checks and all(name in doc.source for name in SPLIT_FIELDS):
            spot = {
                "zpid": zpid,
                "before": (source or doc.source).get("visual_features_text"),
                "after": {name: doc.source.get(name) for name in SPLIT_FIELDS},
            }
            checked.offer(spot_key(zpid, seed), zpid, spot, spot_checks)
    return checked


class Verify(MigrationBase):
    def verify(
        self, backup: str | None = None, spot_checks: int = 10, seed: int = 0, zpids: list[str] | None = None
    ) -> dict[str, Any]:
        """The success criteria: ≥ 90 % of listings with all three fields, and (given a backup) no
        field other than the three changed on any listing. Fails (passed=false) otherwise. With
        `zpids` (a run over chosen listings) the criteria apply to those listings only. Read by
        parts (`verify_by_parts`), the report the one pass gives (`verify_one_pass`)."""
        return self.verify_by_parts(backup, spot_checks, zpids)

    def verify_one_pass(
        self, backup: str | None = None, spot_checks: int = 10, seed: int = 0, zpids: list[str] | None = None
    ) -> dict[str, Any]:
        """verify in one pass over the index (or the chosen listings), in this invocation: what the
        parts add up to (the tests' reference, and the latency bench's shape before the parts)."""
        self.listings.refresh()
        if zpids:
            checked = self._check_chosen(zpids, backup, spot_checks, seed)
            figures = dict(checked.presence)
        else:
            figures = self.listings.field_presence(SPLIT_FIELDS)
            saved = BackupReader(backup).rows() if backup else iter(())
            checked = check_part(self.listings.iter_docs_sorted(), saved, bool(backup), spot_checks, seed)
        return _report(figures, checked, backup, zpids)

    def verify_by_parts(
        self,
        backup: str | None = None,
        spot_checks: int = 10,
        zpids: list[str] | None = None,
        part_size: int = PART_SIZE,
        at_once: int = PARTS_AT_ONCE,
    ) -> dict[str, Any]:
        """verify in this process by the parts a fanned-out verify makes (`verify_batch`: ranges of
        the index in id order, or the chosen listings `part_size` at a time), `at_once` read at once,
        added up (`verify_from_parts`). Memory: PARTS_WINDOW parts' ids at most."""
        if backup:
            BackupReader(backup)  # not there: refused before any part is read
        self.listings.refresh()
        chosen = bool(zpids)
        checked = Checked()
        parts = ranges(batches(self._ids(zpids), part_size))

        def check(part: tuple[list[str], str | None, bool]) -> Checked:
            group, after, to_end = part
            return self.check_batch(group, chosen, after, to_end, backup, spot_checks, PART_PAGE)

        made = 0
        while window := list(itertools.islice(parts, PARTS_WINDOW)):
            made += len(window)
            for part in thread_map(check, window, at_once):
                checked.merge(part, spot_checks)
        if not chosen and not made:  # an empty index: one part, the whole (the backup's rows all gone)
            checked.merge(self.check_batch([], False, None, True, backup, spot_checks, PART_PAGE), spot_checks)
        return self.verify_from_parts(checked, backup, zpids=zpids)

    def _check_chosen(self, zpids: list[str], backup: str | None, spot_checks: int, seed: int = 0) -> Checked:
        chosen = sorted(dict.fromkeys(str(z) for z in zpids))  # id order, as merge_by_id needs
        found = self.listings.get_docs(chosen)
        listings = [found[zpid] for zpid in chosen if zpid in found]
        sources = BackupReader(backup).sources_for(chosen) if backup else {}
        return check_part(listings, sorted(sources.items()), bool(backup), spot_checks, seed)

    def verify_batch(
        self,
        zpids: list[str],
        chosen: bool,
        after: str | None,
        to_end: bool,
        backup: str | None,
        spot_checks: int,
    ) -> dict[str, Any]:
        """A Map batch's part of verify (`check_batch`), as its record carries it."""
        return self.check_batch(zpids, chosen, after, to_end, backup, spot_checks).to_json()

    def check_batch(
        self,
        zpids: list[str],
        chosen: bool,
        after: str | None,
        to_end: bool,
        backup: str | None,
        spot_checks: int,
        page: int | None = None,
    ) -> Checked:
        """A batch's part of verify, just after it wrote its listings (or, verify on its own, in
        place of writing): its chosen listings, or (a run over the index) every listing after
        `after` (the previous batch's last id) up to its own last id, or to the end for the last
        batch. Read by id (real time), so no refresh: in one mget, or `page` listings at a time."""
        if chosen or (not zpids and not to_end):
            return self._check_chosen(zpids, backup, spot_checks)
        last = None if to_end or not zpids else max(zpids)
        ids = sorted(set(self.listings.iter_ids_between(after, last)) | set(zpids))
        listings = self._read_in_order(ids, page or len(ids) or 1)
        saved: Iterator[tuple[str, dict[str, Any]]] = (
            BackupReader(backup).rows_between(after, last) if backup else iter(())
        )
        return check_part(listings, saved, bool(backup), spot_checks)

    def _read_in_order(self, ids: list[str], page: int) -> Iterator[ListingDoc]:
        """These listings (ids sorted) that exist, in id order, `page` held at a time."""
        for chunk in batches(ids, page):
            found = self.listings.get_docs(chunk)
            yield from (found[zpid] for zpid in chunk if zpid in found)

    def verify_from_parts(
        self, checked: Checked, backup: str | None = None, zpids: list[str] | None = None
    ) -> dict[str, Any]:
        """verify's report from the batches' parts (`verify_batch`) added up (`Checked.merge`), which
        cover the index (or the chosen listings); the success figure of a run over the index is
        counted by OpenSearch now (one aggregation), no listing read."""
        if zpids:
            figures = dict(checked.presence)
        else:
            self.listings.refresh()
            figures = self.listings.field_presence(SPLIT_FIELDS)
        return _report(figures, checked, backup, zpids)


def _report(figures: dict[str, int], checked: Checked, backup: str | None, zpids: list[str] | None) -> dict[str, Any]:
    figures = {"total": 0, "all_fields": 0, **dict.fromkeys(SPLIT_FIELDS, 0), **figures}
    total = figures["total"]
    fraction = figures["all_fields"] / total if total else 0.0
    report: dict[str, Any] = {
        "operation": "verify",
        "total": total,
        **{f"has_{name.split('_')[0]}": figures[name] for name in SPLIT_FIELDS},
        "has_all_three": figures["all_fields"],
        "has_all_three_pct": round(100 * fraction, 1),
        **{
            f"has_{name.split('_')[0]}_pct": round(100 * figures[name] / total, 1) if total else 0.0
            for name in SPLIT_FIELDS
        },
    }
    if zpids:
        report["zpids"] = len(set(map(str, zpids)))
        report["not_found"] = report["zpids"] - total
    # Listings in the index now that no part read (written in a range after it was checked), and
    # listings a part read that are gone since: the net of the two, as two counts can tell it.
    unread = total - checked.presence["total"]
    report["added_while_running"] = max(unread, 0)
    report["removed_while_running"] = max(-unread, 0)
    checks: list[str] = []
    if fraction < SUCCESS_FRACTION:
        checks.append(f"only {report['has_all_three_pct']} % of listings have all three fields (need 90 %)")
    if backup:
        report["other_fields_changed"] = checked.changed_other.count
        report["other_fields_changed_sample"] = checked.changed_other.first
        gone = checked.gone.count + report["removed_while_running"]
        report["listings_not_in_backup"] = checked.missing.count + report["added_while_running"]
        report["listings_lost_since_backup"] = gone
        if checked.changed_other.count:
            checks.append(f"{checked.changed_other.count} listings changed in fields other than the three")
        if gone:
            checks.append(f"{gone} listings of the backup are gone")
    report["spot_checks"] = [spot for _, _, spot in sorted(checked.spots, key=lambda entry: entry[1])]
    report["failures"] = checks
    report["passed"] = not checks
    return report
