"""One key, one image: an object overwritten in place (other bytes PUT at a key already indexed,
straight to the bucket or through any writer that reuses a key) keeps only the record and vector of
the bytes it now holds.

The indexer (`uploads.py`), once it has indexed the bytes it read at a key (stored them, found them
already stored, a duplicate, or no valid photo), calls `KeyOwners.settle`: every *other* content that
claims the key (its record names the key as its path; found by the key's vector rows, and by the
content a `catalogue/` key names) is removed with the delete machinery of `catalogue.py`: marked
`deleting` (`ContentClaims.begin_delete`), the key read again, then its vector and its record
removed (`finish_delete`; the object is left alone: it holds the new bytes). The same bytes put again
claim nothing new, so nothing changes.

Races, without relying on the order of S3 events (events arrive late, twice, or out of order, and the
indexer reads the key's *current* bytes whatever event woke it):
- the check comes *after* our record is complete, and it also checks our own content: a run that read
  the key before it was overwritten finds the key's bytes changed and removes its own record and
  vector. Of two runs for two writes to one key, the one whose check comes last sees the last bytes,
  and by then the other's record is stored (or being deleted), so one of them removes it;
- a content is re-read after it is marked and before anything is removed: when the key holds that
  content again (put back meanwhile), the mark is given back (`cancel_delete`), as the ObjectRemoved
  trigger does. A claim still pending (another run storing it) cannot be marked: that run's own check
  settles it. One being deleted by another is left to it;
- a run that dies between storing and removing leaves two records on the key until the redelivered
  event, which finds its bytes already stored (or its tag recorded) and settles the key again; one
  that dies after marking leaves a mark that the retry takes over once its lease has passed. One that
  dies between the old content's vector and its record leaves that record marked `deleting` (no
  image, nobody's duplicate, not listed) where no vector names the key any more: the retry cannot
  find it, and the reconciler finishes it (`delete_unfinished`: a dead mark whose key another stored
  record claims is finished, not undone), as it finishes a DELETE that died at the same step.

The key's current bytes are known by their ETag (read with them), and hashed again only when it changed.
"""

from __future__ import annotations

import re

from listing_vision.jewelry import storage
from listing_vision.jewelry.claims import ContentClaims, new_owner
from listing_vision.jewelry.image_ids import SHA256_HEX
from listing_vision.jewelry.links import CATALOGUE_PREFIX
from listing_vision.jewelry.vector_index import VectorIndex, vector_id
from listing_vision.observability import logger, metrics

_CATALOGUE_KEY = re.compile(rf"^{re.escape(CATALOGUE_PREFIX)}[0-9a-f]{{2}}/({SHA256_HEX})\.[a-z]+$")


def named_content(key: str) -> str | None:
    """The content a catalogue key names (`catalogue/<2>/<sha256>.<ext>`); None for any other key."""
    named = _CATALOGUE_KEY.match(key)
    return named.group(1) if named else None


def finish_delete(
    images: storage.ImageStore,
    vectors: VectorIndex,
    claims: ContentClaims,
    website: str,
    sha256: str,
    owner: str,
    image: storage.StoredImage | None,
) -> None:
    """Steps 2 to 4 of a delete whose record `owner` has marked (`catalogue.py` has the order): the
    object (None: leave it, it is gone or holds other bytes), the vector, then the record."""
    if image is not None:
        images.delete(image)
    vectors.delete(vector_id(website, sha256))
    claims.end_delete(website, sha256, owner)


class KeyOwners:
    """The contents that claim one key of a storefront bucket, made to agree with its current bytes."""

    def __init__(self, images: storage.ImageStore, vectors: VectorIndex, claims: ContentClaims):
        self.images = images
        self.vectors = vectors
        self.claims = claims

    def current(self, image: storage.StoredImage, sha256: str, etag: str) -> str | None:
        """The SHA-256 of the bytes at `image` now: `sha256` while its ETag is still `etag` (what was
        read), else read and hashed again; None when the object is gone."""
        head = self.images.head(image)
        if head is None:
            return None
        if etag and head.get("ETag") == etag:
            return sha256
        data, _ = self.images.read_with_etag(image)
        return storage.sha256_hex(data)

    def settle(self, website: str, image: storage.StoredImage, sha256: str, etag: str) -> list[str]:
        """After indexing the bytes `sha256` read at `image` (ETag `etag`): the record and vector of every
        content claiming this key that the key no longer holds are removed, ours included when the key
        changed since it was read (`sha256` empty: bytes found invalid or a duplicate, which no record
        here may name). Returns the contents removed."""
        path = image.s3_uri
        rows = self.vectors.at_path(path, website)
        named = named_content(image.key)
        contents = dict.fromkeys(sha for sha in [sha256, named, *(row.sha256 for row in rows)] if sha)
        if not contents:
            return []  # nothing claims the key (`sha256` empty: the key's bytes are no stored photo)
        now = self.current(image, sha256, etag)
        removed: list[str] = []
        for other in contents:  # usually only our own, which the key holds: nothing to do
            if other == now:
                continue
            record = self.claims.get(website, other)
            if record is None:  # a vector no record accounts for (indexed before records were kept)
                stale = [row.id for row in rows if row.sha256 == other]
                if stale:
                    for row_id in stale:
                        self.vectors.delete(row_id)
                    removed.append(other)
                continue
            if not (record.stored or record.deleting) or record.path != path:
                continue  # in flight (its run checks after storing), or stored elsewhere
            owner = new_owner()
            if self.claims.begin_delete(website, other, owner) is None:
                continue  # being deleted (a dead deleter's mark is taken over once its lease has passed)
            if self.current(image, sha256, etag) == other:  # the key holds it (again): it stays
                self.claims.cancel_delete(website, other, owner)
                continue
            finish_delete(self.images, self.vectors, self.claims, website, other, owner, None)
            removed.append(other)
        if removed:
            metrics.add_metric(name="OverwrittenImagesRemoved", unit="Count", value=len(removed))
            logger.info(
                "key overwritten: the records and vectors of the bytes it no longer holds removed",
                extra={"website": website, "path": path, "removed": removed},
            )
        return removed
