"""Is a duplicate candidate the same photo? Geometric verification on local features, then colour.

Retrieval by embedding finds candidates; this decides. Both images are squashed to a square
working frame (so a copy squashed to a square looks like its original), ORB keypoints (OpenCV,
patent-free) are matched with Lowe's ratio test, and an affine model (rotation, scale, crop,
squash, shear) is fitted with RANSAC; a mirror image is matched through the query's mirrored
features. Then the colours must agree where the two overlap under that model: hue and chroma,
cell by cell in CIE Lab, after brightness and contrast are allowed for. A grayscale query (no
chroma at all: an export, not a silver piece, whose photo keeps faint tints) is exempt from the
colour test, but its tones must still follow the candidate's. On a product shot (a piece on a plain
backdrop) the piece is also compared as a whole, against its background: a thin hoop or chain in
gold, silver, rose gold or black is a few cells, which the cell test forgives, but its colour and
its lightness against the backdrop tell the metals apart. Colour variants of a design (a hue
rotation, gold recoloured as silver, the same ring in another metal) pass the geometry and fail
the colour test: they are different products.

What an indexed image contributes is `ImageFeatures` (`features.py`): keypoints, descriptors and a
small colour thumbnail, computed once when it is stored. This module needs OpenCV, so it runs on
the SageMaker endpoint (packaged beside the inference handler) or in process with in-process
embeddings; Lambda functions never import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np
from PIL import Image

from listing_vision.imaging.features import (
    THUMB_SIZE,
    WORK_SIZE,
    Candidate,
    ImageFeatures,
    Verdict,
    VerifySettings,
)
from listing_vision.imaging.pixels import as_rgb

ORB_FEATURES = 400
RATIO_TEST = 0.8  # Lowe: best match clearly better than the second
RANSAC_REPROJECTION_PX = 5.0  # in the working frame (1.3 % of its side)
MAX_SCALE = 4.0  # a 70 % crop is 1.43×; beyond this a fit is implausible
MAX_ANISOTROPY = 1.6  # a crop to another aspect: 3:2 to a square is 1.5; the evaluation's copies reach 1.2
CHROMATIC = 10.0  # Lab chroma above which a cell has a colour worth comparing
STRONG_CHROMA = 15.0  # a cell this colourful cannot have turned grey in a re-export
MIN_COLOURED_CELLS = 4  # fewer coloured cells than this: nothing to compare
CLIPPED = 250  # a channel at or above this has lost its colour to clipping (brightness changes)
DARK_LIGHTNESS = 15.0  # below this Lab lightness, hue is noise
# A grayscale export has no chroma at all (R = G = B in every pixel: a mean of 0.01–0.05 in the
# thumbnail, float rounding); a neutral product shot (silver, black metal on a grey background) keeps
# the camera's faint tints (0.12 at the least on the renders, after a contrast cut).
GRAYSCALE_MEAN_CHROMA = 0.08
# The piece of a product shot: the cells this far (Lab ΔE) from the border's median colour.
PIECE_DELTA_E = 12.0
MAX_PIECE_SHARE = 0.45  # a larger "piece" is a scene: only the cell-by-cell tests apply
MIN_PIECE_CELLS = 8
PIECE_CONTRAST_RANGE = (0.6, 1.6)  # how much a re-export may scale the piece's colour against its background
MAX_PIECE_COLOUR = 4.0  # Lab a,b: the piece's colour against its background (and the background's), so scaled
MIN_PIECE_TONE = 6.0  # lightness difference between piece and background below which tone is not compared
MAX_PIECE_TONE_LOG = 0.5  # |ln| of the ratio of the two pieces' lightness against their backgrounds
# The piece's own chroma (mean Lab chroma of its cells, not against the background): a re-export
# scales it by 0.7–1.4 at most (contrast, brightness), while a neutral metal (silver, black) against
# a coloured one (rose gold, gold) differs by more than 2× even when a contrast cut has damped the
# coloured one. Below NEUTRAL_PIECE_CHROMA both are neutral and only their tones are compared.
NEUTRAL_PIECE_CHROMA = 4.0
MAX_PIECE_CHROMA_RATIO = 2.0
PIECE_CHROMA_FLOOR = 0.5  # the weaker chroma is taken as at least this (a ratio to zero means nothing)


def lab(features: ImageFeatures) -> np.ndarray:
    """The thumbnail in CIE Lab."""
    return _lab(features.thumbnail)


def is_grayscale(features: ImageFeatures) -> bool:
    """No colour anywhere in the frame: a grayscale export (not a silver piece, whose photo keeps faint tints)."""
    colours = lab(features)
    return bool(np.hypot(colours[..., 1], colours[..., 2]).mean() <= GRAYSCALE_MEAN_CHROMA)


def orb_detector() -> cv2.ORB:
    # A low FAST threshold keeps keypoints on soft, low-contrast product shots.
    return cv2.ORB.create(nfeatures=ORB_FEATURES, fastThreshold=10, edgeThreshold=19, patchSize=19)


def _points(keypoints: Sequence[cv2.KeyPoint], descriptors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if descriptors is None or not keypoints:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.array([k.pt for k in keypoints], np.float32), descriptors


def _mirrored(keypoints: Sequence[cv2.KeyPoint], width: int) -> list[cv2.KeyPoint]:
    """The keypoints as they lie in the image flipped left to right: x mirrored, and the orientation
    (the intensity centroid's direction) θ → 180° − θ. FAST corners and Harris scores are symmetric
    under the flip, so most of these (three in four on the shipped photos; the pyramid's rounding
    keeps other weak corners) are keypoints a detection on the flipped image finds, without the
    detection's cost (two thirds of ORB's)."""
    return [
        cv2.KeyPoint(width - 1 - k.pt[0], k.pt[1], k.size, (180.0 - k.angle) % 360.0, k.response, k.octave)
        for k in keypoints
    ]


def working_frame(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The image squashed to the working frame in grey levels (what ORB reads), and its colour thumbnail."""
    work = np.asarray(as_rgb(image).resize((WORK_SIZE, WORK_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0))
    return cv2.cvtColor(work, cv2.COLOR_RGB2GRAY), cv2.resize(
        work, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA
    )


def extract(image: Image.Image, with_mirror: bool = False) -> ImageFeatures:
    """Features of a decoded image (EXIF orientation applied). `with_mirror` also describes the
    mirrored image, at the mirrored keypoints: what a query needs to recognise a mirror copy of an
    indexed photo."""
    gray, thumbnail = working_frame(image)
    orb = orb_detector()
    found, descriptors = orb.detectAndCompute(gray, None)  # type: ignore[call-overload]
    mirrored = None
    if with_mirror:
        flipped = np.ascontiguousarray(gray[:, ::-1])
        flipped_found, flipped_descriptors = orb.compute(flipped, _mirrored(found, WORK_SIZE))  # type: ignore[call-overload]
        mirrored = ImageFeatures(*_points(flipped_found, flipped_descriptors), np.ascontiguousarray(thumbnail[:, ::-1]))
    return ImageFeatures(*_points(found, descriptors), thumbnail, mirrored)


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def _fit(query: ImageFeatures, candidate: ImageFeatures, settings: VerifySettings) -> tuple[np.ndarray | None, int]:
    """Affine map query → candidate (working-frame pixels) fitted by RANSAC, and its inliers."""
    if len(query.descriptors) < 2 or len(candidate.descriptors) < 2:
        return None, 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query.descriptors, candidate.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO_TEST * p[1].distance]
    if len(good) < max(settings.min_inliers, 3):
        return None, 0
    source = query.keypoints[[m.queryIdx for m in good]]
    target = candidate.keypoints[[m.trainIdx for m in good]]
    model, mask = cv2.estimateAffine2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_REPROJECTION_PX, maxIters=2000, confidence=0.99
    )
    if model is None:
        return None, 0
    inliers = int(mask.sum())
    if inliers < settings.min_inliers or inliers < settings.min_inlier_ratio * len(good):
        return None, inliers
    return model, inliers


def _plausible(linear: np.ndarray) -> bool:
    """A re-export scales, squashes and turns a photo; it does not flip it inside out or blow it up."""
    singular = np.linalg.svd(linear, compute_uv=False)
    return bool(
        singular[1] >= 1 / MAX_SCALE
        and singular[0] <= MAX_SCALE
        and singular[0] / singular[1] <= MAX_ANISOTROPY
        and np.linalg.det(linear) > 0
    )


def _overlap(query: ImageFeatures, candidate: ImageFeatures, model: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The candidate's thumbnail warped onto the query's (`model` maps query → candidate in
    working-frame pixels; None: the frames coincide), and the query cells it covers."""
    to_candidate = np.eye(2, 3, dtype=np.float64) if model is None else _in_thumbnail_pixels(model)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    size = (THUMB_SIZE, THUMB_SIZE)
    warped = cv2.warpAffine(candidate.thumbnail, to_candidate, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.full(size, 255, np.uint8), to_candidate, size, flags=flags, borderValue=(0,))
    return warped, cv2.erode(inside, np.ones((3, 3), np.uint8)) == 255


def _in_thumbnail_pixels(model: np.ndarray) -> np.ndarray:
    """A working-frame map (query → candidate pixels) as the same map between thumbnails. Pixel
    centres, not corners, scale: a working pixel x lies at thumbnail (x + 0.5)/k − 0.5 (k the ratio
    of the two sides), so a mirror model's x → 383 − x becomes x → 63 − x, not 63.8 − x (most of a
    cell off, which on a thin piece is most of the piece)."""
    k = WORK_SIZE / THUMB_SIZE
    linear = model[:, :2].astype(np.float64)
    offset = linear @ np.full(2, 0.5 - 0.5 / k) + (model[:, 2].astype(np.float64) + 0.5) / k - 0.5
    return np.hstack([linear, offset[:, None]])


def colour_disagreement(
    query: ImageFeatures, candidate: ImageFeatures, model: np.ndarray | None, settings: VerifySettings
) -> tuple[float, str]:
    """Share of overlapping thumbnail cells whose colours (or, for a grayscale query, tones)
    disagree, with which test applied; 1.0 with "piece" when the piece of a product shot has
    another colour or tone than the candidate's (a metal colourway). `model` maps query →
    candidate in working-frame pixels (None: the frames coincide)."""
    warped, valid = _overlap(query, candidate, model)
    if valid.sum() < 0.05 * valid.size:
        return 1.0, "no_overlap"
    # A cell may take its best match among its neighbours: small misalignments are not colour changes.
    query_lab = cv2.GaussianBlur(lab(query), (3, 3), 0)
    candidate_lab = cv2.GaussianBlur(_lab(warped), (3, 3), 0)
    if is_grayscale(candidate) and not is_grayscale(query):
        return 1.0, "colours"  # a colour upload of a photo catalogued only in grayscale shows colours it lacks
    grayscale = is_grayscale(query) and not is_grayscale(candidate)
    if grayscale:
        candidate_lab[..., 0] = _luma_lightness(warped)
    if _piece_differs(query_lab, candidate_lab, valid, query.thumbnail, warped, compare_colour=not grayscale):
        return 1.0, "piece"
    if grayscale:
        return _tone_disagreement(query_lab[..., 0], candidate_lab[..., 0], valid), "tones"
    reliable = valid & _reliable(query.thumbnail, query_lab) & _reliable(warped, candidate_lab)
    return _chroma_disagreement(query_lab, candidate_lab, reliable, settings), "colours"


def _piece_differs(
    query_lab: np.ndarray,
    candidate_lab: np.ndarray,
    valid: np.ndarray,
    query_rgb: np.ndarray,
    candidate_rgb: np.ndarray,
    compare_colour: bool,
) -> bool:
    """A product shot (a piece on a plain background): does the candidate's piece, where the
    query's is, stand out from its background in another tone or colour? The cell test misses
    this on a thin piece (a chain, a hoop): it lets each cell take its best-matching neighbour
    and counts shares of the whole frame. Aggregated over the piece it is robust to
    misalignment, and measured against the background, to brightness and contrast changes."""
    contrast = piece_contrast(query_lab, candidate_lab, valid, query_rgb, candidate_rgb)
    if contrast is None:
        return False
    tone, colour, chroma_ratio = contrast
    return tone > MAX_PIECE_TONE_LOG or (
        compare_colour and (colour > MAX_PIECE_COLOUR or chroma_ratio > MAX_PIECE_CHROMA_RATIO)
    )


def piece_contrast(
    query_lab: np.ndarray,
    candidate_lab: np.ndarray,
    valid: np.ndarray,
    query_rgb: np.ndarray,
    candidate_rgb: np.ndarray,
) -> tuple[float, float, float] | None:
    """(tone, colour, chroma ratio): how differently the two pieces stand out from their
    backgrounds, as |ln| of the ratio of their lightness contrasts and as the Lab a,b distance of
    their colour contrasts once scaled as a re-export may; and the ratio of the pieces' own mean
    chroma, stronger over weaker (1.0 when both are neutral). None when the query is not a product shot."""
    ring = np.ones(valid.shape, bool)
    ring[3:-3, 3:-3] = False
    background = np.median(query_lab[ring], axis=0)
    piece = valid & (np.linalg.norm(query_lab - background, axis=2) > PIECE_DELTA_E)
    rest = valid & ~piece
    if piece.sum() < MIN_PIECE_CELLS or piece.sum() > MAX_PIECE_SHARE * valid.sum() or rest.sum() < MIN_PIECE_CELLS:
        return None
    query_tone = float(query_lab[piece][:, 0].mean() - np.median(query_lab[rest][:, 0]))
    candidate_tone = float(candidate_lab[piece][:, 0].mean() - np.median(candidate_lab[rest][:, 0]))
    tone = 0.0
    if max(abs(query_tone), abs(candidate_tone)) >= MIN_PIECE_TONE:
        tone = abs(float(np.log(query_tone / candidate_tone))) if query_tone * candidate_tone > 0 else np.inf
    # Colour only where neither photo has lost it to clipping or darkness, on the piece and around it.
    reliable = _reliable(query_rgb, query_lab) & _reliable(candidate_rgb, candidate_lab)
    coloured, around = piece & reliable, rest & reliable
    if coloured.sum() < MIN_PIECE_CELLS or around.sum() < MIN_PIECE_CELLS:
        return tone, 0.0, 1.0
    query_back = np.median(query_lab[around][:, 1:], axis=0)
    candidate_back = np.median(candidate_lab[around][:, 1:], axis=0)
    query_ab = query_lab[coloured][:, 1:].mean(axis=0) - query_back
    candidate_ab = candidate_lab[coloured][:, 1:].mean(axis=0) - candidate_back
    # The piece against its background, and the background itself (a tinted backdrop turned).
    colour = max(_scaled_distance(query_ab, candidate_ab), _scaled_distance(query_back, candidate_back))
    return tone, colour, _chroma_ratio(query_lab[coloured], candidate_lab[coloured])


def _chroma_ratio(query_piece: np.ndarray, candidate_piece: np.ndarray) -> float:
    """The pieces' own mean chroma (Lab cells [K,3]), stronger over weaker; 1.0 when both are
    neutral. A silver piece is neutral and a rose-gold one is not, even where their contrasts
    against a tinted backdrop look alike."""
    chromas = [float(np.hypot(piece[:, 1], piece[:, 2]).mean()) for piece in (query_piece, candidate_piece)]
    stronger, weaker = max(chromas), max(min(chromas), PIECE_CHROMA_FLOOR)
    return stronger / weaker if stronger > NEUTRAL_PIECE_CHROMA else 1.0


def _scaled_distance(query_ab: np.ndarray, candidate_ab: np.ndarray) -> float:
    """Lab a,b distance once the candidate's is scaled as a brightness or contrast change may."""
    scale = np.clip(query_ab @ candidate_ab / max(float(candidate_ab @ candidate_ab), 1e-6), *PIECE_CONTRAST_RANGE)
    return float(np.linalg.norm(query_ab - scale * candidate_ab))


def _reliable(rgb: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Cells whose colour can be compared: not clipped by a brightness change, not near black."""
    return (rgb.max(axis=2) < CLIPPED) & (lab[..., 0] > DARK_LIGHTNESS)


def _luma_lightness(rgb: np.ndarray) -> np.ndarray:
    """The lightness a grayscale export of these pixels would have (luma, as most tools convert)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(_lab(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB))[..., 0], (3, 3), 0)


def _tone_disagreement(query_l: np.ndarray, candidate_l: np.ndarray, valid: np.ndarray) -> float:
    q, c = query_l[valid], candidate_l[valid]
    gain, offset = np.polyfit(c, q, 1)  # brightness and contrast changes are allowed
    residual = np.abs(q - (gain * c + offset))
    return float((residual > 8.0).mean())


def _neighbourhood_best(query: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Per cell, the smallest a,b distance to the candidate's cell or one of its 8 neighbours,
    and that neighbour's a,b."""
    padded = np.pad(candidate, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = query.shape[:2]
    best = np.full((h, w), np.inf, np.float32)
    best_ab = np.zeros((h, w, 2), np.float32)
    for dy in range(3):
        for dx in range(3):
            shifted = padded[dy : dy + h, dx : dx + w, 1:]
            distance = np.linalg.norm(query[..., 1:] - shifted, axis=2)
            closer = distance < best
            best = np.where(closer, distance, best)
            best_ab = np.where(closer[..., None], shifted, best_ab)
    return best_ab


def _chroma_disagreement(
    query_lab: np.ndarray, candidate_lab: np.ndarray, valid: np.ndarray, settings: VerifySettings
) -> float:
    matched_ab = _neighbourhood_best(query_lab, candidate_lab)
    qa, qb = query_lab[..., 1], query_lab[..., 2]
    ca, cb = matched_ab[..., 0], matched_ab[..., 1]
    q_chroma, c_chroma = np.hypot(qa, qb), np.hypot(ca, cb)
    stronger, weaker = np.maximum(q_chroma, c_chroma), np.minimum(q_chroma, c_chroma)
    coloured = valid & (stronger > CHROMATIC)
    if coloured.sum() < MIN_COLOURED_CELLS:
        return 0.0  # nothing coloured to compare: grey on grey
    hue = np.degrees(np.abs(np.angle(np.exp(1j * (np.arctan2(qb, qa) - np.arctan2(cb, ca))))))
    turned = (weaker > CHROMATIC) & (hue > settings.max_hue_degrees)
    faded = (stronger > STRONG_CHROMA) & (stronger / np.maximum(weaker, 1.0) > settings.max_chroma_ratio)
    return float(((turned | faded) & coloured).sum() / coloured.sum())


def verify(query: ImageFeatures, candidate: ImageFeatures, settings: VerifySettings | None = None) -> Verdict:
    """Same photo (re-exported: resized, recompressed, squashed, cropped, rotated, mirrored,
    grayscale, brightness or contrast changed) or different (unrelated, or a colour variant)."""
    settings = settings or VerifySettings()
    verdict = _geometric_verdict(query, candidate, settings, mirrored=False)
    if verdict.same or query.mirrored is None:
        return verdict
    mirror_verdict = _geometric_verdict(query, candidate, settings, mirrored=True)  # only when the photo fails
    return mirror_verdict if mirror_verdict.same or mirror_verdict.inliers > verdict.inliers else verdict


def _geometric_verdict(
    query: ImageFeatures, candidate: ImageFeatures, settings: VerifySettings, mirrored: bool
) -> Verdict:
    features = query.mirrored if mirrored else query
    assert features is not None
    model, inliers = _fit(features, candidate, settings)
    if model is None:
        return Verdict(False, "too_few_matches", inliers, mirrored)
    linear = model[:, :2]
    if mirrored:  # compose with the flip: query pixels → mirrored query → candidate
        model = model @ np.array([[-1, 0, WORK_SIZE - 1], [0, 1, 0], [0, 0, 1]], np.float64)
    if not _plausible(linear):
        return Verdict(False, "implausible_geometry", inliers, mirrored)
    return colour_verdict(query, candidate, model, settings, inliers, mirrored)


def colour_verdict(
    query: ImageFeatures,
    candidate: ImageFeatures,
    model: np.ndarray | None,
    settings: VerifySettings | None = None,
    inliers: int = 0,
    mirrored: bool = False,
) -> Verdict:
    """The colour test alone, under `model` (None: the two frames coincide, as for near-identical
    embeddings)."""
    settings = settings or VerifySettings()
    disagreement, test = colour_disagreement(query, candidate, model, settings)
    limit = settings.max_tone_disagreement if test == "tones" else settings.max_colour_disagreement
    if disagreement > limit:
        reason = {"tones": "tones_differ", "piece": "piece_differs"}.get(test, "colours_differ")
        return Verdict(False, reason, inliers, mirrored, disagreement)
    return Verdict(True, "same_photo", inliers, mirrored, disagreement)


def check(query: ImageFeatures, candidate: Candidate, settings: VerifySettings | None = None) -> Verdict:
    """One retrieved candidate: `near` (its embedding is near and the colours agree frame to frame:
    a resized or recompressed copy), `verified` (same photo under an affine model), or no match."""
    settings = settings or VerifySettings()
    if candidate.near:
        verdict = colour_verdict(query, candidate.features, None, settings)
        if verdict.same:
            return replace(verdict, match="near")
    verdict = verify(query, candidate.features, settings)
    return replace(verdict, match="verified") if verdict.same else verdict
