"""The visual-features migration: split each listing's aggregated text into exterior, interior and
amenities fields from the cached per-image analyses, without re-analysing a single image.

Operations (each a Step Functions execution and a CLI command, see `migrate.py`):
  coverage  how much of a sample the cache covers (full / partial / none)
  dry_run   before and after for a sample or listed zpids; writes nothing
  backup    every listing's source to JSONL (S3 or a path) with a checksum manifest
  plan      the batches of zpids an execute (or rollback) fans out over, as an S3 manifest
  execute   write the three fields, batch by batch; resumable (migrated listings are skipped
            unless forced); every write is guarded by the version it was computed from
  verify    the seed's monitoring figures, spot checks, and proof nothing else changed
  rollback  remove the three fields, or restore sources exactly from a backup, then prove it

Only the three split fields are ever written; any other field of a listing stays byte-identical.
A listing that changed between our read and our write is re-read and recomputed (optimistic
concurrency), never overwritten.
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
from listing_vision.realestate.features import SPLIT_FIELDS, split_visual_features
from listing_vision.realestate.listings_index import (
    ListingDoc,
    all_ids,
    ensure_split_mapping,
    field_presence,
    get_docs,
    opensearch_client,
    replace_sources_guarded,
    scan_docs,
    update_fields_guarded,
)
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


def batches(items: list[str], size: int) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def strip_split(source: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in source.items() if key not in SPLIT_FIELDS}


def source_digest(source: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(source, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Migration:
    def __init__(self, search: OpenSearch | None = None, cache: VisionCache | None = None, index: str | None = None):
        settings = get_settings()
        self.search = search or opensearch_client()
        self.cache = cache or VisionCache()
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

    def _split_for(self, docs: Iterable[ListingDoc]) -> dict[str, tuple[str, dict[str, str] | None]]:
        """zpid → (coverage, the three fields or None when nothing of the listing is cached)."""
        docs = list(docs)
        cached = self.cache.get_many(url for doc in docs for url in doc.image_urls)
        out: dict[str, tuple[str, dict[str, str] | None]] = {}
        for doc in docs:
            analyses = [cached[url].analysis for url in doc.image_urls if url in cached]
            coverage = coverage_of(doc.image_urls, (url for url in doc.image_urls if url in cached))
            out[doc.zpid] = (coverage, split_visual_features(analyses).as_fields() if analyses else None)
        return out

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
        }

    def dry_run(self, sample: int | None = 5, zpids: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
        chosen = self._sample(sample, zpids, seed)
        docs = get_docs(self.search, self.index, chosen)
        splits = self._split_for(docs.values())
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
            splits = self._split_for(todo)
            updates = []
            for doc in todo:
                coverage, fields = splits[doc.zpid]
                if fields is None:
                    report.counts["skipped_no_cache"] += 1
                    continue
                if coverage == "partial":
                    report.counts["partial_coverage"] += 1
                updates.append((doc, fields))
            conflicts = []
            for result in update_fields_guarded(self.search, self.index, updates):
                if result.status == 200:
                    report.counts["updated"] += 1
                elif result.status == 409:
                    conflicts.append(result.zpid)
                elif result.status == 404:
                    report.counts["not_found"] += 1
                else:
                    report.failed[result.zpid] = f"{result.status} {result.error}"
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
        """The seed's success criteria: ≥ 90 % of listings with all three fields, and (given a backup)
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
            conflicts = []
            for result in replace_sources_guarded(self.search, self.index, replacements):
                if result.status == 200:
                    report.counts["rolled_back"] += 1
                elif result.status == 409:
                    conflicts.append(result.zpid)
                else:
                    report.failed[result.zpid] = f"{result.status} {result.error}"
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


def collect_batch_results(map_output: Any) -> list[dict[str, Any]]:
    """The Map's per-batch results: inline (a list), or through its ResultWriter manifest in S3."""
    if isinstance(map_output, list):
        return [row for row in map_output if isinstance(row, dict)]
    details = (map_output or {}).get("ResultWriterDetails") if isinstance(map_output, dict) else None
    if not details:
        return []
    manifest = json.loads(artifacts.read_bytes(f"s3://{details['Bucket']}/{details['Key']}"))
    rows: list[dict[str, Any]] = []
    for written in manifest.get("ResultFiles", {}).values():
        for entry in written:
            for result in json.loads(artifacts.read_bytes(f"s3://{manifest['DestinationBucket']}/{entry['Key']}")):
                output = result.get("Output")
                rows.append(json.loads(output) if isinstance(output, str) else {"failed": True, "error": result})
    return rows


def summarise_batches(rows: list[dict[str, Any]]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    failed = []
    for row in rows:
        if row.get("failed"):
            failed.append(
                {
                    "batch": row.get("batch"),
                    "zpids": len(row.get("zpids") or []),
                    "error": (row.get("error") or {}).get("Error", "unknown"),
                }
            )
        counts.update(row.get("counts") or {})
    return {"batches": len(rows), "batches_failed": len(failed), "failed_batches": failed[:20], "counts": dict(counts)}


def finish(request: dict[str, Any], migration: Migration) -> dict[str, Any]:
    """After the Map: add up the batches, then verify (execute) or prove the rollback."""
    plan = request.get("plan") or {}
    rows = migration.recorded_batches(plan["run_id"], plan["manifest"]) if plan.get("run_id") else []
    if not rows:  # no records (an older run): what the Map itself returned
        rows = collect_batch_results(request.get("batches"))
    summary = summarise_batches(rows)
    result: dict[str, Any] = {
        "operation": request.get("operation"),
        "run_id": (request.get("plan") or {}).get("run_id"),
        **summary,
    }
    if request.get("operation") == "rollback":
        if request.get("backup"):
            sources = migration.load_backup(request["backup"])
            result["proof"] = migration.compare_with_backup(
                sources, ignore_split=request.get("mode", "remove") == "remove"
            )
        return result
    result["verify"] = migration.verify(request.get("backup"), int(request.get("spot_checks", 10)))
    result["passed"] = result["verify"]["passed"] and not summary["batches_failed"]
    return result


def run_operation(event: dict[str, Any], migration: Migration | None = None) -> dict[str, Any]:
    """One operation from a console-friendly JSON event (the Step Functions tasks and direct invokes)."""
    migration = migration or Migration()
    operation = event.get("operation")
    if operation not in ("plan", "finish", "record_failure") and isinstance(event.get("request"), dict):
        event = {**event["request"], "operation": operation}  # how the state machine forwards its input
    zpids = [str(z) for z in event.get("zpids") or []] or None
    if operation == "coverage":
        return migration.coverage(sample=int(event.get("sample", 100)), zpids=zpids)
    if operation == "dry_run":
        return migration.dry_run(sample=int(event.get("sample", 5)), zpids=zpids)
    if operation == "backup":
        return migration.backup(event.get("destination"))
    if operation == "verify":
        return migration.verify(event.get("backup"), int(event.get("spot_checks", 10)))
    if operation == "plan":
        request = event.get("request") or event
        target = request.get("operation") if request.get("operation") in ("execute", "rollback") else "execute"
        if target == "rollback" and request.get("mode") == "restore" and not request.get("backup"):
            raise InvalidRequest("rollback mode 'restore' needs a backup location.", code="backup_required")
        options = {k: request[k] for k in ("force", "mode", "backup") if k in request}
        chosen = [str(z) for z in request.get("zpids") or []] or None
        return migration.plan(int(request.get("batch_size", 100)), chosen, request.get("run_id"), str(target), options)
    if operation in ("execute_batch", "rollback_batch"):
        if operation == "execute_batch":
            report = migration.execute_batch(event["zpids"], bool(event.get("force")))
        else:
            report = migration.rollback_batch(event["zpids"], event.get("mode", "remove"), event.get("backup"))
        result = {"batch": event.get("batch"), "zpids": event["zpids"], **_raise_on_failures(report)}
        if event.get("run_id"):
            migration.record_batch(event["run_id"], int(event.get("batch", 0)), result)
        return result
    if operation == "finish":
        return finish(event.get("request") or {}, migration)
    if operation == "record_failure":
        request = event.get("request") or {}
        error = request.get("error") or {}
        failure = {
            "batch": request.get("batch"),
            "zpids": request.get("zpids") or [],
            "failed": True,
            "error": {"Error": error.get("Error", "unknown"), "Cause": str(error.get("Cause", ""))[:1000]},
        }
        if request.get("run_id"):
            migration.record_batch(request["run_id"], int(request.get("batch", 0)), failure)
        return failure
    raise InvalidRequest(
        f"Unknown operation {operation!r}; expected coverage, dry_run, backup, verify, execute or rollback.",
        code="unknown_operation",
    )


class BatchFailed(UpstreamError):
    """Some listings of a batch could not be written; the Map state retries or reports the batch."""

    code = "batch_failed"


class Throttled(UpstreamError):
    """DynamoDB or OpenSearch kept pushing back past their clients' own retries; retry the batch later."""

    code = "throttled"


def _raise_on_failures(report: BatchReport) -> dict[str, Any]:
    if report.failed:
        raise BatchFailed(f"{len(report.failed)} listings failed: {json.dumps(report.failed)[:500]}")
    return report.to_json()
