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
from evaluation.splits import SplitLeak
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


def test_the_threshold_is_chosen_on_dev_and_figures_are_given_per_split(report: dedupe_eval.Report) -> None:
    # Given the report on the ten photos, whose designs the manifest puts in dev and test
    assert set(report.split_of.values()) == {"dev", "test"}
    # Then every split has figures with their sample size and interval, the splits adding up to all
    figures = dedupe_eval.figures(report)
    for group in dedupe_eval.GROUPS:
        key = "kept_apart" if group in dedupe_eval.NEGATIVE_GROUPS else "recall"
        assert figures["dev"][group][key]["n"] + figures["test"][group][key]["n"] == figures["all"][group][key]["n"]
        if figures["test"][group][key]["n"]:  # metal colourways: none among these photos
            low, high = figures["test"][group][key]["ci95"]
            assert low <= figures["test"][group][key]["value"] <= high
    # and at the threshold chosen on dev, the test split is measured too
    assert report.chosen_threshold in report.outcomes_at
    assert dedupe_eval.figures(report, report.chosen_threshold)["test"]["re-exports"]["recall"]["n"] > 0


def test_choosing_the_threshold_on_a_test_design_is_refused(report: dedupe_eval.Report) -> None:
    # Given the designs of the test split, when the threshold is chosen on a curve measured on them
    test_designs = {report.originals[q] for q, split in report.split_of.items() if split == "test"}
    # Then it raises SplitLeak: tuning reads dev only
    with pytest.raises(SplitLeak):
        dedupe_eval.choose_threshold(report.curve, test_designs)


def test_the_command_prints_a_table_per_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(PHOTOS / "image3.jpg", tmp_path / "image3.jpg")
    # --model takes any ONNX image encoder with CLIP's signature (here the descriptor itself)
    assert dedupe_eval.main(["--photos", str(tmp_path), "--model", str(DESCRIPTOR_MODEL)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("## onnx:dct_descriptor.onnx") == 2
    assert "Chosen retrieval threshold" in printed and "Retrieval at scale" in printed
