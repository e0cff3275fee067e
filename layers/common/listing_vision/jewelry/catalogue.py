"""A storefront's catalogue listed and pruned: GET /images, DELETE /images/{id}, and the S3
ObjectRemoved trigger for a photo deleted straight from its bucket.

An image is stored in three writes (`dedupe.py`): its object, its vector, its record. A delete undoes
them in this order, so that no half state answers as a duplicate with a dead link, and so that a
delete that dies between two writes is finished by a rerun or by the reconciler:

1. the record is marked `deleting`, under a lease (`ContentClaims.begin_delete`). From here the image
   is nobody's duplicate: an upload of the same bytes finds no stored record, and a near-duplicate
   that still retrieves its vector finds its record deleting and does not count it
   (`DedupeService._counts`). The record still holds the content, so the same bytes are not stored
   again while the delete runs (such an upload waits for it); a deleter that died holds it until
   its lease has passed, and then a rerun, the reconciler (`delete_unfinished`) or a new upload of
   the same bytes (which rewrites the same keys) takes it over;
2. the object is deleted (a key already gone is deleted too, for S3);
3. the vector is deleted (its id is the content's: `vector_index.vector_id`);
4. the record is deleted, and with it the verification features it holds.

The record goes last: until then it is what stops a new upload of the same bytes from writing an
object that this delete would then remove. After step 4 the same photo uploads as new.

A delete that dies is finished, or undone, so the catalogue never keeps a half-deleted image:
- a rerun of the same DELETE after the dead deleter's lease has passed takes the mark over and goes on
  (before that, it answers 409 `image_delete_in_progress`, as a second delete at the same moment does);
- the reconciler (`reconcile.py`) finishes it when the object is already gone (`delete_unfinished`:
  vector and record deleted), and restores the record to `stored` when the object is still there
  (`delete_abandoned`). It restores rather than deletes because that DELETE answered an error: the
  catalogue then reads as the client was told, and the client's retry deletes it; and because this
  repair then never deletes a photo nobody asked it to (a stalled deleter's object is kept);
- an upload of the same bytes after the lease has passed takes the content over (`try_claim`) and
  stores it as new, rewriting the same object key and vector id; the dead delete can no longer remove
  the record (`end_delete` is conditional on its owner). The indexer handling a late ObjectCreated
  event of the photo is such an upload: it waits while the delete's lease holds, then finds the
  object gone (and leaves the content free), or there (a dead delete: the photo is indexed again).

The image id is the one every route of `/images/{id}` takes: the SHA-256 of the photo's bytes (hex),
scoped to the storefront named (another storefront's key is refused: 403 `storefront_forbidden`). A
second delete of the same image answers 404 `image_not_found`, as an id never stored does: either way
the image is not in the catalogue. The captions kept on the record (`caption_records.py`) go with it.
Only photos stored under `catalogue/` (by the API or a presigned upload) are deleted through the API
(409 `image_not_deletable` otherwise); a photo indexed where it was put (a console upload) is deleted
in S3, and the trigger does the rest.

GET /images queries the storefront's images alone, newest first (`image_listing.py`: an index that
holds only stored records, keyed by storefront): a page is full unless the listing has ended. The
cursor is opaque and carries a digest tied to the storefront: a cursor of alya's listing used for
blysk's, or altered, is refused (400 `invalid_cursor`).
"""

from __future__ import annotations

from typing import Any

from listing_vision.api.access import Caller
from listing_vision.config import Storefront
from listing_vision.errors import Conflict, NotFound
from listing_vision.jewelry import image_listing, storage
from listing_vision.jewelry.claims import ContentRecord, new_owner
from listing_vision.jewelry.image_ids import is_image_id
from listing_vision.jewelry.overwrites import finish_delete, named_content
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import IndexOutcome
from listing_vision.observability import logger, metrics

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_CURSOR_CHARS = image_listing.MAX_CURSOR_CHARS


class Catalogue:
    def __init__(self, stores: CatalogueStores):
        self.images = stores.images
        self.claims = stores.claims
        self.vectors = stores.vectors

    # --- GET /images ---------------------------------------------------------------------------------
    def list_images(self, caller: Caller, website: Storefront, cursor: str | None, limit: int) -> dict[str, Any]:
        """One page of the storefront's stored images, newest first, and the cursor of the next (None on
        the last page): `limit` images unless the listing has ended (`image_listing.py`)."""
        caller.require(website)
        page, next_cursor = image_listing.stored_page(self.claims, website, cursor, limit)
        return {"images": [self._listed(website, sha, record) for sha, record in page], "next_cursor": next_cursor}

    def _listed(self, website: Storefront, sha256: str, record: ContentRecord) -> dict[str, Any]:
        path = record.path or ""
        return {
            "image_id": sha256,
            "image_name": record.image_name,
            "s3_url": self.images.url(storage.StoredImage.from_uri(path)) if path else None,
            "created_at": record.created_at,
        }

    # --- GET /images/{id}: a private link (links.py) --------------------------------------------------
    def presigned_link(self, caller: Caller, website: Storefront, image_id: str) -> str:
        """A fresh presigned URL of a stored photo, for the storefront's own clients only (403 otherwise);
        404 `image_not_found` for an id it does not hold. Reads only."""
        caller.require(website)
        record = self.claims.get(website, image_id) if is_image_id(image_id) else None
        if record is None or not record.stored or not record.path:
            raise NotFound(f"No image {image_id} in {website}.", code="image_not_found")
        return self.images.presigned_url(storage.StoredImage.from_uri(record.path))

    # --- DELETE /images/{id} -------------------------------------------------------------------------
    def delete(self, caller: Caller, website: Storefront, image_id: str) -> None:
        """Remove a stored image: object, vector, record (the module's docstring has the order)."""
        caller.require(website)
        missing = NotFound(f"No image {image_id} in {website}.", code="image_not_found")
        if not is_image_id(image_id):
            raise missing
        sha256 = image_id
        record = self.claims.get(website, sha256)
        if record is None or not (record.stored or record.deleting) or not record.path:
            raise missing
        image = storage.StoredImage.from_uri(record.path)
        if image.bucket != self.images.bucket_for(website) or not image.key.startswith(storage.CATALOGUE_PREFIX):
            raise Conflict(
                f"Image {image_id!r} was indexed where it was put ({record.path}), not stored by the API: delete "
                "that object in S3, and its vector and record are removed with it.",
                code="image_not_deletable",
                details={"path": record.path},
            )
        owner = new_owner()
        if self.claims.begin_delete(website, sha256, owner) is None:
            now = self.claims.get(website, sha256)
            if now is None or not (now.stored or now.deleting):
                raise missing  # deleted meanwhile
            raise Conflict(
                f"Image {image_id!r} is being deleted by another request; try again shortly.",
                code="image_delete_in_progress",
            )
        self.finish(website, sha256, owner, image)
        metrics.add_metric(name="ImagesDeleted", unit="Count", value=1)
        logger.info("image deleted", extra={"website": website, "sha256": sha256, "path": record.path})

    def finish(self, website: Storefront, sha256: str, owner: str, image: storage.StoredImage | None) -> None:
        """Steps 2 to 4 of a delete whose record `owner` has marked; `image`: None when the object is
        already gone (the trigger: the photo was deleted in S3)."""
        finish_delete(self.images, self.vectors, self.claims, website, sha256, owner, image)

    # --- S3 ObjectRemoved: a photo deleted in its bucket -----------------------------------------------
    def removed(self, records: list[tuple[str, str]]) -> list[IndexOutcome]:
        """For each object removed from a storefront bucket: the vector and record of the image stored
        there are removed. An object written again since (the same key re-uploaded before this event
        arrived) is left as it is; so is an image whose delete or upload another request is running."""
        return [self._removed(bucket, key) for bucket, key in records]

    def _removed(self, bucket: str, key: str) -> IndexOutcome:
        website = self.images.storefront_of_bucket(bucket)
        if website is None:
            return IndexOutcome(bucket, key, "skipped", reason="not_a_storefront_bucket")
        image = storage.StoredImage(bucket, key)
        if self.images.head(image) is not None:
            return IndexOutcome(bucket, key, "skipped", reason="object_present")
        rows = self.vectors.at_path(image.s3_uri, website)
        named = named_content(key)
        shas = dict.fromkeys([*([named] if named else []), *(row.sha256 for row in rows if row.sha256)])
        removed = False
        for sha in shas:
            record = self.claims.get(website, sha)
            if record is not None and record.stored and record.path == image.s3_uri:
                owner = new_owner()
                if self.claims.begin_delete(website, sha, owner) is None:
                    continue
                if self.images.head(image) is not None:  # put back since the check above (a re-upload)
                    self.claims.cancel_delete(website, sha, owner)  # marked now, so no later upload races us
                    return IndexOutcome(bucket, key, "skipped", reason="object_present")
                self.finish(website, sha, owner, None)
                removed = True
            elif record is None:  # a vector no record accounts for (indexed before records were kept)
                for row in rows:
                    if row.sha256 == sha:
                        self.vectors.delete(row.id)
                        removed = True
        if not removed:
            return IndexOutcome(bucket, key, "skipped", reason="not_catalogued")
        metrics.add_metric(name="ImagesRemovedInS3", unit="Count", value=1)
        logger.info("image deleted in S3: vector and record removed", extra={"bucket": bucket, "key": key})
        return IndexOutcome(bucket, key, "removed")
