"""The labelled duplicate evaluation holds every class at its goal (fixed seed, real photos).

Each query goes through top-k retrieval over a catalogue of all the other photos and their
variants, and the service's own decision (`duplicates.decide`), so a regression in the descriptor,
the preprocessing or the verification fails here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evaluation import duplicate_detection as dedupe_eval
from evaluation import variants
from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"


@pytest.fixture(scope="module")
def report() -> dedupe_eval.Report:
    # Given the ten real photos of tests/data/photos, each with its 30 labelled variants (seed 15)
    items = dedupe_eval.build_items([PHOTOS], seed=15)
    # When every variant is checked against a catalogue of everything else
    return dedupe_eval.evaluate(dedupe_eval.prepare(items, OnnxEmbedder(DESCRIPTOR_MODEL)))


def recall(report: dedupe_eval.Report, kinds: tuple[str, ...]) -> float:
    outcomes = [o for kind in kinds for o in report.outcomes[kind]]
    return sum(o.verdict() == "correct" for o in outcomes) / len(outcomes)


@pytest.mark.parametrize("kind", variants.RE_EXPORTS)
def test_re_exports_are_found(report: dedupe_eval.Report, kind: str) -> None:
    assert recall(report, (kind,)) >= 0.99, [o.found for o in report.outcomes[kind]]


@pytest.mark.parametrize("kind", variants.GEOMETRIC)
def test_crops_rotations_mirrors_and_grayscale_are_found(report: dedupe_eval.Report, kind: str) -> None:
    assert recall(report, (kind,)) >= 0.90


@pytest.mark.parametrize("kind", [*variants.COLOUR_VARIANTS, "unrelated"])
def test_colour_variants_and_unrelated_photos_are_never_duplicates(report: dedupe_eval.Report, kind: str) -> None:
    assert len(report.outcomes[kind]) >= 10
    assert [o for o in report.outcomes[kind] if o.verdict() != "correct"] == []


def test_the_report_names_the_rule_and_the_chosen_threshold(report: dedupe_eval.Report) -> None:
    text = dedupe_eval.render(report)
    assert "| **re-exports** |" in text and "✓" in text and "✗" not in text
    assert report.rules["crop"]["verified"] > 0 and report.rules["resize"]["near"] > 0
    assert report.chosen_threshold is not None and dedupe_eval.meets_goals(report)


def test_the_command_prints_a_table_per_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(PHOTOS / "image3.jpg", tmp_path / "image3.jpg")
    # --model takes any ONNX image encoder with CLIP's signature (here the descriptor itself)
    assert dedupe_eval.main(["--photos", str(tmp_path), "--model", str(DESCRIPTOR_MODEL)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("## onnx:dct_descriptor.onnx") == 2
    assert "Chosen retrieval threshold" in printed and "Retrieval at scale" in printed
