"""Image edits through the OpenAI SDK (`images.edit` with a mask), under the shared rate limit,
taken in turns round-robin across clients (fair_turns.py).

The SDK's own retries handle 429 (honouring retry-after) and 5xx; quota exhaustion and content
policy refusals come back as their own codes and fail that image at once.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable

from listing_vision.config import get_settings
from listing_vision.errors import UpstreamError
from listing_vision.providers.clients import openai_client, provider_error, sdk_errors
from listing_vision.providers.fair_turns import FairTurns
from listing_vision.providers.rate_limit import TokenBucket


class OpenAIImageEditor:
    name = "openai"

    def __init__(self, limiter: TokenBucket | None = None, client: str = "anonymous"):
        settings = get_settings()
        self.model = settings.openai_image_model
        self.fidelity = settings.openai_image_input_fidelity
        self.limiter = limiter or TokenBucket(
            "openai-image-edits", settings.image_edit_rate_per_minute, settings.image_edit_burst
        )
        self.client = client  # whose turn an edit waits for (fair_turns.py: round-robin across clients)
        self.turns = FairTurns(self.limiter)

    def edit(
        self,
        image_png: bytes,
        mask_png: bytes,
        prompt: str,
        size: str = "1024x1024",
        before_call: Callable[[], None] | None = None,
        turn: str | None = None,
    ) -> tuple[bytes, float]:
        """The edited image (PNG bytes) and the seconds the provider took. `before_call` runs once the
        rate limit lets the call go (in this client's turn), right before it is paid for: what it
        raises stops the call. `turn` names the wait (fair_turns.py), so a retry takes its place."""
        self.turns.acquire(self.client, turn)
        if before_call is not None:
            before_call()
        extra = {} if self.fidelity == "off" or self.model.startswith("dall-e") else {"input_fidelity": self.fidelity}
        started = time.perf_counter()
        try:
            result = openai_client(get_settings().image_edit_timeout_s).images.edit(  # type: ignore[call-overload]
                model=self.model,
                image=("source.png", io.BytesIO(image_png), "image/png"),
                mask=("mask.png", io.BytesIO(mask_png), "image/png"),
                prompt=prompt,
                size=size,  # type: ignore[arg-type]
                n=1,
                **extra,  # type: ignore[arg-type]
            )
        except sdk_errors() as error:
            raise provider_error(error, self.name) from error
        seconds = time.perf_counter() - started
        if not result.data or not result.data[0].b64_json:
            raise UpstreamError("The image-edit reply held no image.", code="empty_model_reply")
        return base64.b64decode(result.data[0].b64_json), seconds
