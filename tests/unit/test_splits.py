"""The split manifest: every labelled phrase and every evaluation photo's design is in dev or test,
the committed manifest is what the data gives, and tuning code refuses test items."""

from __future__ import annotations

import json

import pytest

from evaluation import splits


def test_the_committed_manifest_is_current_and_covers_every_item() -> None:
    # Given the shipped phrase sets and photos, when the manifest is built from them
    built = splits.build_manifest()
    # Then it equals the committed one (a phrase or photo added without a split fails here)
    assert json.loads(splits.MANIFEST.read_text()) == built
    for name in splits.PHRASE_SETS:
        phrases = {row["phrase"] for row in splits.read_phrases(splits.DATA / name)}
        entry = built["datasets"][name]
        assert set(entry["dev"]) | set(entry["test"]) == phrases and not set(entry["dev"]) & set(entry["test"])
    designs = {splits.design_of(p) for f in splits.PHOTO_FOLDERS for p in (splits.ROOT / f).glob("*.jpg")}
    photos = built["datasets"][splits.PHOTOS]
    assert set(photos["dev"]) | set(photos["test"]) == designs and photos["dev"] and photos["test"]
    # the probe, tuned on as a whole, is dev only
    assert built["datasets"]["probe_feature_phrases.csv"]["test"] == []


def test_photos_are_split_by_design_not_by_variant() -> None:
    # Given two colourways of one design, they share the design and so the split
    assert splits.design_of("tests/data/x/ring7@silver.jpg") == splits.design_of("ring7@gold.jpg") == "ring7"
    assert splits.split_of("someone-elses-photos", "ring7") == splits.hash_split("ring7")


def test_tuning_code_refuses_test_items_and_unassigned_items_are_named() -> None:
    manifest = splits.load_manifest()["datasets"][splits.PHOTOS]
    # Given dev designs only, tuning may go on
    splits.require_dev(splits.PHOTOS, manifest["dev"], "the threshold curve")
    # When a test design is among them, then SplitLeak names it
    with pytest.raises(splits.SplitLeak, match=manifest["test"][0]):
        splits.require_dev(splits.PHOTOS, [*manifest["dev"], manifest["test"][0]], "the threshold curve")
    # A shipped dataset's item missing from the manifest is an error, not a silent guess
    with pytest.raises(splits.Unassigned):
        splits.split_of("labelled_feature_phrases.csv", "a phrase nobody labelled")
