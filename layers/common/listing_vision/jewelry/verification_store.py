"""The verification features of catalogue images: read from their catalogue records, or else
found again from the image.

A duplicate check verifies up to SEARCH_TOP_K candidates. Downloading each candidate's image and
finding its keypoints again would cost a full-size S3 GET and a model call per candidate, so when
an image is stored its features are kept in its catalogue record (`claims.py`), and a check reads
all its candidates' features in one BatchGetItem.

Images indexed before features were kept have none in their record (and a damaged record is
treated the same): the candidate's image is then read from S3 and described by the model, and the
features written back, so the next check is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

from botocore.exceptions import ClientError

from listing_vision.concurrency import thread_map
from listing_vision.config import get_settings
from listing_vision.embeddings.base import Embedder
from listing_vision.errors import VisionError, http_status
from listing_vision.imaging.features import ImageFeatures
from listing_vision.jewelry import storage, vector_index
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.observability import logger, metrics

FROM_IMAGE_CONCURRENCY = 4  # candidates without stored features, read and described at once


class VerificationStore:
    def __init__(self, stores: CatalogueStores, embedder: Embedder):
        self.claims = stores.claims
        self.images = stores.images
        self.embedder = embedder

    def for_hits(self, hits: Sequence[vector_index.Hit]) -> list[ImageFeatures | None]:
        """Each hit's features, in order; None for an image that can no longer be read."""
        stored = self.claims.features([(hit.website, hit.sha256) for hit in hits if hit.sha256])
        found: list[ImageFeatures | None] = []
        for hit in hits:
            record = stored.get((hit.website, hit.sha256))
            try:
                found.append(ImageFeatures.from_bytes(record) if record is not None else None)
            except ValueError as error:  # an older or damaged record: found again from the image below
                logger.warning("verification features unreadable", extra={"path": hit.path, "error": str(error)})
                found.append(None)
        missing = [index for index, features in enumerate(found) if features is None]
        recovered = thread_map(lambda index: self.from_image(hits[index]), missing, FROM_IMAGE_CONCURRENCY)
        for index, features in zip(missing, recovered, strict=True):
            found[index] = features
        return found

    def from_image(self, hit: vector_index.Hit) -> ImageFeatures | None:
        """The features of a catalogue image found from the image itself, written back to its
        record. None when the image is gone or unreadable."""
        metrics.add_metric(name="VerificationFeaturesFromImage", unit="Count", value=1)
        image = storage.StoredImage.from_uri(hit.path)
        head = self.images.head(image)
        if head is None:
            logger.warning("duplicate candidate's image is gone", extra={"path": hit.path})
            return None
        if head["ContentLength"] > get_settings().max_object_bytes:
            return None
        try:
            data = self.images.read(image)
            features = self.embedder.describe([data])[0].features
        except ClientError as error:
            if error.response["Error"]["Code"] not in storage.MISSING:
                raise
            logger.warning("duplicate candidate's image is gone", extra={"path": hit.path})
            return None
        except VisionError as error:
            if http_status(error) >= 500:  # the model is down: the check fails rather than missing a duplicate
                raise
            logger.warning("duplicate candidate's image is unreadable", extra={"path": hit.path, "code": error.code})
            return None
        self.claims.set_features(hit.website, hit.sha256 or storage.sha256_hex(data), features.to_bytes())
        return features
