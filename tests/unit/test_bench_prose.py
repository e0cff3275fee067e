"""The figures quoted in the docs' sentences are read from the result files (bench/prose.py), never typed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import prose

ROOT = Path(__file__).resolve().parents[2]

# A measurement, as the docs write one: a rate, a time in milliseconds, or a ratio with decimals; a
# bound (after ≤ or ≥) is a goal or a setting, not a measurement.
MEASUREMENT = re.compile(
    r"(?<![\d.,])(?<![≤≥] )(?:\d[\d,.]*\s?(?:img/s|images/s)|\d+(?:\.\d+)?\s?ms\b|\d+\.\d+(?:–\d+\.\d+)?×)"
)
# Generated blocks (`<!-- name:start … -->` … `<!-- name:end -->`), marked figures and code are not typed prose.
GENERATED = re.compile(r"<!-- ([\w:-]+?):start.*?<!-- \1:end -->", re.S)
CODE = re.compile(r"```.*?```", re.S)

# Numbers in the prose that are not measurements: goals, settings and the model's stated inputs.
NOT_MEASURED = {
    "docs/benchmarks.md": [
        "(GetItem 4 ms, BatchGetItem 4 ms + 0.2 ms a key, mget 5 ms + 0.1 ms an\nid, update 8 ms, bulk 10 ms + 1 ms "
        "an action, search 10 ms; stated in the module)",  # the model's assumed latencies
    ],
    "docs/embeddings.md": ["measured at least 1.3× faster"],  # the bound synth applies
    "docs/jewelry-api.md": ["than 2.2× (gold turned silver)"],  # the colour test's setting
    "docs/migration.md": ["0.17 s + 5 ms a listing"],  # the model's batch, as its table shows it
}


def _typed_prose(path: Path) -> str:
    text = CODE.sub("", prose.FIGURE.sub("", GENERATED.sub("", path.read_text())))
    for allowed in NOT_MEASURED.get(str(path.relative_to(ROOT)), []):
        assert allowed in text, f"{path.name}: NOT_MEASURED lists {allowed!r}, no longer on the page"
        text = text.replace(allowed, "")
    return text


def test_every_quoted_figure_matches_its_file() -> None:
    # Given every page of the docs, When its marked figures are read again from their files
    for path in prose.pages():
        page = path.read_text()
        # Then the page already says what the files say
        assert prose.rendered(page) == page, f"{path.name}: run python -m bench.prose --write-readme"


def test_no_measurement_is_typed_in_a_sentence() -> None:
    # Given the pages with their generated blocks, marked figures, code and stated settings taken out
    typed = {
        str(path.relative_to(ROOT)): MEASUREMENT.findall(_typed_prose(path))
        for path in prose.pages()
        if MEASUREMENT.search(_typed_prose(path))
    }
    # Then no measurement is left: each is a marked figure (bench/prose.py) or lives in a generated table
    assert not typed, typed


def test_a_figure_changed_by_hand_is_caught() -> None:
    # Given a sentence quoting a figure, edited by hand
    page = "served <!-- figure:gpu.best_16 -->2,500<!-- /figure --> images/s"
    # When it is rendered from the files, Then the file's figure replaces the hand-made one
    assert prose.rendered(page) != page
    assert "2,500" not in prose.rendered(page)


def test_an_unknown_figure_is_an_error() -> None:
    # Given a page naming a figure nothing reads, Then rendering refuses it by name
    with pytest.raises(KeyError, match=r"gpu\.nothing"):
        prose.rendered("<!-- figure:gpu.nothing -->1<!-- /figure -->")


def test_a_typed_measurement_is_found() -> None:
    # Given sentences of the kinds the docs once typed, Then each is recognised as a measurement
    for sentence in ("embeds 1,896 images/s", "takes 3.5 ms a candidate", "int8 at 4.48–5.80× eager", "12 img/s"):
        assert MEASUREMENT.search(sentence), sentence
    # And settings written as sizes or counts, and bounds, are not
    for sentence in ("224×224 pixels", "3 × r6g.xlarge", "a burst of 5", "goal ≤ 1.15× its slowest call", "≥ 2.5 ms"):
        assert not MEASUREMENT.search(sentence), sentence
