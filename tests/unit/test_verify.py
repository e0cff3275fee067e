"""Geometric and colour verification of duplicate candidates, on real photos and their labelled variants."""

from __future__ import annotations

import io
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation import variants
from listing_vision.imaging import verify
from listing_vision.imaging.features import FORMAT_VERSION, Candidate, ImageFeatures, Verdict

PACKAGE_PHOTOS = Path(__file__).resolve().parents[1] / "data" / "package_photos"


_COMPILING: list[list[str]] = []  # what `compiles` collects into, while one is open
sys.addaudithook(lambda event, args: _COMPILING[-1].append(args[1]) if event == "compile" and _COMPILING else None)


@contextmanager
def compiles() -> Iterator[list[str]]:
    """The file names of every compile (and so every AST built) inside the block, from the audit hook."""
    _COMPILING.append([])
    try:
        yield _COMPILING[-1]
    finally:
        _COMPILING.pop()


def features(data: bytes, query: bool = True) -> ImageFeatures:
    return verify.extract(Image.open(io.BytesIO(data)), with_mirror=query)


@pytest.fixture(scope="module")
def verdicts(photos: list[Path]) -> dict[str, list[Verdict]]:
    """Every labelled variant of every real photo (fixed seed) verified against its own original."""
    by_kind: dict[str, list[Verdict]] = defaultdict(list)
    for photo in [*photos, *sorted(PACKAGE_PHOTOS.glob("*.jpg"))]:
        original = features(photo.read_bytes(), query=False)
        for variant in variants.variants(photo.stem, photo.read_bytes(), seed=15):
            by_kind[variant.kind].append(verify.verify(features(variant.data), original))
    return by_kind


@pytest.mark.parametrize("kind", variants.DUPLICATE_CLASSES)
def test_every_re_export_of_a_real_photo_verifies_against_its_original(
    verdicts: dict[str, list[Verdict]], kind: str
) -> None:
    # Given each of 19 real photos re-exported (resized, recompressed, squashed, cropped 70-95 %,
    # rotated ±2-10°, mirrored, grayscale, brightness or contrast changed)
    # Then the copy verifies as the same photo
    assert [v.reason for v in verdicts[kind] if not v.same] == []


@pytest.mark.parametrize("kind", variants.COLOUR_VARIANTS)
def test_colour_variants_match_geometrically_and_are_refused_on_colour(
    verdicts: dict[str, list[Verdict]], kind: str
) -> None:
    # Given hue rotations and gold/silver recolours of the same photos
    # Then none is the same photo, and it is a colour test that says so (the geometry fits):
    # cell by cell, or the piece of a product shot against its background
    assert [v for v in verdicts[kind] if v.same] == []
    assert {v.reason for v in verdicts[kind]} <= {"colours_differ", "piece_differs"}


def test_unrelated_real_photos_never_verify(photos: list[Path]) -> None:
    queries = [features(p.read_bytes()) for p in photos]
    indexed = [features(p.read_bytes(), query=False) for p in photos]
    for i, query in enumerate(queries):
        for j, candidate in enumerate(indexed):
            if i != j:
                assert not verify.verify(query, candidate).same, (photos[i].name, photos[j].name)


def test_a_mirror_image_is_found_through_the_mirrored_query_features(photos: list[Path]) -> None:
    image = Image.open(photos[2]).convert("RGB")
    mirrored = variants.encode(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG")
    original = features(photos[2].read_bytes(), query=False)
    verdict = verify.verify(features(mirrored), original)
    assert verdict.same and verdict.mirrored
    # Without the mirrored features (what an indexed image stores), the mirror image does not match
    assert not verify.verify(features(mirrored, query=False), original).same


def test_the_mirrored_set_is_what_a_detection_on_the_flipped_image_finds(photos: list[Path]) -> None:
    # Given a photo's query features, whose mirrored set reuses its detection (flipped keypoints)
    image = Image.open(photos[2]).convert("RGB")
    query = verify.extract(image, with_mirror=True)
    assert query.mirrored is not None
    # When the flipped photo is described by a detection of its own
    flipped = verify.extract(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    # Then most mirrored keypoints are within a pixel of one it found, with the same descriptor (about
    # three in four on the shipped photos: the pyramid's rounding changes which weaker corners each
    # keeps), so a mirror copy matches as if the query had been detected flipped
    distances = np.linalg.norm(query.mirrored.keypoints[:, None] - flipped.keypoints[None], axis=2)
    nearest = distances.argmin(axis=1)
    close = distances[np.arange(len(nearest)), nearest] <= 1.0
    assert close.mean() >= 0.6
    differing_bits = np.unpackbits(query.mirrored.descriptors[close] ^ flipped.descriptors[nearest[close]], axis=1)
    assert np.median(differing_bits.sum(axis=1)) <= 8  # of 256; unrelated descriptors differ in about 128


def test_grayscale_queries_are_exempt_from_colour_but_not_the_other_way_round(photos: list[Path]) -> None:
    colour = photos[6].read_bytes()
    gray = variants.encode(Image.open(io.BytesIO(colour)).convert("L"))
    # A grayscale copy of a colour photo is the same photo (its tones follow the original's)
    grayscale_verdict = verify.verify(features(gray), features(colour, query=False))
    assert grayscale_verdict.same and verify.is_grayscale(features(gray))
    # A colour upload of a photo catalogued only in grayscale shows colours the catalogue lacks: different
    assert verify.verify(features(colour), features(gray, query=False)).reason == "colours_differ"


def test_features_survive_serialisation_and_garbage_is_refused(photos: list[Path]) -> None:
    original = features(photos[0].read_bytes(), query=False)
    data = original.to_bytes()
    assert len(data) < 40_000  # what each catalogue image adds beside itself
    restored = ImageFeatures.from_bytes(data)
    assert np.array_equal(restored.keypoints, original.keypoints)
    assert np.array_equal(restored.descriptors, original.descriptors)
    assert np.array_equal(restored.thumbnail, original.thumbnail)
    for garbage in (b"", b"not an archive", data[: len(data) // 2]):
        with pytest.raises(ValueError):
            ImageFeatures.from_bytes(garbage)
    bomb = io.BytesIO()
    np.savez_compressed(bomb, version=np.array(FORMAT_VERSION), keypoints=np.zeros((10**6, 2), np.float32))
    assert len(bomb.getvalue()) < 20_000
    with pytest.raises(ValueError, match="too large"):
        ImageFeatures.from_bytes(bomb.getvalue())
    buffer = io.BytesIO()
    np.savez(buffer, version=np.array(99), keypoints=original.keypoints)
    with pytest.raises(ValueError, match="version"):
        ImageFeatures.from_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    np.savez(
        buffer,
        version=np.array(FORMAT_VERSION),
        keypoints=original.keypoints,
        descriptors=original.descriptors[:3],
        thumbnail=original.thumbnail,
    )
    with pytest.raises(ValueError, match="shapes"):
        ImageFeatures.from_bytes(buffer.getvalue())


def test_a_query_travels_with_its_mirrored_features_and_a_catalogue_record_without(photos: list[Path]) -> None:
    # Given a query's features (with the mirrored set)
    query = features(photos[2].read_bytes())
    # When serialised in the query's form, the mirrored set survives; in the catalogue's, it is left out
    restored = ImageFeatures.from_bytes(query.to_bytes(with_mirror=True))
    assert restored.mirrored is not None and query.mirrored is not None
    assert np.array_equal(restored.mirrored.descriptors, query.mirrored.descriptors)
    assert np.array_equal(restored.mirrored.thumbnail, query.mirrored.thumbnail)
    assert ImageFeatures.from_bytes(query.to_bytes()).mirrored is None
    assert len(query.to_bytes()) < len(query.to_bytes(with_mirror=True))
    # And a mirror copy still verifies through the restored query
    mirrored = variants.encode(Image.open(photos[2]).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    candidate = ImageFeatures.from_bytes(features(mirrored, query=False).to_bytes())
    assert verify.check(restored, Candidate(candidate)).match == "verified"


def test_a_near_candidate_is_checked_on_colour_in_its_own_frame_first(photos: list[Path]) -> None:
    # Given a recompressed copy of a photo, and a hue-rotated colour variant
    original = features(photos[1].read_bytes(), query=False)
    image = Image.open(photos[1]).convert("RGB")
    copy = features(variants.encode(image, quality=60))
    hue = features(variants.encode(variants.rotate_hue(image, 90)))
    # Then the copy is a `near` match, and the colour variant is no match even when its embedding is near
    assert verify.check(copy, Candidate(original, near=True)).match == "near"
    refused = verify.check(hue, Candidate(original, near=True))
    assert refused.match is None and refused.reason == "colours_differ"


def test_a_featureless_image_verifies_nothing_and_does_not_fail() -> None:
    blank = variants.encode(Image.new("RGB", (300, 200), (250, 250, 250)))
    empty = features(blank)
    assert len(empty.keypoints) == 0
    assert verify.verify(empty, features(blank, query=False)).reason == "too_few_matches"


def test_records_are_read_without_ast_and_only_as_np_save_writes_them(photos: list[Path]) -> None:
    # Given a query's record (with the mirrored set) as np.savez writes it, deflated and not
    query = features(photos[0].read_bytes())
    for data in (query.to_bytes(with_mirror=True), query.to_bytes(with_mirror=True, compressed=False)):
        # When it is read, then every array is the one written
        restored = ImageFeatures.from_bytes(data)
        assert restored.mirrored is not None and query.mirrored is not None
        assert np.array_equal(restored.mirrored.keypoints, query.mirrored.keypoints)
        assert np.array_equal(restored.thumbnail, query.thumbnail)
    # And the reader compiles nothing (np.load's header parsing builds an AST: not thread-safe on 3.11)
    with compiles() as compiled:
        ImageFeatures.from_bytes(query.to_bytes())
    assert compiled == []
    with compiles() as compiled:  # the hook sees what np.load does
        np.load(io.BytesIO(query.to_bytes()))["keypoints"]
    assert compiled
    # And an array of another type, in Fortran order, or with a header edited, is refused
    for arrays in (
        {"keypoints": np.zeros((2, 2), np.float64)},
        {"keypoints": np.asfortranarray(np.zeros((2, 2), np.float32))},
    ):
        buffer = io.BytesIO()
        np.savez(
            buffer, version=np.array(FORMAT_VERSION), descriptors=query.descriptors, thumbnail=query.thumbnail, **arrays
        )
        with pytest.raises(ValueError):
            ImageFeatures.from_bytes(buffer.getvalue())
    edited = query.to_bytes(compressed=False).replace(b"'shape': (", b"'shape': (1+", 1)
    with pytest.raises(ValueError):
        ImageFeatures.from_bytes(edited)
