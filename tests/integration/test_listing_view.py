"""GET /listings/{zpid} through the local stack: one listing's photos (links) and its text before and
after the visual-features split, read-only; a listing not split yet shows no split fields. And GET
/listings/migration's last run, after a run of the migration's state machine. Bad ids are in the
bad-input corpus (bad_input/search_cases.py)."""

from __future__ import annotations

import uuid

import pytest
import requests
from opensearchpy import helpers

from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingsIndex
from local.stack import LocalStack
from tests.demo_migration import migrated_demo_listing
from tests.stores import changed, fingerprint


def test_a_listing_shows_its_photos_and_its_text_before_and_after_the_split(local_stack: LocalStack) -> None:
    # Given a split listing and one not split yet, each with its aggregated text and photos
    index = ListingsIndex.from_settings()
    index.ensure_split_mapping()
    split, unsplit = (f"8{uuid.uuid4().int % 10**9:09d}" for _ in range(2))
    text = "Exterior: brick facade. Interior: hardwood floors. Amenities: pool."
    photos = ["https://photos.hearth.example/a/00.jpg", "s3://listing-uploads/photos/a/01.jpg"]
    after = {
        "exterior_visual_features": "brick facade",
        "interior_visual_features": "hardwood floors",
        "amenities_visual_features": "pool",
    }
    docs = {
        split: {"zpid": split, "visual_features_text": text, "image_urls": photos, **after},
        unsplit: {"zpid": unsplit, "visual_features_text": text, "image_urls": photos[:1]},
    }
    helpers.bulk(index.client, ({"_index": index.name, "_id": z, "_source": d} for z, d in docs.items()))
    index.refresh()
    try:
        before = fingerprint()
        # When each is asked for
        shown = requests.get(f"{local_stack.url}/listings/{split}", timeout=10)
        waiting = requests.get(f"{local_stack.url}/listings/{unsplit}", timeout=10)
        # Then the split one shows its photos (a link for the URL, none for the s3:// URI), the text
        # before and the three fields after
        assert shown.status_code == 200, shown.text
        assert shown.json() == {
            "zpid": split,
            "photos": [{"url": photos[0], "link": photos[0]}, {"url": photos[1], "link": None}],
            "before": {"visual_features_text": text},
            "after": after,
            "split": True,
            "images_pending": False,
        }
        # And the other its text before and no split fields
        assert waiting.json()["after"] == {name: None for name in SPLIT_FIELDS} and waiting.json()["split"] is False
        assert waiting.json()["before"] == {"visual_features_text": text}
        # And reading wrote nothing
        assert changed(before, fingerprint()) == []
    finally:
        helpers.bulk(index.client, ({"_op_type": "delete", "_index": index.name, "_id": z} for z in docs))
        index.refresh()


def test_the_progress_shows_the_last_runs_batches_and_verify_and_a_migrated_listing_its_split(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run of the migration's state machine over two listings
    zpid, run = migrated_demo_listing(capsys)
    assert run["passed"] is True, run
    # When the progress and one of the listings are asked for
    progress = requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()
    listing = requests.get(f"{local_stack.url}/listings/{zpid}", timeout=10).json()
    # Then the progress shows that run: its batches done and failed, and verify's figures
    last = progress["last_run"]
    assert (last["run_id"], last["operation"], last["passed"]) == (run["run_id"], "execute", True)
    assert (last["batches"], last["batches_done"], last["batches_failed"]) == (run["batches"], run["batches"], 0)
    assert last["verify"]["passed"] is True and last["verify"]["total"] == 2
    # And the listing its photos, the text before the split and the three fields after it
    assert listing["split"] is True and listing["photos"]
    assert listing["before"]["visual_features_text"] and all(listing["after"].values())
