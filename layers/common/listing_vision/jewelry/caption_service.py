"""Captions: POST /generate_caption (dedupe, then caption) and the captions of stored images by id
(GET /images/{id}/caption, GET /images/{id}/captions, POST /images/{id}/caption).

A duplicate answers as the dedupe endpoint does, each result with its `image_id`, plus `caption`: the
latest stored caption of the first (nearest) result, or null when it has none; it costs no caption.
A new image is captioned after the duplicate check and before it is stored, so a provider that fails
or refuses leaves nothing behind; then it is stored and indexed exactly as dedupe does, its caption
kept in its catalogue record (`caption_records.py`) in the same write.

Every operation returns its answer with stored locations (`s3://` URIs) where the API answers URLs;
`render` turns them into URLs when the answer is sent. A retried request (`Idempotency-Key`) is
answered from the first answer as recorded, rendered again: its links are fresh, never ones that
expired while the record waited.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from listing_vision.api.access import Caller
from listing_vision.config import Storefront, get_settings
from listing_vision.errors import NotFound
from listing_vision.imaging.decode import MEDIA_TYPES, load_image
from listing_vision.jewelry import storage
from listing_vision.jewelry.caption_prompts import JewelryType
from listing_vision.jewelry.caption_records import (
    CaptionRecords,
    caption_entry,
    first_caption_attributes,
    latest,
    newest_first,
)
from listing_vision.jewelry.caption_schema import Captioner
from listing_vision.jewelry.dedupe import DedupeService, Scope, Upload
from listing_vision.observability import logger, metrics

URL_FIELDS = ("s3_url", "path")  # the answer fields that hold a stored location until rendered


class CaptionService:
    """Given the dedupe service, with its stores. The captioner comes with each request: which one
    writes (a model, by which key exists, or the offline captioner) is decided per request."""

    def __init__(self, dedupe: DedupeService):
        self.dedupe = dedupe
        self.stored = StoredCaptions(dedupe.images, CaptionRecords(dedupe.claims.table))

    # --- POST /generate_caption -------------------------------------------------------------------
    def caption_upload(
        self,
        upload: Upload,
        jewelry_type: JewelryType,
        captioner: Captioner,
        *,
        caller: Caller,
        check_duplicate: bool = True,
        scope: Scope = "storefront",
    ) -> dict[str, Any]:
        def caption() -> dict[str, Any]:
            media_type = MEDIA_TYPES.get(load_image(upload.data).format or "", "image/jpeg")
            return caption_entry(captioner.caption(upload.data, media_type, jewelry_type), captioner, jewelry_type)

        result = self.dedupe.check_and_store(
            upload,
            caller=caller,
            check_duplicate=check_duplicate,
            scope=scope,
            max_bytes=get_settings().max_upload_bytes,
            before_store=caption,
            record_attributes=first_caption_attributes,
        )
        if result.duplicate_found:
            results = [
                {**answer, "path": found.path, "image_id": found.sha256}
                for answer, found in zip(result.results, result.found, strict=True)
            ]
            first = result.found[0]
            known = self.stored.records.image(first.website, first.sha256) if first.sha256 else None
            entry = latest(known) if known else None
            stored = answer_of(first.website, first.sha256 or "", first.path, entry) if entry else None
            return {"duplicate_found": True, "results": results, "caption": stored}
        assert result.stored is not None and result.sha256 is not None  # a new image is stored
        metrics.add_metric(name="Captions", unit="Count", value=1)
        logger.info("caption written", extra={"provider": captioner.name, "type": jewelry_type})
        return {
            "display_name": result.image_name,
            **answer_of(upload.website, result.sha256, result.stored.s3_uri, {**result.prepared, "number": 1}),
        }


class StoredCaptions:
    """The captions of stored images, by id: read, and written again. Needs only the buckets and the
    catalogue table (no vector index: reading a caption works while Milvus is down)."""

    def __init__(self, images: storage.ImageStore, records: CaptionRecords):
        self.images = images
        self.records = records

    def recaption(
        self, caller: Caller, website: Storefront, image_id: str, jewelry_type: JewelryType, captioner: Captioner
    ) -> dict[str, Any]:
        """A new caption of a stored photo (however it arrived), read from its bucket; the earlier ones
        are kept."""
        record = self._image(caller, website, image_id)
        try:
            data = self.images.read(storage.StoredImage.from_uri(record["path"]))
        except ClientError as error:
            if error.response["Error"]["Code"] in storage.MISSING:  # deleted from the bucket meanwhile
                raise self._missing(website, image_id) from error
            raise
        media_type = MEDIA_TYPES.get(load_image(data, get_settings().max_image_pixels).format or "", "image/jpeg")
        entry = caption_entry(captioner.caption(data, media_type, jewelry_type), captioner, jewelry_type)
        numbered = self.records.append(website, image_id, entry)
        if numbered is None:
            raise self._missing(website, image_id)
        metrics.add_metric(name="Captions", unit="Count", value=1)
        logger.info("image captioned again", extra={"provider": captioner.name, "number": numbered["number"]})
        return answer_of(website, image_id, record["path"], numbered)

    def latest(self, caller: Caller, website: Storefront, image_id: str) -> dict[str, Any]:
        record = self._image(caller, website, image_id)
        entry = latest(record)
        if entry is None:
            raise NotFound(
                f"Image {image_id} of {website} has no caption yet: POST /images/{image_id}/caption makes one.",
                code="caption_not_found",
            )
        return answer_of(website, image_id, record["path"], entry)

    def history(self, caller: Caller, website: Storefront, image_id: str) -> dict[str, Any]:
        record = self._image(caller, website, image_id)
        return {
            "image_id": image_id,
            "website": website,
            "s3_url": record["path"],
            "caption_count": int(record.get("caption_count", 0)),
            "captions": newest_first(record),
        }

    # --- pieces ----------------------------------------------------------------------------------
    def _image(self, caller: Caller, website: Storefront, image_id: str) -> dict[str, Any]:
        caller.require(website)
        record = self.records.image(website, image_id)
        if record is None:
            raise self._missing(website, image_id)
        return record

    @staticmethod
    def _missing(website: str, image_id: str) -> NotFound:
        return NotFound(f"No image {image_id} in {website}.", code="image_not_found")

    def render(self, answer: Any) -> Any:
        """The answer as sent: each stored location (`s3_url`, a result's `path`) as a URL made now."""
        if isinstance(answer, dict):
            return {
                key: self._url(value) if key in URL_FIELDS and isinstance(value, str) else self.render(value)
                for key, value in answer.items()
            }
        if isinstance(answer, list):
            return [self.render(item) for item in answer]
        return answer

    def _url(self, location: str) -> str:
        return self.images.url(storage.StoredImage.from_uri(location)) if location.startswith("s3://") else location


def answer_of(website: str, image_id: str, path: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A caption as answered: its image and the stored caption (its location rendered by `render`)."""
    return {"image_id": image_id, "website": website, "s3_url": path, **entry}
