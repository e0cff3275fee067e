"""Deterministic catalogue images and Amazon's main-image rules.

Type 1 (white background): the cutout on pure white (255, 255, 255), scaled so the piece spans
85 % of a square frame whose side is at least 1,000 px (Amazon's zoom minimum; 1,600 by default).
Type 3 (dimensions): the same, with measurement markings drawn from millimetres the caller gives.
`amazon_main_image_check` tests a finished image against the rules it can measure. Edited types
share one `EditRequest` per cutout (prepared once, whatever the number of types), and
`paste_back` lays the piece's own pixels over each reply.

Everything here is Pillow, numpy and zlib work that runs with the GIL released (resampling,
filters, pastes, compression), so the worker's threads composite and encode side by side; `make
bench BENCH_ARGS=generation` measures how far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from listing_vision.imaging.png import encode_png
from listing_vision.imaging.segment import Cutout, border_pixels, foreground_mask

WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Placement:
    canvas: Image.Image  # RGB
    box: tuple[int, int, int, int]  # where the cutout landed
    scale: float
    piece: Image.Image  # the cutout (RGBA) at the size it landed at


def place_on_white(cutout: Cutout, side: int = 1600, fill: float = 0.85) -> Placement:
    """The cutout centred on pure white, its longer side spanning `fill` of the frame."""
    width, height = cutout.image.size
    scale = fill * side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    piece = cutout.image.resize(size, Image.Resampling.LANCZOS) if size != cutout.image.size else cutout.image
    canvas = Image.new("RGB", (side, side), WHITE)
    left, top = (side - size[0]) // 2, (side - size[1]) // 2
    canvas.paste(piece, (left, top), piece)
    return Placement(canvas, (left, top, left + size[0], top + size[1]), scale, piece)


def dimension_markings(placement: Placement, width_mm: float, height_mm: float) -> Image.Image:
    """Type 3: arrows and labels giving the piece's width and height in millimetres."""
    image = placement.canvas.copy()
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = placement.box
    side = image.width
    gap, colour, weight = side // 40, (60, 60, 60), max(2, side // 400)
    font = ImageFont.load_default(size=max(14, side // 32))
    y = min(side - gap, bottom + gap)
    draw.line([(left, y), (right, y)], fill=colour, width=weight)
    for x in (left, right):
        draw.line([(x, y - gap // 2), (x, y + gap // 2)], fill=colour, width=weight)
    draw.text(((left + right) / 2, y + gap // 2), f"{width_mm:g} mm", fill=colour, font=font, anchor="ma")
    x = min(side - gap, right + gap)
    draw.line([(x, top), (x, bottom)], fill=colour, width=weight)
    for yy in (top, bottom):
        draw.line([(x - gap // 2, yy), (x + gap // 2, yy)], fill=colour, width=weight)
    draw.text((x + gap // 2, (top + bottom) / 2), f"{height_mm:g} mm", fill=colour, font=font, anchor="lm")
    return image


@dataclass
class Compliance:
    longest_side: int
    pure_white_background: bool
    fill: float  # the piece's span across the frame
    problems: list[str] = field(default_factory=list)

    @property
    def compliant(self) -> bool:
        return not self.problems


def amazon_main_image_check(
    image: Image.Image, min_side: int = 1000, fill_range: tuple[float, float] = (0.80, 0.95)
) -> Compliance:
    """Amazon's main-image rules that can be measured: pure white background, the product filling
    about 85 % of the frame, longest side at least 1,000 px."""
    rgb = np.asarray(image.convert("RGB"))
    h, w, _ = rgb.shape
    border = border_pixels(rgb, fraction=50)
    pure = bool((border == 255).all())
    small = image.convert("RGB")
    small.thumbnail((512, 512))  # the fill is a proportion: measured at 512 px, to the pixel at that scale
    mask, _ = foreground_mask(np.asarray(small))
    ys, xs = np.nonzero(mask)
    sh, sw = mask.shape
    fill = float(max((ys.max() - ys.min() + 1) / sh, (xs.max() - xs.min() + 1) / sw)) if len(ys) else 0.0
    report = Compliance(max(w, h), pure, fill)
    if max(w, h) < min_side:
        report.problems.append(f"longest side {max(w, h)} px is under {min_side} px")
    if not pure:
        report.problems.append("background is not pure white (255, 255, 255)")
    if not fill_range[0] <= fill <= fill_range[1]:
        report.problems.append(f"the product spans {fill:.0%} of the frame (Amazon asks about 85 %)")
    return report


@dataclass(frozen=True)
class EditRequest:
    """What every edit of one cutout shares: the canvas and mask the model gets (PNG bytes), where
    the piece sits, and the soft shadow `paste_back` lays under it. Prepared once per run, so a
    job's edits start their calls at once instead of each rendering the same inputs."""

    placement: Placement
    image_png: bytes  # the piece on a neutral canvas
    mask_png: bytes  # RGBA: opaque over the piece (kept), transparent elsewhere (to be generated)
    shadow: Image.Image | None  # L: how dark the shadow falls, over the piece's box
    shadow_offset: int


def prepare_edits(
    cutout: Cutout, side: int = 1024, fill: float = 0.55, margin_px: int = 6, shadow: bool = True
) -> EditRequest:
    placement = place_on_white(cutout, side=side, fill=fill)
    mask = Image.new("L", (side, side), 0)
    left, top, right, bottom = placement.box
    hard = Image.fromarray((cutout.mask * 255).astype(np.uint8)).resize((right - left, bottom - top))
    mask.paste(hard, (left, top))
    # A margin the model leaves alone: blur-and-threshold dilates like a rank filter, far faster.
    mask = mask.filter(ImageFilter.GaussianBlur(margin_px)).point(lambda v: 255 if v > 8 else 0)
    rgba = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    rgba.putalpha(mask)
    shade = None
    if shadow:
        alpha = placement.piece.getchannel("A").filter(ImageFilter.GaussianBlur(max(2, (right - left) // 40)))
        shade = alpha.point(lambda a: a * 0.25)
    offset = max(2, (bottom - top) // 60)
    return EditRequest(placement, encode_png(placement.canvas), encode_png(rgba), shade, offset)


def paste_back(edited: Image.Image, request: EditRequest) -> Image.Image:
    """The original cutout pasted over the edit at the same place, feathered, with a soft shadow:
    whatever the model did, the piece's own pixels are the ones delivered."""
    placement = request.placement
    canvas = edited.convert("RGB")
    if canvas.size != placement.canvas.size:
        canvas = canvas.resize(placement.canvas.size)
    left, top, _, _ = placement.box
    if request.shadow is not None:
        offset = request.shadow_offset
        canvas.paste((0, 0, 0), (left + offset, top + offset), request.shadow)
    canvas.paste(placement.piece, (left, top), placement.piece)
    return canvas
