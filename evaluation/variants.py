"""Labelled variants of a photo, reproducible from a seed: the cases of the duplicate evaluation.

Re-exports of the same photo (what catalogue teams re-upload after a shop, a phone or a designer
touched it) must be found as duplicates; colour variants (a hue rotation, the piece recoloured
between gold and silver) are different products and must not be. Each variant names its class,
so the evaluation reports precision and recall per class.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from listing_vision.imaging.segment import foreground_mask

# Classes, by what the duplicate check must answer.
RE_EXPORTS = ("resize", "recompress", "format", "squash", "brightness", "contrast")
GEOMETRIC = ("crop", "rotate", "mirror", "grayscale")
COLOUR_VARIANTS = ("hue", "metal")
DUPLICATE_CLASSES = RE_EXPORTS + GEOMETRIC

# Mean Lab colour of the metals a piece is recoloured to (sRGB yellow gold 212,175,55; silver 192,192,196).
GOLD_LAB = (72.0, 2.0, 58.0)
SILVER_LAB = (78.0, 0.5, -1.5)
HUE_MIN_CHROMA = 1.0  # mean Lab chroma of the frame under which a photo has no hue to turn (renders: 0.26–0.45)


@dataclass(frozen=True)
class Variant:
    original: str
    kind: str  # one of DUPLICATE_CLASSES or COLOUR_VARIANTS
    detail: str
    data: bytes  # the encoded file, as it would be uploaded

    @property
    def duplicate(self) -> bool:
        return self.kind in DUPLICATE_CLASSES

    @property
    def name(self) -> str:
        return f"{self.original}:{self.kind}:{self.detail}"


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def crop(image: Image.Image, fraction: float, rng: np.random.Generator) -> Image.Image:
    """Keep `fraction` of each side, at a random position."""
    w, h = image.size
    cw, ch = round(w * fraction), round(h * fraction)
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return image.crop((left, top, left + cw, top + ch))


def rotate(image: Image.Image, degrees: float, fill_white: bool) -> Image.Image:
    """Rotate about the centre: corners filled with white (a canvas rotation), or cropped away
    to the largest rectangle of the same aspect that holds only picture."""
    if fill_white:
        return image.rotate(degrees, Image.Resampling.BICUBIC, expand=False, fillcolor=(255, 255, 255))
    w, h = image.size
    turned = image.rotate(degrees, Image.Resampling.BICUBIC, expand=False)
    angle = np.radians(abs(degrees))
    scale = 1 / (np.cos(angle) + np.sin(angle) * max(w / h, h / w))
    cw, ch = int(w * scale), int(h * scale)
    return turned.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))


def rotate_hue(image: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + round(degrees * 256 / 360)) % 256).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


def piece_region(rgb: np.ndarray) -> np.ndarray:
    """Where the piece is, as a soft mask 0..1: what differs from the border's colour (the
    segmentation the cutouts use) when that spans what a product shot's piece spans (15–80 % of
    the frame); otherwise (scenes) the central ellipse, a stand-in subject."""
    mask, _ = foreground_mask(rgb)
    share = float(mask.mean())
    if not 0.15 <= share <= 0.8:
        h, w = mask.shape
        ys, xs = np.ogrid[:h, :w]
        mask = ((xs - w / 2) / (0.36 * w)) ** 2 + ((ys - h / 2) / (0.36 * h)) ** 2 <= 1
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(1.0, min(mask.shape) / 150))
    return np.clip(soft, 0, 1)


def mean_chroma(rgb: np.ndarray, region: np.ndarray) -> float:
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    return float((chroma * region).sum() / max(region.sum(), 1e-6))


def recolour_metal(image: Image.Image, target: tuple[float, float, float]) -> Image.Image:
    """Recolour the piece to a metal (colour transfer in Lab: the region's mean moved to the
    metal's, its lightness texture kept, its chroma texture damped), the rest untouched."""
    rgb = np.asarray(image.convert("RGB"))
    region = piece_region(rgb)
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    weights = region / region.sum()
    means = [(lab[..., c] * weights).sum() for c in range(3)]
    recoloured = np.empty_like(lab)
    recoloured[..., 0] = np.clip(lab[..., 0] - means[0] + target[0], 0, 100)
    recoloured[..., 1] = 0.25 * (lab[..., 1] - means[1]) + target[1]
    recoloured[..., 2] = 0.25 * (lab[..., 2] - means[2]) + target[2]
    blended = lab * (1 - region[..., None]) + recoloured * region[..., None]
    out = cv2.cvtColor(blended.astype(np.float32), cv2.COLOR_LAB2RGB)
    return Image.fromarray(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8))


def variants(name: str, data: bytes, seed: int = 15) -> Iterator[Variant]:
    """Every labelled variant of one original, the same for the same name and seed."""
    rng = np.random.default_rng([seed, *name.encode()])
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    w, h = image.size
    yield Variant(name, "resize", "50%", encode(image.resize((w // 2, h // 2), Image.Resampling.BICUBIC), quality=90))
    yield Variant(name, "resize", "150%", encode(image.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.LANCZOS)))
    yield Variant(name, "recompress", "q30", encode(image, quality=30))
    yield Variant(name, "recompress", "q60 50%", encode(image.resize((w // 2, h // 2)), quality=60))
    yield Variant(name, "format", "png", encode(image, "PNG"))
    yield Variant(name, "format", "webp", encode(image, "WEBP", quality=80))
    side = min(w, h)
    yield Variant(name, "squash", f"{side}²", encode(image.resize((side, side), Image.Resampling.BICUBIC), quality=90))
    yield Variant(name, "squash", f"{max(w, h)}² png", encode(image.resize((max(w, h),) * 2), "PNG"))
    for factor in (0.75, 1.3):
        yield Variant(name, "brightness", f"×{factor}", encode(ImageEnhance.Brightness(image).enhance(factor)))
    for factor in (0.7, 1.4):
        yield Variant(name, "contrast", f"×{factor}", encode(ImageEnhance.Contrast(image).enhance(factor)))
    for index in range(4):
        fraction = float(rng.uniform(0.70, 0.95))
        yield Variant(name, "crop", f"{fraction:.0%} #{index}", encode(crop(image, fraction, rng), quality=90))
    for index in range(4):
        degrees = float(rng.uniform(2, 10)) * (1 if rng.random() < 0.5 else -1)
        fill = index % 2 == 0
        detail = f"{degrees:+.1f}° {'white corners' if fill else 'cropped'} #{index}"
        yield Variant(name, "rotate", detail, encode(rotate(image, degrees, fill), quality=90))
    mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    yield Variant(name, "mirror", "png", encode(mirrored, "PNG"))
    yield Variant(name, "mirror", "q60 75%", encode(mirrored.resize((w * 3 // 4, h * 3 // 4)), quality=60))
    yield Variant(name, "grayscale", "L jpeg", encode(image.convert("L"), quality=90))
    yield Variant(name, "grayscale", "rgb png", encode(image.convert("L").convert("RGB"), "PNG"))
    first = float(rng.uniform(40, 80))  # three hues 120° apart, each at least 40° from the original's
    rgb = np.asarray(image)
    if "@" in name:
        # A design shot in several metals (`ring7@gold`) has real colourways (the evaluation's "metal
        # colourways"); recoloured or hue-turned, its metals would become copies of one another.
        return
    # A photo with no colour (a silver or black piece on a grey backdrop) has no hue to turn: its
    # "hue variants" are the same picture, so they are not made.
    if mean_chroma(rgb, np.ones(rgb.shape[:2], np.float32)) >= HUE_MIN_CHROMA:
        for degrees in (first, first + 120, first + 240):
            yield Variant(name, "hue", f"{degrees:.0f}°", encode(rotate_hue(image, degrees), quality=90))
    if mean_chroma(rgb, piece_region(rgb)) > 12:  # a coloured piece turned silver
        yield Variant(name, "metal", "to silver", encode(recolour_metal(image, SILVER_LAB), quality=90))
    yield Variant(name, "metal", "to gold", encode(recolour_metal(image, GOLD_LAB), quality=90))
