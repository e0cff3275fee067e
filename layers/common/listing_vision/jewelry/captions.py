"""Which captioner writes a caption: a vision model (OpenAI or Anthropic) or the offline captioner.

A model is asked for the `Caption` schema with the prompts of `caption_prompts`; the provider
validates the reply and repairs it once (`providers.vision_llm`), so a second bad reply is a 502
`malformed_model_reply`, never passed through. Without a key, the offline captioner describes
only what the pixels measure.
"""

from __future__ import annotations

from listing_vision.config import get_settings
from listing_vision.jewelry.caption_prompts import SYSTEM, JewelryType, user_prompt
from listing_vision.jewelry.caption_schema import Caption, Captioner
from listing_vision.jewelry.offline_caption import OfflineCaptioner
from listing_vision.providers.clients import anthropic_key, openai_key
from listing_vision.providers.vision_llm import AnthropicVision, OpenAIVision, VisionModel


class ModelCaptioner:
    """Captions from a vision model, in the validated `Caption` schema."""

    def __init__(self, vision: VisionModel):
        self.vision = vision
        self.name = vision.name
        self.model = vision.model

    def caption(self, image: bytes, media_type: str, jewelry_type: JewelryType) -> Caption:
        return self.vision.ask(image, media_type, SYSTEM, user_prompt(jewelry_type), Caption).parsed


def get_captioner() -> Captioner:
    """The configured captioner; `auto` prefers OpenAI, then Anthropic, by which key exists, else offline."""
    settings = get_settings()
    choice = settings.caption_provider
    if choice == "auto":
        choice = "openai" if openai_key() else "anthropic" if anthropic_key() else "offline"
    if choice == "openai":
        return ModelCaptioner(OpenAIVision(settings.openai_caption_model))
    if choice == "anthropic":
        return ModelCaptioner(AnthropicVision(settings.anthropic_caption_model))
    return OfflineCaptioner()
