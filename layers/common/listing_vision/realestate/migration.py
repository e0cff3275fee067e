"""The visual-features migration: split each listing's aggregated text into exterior, interior and
amenities fields from the cached per-image analyses, without re-analysing a single image.

Operations (each a Step Functions execution and a CLI command, see `migrate.py`):
  coverage  how much of a sample the cache covers (full / partial / none), and how many of its
            feature phrases are classified (taxonomy, phrase cache, offline rule)
  dry_run   before and after for a sample or listed zpids, and what execute would do with each
            (decided as execute decides); writes nothing
  backup    every listing's source as JSONL parts (S3 or a path) with a manifest of checksums
  plan      the batches of zpids an execute (or rollback) fans out over, as an S3 manifest
  execute   write the three fields, batch by batch; resumable (migrated listings are skipped
            unless forced; a forced listing whose fields come out the same is not written); every
            write is guarded by the version it was computed from
  verify    listings with each field (the success figure), spot checks, and proof nothing else changed;
            of the listed zpids only, after a run over listed zpids
  rollback  remove the three fields, or restore sources exactly from a backup, then prove it

Every operation that visits every listing streams it in id order, a page at a time, so memory does
not grow with the index: plans are written an item at a time, backups a part at a time, and
verify and rollback merge the index with the backup as two sorted streams (`backups.merge_by_id`).

Only the three split fields are ever written; any other field of a listing stays byte-identical.
A listing that changed between our read and our write is re-read and recomputed (optimistic
concurrency), never overwritten. The split's classes of phrases the taxonomy does not know are
read from the phrase cache in one bulk per batch; the migration never calls a model (the
`classify_phrases` operation, run before, does: `phrase_classification.py`).
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError
from opensearchpy.exceptions import TransportError

from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest, UpstreamError
from listing_vision.observability import logger
from listing_vision.realestate import artifacts
from listing_vision.realestate.backups import BackupReader, merge_by_id, write_backup, write_manifest, write_part
from listing_vision.realestate.features import SPLIT_FIELDS, feature_phrases, split_visual_features
from listing_vision.realestate.listings_index import ListingDoc, ListingsIndex, WriteResult
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.taxonomy import load_taxonomy
from listing_vision.realestate.vision_cache import VisionCache, coverage_of

MAX_CONFLICT_ROUNDS = 5
SUCCESS_FRACTION = 0.90
Progress = Callable[[int], None]


@dataclass
class BatchReport:
    """What one batch did. Counts add up across batches (`merge`)."""

    counts: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)

    def merge(self, other: BatchReport) -> BatchReport:
        self.counts.update(other.counts)
        self.failed.update(other.failed)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "failed": self.failed}

    def tally(self, results: Iterable[WriteResult], written: str) -> list[str]:
        """Count guarded writes (`written` for each success; a listing deleted meanwhile is
        `not_found`; anything else failed) and return the version conflicts, to be redone."""
        conflicts = []
        for result in results:
            if result.status == 200:
                self.counts[written] += 1
            elif result.status == 409:
                conflicts.append(result.zpid)
            elif result.status == 404:
                self.counts["not_found"] += 1
            else:
                self.failed[result.zpid] = f"{result.status} {result.error}"
        return conflicts


def batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive groups of `size`, taken from the stream as they are needed."""
    stream = iter(items)
    while group := list(itertools.islice(stream, size)):
        yield group


def strip_split(source: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in source.items() if key not in SPLIT_FIELDS}


Outcome = Literal["skipped_migrated", "skipped_no_cache", "unchanged", "updated"]
# What a dry run says for each outcome an execute would have (the execute's count of the same name).
WOULD: dict[Outcome, str] = {
    "skipped_migrated": "would_skip_migrated",
    "skipped_no_cache": "would_skip_no_cache",
    "unchanged": "would_leave_unchanged",
    "updated": "would_update",
}


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


class Migration:
    """Every operation, over the stores it is given (`from_settings` builds the configured ones)."""

    def __init__(self, listings: ListingsIndex, cache: VisionCache, phrases: PhraseStore, artifacts_bucket: str):
        self.listings = listings
        self.cache = cache
        self.phrases = phrases
        self.artifacts_bucket = artifacts_bucket  # plans, batch records and default backups

    @classmethod
    def from_settings(cls) -> Migration:
        """The configured stores: what the handler builds once per container, and the CLI."""
        return cls(ListingsIndex.from_settings(), VisionCache(), PhraseStore(), get_settings().artifacts_bucket)

    # --- reading ------------------------------------------------------------------------------
    def _sample(self, sample: int | None, zpids: list[str] | None, seed: int) -> list[str]:
        if zpids:
            return list(dict.fromkeys(str(z) for z in zpids))
        ids = self.listings.all_ids()
        if sample is None or sample >= len(ids):
            return ids
        return sorted(random.Random(seed).sample(ids, sample))

    def _ids(self, zpids: list[str] | None) -> Iterator[str]:
        """The listed zpids, or every listing's, streamed in id order."""
        if zpids:
            return iter(dict.fromkeys(str(z) for z in zpids))
        return self.listings.iter_ids()

    def _split_for(self, docs: Iterable[ListingDoc]) -> tuple[dict[str, tuple[str, dict[str, str] | None]], int]:
        """zpid → (coverage, the three fields or None when nothing of the listing is cached), and how
        many distinct phrases of these listings neither the taxonomy nor the phrase cache classes
        (the offline rule decides them)."""
        docs = list(docs)
        cached = self.cache.get_many(url for doc in docs for url in doc.image_urls)
        phrases = {phrase for image in cached.values() for phrase in feature_phrases(image.analysis)[1]}
        classifier, unclassified = self.phrases.classifier_for(phrases)
        out: dict[str, tuple[str, dict[str, str] | None]] = {}
        for doc in docs:
            analyses = [cached[url].analysis for url in doc.image_urls if url in cached]
            coverage = coverage_of(doc.image_urls, (url for url in doc.image_urls if url in cached))
            out[doc.zpid] = (coverage, split_visual_features(analyses, classifier).as_fields() if analyses else None)
        return out, unclassified

    # --- coverage and dry run -------------------------------------------------------------------
    def coverage(self, sample: int | None = 100, zpids: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
        chosen = self._sample(sample, zpids, seed)
        docs = self.listings.get_docs(chosen, source=["image_vectors"])
        cached = self.cache.get_many(url for doc in docs.values() for url in doc.image_urls)
        listings: Counter[str] = Counter()
        images = cached_images = 0
        for doc in docs.values():
            listings[coverage_of(doc.image_urls, [u for u in doc.image_urls if u in cached])] += 1
            images += len(set(doc.image_urls))
            cached_images += len(set(doc.image_urls) & set(cached))
        total = len(docs)
        sampled_images = {url for doc in docs.values() for url in doc.image_urls if url in cached}
        phrases = {p for url in sampled_images for p in feature_phrases(cached[url].analysis)[1]}
        return {
            "operation": "coverage",
            "sampled": total,
            "full": listings["full"],
            "partial": listings["partial"],
            "none": listings["none"],
            "full_pct": round(100 * listings["full"] / total, 1) if total else 0.0,
            "images": images,
            "images_cached": cached_images,
            "images_cached_pct": round(100 * cached_images / images, 1) if images else 0.0,
            "phrases": self.phrase_coverage(phrases),
            "phrase_catalogue": self.phrases.catalogue(load_taxonomy().version),
        }

    def phrase_coverage(self, phrases: Iterable[str]) -> dict[str, Any]:
        """The distinct feature phrases given, by who classes them: the taxonomy, the phrase cache
        (a model or the offline rule, stored by classify_phrases), or nobody yet (the offline rule
        decides at split time)."""
        taxonomy = load_taxonomy()
        distinct = {taxonomy.canonical(p): p for p in phrases}
        unknown = {taxonomy.key(p) for p in distinct.values() if taxonomy.classify(p) is None}
        stored = self.phrases.get_many(unknown)
        by_llm = sum(1 for s in stored.values() if s.method == "llm")
        classified = len(distinct) - len(unknown) + len(stored)
        return {
            "taxonomy_version": taxonomy.version,
            "distinct": len(distinct),
            "by_taxonomy": len(distinct) - len(unknown),
            "cached_by_llm": by_llm,
            "cached_by_offline_rule": len(stored) - by_llm,
            "unclassified": len(unknown) - len(stored),
            "classified_pct": round(100 * classified / len(distinct), 1) if distinct else 0.0,
        }

    def dry_run(
        self, sample: int | None = 5, zpids: list[str] | None = None, seed: int = 0, force: bool = False
    ) -> dict[str, Any]:
        """Before and after for each chosen listing, with what an execute (forced or not) would do
        with it, decided as execute decides (`to_split`, `split_outcome`); writes nothing."""
        chosen = self._sample(sample, zpids, seed)
        docs = self.listings.get_docs(chosen)
        splits, _ = self._split_for(doc for doc in docs.values() if to_split(doc, force))
        rows: list[dict[str, Any]] = []
        for zpid in chosen:
            if zpid not in docs:
                rows.append({"zpid": zpid, "status": "not_found"})
                continue
            doc = docs[zpid]
            before = {"visual_features_text": doc.source.get("visual_features_text")}
            if zpid not in splits:
                current = {name: doc.source.get(name) for name in SPLIT_FIELDS}
                rows.append({"zpid": zpid, "status": WOULD["skipped_migrated"], "before": before, "after": current})
                continue
            coverage, fields = splits[zpid]
            status = WOULD[split_outcome(doc, fields)]
            rows.append({"zpid": zpid, "coverage": coverage, "status": status, "before": before, "after": fields})
        return {"operation": "dry_run", "listings": rows, "written": 0}

    # --- backup -----------------------------------------------------------------------------------
    def backup_location(self, destination: str | None = None) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return destination or f"s3://{self.artifacts_bucket}/backups/{self.listings.name}-{stamp}.jsonl"

    def backup(self, destination: str | None = None, part_size: int = 500) -> dict[str, Any]:
        """Every listing's full source in id order, as JSONL parts of `part_size` listings and a manifest
        of their checksums (see `backups`); streamed, a page of listings in memory at a time."""
        location = self.backup_location(destination)
        manifest = write_backup(location, self.listings.name, self.listings.iter_docs_sorted(), part_size)
        return {
            "operation": "backup",
            **{k: v for k, v in manifest.items() if k != "parts"},
            "parts": len(manifest["parts"]),
        }

    def backup_batch(self, destination: str, batch: int, zpids: list[str]) -> dict[str, Any]:
        """One part of a fanned-out backup: these listings (a plan batch, ids ascending), as part `batch`."""
        ordered = sorted(dict.fromkeys(str(z) for z in zpids))

        def docs() -> Iterator[ListingDoc]:
            for group in batches(ordered, 100):
                found = self.listings.get_docs(group)
                yield from (found[zpid] for zpid in group if zpid in found)

        with throttling_as_retryable():
            part = write_part(destination, batch, docs())
        return {"counts": {"backed_up": part["count"], "not_found": len(ordered) - part["count"]}, "part": part}

    def finish_backup(self, destination: str, rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The manifest of a fanned-out backup, from its batches' parts (only when every batch wrote one)."""
        parts = [row["part"] for row in rows if not row.get("failed") and row.get("part")]
        manifest = write_manifest(destination, self.listings.name, parts)
        return {k: v for k, v in manifest.items() if k != "parts"} | {"parts": len(parts)}

    @staticmethod
    def load_backup(location: str) -> dict[str, dict[str, Any]]:
        """The whole backup by zpid, checksums checked. Holds every listing: for tests and small
        indexes; the operations read a backup with `BackupReader`, a part at a time."""
        reader = BackupReader(location)
        sources = dict(reader.rows())
        if len(sources) != reader.count:
            raise InvalidRequest(
                f"The backup at {location} holds {len(sources)} listings, its manifest says {reader.count}.",
                code="backup_corrupt",
            )
        return sources

    # --- plan ---------------------------------------------------------------------------------
    def plan(
        self,
        batch_size: int = 100,
        zpids: list[str] | None = None,
        run_id: str | None = None,
        operation: str = "execute",
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the batches as a JSON array manifest for the Map state's S3 ItemReader."""
        if not 1 <= batch_size <= 1000:
            raise InvalidRequest("batch_size must be between 1 and 1000.", code="invalid_batch_size")
        if operation == "execute":
            self.listings.ensure_split_mapping()
        run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        counted = Counter[str]()

        def manifest() -> Iterator[bytes]:
            # A JSON array, one item a line: the ItemReader reads it whole, `recorded_batches` a line at a time.
            yield b"["
            for number, group in enumerate(batches(self._ids(zpids), batch_size)):
                item = {"run_id": run_id, "operation": f"{operation}_batch", "batch": number, "zpids": group}
                yield (b"\n" if number == 0 else b",\n") + json.dumps(item | (options or {})).encode()
                counted["listings"] += len(group)
                counted["batches"] += 1
            yield b"\n]\n"

        key = f"migrations/{run_id}/manifest.json"
        artifacts.write_stream(f"s3://{self.artifacts_bucket}/{key}", manifest(), "application/json")
        return {
            "operation": "plan",
            "run_id": run_id,
            "listings": counted["listings"],
            "batches": counted["batches"],
            "manifest": {"bucket": self.artifacts_bucket, "key": key},
            "results_prefix": f"migrations/{run_id}/results",
        }

    # --- batch records ------------------------------------------------------------------------
    def record_batch(self, run_id: str, batch: int, result: dict[str, Any]) -> None:
        """Each completed batch leaves its result under the run, for `finish` and for audit."""
        location = f"s3://{self.artifacts_bucket}/migrations/{run_id}/batches/{batch:05d}.json"
        artifacts.write_bytes(location, json.dumps(result).encode(), "application/json")

    @staticmethod
    def planned_batches(manifest: dict[str, str]) -> Iterator[dict[str, Any]]:
        """The plan's items, a line at a time (plans write one item a line; an older one-line array is read whole)."""
        pending = b""
        for chunk in artifacts.read_chunks(f"s3://{manifest['bucket']}/{manifest['key']}"):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                yield from _plan_items(line)
        yield from _plan_items(pending)

    def recorded_batches(self, run_id: str, manifest: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every planned batch's result, streamed; a batch with no record failed (its retries and Catch ran out)."""
        for item in self.planned_batches(manifest):
            location = f"s3://{self.artifacts_bucket}/migrations/{run_id}/batches/{item['batch']:05d}.json"
            try:
                yield json.loads(artifacts.read_bytes(location))
            except (ClientError, FileNotFoundError):
                yield (
                    {
                        "batch": item["batch"],
                        "zpids": item["zpids"],
                        "failed": True,
                        "error": {"Error": "no result recorded"},
                    }
                )

    # --- execute ------------------------------------------------------------------------------
    def execute_batch(self, zpids: list[str], force: bool = False) -> BatchReport:
        """Migrate one batch: skip migrated listings (unless forced), write the three fields guarded
        by version; on a conflict re-read, recompute and try again."""
        with throttling_as_retryable():
            return self._execute_batch(zpids, force)

    def _execute_batch(self, zpids: list[str], force: bool) -> BatchReport:
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
            conflicts = report.tally(self.listings.update_fields_guarded(updates), "updated")
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

    # --- verify -------------------------------------------------------------------------------
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
        changed_other, missing, gone = _Tally(), _Tally(), _Tally()
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

    # --- rollback -----------------------------------------------------------------------------
    def rollback_batch(
        self,
        zpids: list[str],
        mode: Literal["remove", "restore"] = "remove",
        backup: str | None = None,
        backup_sources: dict[str, dict[str, Any]] | None = None,
    ) -> BatchReport:
        """Remove the three fields (re-indexing the source without them, since there are no
        scripts) or put back the backup's source, each write guarded by version. A restoring batch
        reads only the backup parts its zpids fall in."""
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
                else:
                    target = strip_split(doc.source)
                if target == doc.source:
                    report.counts["unchanged"] += 1
                    continue
                replacements.append((doc, target))
            conflicts = report.tally(self.listings.replace_sources_guarded(replacements), "rolled_back")
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
        differing, missing = _Tally(20), _Tally(20)
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


def _presence(docs: Iterable[ListingDoc]) -> dict[str, int]:
    """field_presence's figures, for these listings."""
    figures = Counter({"total": 0, "all_fields": 0, **dict.fromkeys(SPLIT_FIELDS, 0)})
    for doc in docs:
        figures["total"] += 1
        present = [name for name in SPLIT_FIELDS if doc.source.get(name) is not None]  # as `exists`
        figures.update(present)
        figures["all_fields"] += len(present) == len(SPLIT_FIELDS)
    return dict(figures)


@dataclass
class _Tally:
    """A count and the first few ids (streams come in id order, so these are the smallest)."""

    keep: int = 10
    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, zpid: str) -> None:
        self.count += 1
        if len(self.first) < self.keep:
            self.first.append(zpid)


def _plan_items(line: bytes) -> Iterator[dict[str, Any]]:
    text = line.strip().rstrip(b",")
    if text in (b"", b"[", b"]"):
        return
    if text.startswith(b"["):  # a plan written as one line
        yield from json.loads(text)
        return
    yield json.loads(text)


THROTTLING_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}


@contextmanager
def throttling_as_retryable() -> Iterator[None]:
    """Stores that still push back after their clients' retries surface as `Throttled`, the error
    name the state machine retries with backoff."""
    try:
        yield
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in THROTTLING_CODES:
            raise Throttled(f"DynamoDB is throttling: {error}") from error
        raise
    except TransportError as error:
        if error.status_code in (429, 502, 503, 504):
            raise Throttled(f"OpenSearch answered {error.status_code}") from error
        raise
    except UpstreamError as error:
        if error.code == "cache_throttled":
            raise Throttled(error.message) from error
        raise


class BatchFailed(UpstreamError):
    """Some listings of a batch could not be written; the Map state retries or reports the batch."""

    code = "batch_failed"


class Throttled(UpstreamError):
    """DynamoDB or OpenSearch kept pushing back past their clients' own retries; retry the batch later."""

    code = "throttled"
