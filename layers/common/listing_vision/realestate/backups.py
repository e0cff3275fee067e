"""Listing backups in parts: JSONL sorted by zpid, one part per batch, and a manifest of checksums.

A backup at LOCATION (`s3://bucket/key.jsonl` or a path) is

  LOCATION.manifest.json        {"format": "parts/1", "index", "location", "count", "bytes", "sha256",
                                 "parts": [{"name", "count", "bytes", "sha256", "first", "last"}, ...]}
  LOCATION.parts/00000.jsonl    one part per batch, `{"_id", "_source"}` a line, ids ascending;
  LOCATION.parts/00001.jsonl    parts follow each other in id order (`first`/`last` bound each)

The manifest's `sha256` is over the parts' digests in order. Nothing is ever held whole: parts are
written as listings stream in (spooled to a temporary file, then uploaded), and read one at a time,
each checked against its digest before any of its rows is used. A part per batch is what lets a
backup fan out like `execute` (each Map batch writes its own part; `finish` writes the manifest),
and what lets a restoring batch read only the parts its zpids fall in.

A backup written before parts existed (one JSONL file at LOCATION, a manifest without `parts`) is
still read, whole-file checksum first.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

from listing_vision.errors import InvalidRequest
from listing_vision.realestate import artifacts
from listing_vision.realestate.listings_index import ListingDoc

FORMAT = "parts/1"
NDJSON = "application/x-ndjson"


class BackupNotFound(InvalidRequest):
    """No backup at the location named (its manifest is not there): on Step Functions the error's name."""

    code = "backup_not_found"


class BackupExists(InvalidRequest):
    """A backup is already at the location named: writing another there would destroy it (a restore
    point, perhaps the only one)."""

    code = "backup_exists"


class BackupNotInS3(InvalidRequest):
    """A fanned-out run named a backup by a path: each batch's Lambda would see only its own /tmp."""

    code = "backup_not_in_s3"


def manifest_location(location: str) -> str:
    return location + ".manifest.json"


def part_location(location: str, name: str) -> str:
    return f"{location}.parts/{name}"


def part_name(number: int) -> str:
    return f"{number:05d}.jsonl"


def _corrupt(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="backup_corrupt")


def write_part(location: str, number: int, docs: Iterable[ListingDoc]) -> dict[str, Any]:
    """Stream `docs` (ascending ids) into part `number`; return its manifest entry."""
    digest = hashlib.sha256()
    entry: dict[str, Any] = {"name": part_name(number), "count": 0, "first": None, "last": None}

    def lines() -> Iterator[bytes]:
        for doc in docs:
            if entry["last"] is not None and doc.zpid <= entry["last"]:
                raise ValueError(f"backup part {number}: ids out of order ({doc.zpid} after {entry['last']})")
            line = json.dumps({"_id": doc.zpid, "_source": doc.source}, sort_keys=True).encode() + b"\n"
            digest.update(line)
            entry["count"] += 1
            entry["first"] = entry["first"] or doc.zpid
            entry["last"] = doc.zpid
            yield line

    entry["bytes"] = artifacts.write_stream(part_location(location, entry["name"]), lines(), NDJSON)
    entry["sha256"] = digest.hexdigest()
    return entry


def write_manifest(location: str, index: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest that makes the parts a backup; written last, so a backup without one is incomplete."""
    parts = sorted(parts, key=lambda part: part["name"])
    manifest = {
        "format": FORMAT,
        "index": index,
        "location": location,
        "count": sum(part["count"] for part in parts),
        "bytes": sum(part["bytes"] for part in parts),
        "sha256": hashlib.sha256("".join(part["sha256"] for part in parts).encode()).hexdigest(),
        "parts": parts,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    artifacts.write_bytes(manifest_location(location), json.dumps(manifest, indent=1).encode(), "application/json")
    return manifest


def write_backup(location: str, index: str, docs: Iterable[ListingDoc], part_size: int) -> dict[str, Any]:
    """A whole backup from one stream of listings in id order, `part_size` listings a part."""
    stream = iter(docs)
    parts = []
    for number in itertools.count():
        head = next(stream, None)
        if head is None:
            break
        parts.append(write_part(location, number, itertools.chain([head], itertools.islice(stream, part_size - 1))))
    return write_manifest(location, index, parts)


def check_fan_out_location(location: str | None, reading: bool) -> None:
    """Before a fanned-out run plans anything: the backup it reads or writes is in S3 (each batch runs
    in a Lambda of its own, where a path is that Lambda's /tmp, gone with it, so a backup written
    there would be scattered and lost, and read there found by no batch), and one it reads is there
    (`backup_not_found`), so a mistyped location stops the run before any listing is written."""
    if location is None:
        return
    where = artifacts.s3_object(location)
    if not where or not where[0] or not where[1].strip("/"):
        raise BackupNotInS3(
            f"{ascii(location)[:80]} is not an S3 location: on Step Functions a backup is s3://bucket/key"
            " (each batch runs in its own Lambda, where a path is that Lambda's /tmp)."
        )
    if reading:
        BackupReader(location)  # reads the manifest: refused here when there is none
    else:
        refuse_existing_backup(location)


def refuse_existing_backup(location: str) -> None:
    """Before a backup writes anything: none is at its location already (its manifest is there)."""
    try:
        artifacts.read_bytes(manifest_location(location))
    except FileNotFoundError:  # artifacts.ArtifactNotFound: none there, as it should be
        return
    raise BackupExists(
        f"A backup is already at {ascii(location)[:200]}: name another location (or leave it out for a new one)."
    )


class BackupReader:
    """A backup read a part at a time; every part is checked against its digest before use. Opening
    one reads its manifest, so a location with no backup is refused (`backup_not_found`) there:
    operations open theirs before they write anything."""

    def __init__(self, location: str):
        self.location = location
        try:
            self.manifest: dict[str, Any] = json.loads(artifacts.read_bytes(manifest_location(location)))
        except artifacts.ArtifactNotFound as error:
            raise BackupNotFound(
                f"No backup at {location}: its manifest ({manifest_location(location)}) is not there"
                " (a backup is complete once its manifest is written)."
            ) from error
        except ValueError as error:
            raise _corrupt(f"The backup manifest at {location} is not JSON: {error}") from error
        self.parts: list[dict[str, Any]] | None = self.manifest.get("parts")
        self._loaded: tuple[str, dict[str, dict[str, Any]]] | None = None

    @property
    def count(self) -> int:
        return int(self.manifest["count"])

    def _checked_lines(self, where: str, sha256: str, count: int) -> Iterator[bytes]:
        """The object's lines, after its bytes matched `sha256` (spooled to a temporary file, so a
        part never has to fit in memory and nothing of a corrupt part is ever used)."""
        digest = hashlib.sha256()
        lines = 0
        with tempfile.TemporaryFile() as spool:
            try:
                for chunk in artifacts.read_chunks(where):
                    digest.update(chunk)
                    lines += chunk.count(b"\n")
                    spool.write(chunk)
            except artifacts.ArtifactNotFound as error:
                raise _corrupt(f"The backup at {self.location}: {where}, named by its manifest, is missing.") from error
            if digest.hexdigest() != sha256:
                raise _corrupt(f"The backup at {self.location}: {where} does not match its manifest's checksum.")
            if lines != count:
                raise _corrupt(
                    f"The backup at {self.location}: {where} holds {lines} listings, its manifest says {count}."
                )
            spool.seek(0)
            for line in spool:
                if line.strip():
                    yield line

    def _sections(self) -> Iterator[tuple[str, str, int]]:
        if self.parts is None:  # a single-file backup from before parts
            yield self.location, self.manifest["sha256"], self.count
            return
        for part in self.parts:
            yield part_location(self.location, part["name"]), part["sha256"], part["count"]

    def validate(self) -> None:
        """Check every part's checksum (streamed); a restore does this before writing anything."""
        for where, sha256, count in self._sections():
            for _ in self._checked_lines(where, sha256, count):
                pass

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(zpid, source) for every listing, ascending ids."""
        last: str | None = None
        for where, sha256, count in self._sections():
            for line in self._checked_lines(where, sha256, count):
                row = json.loads(line)
                zpid = str(row["_id"])
                if last is not None and zpid <= last:
                    raise _corrupt(f"The backup at {self.location} is not sorted by id ({zpid} after {last}).")
                last = zpid
                yield zpid, row["_source"]

    def sources_for(self, zpids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The sources of these listings (those in the backup): only the parts their ids fall in are read."""
        wanted = set(zpids)
        if not wanted:
            return {}
        if self.parts is None:
            return {zpid: source for zpid, source in self.rows() if zpid in wanted}
        low, high = min(wanted), max(wanted)
        found: dict[str, dict[str, Any]] = {}
        for part in self.parts:
            if part["count"] and part["first"] <= high and part["last"] >= low:
                sources = self._part_sources(part)
                found.update((zpid, sources[zpid]) for zpid in wanted & sources.keys())
        return found

    def rows_between(self, after: str | None, last: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(zpid, source) for the ids after `after` up to `last` (None: no bound), ascending: only the
        parts that range falls in are read."""

        def inside(zpid: str) -> bool:
            return (after is None or zpid > after) and (last is None or zpid <= last)

        if self.parts is None:
            yield from ((zpid, source) for zpid, source in self.rows() if inside(zpid))
            return
        for part in self.parts:
            if not part["count"] or (after is not None and part["last"] <= after):
                continue
            if last is not None and part["first"] > last:
                return
            if self._loaded is not None and self._loaded[0] == part["name"]:  # parsed already (a restore's)
                sources = self._loaded[1]
                yield from ((zpid, sources[zpid]) for zpid in sorted(sources) if inside(zpid))
                continue
            # streamed a row at a time (checked whole first): a part's sources are never all held
            where = part_location(self.location, part["name"])
            previous: str | None = None
            for line in self._checked_lines(where, part["sha256"], part["count"]):
                row = json.loads(line)
                zpid = str(row["_id"])
                if previous is not None and zpid <= previous:
                    raise _corrupt(f"The backup at {self.location} is not sorted by id ({zpid} after {previous}).")
                previous = zpid
                if last is not None and zpid > last:
                    break
                if inside(zpid):
                    yield zpid, row["_source"]

    def _part_sources(self, part: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """One part's sources, the last one kept (batches in id order read each part once)."""
        if self._loaded is None or self._loaded[0] != part["name"]:
            where = part_location(self.location, part["name"])
            rows = (json.loads(line) for line in self._checked_lines(where, part["sha256"], part["count"]))
            self._loaded = (part["name"], {str(row["_id"]): row["_source"] for row in rows})
        return self._loaded[1]


def merge_by_id(
    current: Iterable[ListingDoc], saved: Iterable[tuple[str, dict[str, Any]]]
) -> Iterator[tuple[str, ListingDoc | None, dict[str, Any] | None]]:
    """Join two id-ordered streams (the index, a backup): (zpid, listing or None, saved source or None)."""
    docs, rows = iter(current), iter(saved)
    doc, row = next(docs, None), next(rows, None)
    while doc is not None or row is not None:
        if row is None or (doc is not None and doc.zpid < row[0]):
            assert doc is not None
            yield doc.zpid, doc, None
            doc = next(docs, None)
        elif doc is None or row[0] < doc.zpid:
            yield row[0], None, row[1]
            row = next(rows, None)
        else:
            yield doc.zpid, doc, row[1]
            doc, row = next(docs, None), next(rows, None)
