"""The colour test on rendered jewelry (tests/data/jewelry): one design in gold, silver, rose gold and
black is four products, while a grayscale or mirrored re-export of any of them is the same photo.

Only the dev split's designs are used here (the thresholds were chosen on them); the test designs
are measured by the duplicate evaluation (`python -m evaluation.duplicate_detection`)."""

from __future__ import annotations

import io
from itertools import permutations
from pathlib import Path

import pytest
from PIL import Image

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
