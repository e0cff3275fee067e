"""Cutting the piece out: the separable square filter is Pillow's MaxFilter and MinFilter, pixel
for pixel, and the cut-out's cost follows the photo's size, not the square of its filter."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from listing_vision.imaging.segment import cut_out, square_filter


@pytest.mark.parametrize("size", [3, 5, 21])
@pytest.mark.parametrize("keep", ["max", "min"])
def test_the_square_filter_is_pillows_rank_filter(size: int, keep: str) -> None:
    # Given sparse and dense random masks, some narrower than the square
    rng = np.random.default_rng(size)
    for shape, density in (((61, 47), 0.02), ((33, 90), 0.5), ((9, 13), 0.9)):
        mask = rng.random(shape) < density
        # When filtered by ours and by Pillow's (edges replicated by both)
        pillow_filter = ImageFilter.MaxFilter(size) if keep == "max" else ImageFilter.MinFilter(size)
        expected = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(pillow_filter)) > 127
        # Then every pixel agrees
        assert np.array_equal(square_filter(mask, size, keep), expected), shape


def test_a_large_photo_is_cut_out_to_the_piece() -> None:
    # Given a 12 MP photo (4,000 × 3,000) of a ring on a plain background
    photo = Image.new("RGB", (4000, 3000), (236, 234, 230))
    ImageDraw.Draw(photo).ellipse((1500, 1000, 2500, 2000), outline=(212, 175, 55), width=120)
    # When it is cut out
    cutout = cut_out(photo)
    # Then the box is the ring's (to the feathered pixel), the hole inside it stays transparent
    left, top, right, bottom = cutout.box
    assert abs(left - 1500) <= 2 and abs(top - 1000) <= 2 and abs(right - 2501) <= 2 and abs(bottom - 2001) <= 2
    alpha = np.asarray(cutout.image.getchannel("A"))
    assert alpha[500, 500] == 0 and alpha[500, 60] == 255
