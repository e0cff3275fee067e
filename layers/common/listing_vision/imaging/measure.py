"""Measurements of a product photo: what the pixels can honestly tell without a model.

Product shots are taken on light or plain backgrounds, so the background is estimated from the
image border (its median colour) and the foreground is what differs from it. Colours are
clustered (k-means) and named by the nearest jewelry colour in CIE Lab. Quality follows
Amazon's main-image rules where they apply (longest side >= 1,000 px for zoom, a uniform
background, the product filling most of the frame) plus sharpness and exposure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from listing_vision.imaging.decode import MIN_IMAGE_SIDE
from listing_vision.imaging.pixels import as_rgb
from listing_vision.imaging.segment import border_pixels, foreground_mask

ANALYSIS_SIZE = 384
AMAZON_ZOOM_MIN_PX = 1000

# Named colours of metals, stones and common backgrounds (sRGB).
JEWELRY_COLOURS: dict[str, tuple[int, int, int]] = {
    "yellow gold": (212, 175, 55),
    "pale gold": (226, 200, 130),
    "rose gold": (183, 110, 105),
    "copper": (184, 115, 51),
    "bronze": (140, 100, 60),
    "silver": (192, 192, 196),
    "gunmetal": (95, 98, 105),
    "white": (245, 245, 245),
    "pearl": (234, 224, 200),
    "black": (25, 25, 25),
    "emerald green": (40, 140, 80),
    "ruby red": (170, 25, 50),
    "sapphire blue": (35, 65, 160),
    "amethyst purple": (130, 80, 160),
    "turquoise": (64, 200, 190),
}


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0-255, any shape [..., 3]) → CIE Lab (D65)."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    matrix = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ matrix.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


_PALETTE_NAMES = list(JEWELRY_COLOURS)
_PALETTE_LAB = _srgb_to_lab(np.array(list(JEWELRY_COLOURS.values()), dtype=np.float64))


def colour_name(rgb: np.ndarray | tuple[int, int, int]) -> str:
    lab = _srgb_to_lab(np.asarray(rgb, dtype=np.float64).reshape(1, 3))[0]
    return _PALETTE_NAMES[int(np.argmin(np.linalg.norm(_PALETTE_LAB - lab, axis=1)))]


@dataclass(frozen=True)
class Measurements:
    width: int
    height: int
    sharpness: float  # edge strength: 99.5th percentile of |Laplacian| of luminance (0-255), at ANALYSIS_SIZE
    brightness: float  # mean luminance of the foreground, 0..1
    clipped: float  # share of foreground pixels that are pure black or white
    background_std: float  # luminance spread of the border, 0..1 (0: perfectly uniform)
    background: str  # the background's colour name
    fill: float  # how much of the frame the piece spans: its bounding box's larger side ratio (Amazon: 85 %)
    colours: list[tuple[str, float]] = field(default_factory=list)  # foreground colours and their shares

    @property
    def longest_side(self) -> int:
        return max(self.width, self.height)


def _kmeans(pixels: np.ndarray, k: int = 3, rounds: int = 12) -> list[tuple[np.ndarray, float]]:
    if len(pixels) == 0:
        return []
    luminance = pixels @ np.array([0.299, 0.587, 0.114])
    order = np.argsort(luminance)
    centres = np.array([pixels[order[int(q * (len(order) - 1))]] for q in np.linspace(0.1, 0.9, k)], np.float64)
    for _ in range(rounds):
        labels = np.argmin(np.linalg.norm(pixels[:, None, :] - centres[None], axis=2), axis=1)
        for index in range(k):
            members = pixels[labels == index]
            if len(members):
                centres[index] = members.mean(axis=0)
    labels = np.argmin(np.linalg.norm(pixels[:, None, :] - centres[None], axis=2), axis=1)
    shares = np.bincount(labels, minlength=k) / len(pixels)
    return sorted(((centres[i], float(shares[i])) for i in range(k) if shares[i] > 0), key=lambda c: -c[1])


def analysis_copy(image: Image.Image) -> Image.Image:
    """The image at most `ANALYSIS_SIZE` px on its longer side, proportions kept, but no side under
    `MIN_IMAGE_SIDE` px (or its own size, if smaller): kept in proportion, a strip (3200×16) would
    shrink to 384×1, leaving no rows to find edges or a border in, so a strip is squeezed along its
    length only (fill is a ratio per axis, so it is unchanged)."""
    small = image.copy()
    small.thumbnail((ANALYSIS_SIZE, ANALYSIS_SIZE))
    floor = (min(image.width, MIN_IMAGE_SIDE), min(image.height, MIN_IMAGE_SIDE))
    if small.width >= floor[0] and small.height >= floor[1]:
        return small
    size = (max(small.width, floor[0]), max(small.height, floor[1]))
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def measure(image: Image.Image) -> Measurements:
    image = as_rgb(image)
    width, height = image.size
    rgb = np.asarray(analysis_copy(image))
    luminance = (rgb @ np.array([0.299, 0.587, 0.114])) / 255.0
    laplacian = (
        -4 * luminance[1:-1, 1:-1]
        + luminance[:-2, 1:-1]
        + luminance[2:, 1:-1]
        + luminance[1:-1, :-2]
        + luminance[1:-1, 2:]
    )
    mask, background = foreground_mask(rgb)
    border = border_pixels(rgb)
    if mask.sum() < 0.002 * mask.size:  # nothing stands out: measure the whole frame
        mask = np.ones_like(mask)
    ys, xs = np.nonzero(mask)
    fill = float(max((ys.max() - ys.min() + 1) / mask.shape[0], (xs.max() - xs.min() + 1) / mask.shape[1]))
    fg = rgb[mask]
    fg_luminance = luminance[mask]
    sample = fg[np.linspace(0, len(fg) - 1, min(len(fg), 20_000)).astype(int)].astype(np.float64)
    merged: dict[str, float] = {}
    for centre, share in _kmeans(sample):
        name = colour_name(centre)
        merged[name] = merged.get(name, 0.0) + share
    border_luminance = (border @ np.array([0.299, 0.587, 0.114])) / 255.0
    return Measurements(
        width=width,
        height=height,
        # a percentile, not the variance: a plain background would otherwise dilute a sharp piece
        sharpness=float(np.percentile(np.abs(laplacian), 99.5) * 255),
        brightness=float(fg_luminance.mean()),
        clipped=float(((fg_luminance < 0.02) | (fg_luminance > 0.98)).mean()),
        background_std=float(border_luminance.std()),
        background=colour_name(background),
        fill=fill,
        colours=sorted(merged.items(), key=lambda item: -item[1]),
    )


QUALITY_RULES = """Points (0-2 each), then A >= 9, B >= 7, C >= 5, else D:
resolution: longest side >= 1600 px 2, >= 1000 px (Amazon's zoom minimum) 1;
sharpness (99.5th percentile of |Laplacian| at 384 px, 0-255): >= 50 2, >= 15 1;
exposure: foreground mean luminance 0.25-0.85 with < 2 % clipped 2, 0.15-0.92 1;
background: border luminance spread <= 0.03 2, <= 0.08 1;
fill: the piece spans 70-95 % of the frame (Amazon asks 85 %) 2, 45-70 % or over 95 % 1."""


def grade(m: Measurements) -> tuple[str, list[str]]:
    """The quality grade and the reasons that cost points (see QUALITY_RULES)."""
    points, reasons = 0, []

    def score(name: str, value: int, note: str) -> None:
        nonlocal points
        points += value
        if value < 2:
            reasons.append(note)

    score(
        "resolution",
        2 if m.longest_side >= 1600 else 1 if m.longest_side >= AMAZON_ZOOM_MIN_PX else 0,
        f"{m.width}×{m.height} px"
        + (" is under Amazon's 1,000 px zoom minimum" if m.longest_side < AMAZON_ZOOM_MIN_PX else ""),
    )
    score("sharpness", 2 if m.sharpness >= 50 else 1 if m.sharpness >= 15 else 0, "soft focus")
    exposed = 0.25 <= m.brightness <= 0.85 and m.clipped < 0.02
    score(
        "exposure",
        2 if exposed else 1 if 0.15 <= m.brightness <= 0.92 else 0,
        "dark" if m.brightness < 0.25 else "bright or clipped",
    )
    score(
        "background", 2 if m.background_std <= 0.03 else 1 if m.background_std <= 0.08 else 0, "background not uniform"
    )
    score(
        "fill",
        2 if 0.70 <= m.fill <= 0.95 else 1 if m.fill >= 0.45 else 0,
        "piece small in frame" if m.fill < 0.70 else "piece cropped tight",
    )
    letter = "A" if points >= 9 else "B" if points >= 7 else "C" if points >= 5 else "D"
    return letter, reasons
