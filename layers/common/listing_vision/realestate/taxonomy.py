"""The feature taxonomy: which feature phrases are amenities, exterior or interior, read from the
versioned data file `feature_taxonomy.toml` (sources, policy and terms are documented there).

Matching, in full (pure and deterministic):

1. The phrase is lower-cased, the file's replacements applied ("a/c" → "ac"), apostrophes dropped,
   everything that is not a letter or digit made a space, and articles dropped. A token that is not
   a term word but whose singular is (regular -s/-es/-ies, or the file's irregular plurals) is
   read as that singular.
2. Every term is found wherever it occurs; a match inside a longer overlapping match is dropped,
   so "pool table" (interior) hides "pool" (amenity). An amenity match after a negation in the
   same segment ("no garage", "without a pool", "former dock"), followed within three words by an
   absence word ("pool: none", "garage converted to office", "porch enclosed and converted"), or
   by a final absence word that ends the phrase ("pool: no", "garage: 0"), or right before a
   likeness word ("spa-blue", "porch-style") is dropped too. Listing shorthand is rewritten first
   ("w/o" → "without", "n/a" → "na", "not included" → "excluded"; whole words only).
3. Any amenity match left makes the phrase an amenity (a phrase that names an amenity shows the
   home has it). Otherwise a context word decides ("outdoor", "interior"), else the head: the last
   specific match of the first segment (the phrase cut at "with", "of", "in", …) that has one.
4. Otherwise (no match, or only generic words such as "home" or "room") the taxonomy does not
   know the phrase (`classify` is None): its cached class decides, else the offline rule
   (`PhraseClassifier`, `offline_label`).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

Label = Literal["amenity", "exterior", "interior"]
LABELS: tuple[Label, ...] = ("amenity", "exterior", "interior")
Source = Literal["taxonomy", "cache", "offline_rule"]
DATA_FILE = "feature_taxonomy.toml"
_NOT_WORD = re.compile(r"[\W_]+")  # letters and digits of any script are words; the rest separates them
ABSENCE_WINDOW = 3  # an absence word this many words after an amenity or fewer makes it absent
MAX_KEY_PHRASE = 200  # a longer canonical phrase is keyed by its start and a hash (DynamoDB keys ≤ 2 KB)


@dataclass(frozen=True)
class Concept:
    id: str
    label: Label
    facet: str | None
    terms: tuple[str, ...]
    sources: tuple[str, ...] = ()
    generic: bool = False  # says which side, but does not make a phrase known


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    concept: Concept

    def inside(self, other: Match) -> bool:
        return (
            other.start <= self.start and self.end <= other.end and (other.end - other.start) > (self.end - self.start)
        )


@dataclass(frozen=True)
class PhraseClass:
    """A phrase's class, and who decided it."""

    label: Label
    source: Source
    facet: str | None = None
    concept: str | None = None


@dataclass
class Taxonomy:
    version: str
    policy: dict[str, str]
    sources: list[dict[str, Any]]
    concepts: list[Concept]
    articles: frozenset[str]
    separators: frozenset[str]
    negations: frozenset[str]
    likeness: frozenset[str]
    exterior_context: frozenset[str]
    interior_context: frozenset[str]
    replacements: dict[str, str]
    plurals: dict[str, str]
    absences: frozenset[str] = frozenset()  # right after an amenity: it is absent ("pool: none", "pool removed")
    final_absences: frozenset[str] = frozenset()  # the same, as the phrase's last word only ("pool: no")
    # The version and a hash of the parsed file: what a listing's split record names (an edit
    # without a version bump still makes the splits it classified stale).
    fingerprint: str = ""
    _terms: dict[tuple[str, ...], Concept] = field(default_factory=dict, repr=False)
    _words: set[str] = field(default_factory=set, repr=False)
    _longest: int = field(default=1, repr=False)
    _memo: dict[str, PhraseClass | None] = field(default_factory=dict, repr=False)
    _rewrites: list[tuple[re.Pattern[str], str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        # A replacement whose key starts or ends with a letter or digit matches whole words only
        # ("n/a" is not rewritten inside "sauna/a", "access to" not inside "access tower").
        self._rewrites = [
            (
                re.compile(
                    ("(?<!\\w)" if old[:1].isalnum() else "")
                    + re.escape(old)
                    + ("(?!\\w)" if old[-1:].isalnum() else "")
                ),
                new,
            )
            for old, new in self.replacements.items()
        ]
        for concept in self.concepts:
            for term in concept.terms:
                words = tuple(self._words_of(term))
                if not words:
                    raise ValueError(f"taxonomy {self.version}: empty term in concept {concept.id}")
                if words in self._terms and self._terms[words].id != concept.id:
                    raise ValueError(
                        f"taxonomy {self.version}: term {term!r} is in both {self._terms[words].id} and {concept.id}"
                    )
                self._terms[words] = concept
                self._words.update(words)
                self._longest = max(self._longest, len(words))

    # --- normalising ---------------------------------------------------------------------------
    def _words_of(self, text: str) -> list[str]:
        text = str(text).lower()
        for pattern, new in self._rewrites:
            text = pattern.sub(new, text)
        text = text.replace("'", "").replace("’", "")
        return [word for word in _NOT_WORD.split(text) if word and word not in self.articles]

    def _singular(self, word: str) -> str:
        if word in self._words:
            return word
        if word in self.plurals:
            return self.plurals[word]
        for suffix, replacement in (("ies", "y"), ("es", ""), ("s", "")):
            if word.endswith(suffix) and word[: -len(suffix)] + replacement in self._words:
                return word[: -len(suffix)] + replacement
        return word

    def tokens(self, phrase: str) -> list[str]:
        """The phrase as the matcher reads it: normalised words, plurals read as singulars."""
        return [self._singular(word) for word in self._words_of(phrase)]

    def canonical(self, phrase: str) -> str:
        """The phrase's normalised text: the same for spelling variants of one phrase."""
        return " ".join(self.tokens(phrase))

    def key(self, phrase: str) -> str:
        """Cache key of an unknown phrase: the taxonomy version and the canonical phrase."""
        text = self.canonical(phrase)
        if len(text) > MAX_KEY_PHRASE:
            text = f"{text[:MAX_KEY_PHRASE]}…{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        return f"{self.version}#{text}"

    # --- matching ------------------------------------------------------------------------------
    def matches(self, tokens: list[str]) -> list[Match]:
        """Every term occurrence, less those inside a longer overlapping one."""
        found = [
            Match(start, start + length, self._terms[tuple(tokens[start : start + length])])
            for start in range(len(tokens))
            for length in range(1, min(self._longest, len(tokens) - start) + 1)
            if tuple(tokens[start : start + length]) in self._terms
        ]
        return [m for m in found if not any(m.inside(other) for other in found)]

    def _segment_of(self, tokens: list[str]) -> list[int]:
        segments, number = [], 0
        for token in tokens:
            if token in self.separators:
                number += 1
            segments.append(number)
        return segments

    def _discounted(self, match: Match, tokens: list[str], segments: list[int]) -> bool:
        """An amenity named after a negation in its segment, followed closely by an absence word ("pool:
        none", "garage converted to office"), or only as a look ("spa-blue")."""
        if match.end < len(tokens) and tokens[match.end] in self.likeness:
            return True
        if any(token in self.absences for token in tokens[match.end : match.end + ABSENCE_WINDOW]):
            return True
        if match.end < len(tokens) <= match.end + ABSENCE_WINDOW and tokens[-1] in self.final_absences:
            return True
        segment = segments[match.start]
        opener = next((i for i in range(match.start) if segments[i] == segment), match.start)
        return any(tokens[i] in self.negations for i in range(opener, match.start))

    def _kept(self, tokens: list[str]) -> tuple[list[Match], list[int]]:
        segments = self._segment_of(tokens)
        kept = [
            m
            for m in self.matches(tokens)
            if not (m.concept.label == "amenity" and self._discounted(m, tokens, segments))
        ]
        return kept, segments

    @staticmethod
    def _head(matches: list[Match], segments: list[int]) -> Match:
        first_segment = min(segments[m.start] for m in matches)
        return max((m for m in matches if segments[m.start] == first_segment), key=lambda m: m.end)

    def classify(self, phrase: str) -> PhraseClass | None:
        """The taxonomy's class of a phrase, or None when it does not know the phrase."""
        canonical = self.canonical(phrase)
        if canonical in self._memo:
            return self._memo[canonical]
        result = self._classify(canonical.split())
        if len(self._memo) < 100_000:
            self._memo[canonical] = result
        return result

    def _classify(self, tokens: list[str]) -> PhraseClass | None:
        kept, segments = self._kept(tokens)
        amenities = [m for m in kept if m.concept.label == "amenity"]
        if amenities:
            first = amenities[0].concept
            return PhraseClass("amenity", "taxonomy", first.facet, first.id)
        words = set(tokens)
        outside, inside = bool(words & self.exterior_context), bool(words & self.interior_context)
        if outside != inside:
            return PhraseClass("exterior" if outside else "interior", "taxonomy")
        specific = [m for m in kept if not m.concept.generic]
        if not specific:
            return None
        head = self._head(specific, segments)
        return PhraseClass(head.concept.label, "taxonomy", None, head.concept.id)

    def generic_label(self, phrase: str) -> Label | None:
        """For a phrase the taxonomy does not know: the side its generic words name, if any."""
        kept, segments = self._kept(self.tokens(phrase))
        generic = [m for m in kept if m.concept.generic]
        return self._head(generic, segments).concept.label if generic else None

    def amenity_matches(self, phrase: str) -> tuple[list[str], list[Match]]:
        """The phrase's words and the amenity terms it names (not negated, not a look)."""
        tokens = self.tokens(phrase)
        kept, _ = self._kept(tokens)
        return tokens, [m for m in kept if m.concept.label == "amenity"]

    def concept_of_word(self, word: str) -> Concept | None:
        """The concept a single (normalised) word is a term of, if any."""
        return self._terms.get((self._singular(word),))

    def term_words(self, term: str) -> list[str]:
        return self._words_of(term)

    @property
    def term_count(self) -> int:
        return len(self._terms)


def offline_label(
    phrase: str, seen_exterior: int = 0, seen_interior: int = 0, taxonomy: Taxonomy | None = None
) -> Label:
    """The offline rule for a phrase the taxonomy does not know: never an amenity; the kind of
    image that named it most often; never seen in an image: the side its generic words name
    ("home", "room"); else interior (the most common kind of listing photo)."""
    if seen_exterior != seen_interior:
        return "exterior" if seen_exterior > seen_interior else "interior"
    return (taxonomy or load_taxonomy()).generic_label(phrase) or "interior"


class PhraseClassifier:
    """Taxonomy first; then the cached class of a phrase the taxonomy does not know; then the
    offline rule. Pure: the same taxonomy and cache give the same answers."""

    def __init__(self, taxonomy: Taxonomy | None = None, cached: Mapping[str, Label] | None = None):
        self.taxonomy = taxonomy or load_taxonomy()
        self.cached = dict(cached or {})  # Taxonomy.key(phrase) → label

    def classify(self, phrase: str) -> PhraseClass:
        known = self.taxonomy.classify(phrase)
        if known is not None:
            return known
        label = self.cached.get(self.taxonomy.key(phrase))
        if label is not None:
            return PhraseClass(label, "cache")
        return PhraseClass(offline_label(phrase, taxonomy=self.taxonomy), "offline_rule")

    def is_amenity(self, phrase: str) -> bool:
        return self.classify(phrase).label == "amenity"

    def unknown(self, phrases: Iterable[str]) -> list[str]:
        """The phrases the taxonomy does not know (deduplicated by cache key, first spelling kept)."""
        out: dict[str, str] = {}
        for phrase in phrases:
            if self.taxonomy.classify(phrase) is None:
                out.setdefault(self.taxonomy.key(phrase), phrase)
        return list(out.values())


def _as_set(values: Any) -> frozenset[str]:
    return frozenset(str(v) for v in values or ())


def parse_taxonomy(data: Mapping[str, Any]) -> Taxonomy:
    """A taxonomy from the file's parsed TOML (validated: labels, non-empty terms, no term twice)."""
    grammar = data.get("grammar", {})
    concepts = []
    for raw in data.get("concept", []):
        label = raw.get("class")
        if label not in LABELS:
            raise ValueError(f"concept {raw.get('id')!r}: class must be one of {LABELS}, not {label!r}")
        if label == "amenity" and not raw.get("facet"):
            raise ValueError(f"amenity concept {raw.get('id')!r} needs a facet")
        if label == "amenity" and raw.get("generic"):
            raise ValueError(f"amenity concept {raw.get('id')!r} cannot be generic")
        concepts.append(
            Concept(
                id=str(raw["id"]),
                label=cast(Label, label),
                facet=raw.get("facet"),
                terms=tuple(str(t) for t in raw.get("terms", ())),
                sources=tuple(str(s) for s in raw.get("sources", ())),
                generic=bool(raw.get("generic", False)),
            )
        )
    if len({c.id for c in concepts}) != len(concepts):
        raise ValueError("concept ids must be unique")
    return Taxonomy(
        version=str(data["version"]),
        policy={str(k): str(v) for k, v in data.get("policy", {}).items()},
        sources=list(data.get("sources", [])),
        concepts=concepts,
        articles=_as_set(grammar.get("articles")),
        separators=_as_set(grammar.get("separators")),
        negations=_as_set(grammar.get("negations")),
        likeness=_as_set(grammar.get("likeness")),
        exterior_context=_as_set(grammar.get("exterior_context")),
        interior_context=_as_set(grammar.get("interior_context")),
        replacements={str(k): str(v) for k, v in grammar.get("replacements", {}).items()},
        plurals={str(k): str(v) for k, v in data.get("plurals", {}).items()},
        absences=_as_set(grammar.get("absences")),
        final_absences=_as_set(grammar.get("final_absences")),
        fingerprint=f"{data['version']}+{_content_hash(data)}",
    )


def _content_hash(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


@cache
def load_taxonomy(path: str | None = None) -> Taxonomy:
    """The shipped taxonomy (or the file at `path`), parsed once per process."""
    raw = Path(path).read_bytes() if path else resources.files(__package__).joinpath(DATA_FILE).read_bytes()
    return parse_taxonomy(tomllib.loads(raw.decode()))
