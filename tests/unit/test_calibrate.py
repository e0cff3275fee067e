"""`python -m evaluation.calibrate` on groups made from the shipped photos, with the descriptor:
it picks a retrieval threshold on dev designs only, reports test with n and intervals, and writes
an HTML report with histograms, the precision/recall curve and thumbnails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evaluation import calibrate, splits, verdict_labels
from listing_vision.config import get_settings
from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
CHOSEN = ("image1", "image5", "image3")  # two dev designs and one test design (evaluation/splits.json)


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Given groups made from three shipped photos: each with its re-exports and edits, and each
    # colour variant a product of its own (same design)
    root = tmp_path_factory.mktemp("calibration")
    (root / "photos").mkdir()
    for stem in CHOSEN:
        shutil.copy(PHOTOS / f"{stem}.jpg", root / "photos" / f"{stem}.jpg")
    assert calibrate.write_demo_groups(root / "groups", [root / "photos"]) == 3
    return root / "groups"


def test_it_chooses_on_dev_reports_test_writes_an_html_report_and_the_stage_file(
    groups: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (one run for both: the report's checks and the stage file's were two runs of the same calibration)
    assert {splits.hash_split(stem) for stem in CHOSEN} == {"dev", "test"}
    # Given a stage context file (the shipped example)
    stage = tmp_path / "dev.json"
    shutil.copy(splits.ROOT / "infra" / "stages" / "dev.example.json", stage)
    before = json.loads(stage.read_text())
    # When it is run with the descriptor for a target precision, pointed at the stage file
    out = tmp_path / "out"
    code = calibrate.main([str(groups), "--out", str(out), "--target-precision", "0.9", "--stage-file", str(stage)])
    # Then it prints the change against the current setting and the test split's figures
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"RETRIEVAL_THRESHOLD: {get_settings().retrieval_threshold} →" in printed and "test: precision" in printed
    summary = json.loads((out / "thresholds.json").read_text())
    assert summary["designs"] == {"dev": 2, "test": 1}
    chosen = summary["chosen"]["RETRIEVAL_THRESHOLD"]
    assert 0 < chosen <= 2
    for split in ("dev", "test"):
        figure = summary[split]["precision"]
        assert figure["n"] > 0 and figure["ci95"][0] <= figure["value"] <= figure["ci95"][1]
    assert summary["dev"]["precision"]["value"] >= 0.9  # the target, reached where it was chosen
    # and the report shows the histograms and curve (inline SVG) and the worst pairs as thumbnails
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2 and "data:image/jpeg;base64," in page
    assert "Worst false positives" in page and "Worst false negatives" in page
    # And the stage file holds the chosen threshold, every other key as it was, and the diff was printed
    assert json.loads(stage.read_text()) == {**before, "retrieval_threshold": round(chosen, 4)}
    assert f"retrieval_threshold: (unset) → {round(chosen, 4)}" in printed
    # and a stage file that is not there is refused, nothing written
    with pytest.raises(SystemExit):
        calibrate.write_stage_file(tmp_path / "missing.json", 0.3)
    assert not (tmp_path / "missing.json").exists()


def test_the_threshold_is_never_chosen_on_test_designs(groups: Path) -> None:
    # Given the pairs of every query, test designs included
    dataset = f"calibrate:{groups.resolve()}"
    photos = calibrate.load_groups(groups)
    embedder = OnnxEmbedder(str(DESCRIPTOR_MODEL))
    pairs = calibrate.collect(photos, embedder, get_settings(), dataset)
    assert {p.split for p in pairs} == {"dev", "test"}
    # When they are handed to the choice, then it refuses
    with pytest.raises(splits.SplitLeak):
        calibrate.choose(pairs, photos, 0.9, dataset)


def test_a_folder_without_two_groups_is_refused(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    shutil.copy(PHOTOS / "image1.jpg", tmp_path / "only" / "a.jpg")
    with pytest.raises(ValueError, match="two group folders"):
        calibrate.load_groups(tmp_path)


def test_a_groups_folder_that_is_not_there_is_refused_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no folder at the groups path, when calibrate is run on it
    with pytest.raises(SystemExit) as refused:
        calibrate.main([str(tmp_path / "no-such-groups"), "--out", str(tmp_path / "out")])
    # Then it exits as a usage error naming the path and what to do, and writes nothing
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert "--demo-groups DIR" in error and "no-such-groups" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_demo_groups_take_the_first_photos_asked_for_by_option_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the shipped photos in name order (the docs example's test asks for fewer, as it does for listings)
    first = min(p.stem for p in PHOTOS.glob("*.jpg"))
    # When demo groups are asked for with --demo-photos 1, then (into another folder) with CALIBRATE_DEMO_PHOTOS=1
    assert calibrate.main(["--demo-groups", str(tmp_path / "option"), "--demo-photos", "1"]) == 0
    monkeypatch.setenv("CALIBRATE_DEMO_PHOTOS", "1")
    assert calibrate.main(["--demo-groups", str(tmp_path / "environment")]) == 0
    # Then each holds the first photo's groups only (the original's and its colourways'), not all ten
    for made in ("option", "environment"):
        assert {g.name.split("@")[0] for g in (tmp_path / made).iterdir()} == {first}
    assert capsys.readouterr().out.splitlines() == [
        f"1 photos' groups written to {tmp_path / 'option'}",
        f"1 photos' groups written to {tmp_path / 'environment'}",
    ]


def test_reviewers_verdicts_relabel_pairs_and_bring_photos_of_their_own(groups: Path, tmp_path: Path) -> None:
    # Given two photos of one group, a photo of another, and a photo in no group (kept beside them)
    photos = calibrate.load_groups(groups)
    a = next(i for i, p in enumerate(photos) if p.group == "image1" and p.path.name == "original.jpg")
    b = next(i for i, p in enumerate(photos) if p.group == "image1" and i != a)
    c = next(i for i, p in enumerate(photos) if p.group == "image5" and p.path.name == "original.jpg")
    kept = tmp_path / "kept"
    kept.mkdir()
    shutil.copy(PHOTOS / "image2.jpg", kept / "upload.jpg")
    ids = {i: verdict_labels.image_id(photos[i].path) for i in (a, b, c)}
    upload = verdict_labels.image_id(kept / "upload.jpg")
    # And verdicts, as GET /verdicts pages them: the pair in one group is "not a duplicate", the pair
    # across groups "same piece", the kept photo "same piece" as c, and one names a photo nobody has
    verdicts = [
        (ids[a], ids[b], "not_duplicate"),
        (ids[c], ids[a], "same_piece"),
        (upload, ids[c], "same_piece"),
        ("f" * 64, ids[a], "same_piece"),
    ]
    page = {"verdicts": [{"image_id": x, "matched_image_id": y, "verdict": v} for x, y, v in verdicts]}
    (tmp_path / "verdicts.json").write_text(json.dumps(page))
    # When they label the photos
    everything = calibrate.with_verdict_photos(photos, kept)
    labels = calibrate.labels_of(everything, verdict_labels.load_file(tmp_path / "verdicts.json"))
    plain = calibrate.labels_of(photos)
    # Then each verdict overrides its pair, the kept photo joins as a product of its own, and the unknown is skipped
    assert len(everything) == len(photos) + 1 and everything[-1].group.startswith("verdict-")
    assert (labels.same(a, b), labels.same(b, a), labels.same(a, c), labels.same(c, len(photos))) == (
        False,
        False,
        True,
        True,
    )
    assert plain.same(a, b) and not plain.same(a, c)
    assert labels.positives(a) == plain.positives(a) and labels.positives(c) == plain.positives(c) + 2
    assert labels.summary() == {
        "given": 4,
        "used": 3,
        "skipped_photo_not_found": 1,
        "same_piece": 2,
        "not_duplicate": 1,
    }
    # And the pair the groups call the same product, retrieved, is counted as different products
    pairs = calibrate.collect(everything, OnnxEmbedder(str(DESCRIPTOR_MODEL)), get_settings(), "t", labels)
    retrieved = [p for p in pairs if {p.query, p.candidate} == {a, b}]
    assert retrieved and not any(p.same for p in retrieved)
    # And the command line takes the file and the folder, and reports what it used
    out = tmp_path / "out"
    args = [str(groups), "--out", str(out), "--verdicts", str(tmp_path / "verdicts.json"), "--verdict-photos"]
    calibrate.main([*args, str(kept), "--target-precision", "0.5"])
    summary = json.loads((out / "thresholds.json").read_text())
    assert summary["photos"] == len(photos) + 1 and summary["verdicts"]["used"] == 3
