"""Photograph-like renders of small reflective jewelry on catalogue backgrounds, made by code.

These are renders, not photographs: numpy and OpenCV draw each piece as a height field (tubes
around a centre curve, faceted stones), shade it as a metal reflecting a studio (two soft boxes, a
bright ceiling, a darker floor; Schlick's Fresnel on the metal's reflectance), drop a soft shadow
on a seamless background and add a camera's noise. Nothing is copied from anywhere, so their
licence is the repository's.

Every design is rendered in gold, silver, rose gold and black (black rhodium) in the same set-up:
the same geometry, stones, background and light, a different metal and the shot's own noise. Those
are different products of one jewelry line, so the duplicate evaluation must keep them apart,
while a grayscale re-export of any of them must still be found (`evaluation/duplicate_detection.py`,
class "metal colourways"). A file is `<design>@<metal>.jpg`: the split manifest
(`evaluation/splits.py`) splits by design, so a design's four metals go to dev or test together.

    python -m evaluation.jewelry_renders            # check that the shipped files are what the code makes
    python -m evaluation.jewelry_renders --write    # (re)write tests/data/jewelry/

Deterministic: the same code and seed give the same pixels (JPEG quality 90).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

FOLDER = Path(__file__).resolve().parents[1] / "tests" / "data" / "jewelry"
SIZE = 480  # output side, px
SUPER = 2  # rendered at twice the size, then reduced (anti-aliasing)
SEED = 32

# Linear-light reflectance at normal incidence (F0) of each metal, RGB: gold and silver as
# physically based renderers tabulate them, rose gold between gold and copper, black rhodium
# plating a dark, nearly neutral one. Rose gold is as pink as photographs show it (interreflections
# between curved surfaces saturate a metal beyond its single-bounce F0).
METALS: dict[str, tuple[float, float, float]] = {
    "gold": (1.00, 0.71, 0.29),
    "silver": (0.97, 0.96, 0.91),
    "rose": (0.96, 0.56, 0.47),
    "black": (0.085, 0.085, 0.095),
}

# Stones: linear-light body colour (what the stone shows between its facets' sparkles).
STONES: dict[str, tuple[float, float, float]] = {
    "diamond": (0.80, 0.82, 0.86),
    "sapphire": (0.03, 0.07, 0.45),
    "ruby": (0.50, 0.02, 0.06),
    "emerald": (0.02, 0.35, 0.12),
}


@dataclass(frozen=True)
class Scene:
    """What a design is drawn with: its background (linear RGB at the centre and corners) and
    the parts it is made of."""

    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    draw: Callable[[Canvas], None]


class Canvas:
    """A height field of metal and of stones, drawn in working pixels (SIZE * SUPER)."""

    def __init__(self) -> None:
        side = SIZE * SUPER
        self.side = side
        self.metal = np.zeros((side, side), np.float32)  # height of metal
        self.stone = np.zeros((side, side), np.float32)  # height of stone (over metal where higher)
        self.stone_colour = np.zeros((side, side, 3), np.float32)
        self.facets = np.zeros((side, side, 3), np.float32)  # stone facet normals

    def px(self, value: float) -> int:
        """A length given as a share of the frame, in working pixels."""
        return max(1, round(value * self.side))

    def tube(self, points: np.ndarray, radius: float, closed: bool = False, flatten: float = 1.0) -> None:
        """A round wire of `radius` (share of the frame) along a polyline of points (shares)."""
        centre = np.full((self.side, self.side), 255, np.uint8)
        line = np.round(points * self.side).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(centre, [line], closed, (0,), 1, cv2.LINE_8)
        distance = cv2.distanceTransform(centre, cv2.DIST_L2, 5)
        r = radius * self.side
        height = np.sqrt(np.clip(r * r - distance * distance, 0, None)) * flatten
        np.maximum(self.metal, height, out=self.metal)

    def ring(
        self, cx: float, cy: float, rx: float, ry: float, radius: float, start: float = 0, end: float = 360
    ) -> None:
        angles = np.radians(np.linspace(start, end, 400))
        points = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)
        self.tube(points, radius, closed=end - start >= 360)

    def dome(self, cx: float, cy: float, radius: float, flatten: float = 1.0) -> None:
        self.tube(np.array([[cx, cy], [cx, cy]]), radius, flatten=flatten)

    def gem(self, cx: float, cy: float, radius: float, stone: str, sides: int = 8, lift: float = 0.6) -> None:
        """A faceted stone: a table and a ring of crown facets, each a flat plane."""
        side = self.side
        r = radius * side
        ys, xs = np.mgrid[:side, :side].astype(np.float32)
        dx, dy = xs - cx * side, ys - cy * side
        rho = np.hypot(dx, dy)
        theta = np.arctan2(dy, dx)
        inside = rho <= r * np.cos(np.pi / sides) / np.cos((theta % (2 * np.pi / sides)) - np.pi / sides)
        table = rho <= 0.5 * r
        facet = np.floor((theta + np.pi) / (2 * np.pi / sides)) + 0.5
        angle = facet * (2 * np.pi / sides) - np.pi
        tilt = np.where(table, 0.0, 0.55)
        normal = np.stack([np.cos(angle) * np.sin(tilt), np.sin(angle) * np.sin(tilt), np.cos(tilt)], axis=2)
        height = np.where(inside, lift * r + (r - rho) * 0.4, 0).astype(np.float32)
        higher = inside & (height > self.stone)
        self.stone[higher] = height[higher]
        self.facets[higher] = normal[higher]
        self.stone_colour[higher] = STONES[stone]


def _environment(reflected: np.ndarray) -> np.ndarray:
    """Studio light seen along a reflected direction (x right, y down, z towards the camera)."""
    x, y, z = reflected[..., 0], reflected[..., 1], reflected[..., 2]
    ceiling = 0.55 * np.clip(-y * 0.8 + z * 0.6, 0, None)
    floor = 0.05 + 0.10 * np.clip(z, 0, None)
    box_left = 3.2 * np.exp(-((x + 0.55) ** 2 + (y + 0.45) ** 2) / 0.035)
    box_right = 2.2 * np.exp(-((x - 0.7) ** 2 + (y + 0.05) ** 2) / 0.02)
    strip = 1.2 * np.exp(-((y - 0.55) ** 2) / 0.01) * (z > 0.2)
    return ceiling + floor + box_left + box_right + strip


def _normals(height: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(cv2.GaussianBlur(height, (0, 0), 1.2))
    normal = np.stack([-gx, -gy, np.ones_like(height)], axis=2)
    return normal / np.linalg.norm(normal, axis=2, keepdims=True)


def _shade(normal: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Metal: the environment mirrored in the surface, tinted by Schlick's Fresnel reflectance."""
    cos = np.clip(normal[..., 2:3], 0, 1)  # view along +z
    reflected = 2 * cos * normal - np.array([0, 0, 1], np.float32)
    fresnel = f0 + (1 - f0) * (1 - cos) ** 5
    glossy = cv2.GaussianBlur(_environment(reflected), (0, 0), 1.5)[..., None]
    return fresnel * glossy


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def render(scene: Scene, metal: str, seed: int) -> Image.Image:
    """One photo of the design in `metal` (seed: the shot's noise)."""
    canvas = Canvas()
    scene.draw(canvas)
    side = canvas.side
    ys, xs = np.mgrid[:side, :side].astype(np.float32) / side
    centre, corner = (np.array(c, np.float32) for c in scene.background)
    fall = np.clip(np.hypot(xs - 0.5, ys - 0.42) / 0.75, 0, 1)[..., None] ** 1.5
    image = centre * (1 - fall) + corner * fall
    piece = ((canvas.metal > 0) | (canvas.stone > 0)).astype(np.float32)
    shadow = cv2.GaussianBlur(np.roll(piece, (canvas.px(0.02), canvas.px(0.012)), (0, 1)), (0, 0), canvas.px(0.02))
    image = image * (1 - 0.45 * shadow[..., None])
    metal_rgb = _shade(_normals(canvas.metal), np.array(METALS[metal], np.float32))
    on_metal = (canvas.metal > 0) & (canvas.stone <= canvas.metal)
    image[on_metal] = metal_rgb[on_metal]
    on_stone = canvas.stone > canvas.metal
    facets = canvas.facets
    sparkle = _environment(2 * facets[..., 2:3] * facets - np.array([0, 0, 1], np.float32))[..., None]
    stone_rgb = canvas.stone_colour * (0.35 + 0.5 * sparkle) + 0.05 * sparkle**2
    image[on_stone] = stone_rgb[on_stone]
    small = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng([seed, *metal.encode()])
    noisy = _srgb(small) * 255 + rng.normal(0, 1.6, small.shape)
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))


def _solitaire(c: Canvas) -> None:
    c.ring(0.5, 0.6, 0.3, 0.13, 0.034)
    c.tube(np.array([[0.47, 0.52], [0.5, 0.41], [0.53, 0.52]]), 0.012)
    c.gem(0.5, 0.4, 0.075, "diamond")


def _band(c: Canvas) -> None:
    c.ring(0.5, 0.55, 0.27, 0.17, 0.045)
    c.ring(0.5, 0.55, 0.27, 0.17, 0.012, 200, 340)  # a ridge along the front


def _hoops(c: Canvas) -> None:
    for cx in (0.3, 0.7):
        c.ring(cx, 0.52, 0.14, 0.19, 0.022)
        c.dome(cx, 0.31, 0.025)


def _pendant(c: Canvas) -> None:
    t = np.linspace(0, 1, 120)
    chain = np.stack([0.12 + 0.76 * t, 0.08 + 0.35 * (1 - (2 * t - 1) ** 2)], axis=1)
    for start in range(0, 120, 4):  # links
        c.tube(chain[start : start + 3], 0.007)
    heart = np.linspace(0, 2 * np.pi, 300)
    hx = 16 * np.sin(heart) ** 3
    hy = -(13 * np.cos(heart) - 5 * np.cos(2 * heart) - 2 * np.cos(3 * heart) - np.cos(4 * heart))
    c.tube(np.stack([0.5 + hx / 120, 0.66 + hy / 120], axis=1), 0.02, closed=True)
    c.ring(0.5, 0.47, 0.025, 0.03, 0.008)  # bail
    c.gem(0.5, 0.66, 0.05, "ruby", sides=6)


def _studs(c: Canvas) -> None:
    for cx, cy in ((0.33, 0.5), (0.67, 0.5)):
        for k in range(6):  # petals
            a = 2 * np.pi * k / 6
            c.dome(cx + 0.07 * np.cos(a), cy + 0.07 * np.sin(a), 0.05, flatten=0.6)
        c.gem(cx, cy, 0.045, "sapphire")


def _bar_drops(c: Canvas) -> None:
    for cx in (0.36, 0.64):
        c.ring(cx, 0.24, 0.03, 0.035, 0.007)
        c.tube(np.array([[cx, 0.28], [cx, 0.7]]), 0.018)
        c.gem(cx, 0.75, 0.04, "emerald", sides=4)


# Designs: names are fixed (the split is by the SHA-256 of the name), backgrounds are linear RGB.
WHITE = ((0.86, 0.86, 0.86), (0.62, 0.62, 0.62))
GREY = ((0.50, 0.50, 0.50), (0.30, 0.30, 0.30))
CREAM = ((0.84, 0.76, 0.62), (0.60, 0.52, 0.40))
BLUSH = ((0.82, 0.66, 0.64), (0.56, 0.42, 0.41))
SLATE = ((0.36, 0.42, 0.50), (0.18, 0.22, 0.28))
DESIGNS: dict[str, Scene] = {
    "solitaire-ring": Scene(WHITE, _solitaire),
    "ridged-band": Scene(GREY, _band),
    "oval-hoops": Scene(CREAM, _hoops),
    "heart-pendant": Scene(WHITE, _pendant),
    "flower-studs": Scene(SLATE, _studs),
    "bar-drops": Scene(BLUSH, _bar_drops),
}


def photos(seed: int = SEED) -> dict[str, bytes]:
    """File name → JPEG bytes of every design in every metal."""
    out = {}
    for design, scene in DESIGNS.items():
        for metal in METALS:
            shot = int(hashlib.sha256(f"{design}@{metal}".encode()).hexdigest()[:8], 16) ^ seed
            buffer = io.BytesIO()
            render(scene, metal, shot).save(buffer, "JPEG", quality=90)
            out[f"{design}@{metal}.jpg"] = buffer.getvalue()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.jewelry_renders", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"(re)write {FOLDER}")
    args = parser.parse_args(argv)
    made = photos()
    if args.write:
        FOLDER.mkdir(parents=True, exist_ok=True)
        for name, data in made.items():
            (FOLDER / name).write_bytes(data)
    stale = [
        name for name, data in made.items() if not (FOLDER / name).exists() or (FOLDER / name).read_bytes() != data
    ]
    total = sum(len(d) for d in made.values())
    print(f"{len(made)} renders, {total / 1e6:.2f} MB; " + ("current" if not stale else f"{len(stale)} differ"))
    return 0 if not stale else 1


if __name__ == "__main__":
    sys.exit(main())
