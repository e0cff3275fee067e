"""The catalogue's three stores compared, per storefront, and put back into agreement.

A photo is stored in three writes, each to its own durable store (`dedupe.py`): its object in S3,
its vector in Milvus, its record in the catalogue table. A function that dies between two of them
leaves them disagreeing; the next retry usually completes the work (every write is keyed by
content), and this reconciler repairs what no retry will:

| finding                  | meaning                                             | repair                          |
|--------------------------|-----------------------------------------------------|---------------------------------|
| `photo_without_vector`   | a stored record and its object, no vector           | embedded again, vector written  |
| `photo_without_record`   | a catalogue object no record or tag accounts for    | indexed where it lies           |
| `record_without_object`  | a stored record whose object is gone                | record and vector deleted       |
| `vector_without_object`  | a vector whose object is gone                       | vector deleted                  |
| `vector_rolled_back`     | a vector of a claim that yielded or was abandoned   | vector deleted, claim released  |
| `upload_status_missing`  | a presigned upload catalogued but never tagged      | tagged (its status reads right) |
| `two_records_one_object` | two stored records name one object                  | quarantined: listed, untouched  |
| `delete_unfinished`      | a delete died (its lease passed), its object gone   | vector and record deleted       |
|                          | or overwritten (another stored record claims it)    | (the object is left alone)      |
| `delete_abandoned`       | a delete died before deleting its object            | record put back as stored       |
| `record_not_listed`      | a stored record without the listing's index key     | the key written (`list_again`): |
|                          | (written before it existed; an old local snapshot)  | GET /images lists it            |

Claims still within their lease are in flight and left alone. Vectors of images indexed before the
registry kept records (no record, object present) are legitimate and counted, not changed.
A dry run reports the same findings and writes nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from listing_vision.config import Storefront, get_settings
from listing_vision.errors import Conflict
from listing_vision.jewelry import storage
from listing_vision.jewelry.claims import ContentRecord, new_owner
from listing_vision.jewelry.uploads import UploadIndexer, inbox_upload_id
from listing_vision.jewelry.vector_index import Hit, vector_id
from listing_vision.observability import logger, metrics
from listing_vision.resources import INCOMING_PREFIX, UPLOAD_STATUS_TAG

SAMPLE = 10  # ids listed per finding in the report


@dataclass
class Report:
    website: str
    dry_run: bool
    findings: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    checked: Counter[str] = field(default_factory=Counter)

    def found(self, kind: str, what: str) -> None:
        self.findings[kind] += 1
        if len(self.samples[kind]) < SAMPLE:
            self.samples[kind].append(what)

    def to_json(self) -> dict[str, Any]:
        return {
            "website": self.website,
            "dry_run": self.dry_run,
            "checked": dict(self.checked),
            "findings": dict(self.findings),
            "repaired": dict(self.repaired),
            "samples": dict(self.samples),
            "quarantined": self.quarantined,
            "consistent": not self.findings,
        }


class Reconciler:
    """Given the upload indexer (which holds the catalogue's stores and the model)."""

    def __init__(self, indexer: UploadIndexer):
        self.indexer = indexer
        self.images = indexer.images
        self.claims = indexer.claims
        self.clock = indexer.claims.clock  # the claims' own: a lease is judged by the clock that took it
        self.vectors = indexer.dedupe.vectors

    def run(self, website: Storefront, dry_run: bool = False) -> dict[str, Any]:
        report = Report(website, dry_run)
        records = dict(self.claims.records(website))
        rows = {row.id: row for row in self.vectors.rows(website)}
        report.checked.update(records=len(records), vectors=len(rows))
        self._records(website, records, rows, report)
        self._vectors(website, records, rows, report)
        self._objects(website, records, report)
        for kind, count in report.findings.items():
            metrics.add_metric(name="ReconcileFindings", unit="Count", value=count)
            logger.info("reconcile finding", extra={"website": website, "kind": kind, "count": count})
        metrics.add_metric(name="ReconcileRepairs", unit="Count", value=sum(report.repaired.values()))
        return report.to_json()

    # --- each stored record: its object and its vector ---------------------------------------------
    def _records(
        self, website: Storefront, records: dict[str, ContentRecord], rows: dict[int, Hit], report: Report
    ) -> None:
        by_path: dict[str, list[str]] = defaultdict(list)
        for sha, record in records.items():
            if record.stored and record.path:
                by_path[record.path].append(sha)
        for path, shas in by_path.items():
            if len(shas) > 1:  # which one is the photo is for a person to decide
                report.found("two_records_one_object", path)
                report.quarantined.append({"path": path, "sha256": sorted(shas)})
        conflicted = {sha for shas in by_path.values() if len(shas) > 1 for sha in shas}
        for sha, record in records.items():
            if record.deleting and record.lease_until < self.clock() and record.path:
                self._unfinished_delete(website, sha, record, report, overwritten=bool(by_path.get(record.path)))
            if record.stored and not record.listed:
                report.found("record_not_listed", record.path or sha)
                if not report.dry_run and self.claims.list_again(website, sha):
                    report.repaired["record_not_listed"] += 1
            if not record.stored or not record.path or sha in conflicted:
                continue
            image = storage.StoredImage.from_uri(record.path)
            row = vector_id(website, sha)
            if self.images.head(image) is None:
                report.found("record_without_object", record.path)
                if not report.dry_run and self.claims.forget(website, sha, record):
                    self.vectors.delete(row)
                    report.repaired["record_without_object"] += 1
            elif row not in rows and (record.vector_id is None or record.vector_id not in rows):
                report.found("photo_without_vector", record.path)
                if not report.dry_run:
                    self._index(image, "photo_without_vector", ("indexed",), report)

    def _unfinished_delete(
        self, website: Storefront, sha: str, record: ContentRecord, report: Report, overwritten: bool
    ) -> None:
        """A delete that died (`catalogue.py`): finished when its object is gone, or holds another stored
        image's bytes (`overwritten`: the indexer removing the record of an overwritten key died,
        `overwrites.py`; the object is kept); else the image is put back (this function deletes no
        photo: the client's DELETE, which answered an error, is rerun)."""
        assert record.path
        if overwritten or self.images.head(storage.StoredImage.from_uri(record.path)) is None:
            report.found("delete_unfinished", record.path)
            if not report.dry_run:
                owner = new_owner()
                if self.claims.begin_delete(website, sha, owner) is not None:
                    self.vectors.delete(vector_id(website, sha))
                    self.claims.end_delete(website, sha, owner)
                    report.repaired["delete_unfinished"] += 1
        else:
            report.found("delete_abandoned", record.path)
            if not report.dry_run and self.claims.undo_delete(website, sha, record):
                report.repaired["delete_abandoned"] += 1

    # --- each vector: a record that accounts for it, an object it points at --------------------------
    def _vectors(
        self, website: Storefront, records: dict[str, ContentRecord], rows: dict[int, Hit], report: Report
    ) -> None:
        now = self.clock()
        for row in rows.values():
            record = records.get(row.sha256)
            if record is not None and (record.stored or record.deleting):
                continue  # checked with its record
            if record is not None and not record.yielded and record.lease_until >= now:
                continue  # a claim in flight
            if record is not None:  # yielded, or a claim whose owner died: its vector was never kept
                report.found("vector_rolled_back", row.path)
                if not report.dry_run:
                    self.vectors.delete(row.id)
                    if not record.yielded:
                        self.claims.forget(website, row.sha256, record)
                    report.repaired["vector_rolled_back"] += 1
            elif self.images.head(storage.StoredImage.from_uri(row.path)) is None:
                report.found("vector_without_object", row.path)
                if not report.dry_run:
                    self.vectors.delete(row.id)
                    report.repaired["vector_without_object"] += 1
            else:
                report.checked["vectors_before_the_registry"] += 1

    # --- each object of the catalogue's prefixes: accounted for ----------------------------------------
    def _objects(self, website: Storefront, records: dict[str, ContentRecord], report: Report) -> None:
        bucket = self.images.bucket_for(website)
        recorded = {record.path for record in records.values() if record.stored or record.deleting}
        for prefix in (storage.CATALOGUE_PREFIX, INCOMING_PREFIX):
            for key in self.images.keys(bucket, prefix):
                report.checked["objects"] += 1
                image = storage.StoredImage(bucket, key)
                if image.s3_uri in recorded and prefix == storage.CATALOGUE_PREFIX:
                    continue  # an API upload: its status is its record
                status = self.images.tags(image).get(UPLOAD_STATUS_TAG)
                if image.s3_uri in recorded:
                    if status != "indexed":  # stored, but its uploader would read "pending" for ever
                        report.found("upload_status_missing", image.s3_uri)
                        if not report.dry_run:
                            self.images.tag(image, {UPLOAD_STATUS_TAG: "indexed"})
                            report.repaired["upload_status_missing"] += 1
                    continue
                if status in ("duplicate", "invalid", "form_reused"):
                    continue  # its outcome is recorded on it
                if status == "indexed" and prefix == INCOMING_PREFIX:
                    continue  # an inbox upload: its photo is its catalogue copy, checked by its record
                upload_id = inbox_upload_id(key) if prefix == INCOMING_PREFIX else None
                settled = self.indexer.uploads.get(website, upload_id) if upload_id else None
                if settled is not None and settled.catalogued:  # catalogued by a run that died before tagging
                    report.found("upload_status_missing", image.s3_uri)
                    if not report.dry_run:  # indexed again: the photo itself is tagged, another post form_reused
                        self._index(image, "upload_status_missing", ("already_indexed", "form_reused"), report)
                    continue
                if prefix == storage.CATALOGUE_PREFIX and self._claimed_in_flight(key, records):
                    continue
                report.found("photo_without_record", image.s3_uri)
                if not report.dry_run:
                    self._index(image, "photo_without_record", ("indexed", "duplicate", "invalid"), report)

    def _index(self, image: storage.StoredImage, kind: str, repaired: tuple[str, ...], report: Report) -> None:
        """Repair by indexing the object, as its upload trigger would. Its content's claim may be held by
        another request (storing it now, or killed within its lease): that one is left to its holder, or
        to a run after the lease, and the rest of the catalogue is still reconciled."""
        try:
            outcome = self.indexer.index_objects(image.bucket, [image.key])[0]
        except Conflict:
            report.checked["left_to_a_claim_in_flight"] += 1
            return
        report.repaired[kind] += outcome.status in repaired

    def _claimed_in_flight(self, key: str, records: dict[str, ContentRecord]) -> bool:
        """A catalogue object whose content's claim is still leased: its request is storing it now."""
        sha = key.rsplit("/", 1)[-1].partition(".")[0]
        record = records.get(sha)
        return record is not None and not record.stored and not record.yielded and record.lease_until >= self.clock()


class ReconcileRequest(BaseModel):
    """The reconcile function's event (the hourly schedule sends `{}`: every storefront, repairing)."""

    model_config = ConfigDict(extra="forbid")
    operation: Literal["reconcile"] = "reconcile"
    websites: list[Storefront] = Field(default_factory=lambda: list(get_settings().storefront_names), min_length=1)
    dry_run: bool = False


def reconcile_all(reconciler: Reconciler, request: ReconcileRequest) -> dict[str, Any]:
    reports = [reconciler.run(website, request.dry_run) for website in dict.fromkeys(request.websites)]
    return {"reports": reports, "consistent": all(report["consistent"] for report in reports)}


def main(argv: list[str] | None = None) -> int:
    """`make reconcile [ARGS=--dry-run]`: exit 1 when a dry run finds something to repair."""
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m listing_vision.jewelry.reconcile", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--website", choices=get_settings().storefront_names, action="append", help="default: every storefront"
    )
    parser.add_argument("--dry-run", action="store_true", help="report what is wrong; write nothing")
    parser.add_argument("--via-lambda", metavar="FUNCTION", help="run in this Lambda function (the reconcile one)")
    args = parser.parse_args(argv)
    request = ReconcileRequest(websites=args.website or list(get_settings().storefront_names), dry_run=args.dry_run)
    if args.via_lambda:
        from listing_vision import aws

        response = aws.client("lambda", read_timeout_s=900).invoke(
            FunctionName=args.via_lambda, Payload=request.model_dump_json().encode()
        )
        result = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            print(json.dumps(result, indent=2))
            return 2
    else:
        from listing_vision.embeddings.factory import get_embedder
        from listing_vision.jewelry.dedupe import DedupeService
        from listing_vision.jewelry.stores import CatalogueStores

        reconciler = Reconciler(UploadIndexer(DedupeService(get_embedder(), CatalogueStores.from_settings())))
        result = reconcile_all(reconciler, request)
    print(json.dumps(result, indent=2))
    return 0 if result["consistent"] or not args.dry_run else 1


if __name__ == "__main__":
    raise SystemExit(main())
