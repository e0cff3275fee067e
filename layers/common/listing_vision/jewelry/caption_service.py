"""POST /generate_caption: dedupe (the same code path as /image_similarity_search), then caption.

A duplicate answers exactly as the dedupe endpoint does and costs no caption. A new image is
captioned after the duplicate check and before it is stored, so a provider that fails or refuses
leaves nothing behind; then it is stored and indexed exactly as dedupe does.
"""

from __future__ import annotations

from typing import Any

from listing_vision.api.access import Caller
from listing_vision.config import get_settings
from listing_vision.imaging.decode import MEDIA_TYPES, load_image
from listing_vision.jewelry.caption_prompts import JewelryType
from listing_vision.jewelry.caption_schema import Caption, Captioner
from listing_vision.jewelry.dedupe import DedupeService, Scope, Upload
from listing_vision.observability import logger, metrics


class CaptionService:
    """Given the dedupe service, with its stores. The captioner comes with each request: which one
    writes (a model, by which key exists, or the offline captioner) is decided per request."""

    def __init__(self, dedupe: DedupeService):
        self.dedupe = dedupe

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
        def caption() -> Caption:
            media_type = MEDIA_TYPES.get(load_image(upload.data).format or "", "image/jpeg")
            return captioner.caption(upload.data, media_type, jewelry_type)

        result = self.dedupe.check_and_store(
            upload,
            caller=caller,
            check_duplicate=check_duplicate,
            scope=scope,
            max_bytes=get_settings().max_upload_bytes,
            before_store=caption,
        )
        if result.duplicate_found:
            return result.to_response()
        metrics.add_metric(name="Captions", unit="Count", value=1)
        logger.info("caption written", extra={"provider": captioner.name, "type": jewelry_type})
        return {
            "display_name": result.image_name,
            **result.prepared.model_dump(),
            "s3_url": result.s3_url,
            "provider": captioner.name,
        }
