"""New listings: a listing document dropped into the uploads bucket becomes an indexed listing with
`visual_features_text`, the three split fields and `image_vectors`.

Document (JSON, any key under the bucket):

    {"zpid": "12345678",
     "image_urls": ["s3://listing-uploads/photos/12345678/00.jpg", "https://photos.hearth.example/…/01.jpg"],
     "address": "…", "price": 450000, …}          # any other field is indexed as given

For each image, in the given order: the cached analysis when there is one; otherwise the image is
fetched (only from LISTING_IMAGE_SOURCES), analysed by Claude (structured output, validated, the
raw reply kept as `llm_response`) and embedded, and the result cached with its hash and model
names. The split is the migration's own function, and what it came from is recorded as the
migration records it (`split_records`), so a freshly ingested listing is not counted stale.
Analyses run with bounded concurrency. An image that cannot be analysed now (no key, provider
down, fetch failed) is listed in `visual_features_pending` and the listing is indexed with what
is known; an image that is not an image is listed in `invalid_images` and never retried.
Delivering the same document again changes nothing; dropping it again after pending images can be analysed completes it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import opensearchpy
import requests
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from listing_vision import aws
from listing_vision.concurrency import thread_map
from listing_vision.config import get_settings
from listing_vision.embeddings.base import Embedder
from listing_vision.embeddings.factory import get_embedder
from listing_vision.errors import InvalidRequest, VisionError
from listing_vision.imaging.decode import MEDIA_TYPES, load_image
from listing_vision.observability import logger, metrics
from listing_vision.providers.clients import anthropic_key
from listing_vision.providers.vision_llm import AnthropicVision, VisionModel
from listing_vision.realestate.features import feature_phrases, split_visual_features, visual_features_text
from listing_vision.realestate.image_analysis import analyse
from listing_vision.realestate.image_fetch import fetch_image
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitInputs, SplitRecords, split_inputs
from listing_vision.realestate.taxonomy import load_taxonomy
from listing_vision.realestate.vision_cache import CachedImage, VisionCache


class ListingDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    zpid: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    image_urls: list[str] = Field(min_length=1, max_length=200)


@dataclass
class IngestOutcome:
    zpid: str
    status: str  # indexed | unchanged
    images: int
    cached: int
    analysed: int
    pending: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


class ListingIngest:
    """Ingest over the stores it is given: the vision cache, the phrase cache (read) and the listings
    index; `vision` None means no key, so nothing is analysed. `from_settings` builds the configured
    ones (the handler, once per container)."""

    def __init__(
        self,
        embedder: Embedder,
        vision: VisionModel | None,
        cache: VisionCache,
        phrases: PhraseStore,
        listings: ListingsIndex,
        records: SplitRecords,
    ):
        self.embedder = embedder
        self.vision = vision
        self.cache = cache
        self.phrases = phrases
        self.listings = listings
        self.records = records
        self.concurrency = get_settings().ingest_concurrency

    @classmethod
    def from_settings(cls) -> ListingIngest:
        stores = (VisionCache(), PhraseStore(), ListingsIndex.from_settings(), SplitRecords())
        return cls(get_embedder(), default_vision(), *stores)

    # --- one document -------------------------------------------------------------------------
    def ingest(self, document: ListingDocument) -> IngestOutcome:
        urls = list(dict.fromkeys(document.image_urls))
        cached = self.cache.get_many(urls, with_embeddings=True)
        misses = [url for url in urls if url not in cached]
        fresh: dict[str, CachedImage] = {}
        pending: list[str] = []
        invalid: list[str] = []
        if misses and self.vision is None:
            pending = misses  # no key: nothing is invented
        elif misses:
            for url, outcome in zip(misses, thread_map(self.analyse_image, misses, self.concurrency), strict=True):
                if isinstance(outcome, CachedImage):
                    fresh[url] = outcome
                elif outcome == "invalid":
                    invalid.append(url)
                else:
                    pending.append(url)
        known = {**cached, **fresh}
        analyses = [known[url].analysis for url in urls if url in known]
        # The migration's split, with the same phrase classes (phrases nobody classified yet: the
        # offline rule; classify-phrases picks them up for the next forced execute).
        classifier, _ = self.phrases.classifier_for(p for a in analyses for p in feature_phrases(a)[1])
        vectors = [
            {
                "image_url": url,
                "image_type": known[url].analysis.get("image_type"),
                "vector": [round(float(x), 6) for x in known[url].embedding],  # type: ignore[union-attr]
            }
            for url in urls
            if url in known and known[url].embedding is not None
        ]
        source = {
            **document.model_dump(exclude={"zpid", "image_urls"}),
            "zpid": document.zpid,
            "image_urls": urls,
            "visual_features_text": visual_features_text(analyses, classifier),
            **split_visual_features(analyses, classifier).as_fields(),
            "image_vectors": vectors,
            "visual_features_pending": pending,
            "invalid_images": invalid,
        }
        status = self._write(document.zpid, source)
        inputs = split_inputs(urls, {url: image.analysis for url, image in known.items()}, load_taxonomy().fingerprint)
        self._record(document.zpid, inputs, status)
        metrics.add_metric(name="ListingsIngested", unit="Count", value=1)
        if pending:
            metrics.add_metric(name="ImagesPending", unit="Count", value=len(pending))
        logger.info(
            "listing ingested",
            extra={
                "zpid": document.zpid,
                "status": status,
                "cached": len(cached),
                "analysed": len(fresh),
                "pending": len(pending),
                "invalid": len(invalid),
            },
        )
        return IngestOutcome(document.zpid, status, len(urls), len(cached), len(fresh), pending, invalid)

    def analyse_image(self, url: str) -> CachedImage | str:
        """A fresh analysis and embedding, cached; or "invalid" (never retried) or "pending"."""
        assert self.vision is not None
        try:
            data = fetch_image(url)
        except InvalidRequest as error:
            logger.warning("image refused", extra={"url": url, "code": error.code})
            return "invalid"
        except (requests.RequestException, ClientError, BotoCoreError, OSError) as error:  # retried later
            logger.warning("image fetch failed", extra={"url": url, "error": str(error)[:200]})
            return "pending"
        try:
            image = load_image(data, get_settings().max_image_pixels)
        except VisionError:
            return "invalid"
        media_type = MEDIA_TYPES.get(image.format or "", "image/jpeg")
        try:
            analysis, raw = analyse(self.vision, data, media_type)
            # Whatever model the endpoint serves now, recorded with the vector: the cache holds no one
            # model's vectors, so a model swapped in while this container runs is no error here.
            embeddings, embedding_model = self.embedder.embed_with_model([data])
        except VisionError as error:
            logger.warning("image analysis failed", extra={"url": url, "code": error.code})
            return "pending"
        cached = CachedImage(
            image_url=url,
            analysis=analysis.model_dump(),
            image_hash=hashlib.sha256(data).hexdigest(),
            embedding=np.asarray(embeddings[0], dtype=np.float32),
            llm_response=raw,
            analysis_model=self.vision.model,
            embedding_model=embedding_model,
        )
        self.cache.put(cached)
        return cached

    def _record(self, zpid: str, inputs: SplitInputs, status: str) -> None:
        """What the split just indexed came from (so the migration does not count it stale); a
        re-delivery that changed nothing writes it only if it is missing or differs."""
        index = self.listings.name
        if status == "unchanged" and self.records.get(index, zpid) == inputs:
            return
        self.records.put(index, zpid, inputs)

    def _write(self, zpid: str, source: dict[str, Any]) -> str:
        """Index the listing unless it is already exactly this (re-delivery changes nothing); a
        concurrent writer in between is detected by the version guard and the write is redone."""
        for _ in range(3):
            existing = self.listings.get_docs([zpid]).get(zpid)
            if existing is not None and existing.source == source:
                return "unchanged"
            try:
                self.listings.put_guarded(zpid, source, over=existing)
                return "indexed"
            except Exception as error:
                if getattr(error, "status_code", None) != 409:
                    raise
        raise VisionError(f"Listing {zpid} kept changing while it was being indexed.", code="listing_conflict")


def default_vision() -> VisionModel | None:
    """Claude analyses listing photos when an Anthropic key is set; without one nothing is analysed."""
    return AnthropicVision(get_settings().anthropic_vision_model) if anthropic_key() else None


# OpenSearch's numbers: a long is 64 bits, a double is finite (1e400 would parse to infinity)
LONG_RANGE = range(-(2**63), 2**63)


def _long(text: str) -> int:
    value = int(text)
    if value not in LONG_RANGE:
        raise ValueError(f"the number {text[:24]}… does not fit in 64 bits")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:24]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bad_field_name(value: Any, top: bool = True) -> str | None:
    """A field name OpenSearch refuses: empty or blank anywhere, or a metadata name (`_id`, `_source`,
    …: a leading underscore) at the top."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        if isinstance(name, str) and (not name.strip() or (top and name.startswith("_"))):
            return name
        if (found := _bad_field_name(item, top=False)) is not None:
            return found
    return None


def parse_document(body: bytes) -> ListingDocument:
    """The listing in an uploaded object, or `invalid_listing_document`: not JSON (NaN and Infinity
    included, or nested past what the parser allows), not a listing, or a document the index would
    refuse for its form alone (a number past 64 bits or infinite, an empty or metadata field name)."""
    try:
        value = json.loads(body, parse_int=_long, parse_float=_finite, parse_constant=_no_constant)
        if (name := _bad_field_name(value)) is not None:
            raise ValueError(f"the field name {name[:40]!r} cannot be indexed")
        return ListingDocument.model_validate(value)
    except (ValueError, ValidationError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error).splitlines()[0][:200]
        raise InvalidRequest(f"Not a listing document: {reason}", code="invalid_listing_document") from error


def _tag_invalid(s3: Any, bucket: str, key: str, reason: str) -> dict[str, Any]:
    s3.put_object_tagging(
        Bucket=bucket,
        Key=key,
        Tagging={"TagSet": [{"Key": "ingest-status", "Value": "invalid"}, {"Key": "reason", "Value": reason}]},
    )
    return {"key": key, "status": "invalid", "reason": reason}


def ingest_object(bucket: str, key: str, ingest: ListingIngest) -> dict[str, Any]:
    """One uploaded object: a listing document is ingested; anything else is recorded and skipped."""
    s3 = aws.client("s3")
    if not key.endswith(".json"):
        return {"key": key, "status": "skipped", "reason": "not a .json listing document"}
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read(5_000_000)
    try:
        document = parse_document(body)
    except InvalidRequest as error:
        return _tag_invalid(s3, bucket, key, error.code)
    try:
        outcome = ingest.ingest(document)
    except opensearchpy.RequestError as error:
        # 400: the index refuses the document itself (`"price": "four hundred"` where prices are
        # numbers): no retry would index it, so it is tagged invalid, not retried into the failure queue.
        logger.info("listing refused by the index", extra={"key": key, "error": str(error.error)[:200]})
        return _tag_invalid(s3, bucket, key, "listing_refused_by_index")
    return {"key": key, **outcome.__dict__}
