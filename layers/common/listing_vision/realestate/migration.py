"""The visual-features migration: split each listing's aggregated text into exterior, interior and
amenities fields from the cached per-image analyses, without re-analysing a single image.

Operations (each a Step Functions execution and a CLI command, see `migrate.py`):
  coverage  how much of a sample the cache covers (full / partial / none), and how many of its
            feature phrases are classified (taxonomy, phrase cache, offline rule)
  dry_run   before and after for a sample or listed zpids; writes nothing
  backup    every listing's source to JSONL (S3 or a path) with a checksum manifest
  plan      the batches of zpids an execute (or rollback) fans out over, as an S3 manifest
  execute   write the three fields, batch by batch; resumable (migrated listings are skipped
            unless forced; a forced listing whose fields come out the same is not written); every
            write is guarded by the version it was computed from
  verify    listings with each field (the success figure), spot checks, and proof nothing else changed
  rollback  remove the three fields, or restore sources exactly from a backup, then prove it

Only the three split fields are ever written; any other field of a listing stays byte-identical.
A listing that changed between our read and our write is re-read and recomputed (optimistic
concurrency), never overwritten. The split's classes of phrases the taxonomy does not know are
read from the phrase cache in one bulk per batch; the migration never calls a model (the
`classify_phrases` operation, run before, does: `phrase_classification.py`).
"""

from __future__ import annotations

import hashlib
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
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest, UpstreamError
from listing_vision.observability import logger
from listing_vision.realestate import artifacts
from listing_vision.realestate.features import SPLIT_FIELDS, feature_phrases, split_visual_features
from listing_vision.realestate.listings_index import (
    ListingDoc,
    WriteResult,
    all_ids,
    ensure_split_mapping,
    field_presence,
    get_docs,
    opensearch_client,
    replace_sources_guarded,
    scan_docs,
    update_fields_guarded,
)
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


def batches(items: list[str], size: int) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def strip_split(source: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in source.items() if key not in SPLIT_FIELDS}


class Migration:
    def __init__(
        self,
        search: OpenSearch | None = None,
        cache: VisionCache | None = None,
        index: str | None = None,
        phrases: PhraseStore | None = None,
    ):
        settings = get_settings()
        self.search = search or opensearch_client()
        self.cache = cache or VisionCache()
        self.phrases = phrases or PhraseStore()
        self.index = index or settings.listings_index
        self.artifacts_bucket = settings.artifacts_bucket

    # --- reading ------------------------------------------------------------------------------
    def _sample(self, sample: int | None, zpids: list[str] | None, seed: int) -> list[str]:
        if zpids:
            return list(dict.fromkeys(str(z) for z in zpids))
        ids = all_ids(self.search, self.index)
        if sample is None or sample >= len(ids):
            return ids
        return sorted(random.Random(seed).sample(ids, sample))

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
        docs = get_docs(self.search, self.index, chosen, source=["image_vectors"])
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

    def dry_run(self, sample: int | None = 5, zpids: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
        chosen = self._sample(sample, zpids, seed)
        docs = get_docs(self.search, self.index, chosen)
        splits, _ = self._split_for(docs.values())
        rows: list[dict[str, Any]] = []
        for zpid in chosen:
            if zpid not in docs:
                rows.append({"zpid": zpid, "status": "not_found"})
                continue
            coverage, fields = splits[zpid]
            rows.append(
                {
                    "zpid": zpid,
                    "coverage": coverage,
                    "status": "would_update" if fields else "would_skip_no_cache",
                    "before": {"visual_features_text": docs[zpid].source.get("visual_features_text")},
                    "after": fields,
                }
            )
        return {"operation": "dry_run", "listings": rows, "written": 0}

    # --- backup -----------------------------------------------------------------------------------
    def backup(self, destination: str | None = None) -> dict[str, Any]:
        """Every listing's full source, sorted by id, as JSONL; a manifest beside it has the checksum."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        destination = destination or f"s3://{self.artifacts_bucket}/backups/{self.index}-{stamp}.jsonl"
        docs = sorted(scan_docs(self.search, self.index), key=lambda d: d.zpid)
        body = "".join(json.dumps({"_id": d.zpid, "_source": d.source}, sort_keys=True) + "\n" for d in docs).encode()
        manifest = {
            "index": self.index,
            "location": destination,
            "count": len(docs),
            "bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        artifacts.write_bytes(destination, body, "application/x-ndjson")
        artifacts.write_bytes(
            destination + ".manifest.json", json.dumps(manifest, indent=2).encode(), "application/json"
        )
        return {"operation": "backup", **manifest}

    @staticmethod
    def load_backup(location: str) -> dict[str, dict[str, Any]]:
        """The backup's sources by zpid, after checking them against the manifest's checksum."""
        body = artifacts.read_bytes(location)
        manifest = json.loads(artifacts.read_bytes(location + ".manifest.json"))
        if hashlib.sha256(body).hexdigest() != manifest["sha256"]:
            raise InvalidRequest(
                f"The backup at {location} does not match its manifest's checksum.", code="backup_corrupt"
            )
        sources = {}
        for line in body.decode().splitlines():
            if line.strip():
                row = json.loads(line)
                sources[row["_id"]] = row["_source"]
        if len(sources) != manifest["count"]:
            raise InvalidRequest(
                f"The backup at {location} holds {len(sources)} listings, its manifest says {manifest['count']}.",
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
            ensure_split_mapping(self.search, self.index)
        run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        chosen = self._sample(None, zpids, 0)
        items = [
            {"run_id": run_id, "operation": f"{operation}_batch", "batch": number, "zpids": group, **(options or {})}
            for number, group in enumerate(batches(chosen, batch_size))
        ]
        key = f"migrations/{run_id}/manifest.json"
        artifacts.write_bytes(f"s3://{self.artifacts_bucket}/{key}", json.dumps(items).encode(), "application/json")
        return {
            "operation": "plan",
            "run_id": run_id,
            "listings": len(chosen),
            "batches": len(items),
            "manifest": {"bucket": self.artifacts_bucket, "key": key},
            "results_prefix": f"migrations/{run_id}/results",
        }

    # --- batch records ------------------------------------------------------------------------
    def record_batch(self, run_id: str, batch: int, result: dict[str, Any]) -> None:
        """Each completed batch leaves its result under the run, for `finish` and for audit."""
        location = f"s3://{self.artifacts_bucket}/migrations/{run_id}/batches/{batch:05d}.json"
        artifacts.write_bytes(location, json.dumps(result).encode(), "application/json")

    def recorded_batches(self, run_id: str, manifest: dict[str, str]) -> list[dict[str, Any]]:
        """Every planned batch's result; a batch with no record failed (its retries and Catch ran out)."""
        planned = json.loads(artifacts.read_bytes(f"s3://{manifest['bucket']}/{manifest['key']}"))
        rows = []
        for item in planned:
            location = f"s3://{self.artifacts_bucket}/migrations/{run_id}/batches/{item['batch']:05d}.json"
            try:
                rows.append(json.loads(artifacts.read_bytes(location)))
            except (ClientError, FileNotFoundError):
                rows.append(
                    {
                        "batch": item["batch"],
                        "zpids": item["zpids"],
                        "failed": True,
                        "error": {"Error": "no result recorded"},
                    }
                )
        return rows

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
            docs = get_docs(self.search, self.index, pending)
            report.counts["not_found"] += len(set(pending) - set(docs)) if round_number == 0 else 0
            # Not yet migrated, forced, or left by ingest with images still pending (recomputed from
            # whatever the cache holds now; only the three fields are written).
            todo = [
                doc
                for doc in docs.values()
                if force or not all(f in doc.source for f in SPLIT_FIELDS) or doc.source.get("visual_features_pending")
            ]
            if round_number == 0:
                report.counts["skipped_migrated"] += len(docs) - len(todo)
            splits, unclassified = self._split_for(todo)
            if round_number == 0 and unclassified:
                report.counts["phrases_offline_rule"] += unclassified  # distinct in this batch
            updates = []
            for doc in todo:
                coverage, fields = splits[doc.zpid]
                if fields is None:
                    report.counts["skipped_no_cache"] += 1
                    continue
                if coverage == "partial":
                    report.counts["partial_coverage"] += 1
                if all(doc.source.get(name) == value for name, value in fields.items()):
                    report.counts["unchanged"] += 1  # forced, and it comes out the same: no write
                    continue
                updates.append((doc, fields))
            conflicts = report.tally(update_fields_guarded(self.search, self.index, updates), "updated")
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
        ensure_split_mapping(self.search, self.index)
        chosen = self._sample(None, zpids, 0)
        total = BatchReport()
        for group in batches(chosen, batch_size):
            total.merge(self.execute_batch(group, force))
            if progress:
                progress(len(group))
        return {"operation": "execute", "listings": len(chosen), **total.to_json()}

    # --- verify -------------------------------------------------------------------------------
    def verify(self, backup: str | None = None, spot_checks: int = 10, seed: int = 0) -> dict[str, Any]:
        """The success criteria: ≥ 90 % of listings with all three fields, and (given a backup)
        no field other than the three changed on any listing. Fails (passed=false) otherwise."""
        self.search.indices.refresh(index=self.index)
        figures = field_presence(self.search, self.index, SPLIT_FIELDS)
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
        checks: list[str] = []
        if fraction < SUCCESS_FRACTION:
            checks.append(f"only {report['has_all_three_pct']} % of listings have all three fields (need 90 %)")
        before = self.load_backup(backup) if backup else None
        migrated = []
        changed_other: list[str] = []
        missing: list[str] = []
        seen: set[str] = set()
        for doc in scan_docs(self.search, self.index):
            seen.add(doc.zpid)
            if all(name in doc.source for name in SPLIT_FIELDS):
                migrated.append(doc)
            if before is not None:
                if doc.zpid not in before:
                    missing.append(doc.zpid)
                elif strip_split(doc.source) != strip_split(before[doc.zpid]):
                    changed_other.append(doc.zpid)
        if before is not None:
            gone = sorted(set(before) - seen)
            report["other_fields_changed"] = len(changed_other)
            report["other_fields_changed_sample"] = sorted(changed_other)[:10]
            report["listings_not_in_backup"] = len(missing)
            report["listings_lost_since_backup"] = len(gone)
            if changed_other:
                checks.append(f"{len(changed_other)} listings changed in fields other than the three")
            if gone:
                checks.append(f"{len(gone)} listings of the backup are gone")
        rng = random.Random(seed)
        spots = rng.sample(migrated, min(spot_checks, len(migrated)))
        report["spot_checks"] = [
            {
                "zpid": doc.zpid,
                "before": (before or {}).get(doc.zpid, doc.source).get("visual_features_text"),
                "after": {name: doc.source.get(name) for name in SPLIT_FIELDS},
            }
            for doc in sorted(spots, key=lambda d: d.zpid)
        ]
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
        scripts) or put back the backup's source, each write guarded by version."""
        if mode == "restore" and backup_sources is None:
            if not backup:
                raise InvalidRequest("rollback mode 'restore' needs a backup location.", code="backup_required")
            backup_sources = self.load_backup(backup)
        report = BatchReport()
        pending = list(dict.fromkeys(str(z) for z in zpids))
        for _ in range(MAX_CONFLICT_ROUNDS):
            docs = get_docs(self.search, self.index, pending)
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
            conflicts = report.tally(replace_sources_guarded(self.search, self.index, replacements), "rolled_back")
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
        sources = self.load_backup(backup) if backup else None
        if mode == "restore" and sources is None:
            raise InvalidRequest("rollback mode 'restore' needs a backup location.", code="backup_required")
        chosen = self._sample(None, zpids, 0)
        total = BatchReport()
        for group in batches(chosen, batch_size):
            total.merge(self.rollback_batch(group, mode, backup_sources=sources))
            if progress:
                progress(len(group))
        result: dict[str, Any] = {"operation": "rollback", "mode": mode, "listings": len(chosen), **total.to_json()}
        if sources is not None:
            result["proof"] = self.compare_with_backup(sources, ignore_split=(mode == "remove"))
        return result

    def compare_with_backup(self, sources: dict[str, dict[str, Any]], ignore_split: bool = False) -> dict[str, Any]:
        """Every listing's source against the backup: identical (or identical but for the three fields)."""
        self.search.indices.refresh(index=self.index)
        differing, extra = [], []
        seen = set()
        for doc in scan_docs(self.search, self.index):
            seen.add(doc.zpid)
            if doc.zpid not in sources:
                extra.append(doc.zpid)
                continue
            current, saved = (
                (strip_split(doc.source), strip_split(sources[doc.zpid]))
                if ignore_split
                else (doc.source, sources[doc.zpid])
            )
            if current != saved:
                differing.append(doc.zpid)
        missing = sorted(set(sources) - seen)
        return {
            "identical": not (differing or missing),
            "compared": len(seen),
            "differing": sorted(differing)[:20],
            "differing_count": len(differing),
            "missing": missing[:20],
            "missing_count": len(missing),
            "not_in_backup": len(extra),
        }


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
