"""One request in (an image with an instruction, or an instruction alone), a validated structured
reply out, from an OpenAI or Anthropic model.

Both providers send a system prompt and the request, ask for the reply in the JSON schema of a
pydantic model (the SDKs' structured outputs: `chat.completions.parse`, `messages.parse`), run the
caller's own `check` on it (rules a schema cannot say, e.g. "every phrase answered once"), repair
a reply that fails either once (`structured.with_one_repair`), turn a refusal into
`content_policy_refusal`, and map SDK errors with `clients.provider_error`. The raw reply text is
returned too, for callers that keep it (the vision cache's `llm_response`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from listing_vision.errors import InvalidRequest
from listing_vision.providers.clients import anthropic_client, openai_client, provider_error, sdk_errors
from listing_vision.providers.structured import with_one_repair

Reply = TypeVar("Reply", bound=BaseModel)
Check = Callable[[Any], None]  # raises ValueError when a parsed reply breaks a rule of the caller


@dataclass(frozen=True)
class VisionAnswer(Generic[Reply]):
    parsed: Reply
    raw: str


class VisionModel(Protocol):
    name: str  # the provider
    model: str

    def ask(
        self,
        image: bytes,
        media_type: str,
        system: str,
        instruction: str,
        schema: type[Reply],
        check: Check | None = None,
    ) -> VisionAnswer[Reply]: ...

    def ask_text(
        self, system: str, instruction: str, schema: type[Reply], check: Check | None = None
    ) -> VisionAnswer[Reply]: ...


def repair_instruction(problem: str) -> str:
    return (
        f"Your previous reply could not be used: {problem[:300]}. Reply again with only the JSON object, "
        "every field present and within its limits."
    )


def _refused(provider: str, detail: str = "", what: str = "describe the image") -> InvalidRequest:
    return InvalidRequest(
        f"{provider} declined to {what}{': ' + detail[:200] if detail else ''}.",
        code="content_policy_refusal",
        details={"provider": provider},
    )


class OpenAIVision:
    name = "openai"

    def __init__(self, model: str):
        self.model = model

    def ask(
        self,
        image: bytes,
        media_type: str,
        system: str,
        instruction: str,
        schema: type[Reply],
        check: Check | None = None,
    ) -> VisionAnswer[Reply]:
        data_url = f"data:{media_type};base64,{base64.b64encode(image).decode()}"
        content = [{"type": "text", "text": instruction}, {"type": "image_url", "image_url": {"url": data_url}}]
        return self._ask(system, content, schema, check, "describe the image")

    def ask_text(
        self, system: str, instruction: str, schema: type[Reply], check: Check | None = None
    ) -> VisionAnswer[Reply]:
        return self._ask(system, instruction, schema, check, "answer")

    def _ask(
        self, system: str, content: Any, schema: type[Reply], check: Check | None, what: str
    ) -> VisionAnswer[Reply]:
        client = openai_client()

        def call(problem: str | None) -> VisionAnswer[Reply]:
            messages: list[Any] = [{"role": "system", "content": system}, {"role": "user", "content": content}]
            if problem:
                messages.append({"role": "user", "content": repair_instruction(problem)})
            try:
                completion = client.chat.completions.parse(model=self.model, messages=messages, response_format=schema)
            except sdk_errors() as error:
                raise provider_error(error, self.name) from error
            message = completion.choices[0].message
            if message.refusal:
                raise _refused(self.name, message.refusal, what)
            if message.parsed is None:
                raise ValueError("the reply had no parsable content")
            if check:
                check(message.parsed)
            return VisionAnswer(message.parsed, message.content or "")

        return with_one_repair(call, self.name)


class AnthropicVision:
    name = "anthropic"

    def __init__(self, model: str, max_tokens: int = 1024):
        self.model = model
        self.max_tokens = max_tokens

    def ask(
        self,
        image: bytes,
        media_type: str,
        system: str,
        instruction: str,
        schema: type[Reply],
        check: Check | None = None,
    ) -> VisionAnswer[Reply]:
        encoded = base64.b64encode(image).decode()
        content = [
            {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}},
            {"type": "text", "text": instruction},
        ]
        return self._ask(system, content, schema, check, "describe the image")

    def ask_text(
        self, system: str, instruction: str, schema: type[Reply], check: Check | None = None
    ) -> VisionAnswer[Reply]:
        return self._ask(system, [{"type": "text", "text": instruction}], schema, check, "answer")

    def _ask(
        self, system: str, request: list[Any], schema: type[Reply], check: Check | None, what: str
    ) -> VisionAnswer[Reply]:
        client = anthropic_client()

        def call(problem: str | None) -> VisionAnswer[Reply]:
            content = list(request)
            if problem:
                content.append({"type": "text", "text": repair_instruction(problem)})
            try:
                message = client.messages.parse(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    system=system,
                    messages=[{"role": "user", "content": content}],
                    output_format=schema,
                )
            except sdk_errors() as error:
                raise provider_error(error, self.name) from error
            if message.stop_reason == "refusal":
                raise _refused(self.name, what=what)
            raw = "".join(getattr(block, "text", "") for block in message.content)
            if message.parsed_output is None:
                raise ValueError("the reply had no parsable content")
            if check:
                check(message.parsed_output)
            return VisionAnswer(message.parsed_output, raw)

        return with_one_repair(call, self.name)
