"""Captions without a model, for keyless local use: templated text from measured pixels only.

It names the piece's dominant colours, grades the photo by measurable properties
(imaging.measure.QUALITY_RULES) and says so; it never claims stones, metals or styles it cannot
measure. Every response carries `provider: "offline"`. A photo with no piece in it, decided as
generation decides (imaging.segment.cut_out), is refused with 422 `no_piece_found` rather than
described as a piece of jewelry.
"""

from __future__ import annotations

from listing_vision.imaging.decode import load_image
from listing_vision.imaging.measure import grade, measure
from listing_vision.imaging.segment import cut_out
from listing_vision.jewelry.caption_prompts import JewelryType
from listing_vision.jewelry.caption_schema import Caption

TYPE_NAMES = {"earring": "Earrings", "necklace": "Necklace", "bracelet": "Bracelet", "ring": "Ring"}
BACKGROUND_TONES = {"white", "pearl", "silver", "pale gold"}
# Polished metal mirrors the studio: on a light background its highlights measure white or pearl and
# its shadows grey, whatever the metal. The hue that survives shading is the metal's own, so a warm
# metal tone on a good part of the piece names it, and light highlights never do.
WARM_METALS = {"yellow gold", "pale gold", "rose gold", "copper", "bronze"}
HIGHLIGHTS = {"white", "pearl"}
WARM_METAL_MIN_SHARE = 0.15


def main_colour(colours: list[tuple[str, float]], background: str) -> tuple[str, list[tuple[str, float]]]:
    """The piece's colour and its colours (largest first) without the background's: the largest warm
    metal tone covering at least WARM_METAL_MIN_SHARE; else, on a light background, the largest
    colour that is not a highlight (a silver piece on a silver-grey sweep stays silver); else the
    largest colour that is not the background's."""
    if background in BACKGROUND_TONES:
        piece = [(name, share) for name, share in colours if name not in HIGHLIGHTS]
    else:
        piece = [(name, share) for name, share in colours if name != background]
    piece = piece or colours
    warm = [(name, share) for name, share in piece if name in WARM_METALS and share >= WARM_METAL_MIN_SHARE]
    main = warm[0][0] if warm else piece[0][0] if piece else "neutral"
    return main, [(name, share) for name, share in piece if name != main]


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class OfflineCaptioner:
    name = "offline"
    model = "pixel-measures"  # no model: templated text from imaging.measure

    def caption(self, image: bytes, media_type: str, jewelry_type: JewelryType) -> Caption:
        decoded = load_image(image)  # the one decoding path (it refuses tiny and blank images)
        cut_out(decoded, feather_px=0)  # is there a piece: NoPieceFound (422 no_piece_found) when not
        m = measure(decoded)
        letter, reasons = grade(m)
        main, accents = main_colour(m.colours, m.background)
        noun = TYPE_NAMES[jewelry_type]
        tone = "light" if m.background in BACKGROUND_TONES else m.background
        colours = ", ".join(f"{name} {share:.0%}" for name, share in m.colours[:3])
        flaws = "; ".join(reasons) if reasons else "no measurable flaws"
        return Caption(
            generated_name=f"{main.title()} {noun}"[:60],
            quality=letter,  # type: ignore[arg-type]
            description=f"{main.capitalize()}-tone {noun.lower()} on {article(tone)} {tone} background ({flaws})."[
                :200
            ],
            attributes=(
                f"dominant colours: {colours}; piece fills {m.fill:.0%} of the frame; "
                f"{m.width}×{m.height} px; sharpness {m.sharpness:.0f}; "
                f"background {'uniform' if m.background_std <= 0.03 else 'varied'}"
            )[:500],
            prompt=(
                f"{'A pair of' if jewelry_type == 'earring' else 'A'} {main} {noun.lower()}"
                f"{' with ' + ' and '.join(n for n, _ in accents[:2]) + ' accents' if accents else ''}, "
                "photographed as an isolated product, true to its shape and proportions"
            ),
            color=main,
        )
