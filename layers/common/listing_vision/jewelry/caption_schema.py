"""What a caption is: the validated model every captioner must fill, and the captioner interface."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field, field_validator

from listing_vision.jewelry.caption_prompts import JewelryType

Grade = Literal["A", "B", "C", "D"]


class Caption(BaseModel):
    """What a caption must contain; anything else from a model is rejected."""

    generated_name: str = Field(min_length=3, max_length=60, description="Short product-style name, 2-6 words.")
    quality: Grade = Field(description="A (listing-ready) to D (not usable); see caption_prompts.QUALITY_CRITERIA.")
    description: str = Field(min_length=10, max_length=200, description="One sentence, no line breaks.")
    attributes: str = Field(min_length=3, max_length=500, description="Visible features, comma-separated.")
    prompt: str = Field(min_length=20, max_length=1000, description="Image-generation prompt describing the piece.")
    color: str = Field(min_length=3, max_length=40, description="Dominant metal or colour.")

    @field_validator("description")
    @classmethod
    def one_line(cls, value: str) -> str:
        if "\n" in value.strip():
            raise ValueError("description must be one line")
        return value.strip()


class Captioner(Protocol):
    name: str  # the provider: openai, anthropic, offline
    model: str  # the model it asks (stored with each caption)

    def caption(self, image: bytes, media_type: str, jewelry_type: JewelryType) -> Caption: ...
