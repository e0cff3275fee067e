"""backup: every listing's source as JSONL parts (S3 or a path) with a manifest of checksums
(`backups`), written a part at a time: in this process, or fanned out a plan batch a part."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from listing_vision.errors import InvalidRequest
from listing_vision.realestate.backups import (
    BackupReader,
    refuse_existing_backup,
    write_backup,
    write_manifest,
    write_part,
)
from listing_vision.realestate.listings_index import ListingDoc
from listing_vision.realestate.migration.common import MigrationBase, batches, throttling_as_retryable


class Backup(MigrationBase):
    def backup_location(self, destination: str | None = None) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return destination or f"s3://{self.artifacts_bucket}/backups/{self.listings.name}-{stamp}.jsonl"

    def backup(self, destination: str | None = None, part_size: int = 500) -> dict[str, Any]:
        """Every listing's full source in id order, as JSONL parts of `part_size` listings and a manifest
        of their checksums (see `backups`); streamed, a page of listings in memory at a time."""
        location = self.backup_location(destination)
        refuse_existing_backup(location)
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
