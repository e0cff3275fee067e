"""Catalogue image types per product, with the prompt for each generative one (one place).

Earrings: 1 White Background, 2 Hand Holding, 3 Dimension Image, 4 Lifestyle
Nature, 5 Model Wearing; default [1, 2, 4, 5] (3 needs dimensions). Necklaces, bracelets and rings
have the same numbering with their own staging. Types 1 and 3 are rendered by image processing;
the others need the image-edit provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Renderer = Literal["white", "dimensions", "edit"]
Product = Literal["earring", "necklace", "bracelet", "ring"]


@dataclass(frozen=True)
class ImageType:
    number: int
    name: str
    renderer: Renderer
    prompt: str = ""


KEEP = (
    "Keep the jewelry exactly as it is: same shape, metal, stones and size; change only what is "
    "around it. Photorealistic, soft natural light, e-commerce quality."
)


def _types(staging: dict[int, tuple[str, str]]) -> dict[int, ImageType]:
    types = {1: ImageType(1, "White Background", "white"), 3: ImageType(3, "Dimension Image", "dimensions")}
    for number, (name, scene) in staging.items():
        types[number] = ImageType(number, name, "edit", f"{scene} {KEEP}")
    return dict(sorted(types.items()))


TYPE_SETS: dict[Product, dict[int, ImageType]] = {
    "earring": _types(
        {
            2: ("Hand Holding", "The earrings rest on an open, relaxed human palm with natural skin tones."),
            4: (
                "Lifestyle Nature",
                "The earrings hang from a small wooden stick against a soft background of green leaves.",
            ),
            5: ("Model Wearing", "A model wears the earrings; a close crop of ear and jawline, hair tucked back."),
        }
    ),
    "necklace": _types(
        {
            2: ("On Bust Form", "The necklace is displayed on a neutral linen jewelry bust."),
            4: ("Lifestyle Flat Lay", "The necklace lies on a marble surface beside a folded silk scarf."),
            5: ("Model Wearing", "A model wears the necklace; a crop of neckline and collarbones."),
        }
    ),
    "bracelet": _types(
        {
            2: ("On Wrist", "The bracelet is worn on a relaxed wrist resting on a light surface."),
            4: ("Lifestyle Flat Lay", "The bracelet lies on a linen cloth beside a small ceramic dish."),
            5: ("Model Wearing", "A model wears the bracelet; a crop of forearm and hand."),
        }
    ),
    "ring": _types(
        {
            2: ("On Hand", "The ring is worn on the ring finger of a relaxed hand."),
            4: ("Lifestyle Ring Box", "The ring stands in an open velvet ring box on a light wooden table."),
            5: ("Model Wearing", "A model's hand wears the ring, resting near the face."),
        }
    ),
}
DEFAULT_TYPES = [1, 2, 4, 5]
PRODUCT_ALIASES: dict[str, Product] = {
    "ear": "earring",
    "earring": "earring",
    "earrings": "earring",
    "necklace": "necklace",
    "neck": "necklace",
    "bracelet": "bracelet",
    "ring": "ring",
}
