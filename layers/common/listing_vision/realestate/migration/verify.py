"""verify: the success criteria, checked after an execute. Listings with each field (the success
figure), spot checks, and, given a backup, proof nothing but the three fields changed; of the listed
zpids only, after a run over listed zpids. One pass over the index in id order, merged with the
backup as two sorted streams (`backups.merge_by_id`)."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from listing_vision.realestate.backups import BackupReader, merge_by_id
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingDoc
from listing_vision.realestate.migration.common import MigrationBase, Tally, strip_split

SUCCESS_FRACTION = 0.90


class Verify(MigrationBase):
    def verify(
        self, backup: str | None = None, spot_checks: int = 10, seed: int = 0, zpids: list[str] | None = None
    ) -> dict[str, Any]:
        """The success criteria: ≥ 90 % of listings with all three fields, and (given a backup)
        no field other than the three changed on any listing. Fails (passed=false) otherwise.
        With `zpids` (a run over chosen listings) the criteria apply to those listings only."""
        self.listings.refresh()
        listings: Iterable[ListingDoc]
        saved: Iterable[tuple[str, dict[str, Any]]]
        if zpids:
            chosen = sorted(dict.fromkeys(str(z) for z in zpids))  # id order, as merge_by_id needs
            found = self.listings.get_docs(chosen)
            listings = [found[zpid] for zpid in chosen if zpid in found]
            figures = _presence(listings)
            sources = BackupReader(backup).sources_for(chosen) if backup else {}
            saved = sorted(sources.items())
        else:
            figures = self.listings.field_presence(SPLIT_FIELDS)
            listings = self.listings.iter_docs_sorted()
            saved = BackupReader(backup).rows() if backup else iter(())
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
        checks: list[str] = []
        if fraction < SUCCESS_FRACTION:
            checks.append(f"only {report['has_all_three_pct']} % of listings have all three fields (need 90 %)")
        # One pass over the index in id order, merged with the backup's parts (also in id order):
        # counts and the first ten ids kept, spot checks drawn by reservoir sampling.
        changed_other, missing, gone = Tally(), Tally(), Tally()
        spots: list[tuple[float, str, dict[str, Any]]] = []
        rng = random.Random(seed)
        for zpid, doc, source in merge_by_id(listings, saved):
            if doc is None:
                gone.add(zpid)
                continue
            if backup:
                if source is None:
                    missing.add(zpid)
                elif strip_split(doc.source) != strip_split(source):
                    changed_other.add(zpid)
            if spot_checks and all(name in doc.source for name in SPLIT_FIELDS):
                spot = {
                    "zpid": zpid,
                    "before": (source or doc.source).get("visual_features_text"),
                    "after": {name: doc.source.get(name) for name in SPLIT_FIELDS},
                }
                key = rng.random()
                if len(spots) < spot_checks:
                    heapq.heappush(spots, (key, zpid, spot))
                elif key > spots[0][0]:
                    heapq.heapreplace(spots, (key, zpid, spot))
        if backup:
            report["other_fields_changed"] = changed_other.count
            report["other_fields_changed_sample"] = changed_other.first
            report["listings_not_in_backup"] = missing.count
            report["listings_lost_since_backup"] = gone.count
            if changed_other.count:
                checks.append(f"{changed_other.count} listings changed in fields other than the three")
            if gone.count:
                checks.append(f"{gone.count} listings of the backup are gone")
        report["spot_checks"] = [spot for _, _, spot in sorted(spots, key=lambda entry: entry[1])]
        report["failures"] = checks
        report["passed"] = not checks
        return report


def _presence(docs: Iterable[ListingDoc]) -> dict[str, int]:
    """field_presence's figures, for these listings."""
    figures = Counter({"total": 0, "all_fields": 0, **dict.fromkeys(SPLIT_FIELDS, 0)})
    for doc in docs:
        figures["total"] += 1
        present = [name for name in SPLIT_FIELDS if doc.source.get(name) is not None]  # as `exists`
        figures.update(present)
        figures["all_fields"] += len(present) == len(SPLIT_FIELDS)
    return dict(figures)
