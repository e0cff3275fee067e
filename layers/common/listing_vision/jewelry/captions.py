"""Captions for jewelry photos: the validated model every provider must fill, and the providers.

OpenAI (vision input, JSON-schema structured output through `chat.completions.parse`), Anthropic
(image content block, structured output through `messages.parse`) and the offline captioner
(measurements of the pixels, for keyless local use). A reply that does not validate is repaired
once (the model is told what was wrong); a second bad reply is a 502 `malformed_model_reply`,
never passed through.
"""

from __future__ import annotations

import base64
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, field_validator

from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest
from listing_vision.jewelry.caption_prompts import SYSTEM, JewelryType, repair_prompt, user_prompt
from listing_vision.providers.clients import (
    SDK_ERRORS,
    anthropic_client,
    anthropic_key,
    openai_client,
    openai_key,
    provider_error,
)
from listing_vision.providers.structured import with_one_repair

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
    name: str

    def caption(self, image: bytes, media_type: str, jewelry_type: JewelryType) -> Caption: ...


class OpenAICaptioner:
    name = "openai"

    def caption(self, image: bytes, media_type: str, jewelry_type: JewelryType) -> Caption:
        client, model = openai_client(), get_settings().openai_caption_model
        data_url = f"data:{media_type};base64,{base64.b64encode(image).decode()}"

        def call(problem: str | None) -> Caption:
            messages: list[Any] = [
                {"role": "system", "content": SYSTEM},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": user_prompt(jewelry_type)},
                        {"type": "image_url", "image_url": {"url": data_url}},
                    ],
                },
            ]
            if problem:
                messages.append({"role": "user", "content": repair_prompt(problem)})
            try:
                completion = client.chat.completions.parse(
                    model=model,
                    messages=messages,
                    response_format=Caption,  # type: ignore[arg-type]
                )
            except SDK_ERRORS as error:
                raise provider_error(error, self.name) from error
            message = completion.choices[0].message
            if message.refusal:
                raise InvalidRequest(
                    f"OpenAI declined to describe the image: {message.refusal[:200]}",
                    code="content_policy_refusal",
                    details={"provider": self.name},
                )
            if message.parsed is None:
                raise ValueError("the reply had no parsable content")
            return message.parsed

        return with_one_repair(call, self.name)


class AnthropicCaptioner:
    name = "anthropic"

    def caption(self, image: bytes, media_type: str, jewelry_type: JewelryType) -> Caption:
        client, model = anthropic_client(), get_settings().anthropic_caption_model
        encoded = base64.b64encode(image).decode()

        def call(problem: str | None) -> Caption:
            content: list[dict[str, object]] = [
                {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}},
                {"type": "text", "text": user_prompt(jewelry_type)},
            ]
            if problem:
                content.append({"type": "text", "text": repair_prompt(problem)})
            try:
                message = client.messages.parse(
                    model=model,
                    max_tokens=1024,
                    system=SYSTEM,
                    messages=[{"role": "user", "content": content}],  # type: ignore[list-item,misc]
                    output_format=Caption,
                )
            except SDK_ERRORS as error:
                raise provider_error(error, self.name) from error
            if message.stop_reason == "refusal":
                raise InvalidRequest(
                    "Anthropic declined to describe the image.",
                    code="content_policy_refusal",
                    details={"provider": self.name},
                )
            parsed = message.parsed_output
            if parsed is None:
                raise ValueError("the reply had no parsable content")
            return parsed

        return with_one_repair(call, self.name)


def get_captioner() -> Captioner:
    """The configured captioner; `auto` prefers OpenAI, then Anthropic, by which key exists, else offline."""
    choice = get_settings().caption_provider
    if choice == "auto":
        choice = "openai" if openai_key() else "anthropic" if anthropic_key() else "offline"
    if choice == "openai":
        return OpenAICaptioner()
    if choice == "anthropic":
        return AnthropicCaptioner()
    from listing_vision.jewelry.offline_caption import OfflineCaptioner

    return OfflineCaptioner()
