"""Decoding and CLIP preprocessing, checked against transformers' own CLIPImageProcessor."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from listing_vision.embeddings.clip_onnx import preprocess
from listing_vision.imaging.pixels import InvalidImageError, decode_image


def encoded(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (224, 224), (1000, 97), (97, 1000), (225, 301)])
def test_preprocessing_matches_clip_image_processor(photos: list[Path], size: tuple[int, int]) -> None:
    from transformers import CLIPImageProcessor

    # Given real photos resized to awkward shapes (portrait, landscape, thin, odd sizes)
    processor = CLIPImageProcessor()  # the openai/clip-vit-base-patch32 defaults
    for photo in photos[:4]:
        image = Image.open(photo).convert("RGB").resize(size)
        # When both preprocess it
        expected = processor(images=image, return_tensors="np")["pixel_values"][0]
        got = preprocess(image)
        # Then the pixels agree to float rounding
        assert got.shape == expected.shape == (3, 224, 224)
        assert np.abs(got - expected).max() < 1e-5


def test_exif_orientation_is_applied(photos: list[Path]) -> None:
    upright = Image.open(photos[0]).convert("RGB")
    # Stored rotated, with EXIF saying "rotate 90° clockwise to display" (orientation 6)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    with_tag = decode_image(encoded(stored, exif=exif.tobytes(), quality=95))
    assert np.abs(preprocess(with_tag) - preprocess(decode_image(encoded(upright, quality=95)))).mean() < 0.05


def test_accepts_jpeg_png_webp(photos: list[Path]) -> None:
    image = Image.open(photos[1]).convert("RGB")
    for fmt in ("JPEG", "PNG", "WEBP"):
        assert decode_image(encoded(image, fmt)).size == image.size


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda photo: b"", "empty_file"),
        (lambda photo: b"%PDF-1.7 not an image", "not_an_image"),
        (lambda photo: photo.read_bytes()[: len(photo.read_bytes()) // 2], "corrupt_image"),
        (lambda photo: encoded(Image.open(photo).convert("RGB"), "GIF"), "unsupported_image_format"),
        (lambda photo: encoded(Image.new("1", (10_000, 5_000)), "PNG"), "decompression_bomb"),
    ],
)
def test_refuses_what_is_not_a_safe_image(photos: list[Path], make, code: str) -> None:
    with pytest.raises(InvalidImageError) as raised:
        decode_image(make(photos[0]))
    assert raised.value.code == code


def test_squash_mode_sees_the_whole_image_so_a_copy_squashed_to_a_square_looks_like_its_original(
    photos: list[Path],
) -> None:
    from transformers import CLIPImageProcessor

    # Serving's mode is transformers' CLIPImageProcessor told to resize to 224×224 without a crop
    squash_processor = CLIPImageProcessor(size={"height": 224, "width": 224}, do_center_crop=False)
    for size in ((300, 200), (97, 1000)):
        shaped = Image.open(photos[1]).convert("RGB").resize(size)
        expected = squash_processor(images=shaped, return_tensors="np")["pixel_values"][0]
        assert np.abs(preprocess(shaped, resize="squash") - expected).max() < 1e-5
    # Given a landscape photo and a copy of it squashed to a square
    image = Image.open(photos[0]).convert("RGB")
    squashed = image.resize((min(image.size),) * 2, Image.Resampling.BICUBIC)
    # Then serving's mode (the whole image to 224×224) gives both nearly the same pixels
    assert np.abs(preprocess(image, resize="squash") - preprocess(squashed, resize="squash")).mean() < 0.05
    # While CLIP's centre crop shows the two different content
    assert np.abs(preprocess(image) - preprocess(squashed)).mean() > 0.2
    with pytest.raises(ValueError, match="resize mode"):
        preprocess(image, resize="stretch")  # type: ignore[arg-type]


def test_a_16_bit_grayscale_png_is_scaled_not_clipped(photos: list[Path]) -> None:
    # Given a photo exported as a 16-bit grayscale PNG (Pillow's own conversion would clip it to white)
    gray = Image.open(photos[0]).convert("L")
    sixteen = Image.fromarray(np.asarray(gray).astype(np.uint16) * 257)
    assert Image.open(io.BytesIO(encoded(sixteen, "PNG"))).mode.startswith("I")
    # When it is decoded
    decoded = decode_image(encoded(sixteen, "PNG"))
    # Then it comes back as the 8-bit grayscale photo, pixel for pixel, and preprocesses as it does
    assert decoded.mode == "L" and decoded.format == "PNG"
    assert np.array_equal(np.asarray(decoded), np.asarray(gray))
    assert np.abs(preprocess(decoded, resize="squash") - preprocess(gray, resize="squash")).max() < 1e-5


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_onto_white_so_hidden_pixels_do_not_count(mode: str) -> None:
    from listing_vision.imaging.pixels import as_rgb

    # Given two images alike where opaque and different under fully transparent pixels
    def image(hidden: int) -> Image.Image:
        rgba = np.zeros((32, 32, 4), np.uint8)
        rgba[:, :16] = (hidden, 255 - hidden, hidden, 0)  # transparent
        rgba[:, 16:] = (200, 40, 40, 255)  # opaque red
        made = Image.fromarray(rgba, "RGBA")
        if mode == "LA":
            return made.convert("LA")
        if mode == "P":  # a palette with one transparent entry
            return _palette(made)
        return made

    # When they are converted for the model
    first, second = np.asarray(as_rgb(image(0))), np.asarray(as_rgb(image(255)))
    # Then they are the same, the transparent part white
    assert (first == second).all()
    assert (first[:, :16] == 255).all()


def _palette(rgba: Image.Image) -> Image.Image:
    """The RGBA image as a palette image whose transparent pixels use a palette entry marked transparent."""
    alpha = np.asarray(rgba)[..., 3]
    palette = rgba.convert("RGB").quantize(8)
    indexes = np.asarray(palette).copy()
    indexes[alpha == 0] = 7
    out = Image.fromarray(indexes, "P")
    colours = (palette.getpalette() or [])[:21] + list(np.asarray(rgba)[0, 0, :3])  # entry 7: the hidden colour
    out.putpalette(colours)
    out.info["transparency"] = 7
    return out


def test_normalised_pixels_equal_clips_formula_to_within_float_rounding() -> None:
    from listing_vision.embeddings.clip_onnx import CLIP_MEAN, CLIP_STD, normalise_pixels

    # Given an image (2 × 256, not square) holding every level in each channel, in a different order in each
    levels = np.arange(256)
    pixels = np.stack([levels, levels[::-1], np.roll(levels, 85)], axis=-1).astype(np.uint8)[None].repeat(2, axis=0)
    # When it is normalised
    normalised = normalise_pixels(pixels)
    # Then it is CLIP's (x / 255 − mean) / std, channels first, contiguous float32
    expected = ((pixels / 255 - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)
    assert normalised.dtype == np.float32 and normalised.flags.c_contiguous and normalised.shape == (3, 2, 256)
    assert np.abs(normalised - expected).max() < 1e-6
