"""What duplicate verification exchanges: image features, the decision's thresholds, verdicts.

The OpenCV engine that computes features and verdicts (`verify.py`) runs where OpenCV is: the
SageMaker endpoint, or the process itself with in-process embeddings. Lambda functions hold only
these types (NumPy, no OpenCV) and the JSON wire form both sides share:

- features of an image: ORB keypoints, descriptors and a colour thumbnail, serialised as a
  compressed `.npz` (about 25 KB) and kept in the image's catalogue record; a query's features
  also carry the mirrored set, which recognises a mirror copy of an indexed photo; on the wire
  (base64 in JSON) the `.npz` is not deflated;
- a verify request: the query's features and each candidate's, with whether the candidate is
  `near` (embedding distance under DUPLICATE_THRESHOLD: checked on colour alone first);
- a verdict per candidate: `near`, `verified` or no match, with the reason.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from listing_vision.imaging.npz import read_npz

FORMAT_VERSION = 1
MAX_RECORD_BYTES = 1_000_000  # uncompressed; a record `extract` makes is about 30 KB (60 KB with the mirror)
THUMB_SIZE = 64  # colour thumbnail (the image squashed to a square), compared cell by cell
WORK_SIZE = 384  # features are found on the image squashed to WORK_SIZE × WORK_SIZE
# The most the model side looks at: verification's working frame (CLIP sees 224 px). Lambda sends
# images with their short side at this, and the endpoint decodes JPEGs no larger than needed for it.
MODEL_SIDE_PX = WORK_SIZE
DESCRIPTOR_BYTES = 32  # ORB
MatchKind = Literal["near", "verified"]
# What a record holds: float32 keypoints, uint8 descriptors and thumbnail, an integer version. Read
# without np.load, whose header parsing is not safe on many threads at once (`npz.py`).
RECORD_DTYPES = frozenset({"<f4", "|u1", "<i8", "<i4"})


@dataclass
class ImageFeatures:
    """What verification needs of one image: ORB keypoints [N,2] in the working frame, their
    descriptors [N,32], and an RGB thumbnail [THUMB_SIZE, THUMB_SIZE, 3] of the squashed image."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    thumbnail: np.ndarray
    mirrored: ImageFeatures | None = field(default=None, repr=False)  # a query's, for mirror images

    def to_bytes(self, with_mirror: bool = False, compressed: bool = True) -> bytes:
        """The serialised record; `with_mirror` adds the mirrored set (a query's form). `compressed`
        deflates it, which saves 15 % of the bytes at a millisecond of CPU (with the mirror): worth it
        for what is stored, not for what crosses the wire once (`to_base64`)."""
        arrays = {
            "version": np.array(FORMAT_VERSION),
            "keypoints": self.keypoints.astype(np.float32),
            "descriptors": self.descriptors.astype(np.uint8),
            "thumbnail": self.thumbnail.astype(np.uint8),
        }
        if with_mirror and self.mirrored is not None:
            arrays["mirror_keypoints"] = self.mirrored.keypoints.astype(np.float32)
            arrays["mirror_descriptors"] = self.mirrored.descriptors.astype(np.uint8)
        buffer = io.BytesIO()
        (np.savez_compressed if compressed else np.savez)(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageFeatures:
        """Parse a serialised record; ValueError when it is not one this version wrote."""
        try:
            arrays = read_npz(data, RECORD_DTYPES, MAX_RECORD_BYTES)
        except ValueError as error:
            raise ValueError(f"not a verification features record: {error}") from error
        version = arrays.pop("version", np.array(None))
        if version.shape != () or version.item() != FORMAT_VERSION:  # another version may hold other arrays
            raise ValueError(f"verification features version {version.tolist()}, expected {FORMAT_VERSION}")
        try:
            features = cls(arrays["keypoints"], arrays["descriptors"], arrays["thumbnail"])
            if "mirror_keypoints" in arrays:
                flipped = np.ascontiguousarray(features.thumbnail[:, ::-1])
                features.mirrored = cls(arrays["mirror_keypoints"], arrays["mirror_descriptors"], flipped)
        except KeyError as error:
            raise ValueError(f"verification features record lacks {error}") from error
        if not all(part.valid for part in (features, features.mirrored) if part is not None):
            raise ValueError("verification features record has unexpected shapes")
        return features

    @property
    def valid(self) -> bool:
        return bool(
            self.keypoints.dtype == np.float32
            and self.keypoints.ndim == 2
            and self.keypoints.shape[1] == 2
            and self.descriptors.dtype == np.uint8
            and self.descriptors.shape == (len(self.keypoints), DESCRIPTOR_BYTES)
            and self.thumbnail.dtype == np.uint8
            and self.thumbnail.shape == (THUMB_SIZE, THUMB_SIZE, 3)
        )

    def to_base64(self, with_mirror: bool = False) -> str:
        """The wire form (endpoint ↔ Lambda): not deflated; the receiver stores it with `to_bytes`."""
        return base64.b64encode(self.to_bytes(with_mirror, compressed=False)).decode()

    @classmethod
    def from_base64(cls, text: Any) -> ImageFeatures:
        try:
            return cls.from_bytes(base64.b64decode(text, validate=True))
        except (binascii.Error, TypeError) as error:
            raise ValueError("verification features are not valid base64") from error


@dataclass(frozen=True)
class VerifySettings:
    """Thresholds of the decision (defaults chosen on the labelled evaluation; see README)."""

    min_inliers: int = 15
    min_inlier_ratio: float = 0.2  # inliers / ratio-test matches
    max_hue_degrees: float = 25.0
    max_chroma_ratio: float = 2.2
    max_colour_disagreement: float = 0.08  # share of coloured cells whose colours disagree
    max_tone_disagreement: float = 0.15  # grayscale queries: share of cells whose tones disagree

    @classmethod
    def from_json(cls, payload: Any) -> VerifySettings:
        if payload is None:
            return cls()
        if not isinstance(payload, dict) or not set(payload) <= {f.name for f in fields(cls)}:
            raise ValueError(f"'settings' takes only {sorted(f.name for f in fields(cls))}")
        values: dict[str, Any] = {}
        for name, value in payload.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"settings.{name} must be a non-negative number")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class Verdict:
    """One candidate's answer. `match` is set exactly when the candidate is the same photo."""

    same: bool
    # same_photo | too_few_matches | implausible_geometry | colours_differ | tones_differ | piece_differs | no_overlap
    reason: str
    inliers: int = 0
    mirrored: bool = False
    colour_disagreement: float = 0.0
    match: MatchKind | None = None

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Verdict:
        return cls(**{f.name: payload[f.name] for f in fields(cls) if f.name in payload})


@dataclass(frozen=True)
class Candidate:
    """A retrieved catalogue image to verify: its features, and whether its embedding is near."""

    features: ImageFeatures
    near: bool = False


# --- the JSON wire form (the endpoint's verify request and answer) -------------------------------
MAX_CANDIDATES = 100


def verify_request(query: ImageFeatures, candidates: list[Candidate], settings: VerifySettings) -> dict[str, Any]:
    return {
        "verify": {
            "query": query.to_base64(with_mirror=True),
            "candidates": [{"features": c.features.to_base64(), "near": c.near} for c in candidates],
            "settings": asdict(settings),
        }
    }


def parse_verify_request(payload: Any) -> tuple[ImageFeatures, list[Candidate], VerifySettings]:
    """ValueError (a message for the caller) for anything but a well-formed request."""
    body = payload.get("verify") if isinstance(payload, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("candidates"), list):
        raise ValueError('Expected JSON {"verify": {"query": "<base64>", "candidates": [...], "settings": {...}}}.')
    entries = body["candidates"]
    if len(entries) > MAX_CANDIDATES:
        raise ValueError(f"At most {MAX_CANDIDATES} candidates per request.")
    query = ImageFeatures.from_base64(body.get("query"))
    candidates = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("near", False), bool):
            raise ValueError(f'Candidate {index} must be {{"features": "<base64>", "near": true|false}}.')
        candidates.append(Candidate(ImageFeatures.from_base64(entry.get("features")), entry.get("near", False)))
    return query, candidates, VerifySettings.from_json(body.get("settings"))


def verdicts_json(verdicts: list[Verdict]) -> dict[str, Any]:
    return {"verdicts": [asdict(verdict) for verdict in verdicts]}
