"""Duplicate detection for storefront photos: check, store, index, without races.

An upload is validated (nothing is written for a bad one), hashed, and its exact bytes looked up
in the content registry before any embedding is computed. A new upload claims its content, is
embedded (normalised), and checked against the catalogue in two stages (`duplicates.py`:
retrieval by embedding, then verification of each candidate); unless a duplicate is found, it is
stored in the storefront's bucket under a content key and indexed, its verification features
kept in its catalogue record. Identical uploads arriving together store one object and one vector: the others wait
for the winner's record and answer with it.

Different files that are near-duplicates of each other (an original and its resized copy) hold
different claims and can both pass the first check. So a new image is stored in four steps:

1. its object is written and its vector inserted (searches are strongly consistent: a search sees
   every insert acknowledged before it started);
2. it takes a number from one atomic sequence (`ContentClaims.next_order`) and stages its claim
   with it: a claim that did not see another's vector in its re-search (step 3) therefore has the
   lower number, whatever the clocks say;
3. it searches again and verifies, and settles each near-duplicate found by its record: a stored
   image wins; one staged with a lower number wins once it is stored (we wait for it, so a chain
   of near-duplicates never loses both ends); one that yielded, or was abandoned, or is later than
   us (or not yet numbered: it will be later) is ignored;
4. the winner completes its claim; a loser rolls back (vector deleted, its API object deleted,
   claim marked `yielded`) and answers, or is tagged, duplicate of the winner.

Any two near-duplicate uploads both reach step 3, and the later of the two re-searches sees the
other: one image is stored. Waits only ever go towards lower numbers, so they cannot deadlock.
The first check (before storing) counts a candidate once its image is stored, the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from listing_vision.api.access import Caller
from listing_vision.config import Storefront, get_settings
from listing_vision.embeddings.base import Description, Embedder
from listing_vision.errors import Conflict, PayloadTooLarge
from listing_vision.imaging.decode import load_image
from listing_vision.jewelry import storage
from listing_vision.jewelry.claims import ContentRecord, new_owner
from listing_vision.jewelry.duplicates import DuplicateFinder, Match
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.observability import logger, metrics

Scope = Literal["storefront", "all"]
CLAIM_WAIT_S = 20.0  # under API Gateway's 29 s, with room for the winner to embed and store


@dataclass(frozen=True)
class FoundImage:
    """A duplicate's catalogue image, by id: its storefront, its sha256 (the image id; None for a
    vector indexed before records kept it) and where it lies (an s3:// URI, rendered as a URL in answers)."""

    website: str
    sha256: str | None
    path: str


@dataclass
class DedupeResult:
    """The two answers: a duplicate (nothing stored) or a new image (stored and indexed)."""

    duplicate_found: bool
    results: list[dict[str, Any]] = field(default_factory=list)
    found: list[FoundImage] = field(default_factory=list)  # the images behind `results`, in order
    sha256: str | None = None  # a new image's id
    image_name: str | None = None
    s3_url: str | None = None
    stored: storage.StoredImage | None = None
    vector: np.ndarray | None = None
    prepared: Any = None  # what before_store returned (a caption)

    def to_response(self) -> dict[str, Any]:
        if self.duplicate_found:  # each result names its image (a verdict's matched_image_id: verdicts.py)
            results = [{**r, "image_id": f.sha256} for r, f in zip(self.results, self.found, strict=True)]
            return {"duplicate_found": True, "results": results}
        return {"duplicate_found": False, "image_name": self.image_name, "s3_url": self.s3_url}


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None
    website: Storefront


class DedupeService:
    """Given the model and the catalogue's stores (`stores.py`): the vector index, the buckets, the
    catalogue table."""

    def __init__(self, embedder: Embedder, stores: CatalogueStores):
        self.embedder = embedder
        self.vectors = stores.vectors
        self.images = stores.images
        self.claims = stores.claims
        self.uploads = stores.uploads
        self.settings = get_settings()
        self.finder = DuplicateFinder(stores, embedder, self.settings)
        self._ready_for: str | None = None  # the model signature the collection was checked for

    def require_ready(self) -> None:
        """Before any search or vector write: the collection exists and holds vectors of the model
        the embedder serves (`NotProvisioned`, `ModelMismatch`: 503). Checked once per model: the
        endpoint's embedder pins the signature it was checked with, and refuses any answer of another."""
        signature = self.embedder.model_signature
        if signature != self._ready_for:
            self.vectors.require(signature)
            self._ready_for = signature

    # --- the endpoint's operation -------------------------------------------------------------
    def check_and_store(
        self,
        upload: Upload,
        *,
        caller: Caller,
        check_duplicate: bool = True,
        scope: Scope = "storefront",
        max_bytes: int | None = None,
        before_store: Callable[[], Any] | None = None,
        record_attributes: Callable[[Any], Mapping[str, Any]] | None = None,
    ) -> DedupeResult:
        """Check, then store and index a new image. `before_store` runs after the duplicate check and
        before anything is written (captions use it): if it fails, nothing is stored. What it returned
        adds `record_attributes(prepared)` to the stored record, in the write that completes it. A
        caller who may not use the upload's storefront (or search all of them) is refused before
        anything else."""
        caller.require(upload.website, scope)
        storage.check_filename(upload.filename)
        if max_bytes is not None and len(upload.data) > max_bytes:
            raise PayloadTooLarge(
                f"The image is {len(upload.data):,} bytes; the API takes up to {max_bytes:,}. "
                "Use POST /uploads for larger files.",
                code="file_too_large",
            )
        image = load_image(upload.data, self.settings.max_image_pixels)  # bad input: refused, nothing written
        sha256 = storage.sha256_hex(upload.data)
        owner = new_owner()
        exact = self.claim_or_existing(upload.website, sha256, owner, scope)
        if exact is not None:
            metrics.add_metric(name="ExactDuplicates", unit="Count", value=1)
            return self._duplicate_of_record(exact)
        stored: storage.StoredImage | None = None
        vector_id: int | None = None
        try:
            self.require_ready()
            described = self.embedder.describe([upload.data])[0]
            vector = described.embedding
            if check_duplicate:
                matches = self.duplicate_matches(described, upload.website, scope, own=sha256)
                if matches:
                    self.claims.release(upload.website, sha256, owner)
                    for kind in {found.match for found in matches}:
                        metrics.add_metric(name=f"{kind.capitalize()}Duplicates", unit="Count", value=1)
                    return self._duplicate_of(matches, vector)
            prepared = before_store() if before_store is not None else None
            stored = self.images.put_image(upload.website, upload.data, sha256, image.format or "", upload.filename)
            vector_id = self.stage(described, stored.s3_uri, upload.website, sha256, owner)
            if check_duplicate:
                winner = self.settle(described, upload.website, scope, sha256, owner)
                if winner is not None:  # an earlier near-duplicate arrived at the same time: it is kept
                    self.roll_back(upload.website, sha256, owner, vector_id, stored)
                    metrics.add_metric(name="RaceDuplicates", unit="Count", value=1)
                    logger.info("near-duplicate race lost", extra={"winner": winner.hit.path})
                    return self._duplicate_of([winner], vector)
            self.claims.complete(
                upload.website,
                sha256,
                owner,
                stored.s3_uri,
                vector_id,
                upload.filename,
                features=described.features.to_bytes(),
                extra=record_attributes(prepared) if record_attributes is not None else None,
            )
        except BaseException:
            if vector_id is not None:  # others may have seen our vector: roll back, marked yielded
                self.roll_back(upload.website, sha256, owner, vector_id, stored)
            self.claims.release(upload.website, sha256, owner)
            raise
        metrics.add_metric(name="ImagesStored", unit="Count", value=1)
        logger.info("image stored", extra={"website": upload.website, "key": stored.key, "vector_id": vector_id})
        return DedupeResult(
            False,
            prepared=prepared,
            image_name=upload.filename or stored.key.rsplit("/", 1)[-1],
            s3_url=self.images.url(stored),
            stored=stored,
            vector=vector,
            sha256=sha256,
        )

    # --- pieces ---------------------------------------------------------------------------------
    def duplicate_matches(
        self, upload: Description, website: Storefront, scope: Scope, own: str | None = None, not_at: str | None = None
    ) -> list[Match]:
        """Catalogue images that are the same photo (`near` or `verified`), nearest first; an image
        still being stored by another request counts once it is stored (it is waited for). `own`: the
        upload's sha256, whose row (a rolled-back attempt's, not yet deleted) is not a candidate: the
        same bytes were settled by the registry already. `not_at`: the key the upload lies at, whose
        other rows are of bytes it no longer holds (an overwritten key: `overwrites.py`)."""
        exclude = (website, own) if own else None
        found = self.finder.find(upload, website, scope, exclude=exclude)
        return self.confirmed([match for match in found if not_at is None or match.hit.path != not_at])

    def _result(self, found: Match) -> dict[str, Any]:
        return {
            "id": found.hit.id,
            "distance": round(max(found.hit.distance, 0.0), 6),
            "path": self._url(found.hit.path),
            "match": found.match,
        }

    # --- near-duplicates arriving together (the module's docstring has the rule) -------------------
    def stage(self, upload: Description, path: str, website: Storefront, sha256: str, owner: str) -> int:
        """Insert our vector, then take our number and stage our claim with it; returns the row id."""
        vector_id = self.vectors.ensure_vector(upload.embedding, path, website, sha256)
        order = self.claims.next_order()  # after the insert was acknowledged: see the module docstring
        self.claims.stage(website, sha256, owner, path, vector_id, order, features=upload.features.to_bytes())
        return vector_id

    def settle(
        self, upload: Description, website: Storefront, scope: Scope, sha256: str, owner: str, not_at: str | None = None
    ) -> Match | None:
        """After staging: the near-duplicate that wins over us (stored, or staged earlier and then
        stored), or None when we are to be kept (`not_at`: as `duplicate_matches` takes it)."""
        record = self.claims.get(website, sha256)
        if record is None or record.owner != owner or record.order is None:
            raise Conflict("The upload's claim was taken over; try again.", code="upload_in_progress")
        matches = self.finder.find(upload, website, scope, exclude=(website, sha256))
        matches = [match for match in matches if not_at is None or match.hit.path != not_at]
        return next(iter(self.confirmed(matches, mine=record.order)), None)

    def confirmed(self, matches: list[Match], mine: int | None = None) -> list[Match]:
        """The matches whose image is (or becomes) stored, in order. `mine`: our own number once staged
        (matches numbered later, or not yet numbered, give way to us); None: we have no vector yet,
        so every pending match is earlier than us and is waited for."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        return [found for found in matches if self._counts(found, mine, deadline)]

    def _counts(self, found: Match, mine: int | None, deadline: float) -> bool:
        """Whether the matched image is stored (waiting while an earlier one is being stored)."""
        hit = found.hit
        delay = 0.02
        while True:
            record = self.claims.get(hit.website, hit.sha256) if hit.sha256 else None
            if record is None or record.stored:
                return True  # stored (no record: indexed before the registry kept one)
            if record.yielded or record.deleting or record.lease_until < self.claims.clock():
                return False  # rolled back, being deleted, or abandoned by a request that died
            if mine is not None and (record.order is None or record.order > mine):
                return False  # later than us: it will see our vector and give way
            if time.monotonic() > deadline:
                raise Conflict(
                    "A near-duplicate of this image is being stored by another request; try again shortly.",
                    code="upload_in_progress",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def roll_back(
        self,
        website: Storefront,
        sha256: str,
        owner: str,
        vector_id: int,
        stored: storage.StoredImage | None,
    ) -> None:
        """Undo a staged image: its object (an API upload's) deleted first, so the upload trigger that
        may take over the yielded claim finds it gone; then the vector removed, before the claim is
        marked yielded, because a request that takes the claim over writes the same vector id (whoever
        saw the vector meanwhile waits on the claim, which then reads yielded)."""
        if stored is not None:
            self.images.delete(stored)
        self.vectors.delete(vector_id)
        self.claims.yield_claim(website, sha256, owner)

    def claim_or_existing(self, website: Storefront, sha256: str, owner: str, scope: Scope) -> ContentRecord | None:
        """Claim the content (returns None) or return the stored record of the same bytes,
        waiting while another request holds the claim."""
        others = [s for s in get_settings().storefront_names if s != website] if scope == "all" else []
        deadline = time.monotonic() + CLAIM_WAIT_S
        delay = 0.05
        while True:
            for storefront in [website, *others]:
                record = self.claims.get(storefront, sha256)
                if record is not None and record.stored:
                    return record
            if self.claims.try_claim(website, sha256, owner):
                return None
            if time.monotonic() > deadline:
                raise Conflict(
                    "The same image is being stored by another request; try again shortly.",
                    code="upload_in_progress",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _duplicate_of(self, matches: list[Match], vector: np.ndarray) -> DedupeResult:
        found = [FoundImage(m.hit.website, m.hit.sha256 or None, m.hit.path) for m in matches]
        return DedupeResult(True, results=[self._result(m) for m in matches], found=found, vector=vector)

    def _duplicate_of_record(self, record: ContentRecord) -> DedupeResult:
        result = {"id": record.vector_id, "distance": 0.0, "path": self._url(record.path or ""), "match": "exact"}
        website, _, sha256 = record.content_id.partition("#")
        return DedupeResult(True, results=[result], found=[FoundImage(website, sha256, record.path or "")])

    def _url(self, s3_uri: str) -> str:
        return self.images.url(storage.StoredImage.from_uri(s3_uri))
