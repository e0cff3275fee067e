"""What a listing photo's analysis holds (the vision cache's schema) and how a vision model is asked.

The analysis fields are the vision cache's contract: `image_type`, `features`,
`architecture_style`, `exterior_color`, `materials`, `visual_features`, `confidence`. A model's
reply is validated against `ImageAnalysis` (nothing else is accepted) by the provider, which
repairs a bad reply once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from listing_vision.providers.vision_llm import VisionModel

ANALYSIS_PROMPT = """You analyse one photo of a property listing. Describe only what is visible.
Reply with the JSON object the schema asks for:
- image_type: "exterior" (outside of the house, yard, pool), "interior" (any room), or "other" (map, floor plan).
- features: visible physical features, short noun phrases ("front porch", "granite countertops").
- architecture_style: for exteriors, the style ("ranch", "colonial", …) or null.
- exterior_color: for exteriors, the main siding colour or null.
- materials: visible exterior materials ("brick", "vinyl", …); [] for interiors.
- visual_features: qualities of the image ("natural light", "spacious").
- confidence: "high", "medium" or "low" for how sure you are of the above."""

INSTRUCTION = "Analyse this listing photo."


class ImageAnalysis(BaseModel):
    """The analysis of one listing photo; a reply with anything else is rejected."""

    model_config = ConfigDict(extra="forbid")

    image_type: Literal["exterior", "interior", "other"]
    features: list[str] = Field(max_length=30)
    architecture_style: str | None = Field(None, max_length=60)
    exterior_color: str | None = Field(None, max_length=40)
    materials: list[str] = Field(default_factory=list, max_length=10)
    visual_features: list[str] = Field(default_factory=list, max_length=20)
    confidence: Literal["high", "medium", "low"]


def analyse(vision: VisionModel, image: bytes, media_type: str) -> tuple[ImageAnalysis, str]:
    """The validated analysis of one photo and the model's raw reply (kept as `llm_response`)."""
    answer = vision.ask(image, media_type, ANALYSIS_PROMPT, INSTRUCTION, ImageAnalysis)
    return answer.parsed, answer.raw
