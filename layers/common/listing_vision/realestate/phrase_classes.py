"""Who classes a feature phrase the taxonomy does not know: a model (OpenAI or Anthropic) with a
validated structured reply, or the taxonomy's documented offline rule when no key is set.

Phrases go in batches (PHRASE_CLASSIFY_BATCH per request), each with how often exterior and
interior photos named it. The model is given the taxonomy's own policy text and amenity facets,
and must answer every phrase it was asked, exactly once, with a facet from the list for an
amenity; a reply that breaks this is sent back once with what was wrong (`providers.vision_llm`),
a second bad reply is `malformed_model_reply`; SDK errors map through `provider_error`. Nothing
unvalidated is returned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from listing_vision.config import get_settings
from listing_vision.providers.clients import anthropic_key, openai_key
from listing_vision.providers.vision_llm import AnthropicVision, OpenAIVision, VisionModel
from listing_vision.realestate.taxonomy import Label, Taxonomy, load_taxonomy, offline_label

Method = Literal["llm", "offline_rule"]


@dataclass(frozen=True)
class PhraseToClassify:
    phrase: str
    seen_exterior: int = 0
    seen_interior: int = 0


class PhraseVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phrase: str = Field(description="The phrase, copied exactly as given.")
    label: Literal["amenity", "exterior", "interior"]
    facet: str | None = Field(description="For an amenity, one of the listed facets; otherwise null.")


class PhraseVerdicts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdicts: list[PhraseVerdict]


class PhraseClassProvider(Protocol):
    name: str
    model: str | None
    method: Method

    def classify(self, batch: Sequence[PhraseToClassify]) -> dict[str, PhraseVerdict]: ...


def system_prompt(taxonomy: Taxonomy) -> str:
    facets = sorted({c.facet for c in taxonomy.concepts if c.label == "amenity" and c.facet})
    return (
        "You classify short feature phrases that a vision model wrote about real-estate listing photos. "
        "Each phrase goes to one field of a search index: amenities, exterior or interior.\n"
        f"Amenity: {taxonomy.policy['amenity']}\n"
        f"Exterior: {taxonomy.policy['exterior']}\n"
        f"Interior: {taxonomy.policy['interior']}\n"
        f"For an amenity, facet is one of: {', '.join(facets)}. For exterior and interior, facet is null.\n"
        "The counts say how many exterior and interior photos named the phrase; use them when a phrase "
        "could be either side. Answer every phrase exactly once, copying it exactly as given."
    )


def user_prompt(batch: Sequence[PhraseToClassify]) -> str:
    lines = [
        json.dumps({"phrase": p.phrase, "exterior_photos": p.seen_exterior, "interior_photos": p.seen_interior})
        for p in batch
    ]
    return "Classify these phrases, one verdict each:\n" + "\n".join(lines)


def checked(
    reply: PhraseVerdicts | None, batch: Sequence[PhraseToClassify], taxonomy: Taxonomy
) -> dict[str, PhraseVerdict]:
    """The reply's verdicts by the phrase asked, when it answers exactly the phrases asked, each once
    (told apart as the taxonomy normalises them, so a changed case or hyphen is the same phrase);
    ValueError otherwise."""
    if reply is None:
        raise ValueError("the reply had no parsable content")
    facets = {c.facet for c in taxonomy.concepts if c.label == "amenity" and c.facet}
    asked = {taxonomy.canonical(p.phrase): p.phrase for p in batch}
    answered: dict[str, PhraseVerdict] = {}
    for verdict in reply.verdicts:
        phrase = asked.get(taxonomy.canonical(verdict.phrase))
        if phrase is None:
            raise ValueError(f"the reply has a phrase that was not asked: {verdict.phrase[:80]!r}")
        if phrase in answered:
            raise ValueError(f"the reply answers {verdict.phrase[:80]!r} twice")
        if verdict.label == "amenity" and verdict.facet not in facets:
            raise ValueError(f"facet {verdict.facet!r} of {verdict.phrase[:80]!r} is not one of the listed facets")
        answered[phrase] = verdict.model_copy(
            update={"phrase": phrase, "facet": verdict.facet if verdict.label == "amenity" else None}
        )
    missing = [phrase for phrase in asked.values() if phrase not in answered]
    if missing:
        raise ValueError(f"the reply leaves {len(missing)} phrases unanswered, e.g. {missing[0][:80]!r}")
    return answered


class ModelPhraseClasses:
    """Classes from a model (OpenAI or Anthropic through `providers.vision_llm`, text only): the
    reply is validated against `PhraseVerdicts` and `checked`, and repaired once."""

    method: Method = "llm"

    def __init__(self, llm: VisionModel, taxonomy: Taxonomy | None = None) -> None:
        self.llm = llm
        self.name = llm.name
        self.model: str | None = llm.model
        self.taxonomy = taxonomy or load_taxonomy()

    def classify(self, batch: Sequence[PhraseToClassify]) -> dict[str, PhraseVerdict]:
        def check(reply: PhraseVerdicts) -> None:
            checked(reply, batch, self.taxonomy)

        answer = self.llm.ask_text(system_prompt(self.taxonomy), user_prompt(batch), PhraseVerdicts, check)
        return checked(answer.parsed, batch, self.taxonomy)


class OfflinePhraseClasses:
    """The taxonomy's offline rule: never an amenity; the side of the photos that named it."""

    name = "offline"
    model: str | None = None
    method: Method = "offline_rule"

    def __init__(self, taxonomy: Taxonomy | None = None) -> None:
        self.taxonomy = taxonomy or load_taxonomy()

    def classify(self, batch: Sequence[PhraseToClassify]) -> dict[str, PhraseVerdict]:
        out = {}
        for p in batch:
            label: Label = offline_label(p.phrase, p.seen_exterior, p.seen_interior, self.taxonomy)
            out[p.phrase] = PhraseVerdict(phrase=p.phrase, label=label, facet=None)
        return out


def get_phrase_class_provider(taxonomy: Taxonomy | None = None) -> PhraseClassProvider:
    """The configured provider; `auto` prefers OpenAI, then Anthropic, by which key exists, else offline."""
    settings = get_settings()
    choice = settings.phrase_classifier
    if choice == "auto":
        choice = "openai" if openai_key() else "anthropic" if anthropic_key() else "offline"
    if choice == "openai":
        return ModelPhraseClasses(OpenAIVision(settings.openai_phrase_model), taxonomy)
    if choice == "anthropic":
        # A verdict is about 25 tokens: room for a full batch.
        return ModelPhraseClasses(AnthropicVision(settings.anthropic_phrase_model, max_tokens=8192), taxonomy)
    return OfflinePhraseClasses(taxonomy)
