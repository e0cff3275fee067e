"""Images that reach a storefront bucket without the API: console or bulk uploads, and uploads too
large for API Gateway (10 MB) and Lambda (6 MB event) that go straight to S3 with a presigned POST.

The bucket's ObjectCreated events run `index_objects`, which dedupes and indexes the object (the
API's two-stage decision, `duplicates.py`) and records the outcome on the object as tags
(`dedupe-status`: indexed | duplicate | invalid | form_reused; `duplicate-of` and `duplicate-match`,
`near` or `verified`; `reason`). Re-delivery of the same event changes nothing.

A console or bulk upload is indexed where it lies; its key then keeps only the record and vector of
the bytes it holds now (`overwrites.py`: other bytes written over an indexed key). A presigned
upload's key, `incoming/<upload id>`, is only an inbox: the same form can post there again until it
expires, so a valid photo is copied to its content key under `catalogue/` (which no form can name)
and that copy is indexed, and the upload id is claimed once (`upload_claims.py`). A second post of a
form whose photo is catalogued changes no catalogue photo, record or vector: it is tagged `form_reused`.

The order of an inbox upload's writes, each keyed so a retry repeats it harmlessly:
upload id claimed (a lease) → content claimed (a lease) → vector staged (its path the catalogue key)
→ settled against near-duplicates → catalogue object written → record completed → upload id settled
→ inbox object tagged. The catalogue object is written only once the photo has won, so a lost race
has no object to delete, and before the record, so a stored record's object always exists. A death
at any point leaves leases that run out; the redelivered event (or the reconciler) then takes the
claims over and completes the same keys; an object copied with this upload id is recognised as its
own (its `upload-id` metadata), never as a duplicate of itself.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from listing_vision.api.access import Caller
from listing_vision.config import Storefront, get_settings
from listing_vision.embeddings.base import Description
from listing_vision.errors import Conflict, NotFound, PayloadTooLarge, UnsupportedMedia, VisionError
from listing_vision.imaging.decode import MEDIA_TYPES, load_image
from listing_vision.jewelry import dedupe as dedupe_module
from listing_vision.jewelry import storage
from listing_vision.jewelry.claims import new_owner
from listing_vision.jewelry.dedupe import DedupeService
from listing_vision.jewelry.overwrites import KeyOwners
from listing_vision.jewelry.storage import ImageStore
from listing_vision.jewelry.upload_claims import UploadClaims, UploadRecord
from listing_vision.jewelry.vector_index import vector_id
from listing_vision.observability import logger, metrics
from listing_vision.resources import INCOMING_PREFIX
from listing_vision.resources import UPLOAD_STATUS_TAG as STATUS_TAG

PRESIGNED_POST_EXPIRY_S = 900
UPLOAD_ID_PATTERN = r"^[0-9a-f]{32}$"  # uuid4().hex
UPLOAD_CONTENT_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
HOLD_BATCH = 32  # keys whose leases one indexing step holds at once: one embedding call


@dataclass(frozen=True)
class _Claimed:
    """An object that passed validation and whose content this request has claimed."""

    bucket: str
    key: str
    path: str  # where it is indexed: where it lies, or (an inbox upload) its catalogue key
    data: bytes
    sha256: str
    owner: str
    name: str
    image_format: str = ""
    upload_id: str | None = None  # an inbox upload: copied to `path`, its upload id claimed once
    etag: str = ""  # the ETag of the bytes read (`overwrites.py`: whether the key still holds them)

    @property
    def lies_at(self) -> str:
        return storage.StoredImage(self.bucket, self.key).s3_uri


@dataclass(frozen=True)
class IndexOutcome:
    bucket: str
    key: str
    status: str  # indexed | already_indexed | duplicate | invalid | form_reused | skipped
    duplicate_of: str | None = None
    reason: str | None = None


class UploadForms:
    """POST /uploads and GET /uploads/{id}: presigned forms into a storefront's incoming/ prefix, and
    what became of each upload (the indexer records it as object tags)."""

    def __init__(self, images: ImageStore, uploads: UploadClaims):
        self.images = images
        self.uploads = uploads

    def presigned_upload(
        self, caller: Caller, website: Storefront, filename: str | None, content_type: str
    ) -> dict[str, Any]:
        """A presigned POST for one image of up to MAX_OBJECT_BYTES, into the storefront's incoming/ prefix."""
        caller.require(website)
        storage.check_filename(filename)
        settings = get_settings()
        extension = UPLOAD_CONTENT_TYPES[content_type]
        upload_id = uuid.uuid4().hex
        key = f"{INCOMING_PREFIX}{upload_id}.{extension}"
        fields = {"Content-Type": content_type}
        conditions: list[Any] = [
            {"Content-Type": content_type},
            ["content-length-range", 1, settings.max_object_bytes],
        ]
        if filename:
            fields["x-amz-meta-original-name"] = quote(filename, safe="")
            conditions.append({"x-amz-meta-original-name": fields["x-amz-meta-original-name"]})
        target = storage.StoredImage(self.images.bucket_for(website), key)
        post = self.images.presigned_post(target, fields, conditions, PRESIGNED_POST_EXPIRY_S)
        return {
            "upload_id": upload_id,
            "url": post["url"],
            "fields": post["fields"],
            "key": key,
            "expires_in": PRESIGNED_POST_EXPIRY_S,
            "max_bytes": settings.max_object_bytes,
        }

    def upload_status(self, caller: Caller, website: Storefront, upload_id: str) -> dict[str, Any]:
        """What became of a presigned upload: pending (not yet processed), indexed, duplicate, invalid, or
        deleted (catalogued, then deleted from the catalogue).
        Another storefront's uploads do not exist for this caller."""
        if not re.fullmatch(UPLOAD_ID_PATTERN, upload_id):  # not an id this API made (nor one S3 could key)
            raise NotFound(f"No such upload in {website}.", code="upload_not_found")
        if not caller.owns(website):
            raise NotFound(f"No upload {upload_id!r} in {website}.", code="upload_not_found")
        settled = self.uploads.get(website, upload_id)
        if settled is not None and settled.catalogued and settled.path:  # its photo is in the catalogue
            if self.images.head(storage.StoredImage.from_uri(settled.path)) is None:  # since deleted (catalogue.py)
                return {"upload_id": upload_id, "status": "deleted"}
            answer: dict[str, Any] = {"upload_id": upload_id, "status": "indexed"}
            answer["s3_url"] = self.images.url(storage.StoredImage.from_uri(settled.path))
            if settled.reused_at is not None:
                answer["reason"] = "form_reused"  # posted again later: that post changed nothing
            return answer
        bucket = self.images.bucket_for(website)
        key = self.images.first_key(bucket, f"{INCOMING_PREFIX}{upload_id}.")
        if key is None:
            raise NotFound(f"No upload {upload_id!r} in {website}.", code="upload_not_found")
        tags = self.images.tags(storage.StoredImage(bucket, key))
        answer = {"upload_id": upload_id, "status": tags.get(STATUS_TAG, "pending")}
        if tags.get("duplicate-of"):
            answer["duplicate_of"] = self.images.url(storage.StoredImage.from_uri(tags["duplicate-of"]))
            answer["match"] = tags.get("duplicate-match", "exact")
        if tags.get("reason"):
            answer["reason"] = tags["reason"]
        if answer["status"] == "indexed":  # indexed where it lies (before uploads were catalogued by copy)
            answer["s3_url"] = self.images.url(storage.StoredImage(bucket, key))
        return answer


def inbox_upload_id(key: str) -> str | None:
    """The upload id of a presigned upload's inbox key (`incoming/<upload id>.<ext>`); None for any
    other key (indexed where it lies)."""
    if not key.startswith(INCOMING_PREFIX):
        return None
    upload_id = key[len(INCOMING_PREFIX) :].partition(".")[0]
    return upload_id if upload_id and "/" not in upload_id else None


def check_declared_type(key: str, declared: str, image_format: str) -> None:
    """A presigned upload's Content-Type is pinned by its form (`UploadForms`); bytes of another format
    under that label would be served as what they are not. Objects put by other means (console, bulk
    copies, often `binary/octet-stream`) are taken for what their bytes are."""
    actual = MEDIA_TYPES.get(image_format)
    if key.startswith(INCOMING_PREFIX) and declared != actual:
        raise UnsupportedMedia(
            f"The upload was declared {declared or 'without a type'} but holds a {image_format} image.",
            code="content_type_mismatch",
        )


class UploadIndexer:
    """Objects that reach a storefront bucket without the API, deduped and indexed by the dedupe
    service's own steps (an inbox upload through its catalogue copy); each outcome recorded as tags."""

    def __init__(self, dedupe: DedupeService):
        self.dedupe = dedupe
        self.claims = dedupe.claims
        self.uploads = dedupe.uploads
        self.images = dedupe.images
        self.embedder = dedupe.embedder
        self.settings = get_settings()
        self.owners = KeyOwners(self.images, dedupe.vectors, self.claims)

    def index_event(self, records: list[tuple[str, str]]) -> list[IndexOutcome]:
        outcomes = []
        for bucket, key in records:  # keys already decoded (listing_vision.events)
            outcomes += self.index_objects(bucket, [key])
        return outcomes

    def index_objects(self, bucket: str, keys: list[str]) -> list[IndexOutcome]:
        """Dedupe and index objects of one bucket, embedding them in one call.

        Objects already indexed, or already recorded as duplicates, invalid or a reused form, are left
        alone, so re-delivered events and reruns change nothing. A stored photo whose vector this
        collection lacks (a backfill into a new collection, or a vector lost) is embedded again and its
        vector written under its own id (`vector_index.vector_id`).

        Keys go in batches of `HOLD_BATCH`: a batch's leases (upload ids, content claims) are taken,
        used and given back before the next batch is claimed, so no lease is held across a whole page
        (up to 1,000 keys), which could outlast `claim_lease_s` and let another run take it over."""
        website = self.images.storefront_of_bucket(bucket)
        if website is None:
            return [IndexOutcome(bucket, key, "skipped", reason="not_a_storefront_bucket") for key in keys]
        outcomes: list[IndexOutcome] = []
        for start in range(0, len(keys), HOLD_BATCH):
            outcomes += self._index_batch(bucket, website, keys[start : start + HOLD_BATCH])
        return outcomes

    def _index_batch(self, bucket: str, website: Storefront, keys: list[str]) -> list[IndexOutcome]:
        """One batch of `index_objects`: claimed, embedded in one call, stored, its leases given back."""
        outcomes: dict[str, IndexOutcome] = {}
        claimed: list[_Claimed] = []
        restore: list[_Claimed] = []
        held: list[_Claimed] = []  # inbox uploads whose upload id this run holds
        in_place: list[_Claimed] = []  # objects indexed where they lie: their key is settled after
        try:
            for key in keys:
                outcome, candidate = self._prepare(bucket, key, website)
                if candidate is not None and candidate.upload_id:
                    outcome = self._claim_upload(website, candidate)
                    held += [candidate] if outcome is None else []
                if outcome is not None:
                    outcomes[key] = outcome
                    continue
                assert candidate is not None
                existing = self.dedupe.claim_or_existing(website, candidate.sha256, candidate.owner, "storefront")
                if existing is not None and candidate.upload_id and existing.path == candidate.lies_at:
                    candidate = replace(candidate, path=candidate.lies_at)  # indexed where it lay, before inboxes
                in_place += [candidate] if candidate.path == candidate.lies_at else []
                own = existing is not None and existing.path == candidate.path and self._ours(candidate)
                if existing is None and not self._exists(bucket, key):  # an API upload that lost its race, deleted
                    self.claims.yield_claim(website, candidate.sha256, candidate.owner)  # stays marked rolled back
                    outcomes[key] = IndexOutcome(bucket, key, "skipped", reason="object_gone")
                elif existing is None:
                    claimed.append(candidate)
                elif own and self._has_vector(website, candidate.sha256):
                    self._settle_upload(website, candidate)  # a run that died after storing never settled it
                    if candidate.path == candidate.lies_at and not key.startswith(storage.CATALOGUE_PREFIX):
                        self._tag(bucket, key, {STATUS_TAG: "indexed"})  # a run that died after storing never tagged it
                    outcomes[key] = IndexOutcome(bucket, key, "already_indexed")
                elif own:
                    restore.append(candidate)
                else:
                    outcomes[key] = self._duplicate(bucket, key, existing.path or "", "exact")
            if claimed or restore:
                self.dedupe.require_ready()  # never index into a collection of another model's vectors
            described = self.embedder.describe([c.data for c in claimed + restore]) if claimed or restore else []
            for candidate, description in zip(claimed, described, strict=False):
                outcomes[candidate.key] = self._store(candidate, website, description)
            for candidate, description in zip(restore, described[len(claimed) :], strict=True):
                self.dedupe.vectors.ensure_vector(description.embedding, candidate.path, website, candidate.sha256)
                metrics.add_metric(name="VectorsRestored", unit="Count", value=1)
                self._settle_upload(website, candidate)
                outcomes[candidate.key] = IndexOutcome(bucket, candidate.key, "indexed", reason="vector_restored")
        finally:
            for candidate in claimed:  # whatever was not completed goes back (no-op for completed claims)
                self.claims.release(website, candidate.sha256, candidate.owner)
            for candidate in held:  # an upload id not settled (a duplicate, a failure) may be used again
                self.uploads.release(website, candidate.upload_id or "", candidate.owner)
        for candidate in in_place:  # a key overwritten keeps only what it holds now (`overwrites.py`)
            if outcomes[candidate.key].status in ("indexed", "already_indexed", "duplicate"):
                image = storage.StoredImage(bucket, candidate.key)
                self.owners.settle(website, image, candidate.sha256, candidate.etag)
        return [outcomes[key] for key in keys]

    def _prepare(self, bucket: str, key: str, website: Storefront) -> tuple[IndexOutcome | None, _Claimed | None]:
        head = self.images.head(storage.StoredImage(bucket, key))
        if head is None:
            return IndexOutcome(bucket, key, "skipped", reason="object_gone"), None
        path = storage.StoredImage(bucket, key).s3_uri
        sha_claimed = head.get("Metadata", {}).get("sha256")
        if sha_claimed:
            record = self.claims.get(website, sha_claimed)
            if record is not None and record.stored and record.path == path and self._has_vector(website, sha_claimed):
                # our own API write, or a re-delivery; one that rewrote an overwritten key settles it
                self.owners.settle(website, storage.StoredImage(bucket, key), sha_claimed, str(head.get("ETag", "")))
                return IndexOutcome(bucket, key, "already_indexed"), None
        recorded = self._tags(bucket, key).get(STATUS_TAG)
        in_place = inbox_upload_id(key) is None
        if recorded in ("duplicate", "invalid", "form_reused"):
            if in_place:  # a run that died after tagging never settled an overwritten key: its bytes claim nothing
                self.owners.settle(website, storage.StoredImage(bucket, key), "", str(head.get("ETag", "")))
            return IndexOutcome(bucket, key, recorded), None  # an indexed one is checked for its vector below
        data, etag = b"", str(head.get("ETag", ""))
        try:
            if head["ContentLength"] > self.settings.max_object_bytes:
                raise PayloadTooLarge("The object is larger than MAX_OBJECT_BYTES.", code="file_too_large")
            data, etag = self.images.read_with_etag(storage.StoredImage(bucket, key))
            image = load_image(data, self.settings.max_image_pixels)  # refused here: tagged invalid, nothing indexed
            check_declared_type(key, head.get("ContentType", ""), image.format or "")
        except VisionError as error:
            if in_place:  # a key overwritten with what is no photo: nothing stays catalogued there
                self.owners.settle(
                    website, storage.StoredImage(bucket, key), storage.sha256_hex(data) if data else "", etag
                )
            # Its tags are its outcome; its upload id is not claimed, so the form can post a fixed file
            self._tag(bucket, key, {STATUS_TAG: "invalid", "reason": error.code})
            metrics.add_metric(name="InvalidUploads", unit="Count", value=1)
            return IndexOutcome(bucket, key, "invalid", reason=error.code), None
        name = storage.original_name(head.get("Metadata", {})) or key.rsplit("/", 1)[-1]
        sha256, image_format, upload_id = storage.sha256_hex(data), image.format or "", inbox_upload_id(key)
        if upload_id is not None:  # indexed through its copy under its content key (the module docstring)
            path = storage.StoredImage(bucket, storage.catalogue_key(sha256, image_format)).s3_uri
        return None, _Claimed(bucket, key, path, data, sha256, new_owner(), name, image_format, upload_id, etag)

    def _claim_upload(self, website: Storefront, candidate: _Claimed) -> IndexOutcome | None:
        """Hold the candidate's upload id (None), or the outcome when the id is spent: the same photo
        again (a re-delivery), or another one posted with a form already used (`form_reused`)."""
        upload_id = candidate.upload_id or ""
        deadline = time.monotonic() + dedupe_module.CLAIM_WAIT_S
        delay = 0.05
        while not self.uploads.claim(website, upload_id, candidate.owner, candidate.sha256):
            settled = self.uploads.get(website, upload_id)
            if settled is not None and settled.catalogued:
                return self._spent(website, candidate, settled)
            if time.monotonic() > deadline:  # another run is indexing a post of this form (or died within its lease)
                raise Conflict(
                    "This upload is being indexed by another run; try again shortly.", code="upload_in_progress"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return None

    def _spent(self, website: Storefront, candidate: _Claimed, settled: UploadRecord) -> IndexOutcome:
        bucket, key = candidate.bucket, candidate.key
        if settled.sha256 == candidate.sha256:  # the catalogued photo itself, delivered again
            if self._tags(bucket, key).get(STATUS_TAG) != "indexed":
                self._tag(bucket, key, {STATUS_TAG: "indexed"})
            return IndexOutcome(bucket, key, "already_indexed")
        self._tag(bucket, key, {STATUS_TAG: "form_reused", "reason": "form_reused"})
        self.uploads.note_reuse(website, candidate.upload_id or "")
        metrics.add_metric(name="ReusedUploadForms", unit="Count", value=1)
        logger.warning("upload form used again: refused", extra={"bucket": bucket, "key": key})
        return IndexOutcome(bucket, key, "form_reused", reason="form_reused")

    def _ours(self, candidate: _Claimed) -> bool:
        """Whether the object at the candidate's path is its own: where it lies, or copied for this upload
        (not the same bytes catalogued by the API or by another form: those make it a duplicate)."""
        if not candidate.upload_id or candidate.path == candidate.lies_at:
            return True
        head = self.images.head(storage.StoredImage.from_uri(candidate.path))
        return head is not None and head.get("Metadata", {}).get("upload-id") == candidate.upload_id

    def _settle_upload(self, website: Storefront, candidate: _Claimed) -> None:
        """An inbox upload whose photo is catalogued spends its upload id, then its inbox object says so."""
        if candidate.upload_id and candidate.path != candidate.lies_at:
            self.uploads.settle(website, candidate.upload_id, candidate.owner, candidate.path)
            self._tag(candidate.bucket, candidate.key, {STATUS_TAG: "indexed"})

    def _store(self, candidate: _Claimed, website: Storefront, upload: Description) -> IndexOutcome:
        # another content's row at this very key is no duplicate: the key holds these bytes now (overwritten)
        found = self.dedupe.duplicate_matches(
            upload, website, "storefront", own=candidate.sha256, not_at=candidate.path
        )
        if found:
            return self._duplicate(candidate.bucket, candidate.key, found[0].hit.path, found[0].match)
        # Stored as the API stores (dedupe.py): staged, settled against near-duplicates arriving at once
        vector_id = self.dedupe.stage(upload, candidate.path, website, candidate.sha256, candidate.owner)
        try:
            winner = self.dedupe.settle(
                upload, website, "storefront", candidate.sha256, candidate.owner, not_at=candidate.path
            )
        except BaseException:
            self.dedupe.roll_back(website, candidate.sha256, candidate.owner, vector_id, None)
            raise
        if winner is not None:  # the object stays where it lies, tagged duplicate of the image kept
            self.dedupe.roll_back(website, candidate.sha256, candidate.owner, vector_id, None)
            metrics.add_metric(name="RaceDuplicates", unit="Count", value=1)
            return self._duplicate(candidate.bucket, candidate.key, winner.hit.path, winner.match)
        if candidate.path != candidate.lies_at:  # an inbox upload's catalogue copy: only once it has won
            self.images.put_image(
                website, candidate.data, candidate.sha256, candidate.image_format, candidate.name, candidate.upload_id
            )
        self.claims.complete(
            website,
            candidate.sha256,
            candidate.owner,
            candidate.path,
            vector_id,
            candidate.name,
            features=upload.features.to_bytes(),
        )
        self._settle_upload(website, candidate)
        if candidate.path == candidate.lies_at:
            self._tag(candidate.bucket, candidate.key, {STATUS_TAG: "indexed"})
        metrics.add_metric(name="UploadsIndexed", unit="Count", value=1)
        logger.info("upload indexed", extra={"bucket": candidate.bucket, "key": candidate.key, "vector_id": vector_id})
        return IndexOutcome(candidate.bucket, candidate.key, "indexed")

    def _duplicate(self, bucket: str, key: str, original: str, match: str) -> IndexOutcome:
        self._tag(bucket, key, {STATUS_TAG: "duplicate", "duplicate-of": original, "duplicate-match": match})
        metrics.add_metric(name="DuplicateUploads", unit="Count", value=1)
        logger.info("upload is a duplicate", extra={"bucket": bucket, "key": key, "duplicate_of": original})
        return IndexOutcome(bucket, key, "duplicate", duplicate_of=original)

    def _has_vector(self, website: Storefront, sha256: str) -> bool:
        return self.dedupe.vectors.has(vector_id(website, sha256))

    def _exists(self, bucket: str, key: str) -> bool:
        return self.images.head(storage.StoredImage(bucket, key)) is not None

    def _tags(self, bucket: str, key: str) -> dict[str, str]:
        return self.images.tags(storage.StoredImage(bucket, key))

    def _tag(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        self.images.tag(storage.StoredImage(bucket, key), tags)
