"""The colour test on rendered jewelry (tests/data/jewelry): one design in gold, silver, rose gold and
black is four products, while a grayscale or mirrored re-export of any of them is the same photo.

Only the dev split's designs are used here (the thresholds were chosen on them); the test designs
are measured by the duplicate evaluation (`python -m evaluation.duplicate_detection`)."""

from __future__ import annotations

import io
from itertools import permutations, product
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from evaluation import splits, variants
from listing_vision.imaging import verify
from listing_vision.imaging.features import Candidate, ImageFeatures

JEWELRY = Path(__file__).resolve().parents[1] / "data" / "jewelry"
METALS = ("gold", "silver", "rose", "black")


def features(data: bytes, query: bool = True) -> ImageFeatures:
    return verify.extract(Image.open(io.BytesIO(data)), with_mirror=query)


def dev_designs() -> list[str]:
    designs = sorted({splits.design_of(p) for p in JEWELRY.glob("*@*.jpg")})
    return [d for d in designs if splits.split_of(splits.PHOTOS, d) == "dev"]


@pytest.fixture(scope="module")
def renders() -> dict[tuple[str, str], bytes]:
    return {(d, m): (JEWELRY / f"{d}@{m}.jpg").read_bytes() for d in dev_designs() for m in METALS}


def test_the_dev_split_has_rendered_designs_in_every_metal(renders: dict[tuple[str, str], bytes]) -> None:
    # Given the manifest's dev designs among the renders
    # Then there are some, each in all four metals
    assert len(dev_designs()) >= 2 and len(renders) == 4 * len(dev_designs())


def test_a_design_in_another_metal_is_a_different_product(renders: dict[tuple[str, str], bytes]) -> None:
    # Given each dev design's render in one metal asked against the same design in each other metal,
    # both as a near candidate (frames compared as they are) and as a retrieved one (geometry first)
    wrong = []
    for design in dev_designs():
        for query_metal, candidate_metal in permutations(METALS, 2):
            query = features(renders[design, query_metal])
            candidate = features(renders[design, candidate_metal], query=False)
            for near in (True, False):
                # When verified
                verdict = verify.check(query, Candidate(candidate, near=near))
                if verdict.same:
                    wrong.append((design, query_metal, candidate_metal, near, verdict.match))
    # Then none is the same photo
    assert wrong == []


def test_a_silver_render_is_not_taken_for_a_grayscale_export(renders: dict[tuple[str, str], bytes]) -> None:
    # Given neutral renders (silver, black) and a grayscale export of each render
    for (design, metal), data in renders.items():
        gray = variants.encode(Image.open(io.BytesIO(data)).convert("L"))
        # Then only the export counts as grayscale (a neutral piece keeps faint tints; an export has none)
        assert verify.is_grayscale(features(gray)), (design, metal)
        if metal in ("silver", "black"):
            assert not verify.is_grayscale(features(data)), (design, metal)


@pytest.mark.parametrize("edit", ["grayscale", "mirror", "mirror grayscale"])
def test_grayscale_and_mirrored_re_exports_of_a_render_are_the_same_photo(
    renders: dict[tuple[str, str], bytes], edit: str
) -> None:
    # Given every dev render re-exported in grayscale, mirrored, or both
    missed = []
    for (design, metal), data in renders.items():
        image = Image.open(io.BytesIO(data)).convert("RGB")
        if "mirror" in edit:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if "grayscale" in edit:
            image = image.convert("L")
        # When verified against the render it came from
        verdict = verify.verify(features(variants.encode(image, quality=90)), features(data, query=False))
        if not verdict.same:
            missed.append((design, metal, verdict.reason))
    # Then each is found (the renders are nearly symmetric: a mirror copy may match either way round)
    assert missed == []


def test_a_neutral_metal_is_not_taken_for_a_coloured_one_edited(renders: dict[tuple[str, str], bytes]) -> None:
    # Given each dev design in a neutral metal (silver, black) asked against the same design in a
    # coloured one (rose gold, gold) whose contrast was cut, whose brightness was lowered (both damp
    # its chroma), or mirrored, as a near candidate and as a retrieved one
    edits = {
        "contrast ×0.7": lambda image: ImageEnhance.Contrast(image).enhance(0.7),
        "brightness ×0.75": lambda image: ImageEnhance.Brightness(image).enhance(0.75),
        "mirror": lambda image: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    }
    wrong = []
    for design in dev_designs():
        for neutral, coloured in product(("silver", "black"), ("rose", "gold")):
            query = features(renders[design, neutral])
            image = Image.open(io.BytesIO(renders[design, coloured])).convert("RGB")
            for name, edit in edits.items():
                candidate = features(variants.encode(edit(image), "PNG"), query=False)
                for near in (True, False):
                    # When verified
                    if verify.check(query, Candidate(candidate, near=near)).same:
                        wrong.append((design, neutral, coloured, name, near))
    # Then none is the same photo (the pieces' own chroma differ more than 2×; a mirror match lines
    # the two pieces up cell on cell). The other way round, a rose-gold bar of the bar-drops with its
    # contrast cut still passes for silver: the bar is one or two cells of the thumbnail.
    assert wrong == []


def test_a_working_frame_map_reaches_the_thumbnails_by_pixel_centres() -> None:
    # Given the identity and the mirror flip x → 383 − x in the working frame (384 px)
    side = verify.WORK_SIZE - 1
    flip = np.array([[-1.0, 0.0, side], [0.0, 1.0, 0.0]])
    # Then on the 64 px thumbnails they are the identity and x → 63 − x, cell on cell
    assert np.allclose(verify._in_thumbnail_pixels(np.eye(2, 3)), np.eye(2, 3))
    assert np.allclose(verify._in_thumbnail_pixels(flip), [[-1, 0, verify.THUMB_SIZE - 1], [0, 1, 0]])


def test_a_fit_stretched_more_than_a_crop_to_a_square_stretches_is_implausible() -> None:
    # Given affine maps: a crop of a 3:2 photo to a square (1.5), two ring designs sharing a band (1.7)
    # Then the first is plausible and the second is not
    assert verify._plausible(np.diag([1.5, 1.0]))
    assert not verify._plausible(np.array([[0.88, -0.22], [0.01, 1.66]]))
