"""Every prompt the caption providers see, per jewelry type, in one place."""

from __future__ import annotations

from typing import Literal

JewelryType = Literal["earring", "necklace", "bracelet", "ring"]

QUALITY_CRITERIA = """Grade the photo as a product listing image:
A: sharp, well exposed, plain uniform background, the piece fills most of the frame, longest side >= 1000 px.
B: usable as is, with one minor flaw (slightly soft, small in frame, or a faint background texture).
C: needs retouching or a reshoot before listing (noticeably soft, dark or blown out, busy background).
D: not usable (blurry, heavily cropped, cluttered, or the piece is hard to make out)."""

SYSTEM = f"""You write catalogue copy for a jewelry storefront from one product photo.
Describe only what is visible; never invent stones, metals or measurements you cannot see.
{QUALITY_CRITERIA}
Reply with the JSON object the schema asks for:
- generated_name: a short product name, 2-6 words, Title Case (e.g. "Gold Teardrop Hoop Earrings").
- quality: the grade letter.
- description: one sentence, at most 200 characters, no line breaks.
- attributes: the visible features, comma-separated (metal tone, stones, shape, finish, clasp or setting).
- prompt: an image-generation prompt that describes this exact piece so an image model can restage it
  (metal, colour, shape, stones, size impression), without background or scene.
- color: the dominant metal or colour in plain words (e.g. "yellow gold", "silver", "rose gold")."""

TYPE_GUIDANCE: dict[str, str] = {
    "earring": "The photo shows earrings (a pair or a single one). Note the drop shape, the closure (stud, hook, "
    "hoop, huggie) and whether a pair is visible.",
    "necklace": "The photo shows a necklace. Note the chain style, any pendant and its shape, and the clasp if seen.",
    "bracelet": "The photo shows a bracelet. Note whether it is a chain, bangle or cuff, its links, and charms.",
    "ring": "The photo shows a ring. Note the band profile, the setting (solitaire, halo, pavé, bezel) and stones.",
}


def user_prompt(jewelry_type: JewelryType) -> str:
    return f"{TYPE_GUIDANCE[jewelry_type]}\nWrite the catalogue fields for this {jewelry_type}."
