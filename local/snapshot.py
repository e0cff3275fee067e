"""Keeps the emulators' data between local runs, and across a killed process.

moto and osmem-server hold everything in memory, so the local stack writes S3 objects, DynamoDB
items, SSM parameters (the webhooks' secrets) and OpenSearch documents to `<state>/snapshot/` every
few seconds (`Snapshots`, interval `LOCAL_SNAPSHOT_INTERVAL_S`, 5 s by default; skipped while nothing
was written, local/store_writes.py) and on a clean stop, and loads them on the next start.
A process killed with -9 loses at most the writes of the last interval (plus the save in progress):
what was acknowledged before that survives. The snapshot is replaced atomically (written beside,
then renamed), so a crash mid-save leaves the previous one intact. Object bodies are kept once per
content in `<state>/blobs/` (by SHA-256), so a save re-reads and re-writes only new objects.
Milvus Lite persists by itself in `<state>/milvus.db/`; the Lambda runtime keeps its asynchronous
events in `<state>/lambda-queue/` (local/lambda_runtime.py). The stores are saved independently,
as AWS's are independent: the reconciler at start puts the catalogue back into agreement. They are
read in the reverse of the order the pipelines write them (tables, then buckets), so a record kept
always has its object; an object kept without its record is a state a crash on AWS leaves too.

Each object keeps its content type, metadata and tags (the upload trigger's `dedupe-status` and
`duplicate-of` live in tags). Restoring is not an upload: DynamoDB is restored first, then the
objects with the buckets' event notifications switched off, so no ObjectCreated fires for a
restored object (the upload trigger would otherwise dedupe every catalogue photo against the
registry before it was back, and against its own vector: "duplicate of itself").
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from opensearchpy import OpenSearch, helpers

from listing_vision import aws


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
            count += 1
    return count


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as rows:
        for line in rows:
            if line.strip():
                yield json.loads(line)


RESTORE_PUTS_AT_ONCE = 8  # a restore's objects put in parallel: about a third of the serial time here

# (bucket, key, ETag) -> the object's row without its tags: an unchanged object is not read again
ObjectCache = dict[tuple[str, str, str], dict[str, Any]]


def _write_blob(blobs: Path, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    path = blobs / digest
    if not path.exists():
        blobs.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{threading.get_ident()}.partial")
        partial.write_bytes(body)
        partial.rename(path)
    return digest


def in_process_tags(bucket: str, keys: list[str]) -> dict[str, dict[str, str]] | None:
    """These objects' tags, read in one pass from moto's S3 backend when moto runs in this process (the
    local stack's does); None when that backend does not hold the bucket and every key (a key deleted
    since the listing; moto elsewhere), and the caller asks S3 once per object. S3 has no call that
    lists many objects' tags: one GetObjectTagging per object made each save's seconds grow with the
    catalogue, every interval, while the clients' requests waited on the same interpreter."""
    from moto.s3.models import s3_backends

    for by_partition in list(s3_backends.values()):
        for backend in list(by_partition.values()):
            held = backend.buckets.get(bucket)
            if held is None:
                continue
            objects = {key: held.keys.get(key) for key in keys}
            if any(obj is None or not hasattr(obj, "arn") for obj in objects.values()):
                return None
            return {key: dict(backend.tagger.get_tag_dict_for_resource(obj.arn)) for key, obj in objects.items()}
    return None


def _s3_objects(bucket: str, blobs: Path, cache: ObjectCache) -> Iterator[dict[str, Any]]:
    s3 = aws.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        items = page.get("Contents", [])
        page_tags = in_process_tags(bucket, [item["Key"] for item in items]) or {}
        for item in items:
            known = cache.get((bucket, item["Key"], item["ETag"]))
            if known is None:
                try:
                    obj = s3.get_object(Bucket=bucket, Key=item["Key"])
                except s3.exceptions.NoSuchKey:
                    continue  # deleted since the listing
                known = {
                    "key": item["Key"],
                    "content_type": obj.get("ContentType", "binary/octet-stream"),
                    "metadata": obj.get("Metadata", {}),
                    "blob": _write_blob(blobs, obj["Body"].read()),
                }
                cache[(bucket, item["Key"], obj["ETag"])] = known
            if item["Key"] in page_tags:
                yield {**known, "tags": page_tags[item["Key"]]}
                continue
            try:
                tags = s3.get_object_tagging(Bucket=bucket, Key=item["Key"])["TagSet"]
            except s3.exceptions.ClientError:
                continue  # deleted since the listing
            yield {**known, "tags": {tag["Key"]: tag["Value"] for tag in tags}}


@contextmanager
def notifications_paused(bucket: str) -> Iterator[None]:
    """The bucket's event notifications off while the block runs, then put back as they were."""
    s3 = aws.client("s3")
    saved = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)


def _binary_as_text(value: Any, encode: bool) -> Any:
    """DynamoDB's low-level binary values (`B`, `BS`) as base64 text in the snapshot, and back."""
    convert = (lambda b: base64.b64encode(b).decode()) if encode else base64.b64decode
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "B":
                out[key] = convert(item)
            elif key == "BS":
                out[key] = [convert(b) for b in item]
            else:
                out[key] = _binary_as_text(item, encode)
        return out
    if isinstance(value, list):
        return [_binary_as_text(item, encode) for item in value]
    return value


def table_items(table: str) -> Iterator[dict[str, Any]]:
    """The table's items as a scan reads them, binary values as base64 text: from moto's backend when
    moto runs in this process (in_process_items), else scanned through the API."""
    held = in_process_items(table)
    if held is not None:
        yield from held
        return
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            yield _binary_as_text(item, encode=True)


def in_process_items(table: str) -> list[dict[str, Any]] | None:
    """The table's items as a scan reads them (binary values as base64 text), read from moto's DynamoDB
    backend when moto runs in this process (the local stack's does), with no write applied meanwhile;
    None when no backend here holds the table (moto elsewhere), and the caller scans. Scanning through
    the API had moto serialize and botocore parse every item, every interval: most of each save's time,
    while the clients' requests waited on the same interpreter (tests/integration/test_snapshot_order.py
    checks the two reads agree)."""
    from moto.dynamodb.models import dynamodb_backends

    from local.atomic_dynamodb import writes_held

    for by_region in list(dynamodb_backends.values()):
        for backend in list(by_region.values()):
            held = backend.tables.get(table)
            if held is None:
                continue
            with writes_held():
                return [_as_scanned(item.to_json()["Attributes"]) for item in held.all_items()]
    return None


def _as_scanned(value: Any) -> Any:
    """An attribute value from moto's backend as `_binary_as_text` writes a scanned one: binary as base64
    text (moto holds a top-level binary as that text already, a nested one as bytes)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _as_scanned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_scanned(item) for item in value]
    return value


def _ssm_parameters() -> Iterator[dict[str, Any]]:
    """Every SSM parameter (the webhooks' secrets), decrypted as the functions read it, with its version."""
    pages = aws.client("ssm").get_paginator("get_parameters_by_path")
    for page in pages.paginate(Path="/", Recursive=True, WithDecryption=True):
        for parameter in page["Parameters"]:
            yield {name.lower(): parameter[name] for name in ("Name", "Type", "Value", "Version")}


def _index_documents(client: OpenSearch, index: str) -> Iterator[dict[str, Any]]:
    for hit in helpers.scan(client, index=index, query={"query": {"match_all": {}}}, preserve_order=False):
        yield {"_id": hit["_id"], "_source": hit["_source"]}


def save(
    state_dir: Path,
    buckets: list[str],
    tables: list[str],
    search: OpenSearch,
    indices: list[str],
    cache: ObjectCache | None = None,
) -> dict[str, int]:
    """Write a full snapshot; returns counts per store. `cache` (kept by the caller between saves)
    spares reading objects saved before."""
    final = state_dir / "snapshot"
    staging = state_dir / "snapshot.partial"
    blobs = state_dir / "blobs"
    cache = {} if cache is None else cache
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # Every write acknowledged before this moment is in this snapshot (each store is read after it)
    (staging / "meta.json").write_text(json.dumps({"started_at": time.time()}))
    counts: dict[str, int] = {}
    # The tables (and secrets) before the buckets: a photo's object is written before its record, a job's
    # images before its record, so a record read first has its object in the later read of the bucket
    # (saving the buckets first kept the records of objects put while the buckets were read, never
    # their objects: after a kill -9, records whose object is gone, which AWS never shows)
    for table in tables:
        counts[f"dynamodb:{table}"] = _write_jsonl(staging / "dynamodb" / f"{table}.jsonl", table_items(table))
    counts["ssm"] = _write_jsonl(staging / "ssm" / "parameters.jsonl", _ssm_parameters())
    for bucket in buckets:
        counts[f"s3:{bucket}"] = _write_jsonl(staging / "s3" / f"{bucket}.jsonl", _s3_objects(bucket, blobs, cache))
    for index in indices:
        mapping = search.indices.get_mapping(index=index)[index]["mappings"]
        (staging / "opensearch").mkdir(parents=True, exist_ok=True)
        (staging / "opensearch" / f"{index}.mapping.json").write_text(json.dumps(mapping))
        counts[f"opensearch:{index}"] = _write_jsonl(
            staging / "opensearch" / f"{index}.jsonl", _index_documents(search, index)
        )
    _fsync_tree(staging)
    previous = state_dir / "snapshot.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    staging.rename(final)  # a kill between the two renames: restore() takes snapshot.previous
    shutil.rmtree(previous, ignore_errors=True)
    _drop_unused_blobs(final, blobs)
    return counts


def _fsync_tree(root: Path) -> None:
    """The snapshot's files on disk before it replaces the last one (a power cut keeps one whole)."""
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def _drop_unused_blobs(snapshot_dir: Path, blobs: Path) -> None:
    used = {row["blob"] for path in (snapshot_dir / "s3").glob("*.jsonl") for row in _read_jsonl(path) if "blob" in row}
    for blob in blobs.glob("*") if blobs.exists() else ():
        if blob.name not in used and not blob.name.endswith(".partial"):
            blob.unlink(missing_ok=True)


class Snapshots:
    """Saves every `interval_s` in a background thread, and once more at `stop()`; one save at a time."""

    def __init__(
        self, save_now: Callable[[ObjectCache], dict[str, int]], interval_s: float, cache: ObjectCache | None = None
    ):
        self._save_now = save_now
        self.interval_s = interval_s
        self._cache: ObjectCache = {} if cache is None else cache  # restore() fills it: the first save reads no body
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.saves = 0

    def start(self) -> None:
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
            self._thread.start()

    def save(self) -> dict[str, int]:
        with self._lock:
            counts = self._save_now(self._cache)
            self.saves += 1
            return counts

    def stop(self) -> dict[str, int]:
        """The last save, after the background one (if running) has finished."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        return self.save()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self.save()
            except Exception:  # noqa: BLE001 - a save that failed (a store stopping) is retried next interval
                traceback.print_exc()


def restore(state_dir: Path, search: OpenSearch, cache: ObjectCache | None = None) -> dict[str, int]:
    """Load the last snapshot, if any, into freshly provisioned emulators; returns counts per store.
    `cache` (given to the saves after) learns each restored object, so the next save reads it no more."""
    root = state_dir / "snapshot"
    if not root.exists() and (state_dir / "snapshot.previous").exists():
        root = state_dir / "snapshot.previous"  # killed between a save's two renames
    counts: dict[str, int] = {}
    if not root.exists():
        return counts
    dynamodb = aws.client("dynamodb")
    for path in sorted((root / "dynamodb").glob("*.jsonl")):
        table = path.stem
        items = [_binary_as_text(item, encode=False) for item in _read_jsonl(path)]
        for start in range(0, len(items), 25):
            requests: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
            while requests:
                requests = dynamodb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        counts[f"dynamodb:{table}"] = len(items)
    ssm = aws.client("ssm")
    for parameter in _read_jsonl(root / "ssm" / "parameters.jsonl") if (root / "ssm").exists() else ():
        # written as often as its version: an item naming `name:version` finds the value there
        for _ in range(min(int(parameter["version"]), 100)):
            ssm.put_parameter(Name=parameter["name"], Value=parameter["value"], Type=parameter["type"], Overwrite=True)
        counts["ssm"] = counts.get("ssm", 0) + 1
    s3 = aws.client("s3")  # after DynamoDB, and with no event fired: a restore is not an upload

    def put(bucket: str, obj: dict[str, Any]) -> None:
        tagging = {"Tagging": urlencode(obj["tags"])} if obj.get("tags") else {}
        blob = state_dir / "blobs" / obj.get("blob", "")
        body = blob.read_bytes() if "blob" in obj else base64.b64decode(obj["body"])  # older snapshots
        put = s3.put_object(
            Bucket=bucket,
            Key=obj["key"],
            Body=body,
            ContentType=obj["content_type"],
            Metadata=obj["metadata"],
            **tagging,
        )
        if cache is not None and "blob" in obj:
            row = {name: obj[name] for name in ("key", "content_type", "metadata", "blob")}
            cache[(bucket, obj["key"], put["ETag"])] = row

    # Several puts at once: each one's time is mostly a round trip to moto, which the others overlap
    with ThreadPoolExecutor(RESTORE_PUTS_AT_ONCE, thread_name_prefix="restore") as pool:
        for path in sorted((root / "s3").glob("*.jsonl")):
            bucket = path.stem
            with notifications_paused(bucket):
                done = list(pool.map(lambda obj, bucket=bucket: put(bucket, obj), _read_jsonl(path)))
            counts[f"s3:{bucket}"] = len(done)
    for path in sorted((root / "opensearch").glob("*.jsonl")):
        index = path.stem
        mapping = json.loads((root / "opensearch" / f"{index}.mapping.json").read_text())
        if not search.indices.exists(index=index):
            search.indices.create(index=index, body={"mappings": mapping})
        else:
            search.indices.put_mapping(index=index, body=mapping)
        actions = ({"_index": index, "_id": doc["_id"], "_source": doc["_source"]} for doc in _read_jsonl(path))
        ok, _ = helpers.bulk(search, actions, chunk_size=500, refresh=True)
        counts[f"opensearch:{index}"] = ok
    return counts


def started_at(state_dir: Path) -> float | None:
    """When the snapshot a start would restore began: writes acknowledged before it are in it. It may be
    read while the stack runs: a save's two renames can move a folder between looking and reading, so a
    pass that finds neither folder readable is tried again (the next save is an interval away)."""
    for _ in range(3):
        for name in ("snapshot", "snapshot.previous"):
            try:
                return float(json.loads((state_dir / name / "meta.json").read_text())["started_at"])
            except FileNotFoundError:
                continue
    return None
