"""Reviewers' verdicts on duplicate pairs through the local stack (PUT /verdicts, GET /verdicts): a
duplicate answer names each match's image, a verdict on the pair is stored per storefront, recording
the pair again (either way round) replaces it, and the listing pages with a cursor tied to its scope.
`python -m evaluation.calibrate --verdicts-from-api` exports them as labels. Bad input is in the
bad-input corpus (bad_input/verdict_cases.py); access in test_access.py."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from evaluation import calibrate
from listing_vision import aws
from listing_vision.api.access import Caller
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import to_item
from listing_vision.jewelry.claims import ContentClaims
from listing_vision.jewelry.verdicts import Verdicts, verdict_item_id
from listing_vision.resources import IMAGES_BY_WEBSITE, VERDICTS_BY_WEBSITE
from local.provision import provision
from local.stack import LocalStack
from tests.integration.test_generation import earring_photo
from tests.stores import changed, fingerprint

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store(url: str, data: bytes, website: str) -> None:
    answer = requests.post(
        f"{url}/image_similarity_search",
        files={"file": ("piece.jpg", data, "image/jpeg")},
        data={"check_duplicate": "no", "website": website},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def reencoded(data: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def put(url: str, **body: Any) -> requests.Response:
    return requests.put(f"{url}/verdicts", json=body, timeout=10)


def listed(url: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = requests.get(f"{url}/verdicts", params={**params, **({"cursor": cursor} if cursor else {})}, timeout=10)
        assert page.status_code == 200, page.text
        found += page.json()["verdicts"]
        if (cursor := page.json()["next_cursor"]) is None:
            return found


def test_a_verdict_on_a_duplicate_pair_is_stored_and_replaced_either_way_round(local_stack: LocalStack) -> None:
    url = local_stack.url
    # Given a stored photo in alya, and a re-encoded copy of it checked for duplicates
    original = earring_photo(7301)
    store(url, original, "alya")
    copy = reencoded(original)
    checked = requests.post(
        f"{url}/image_similarity_search",
        files={"file": ("copy.jpg", copy, "image/jpeg")},
        data={"website": "alya"},
        timeout=30,
    ).json()
    # Then the duplicate answer names the matched image by its id
    assert checked["duplicate_found"] is True
    assert sha(original) in [result["image_id"] for result in checked["results"]]
    # When a reviewer records "not a duplicate" on the pair (upload, match)
    first = put(url, website="alya", image_id=sha(copy), matched_image_id=sha(original), verdict="not_duplicate")
    # Then it is recorded as sent, and listed for either image of the pair, in alya only
    assert first.status_code == 200, first.text
    assert {k: first.json()[k] for k in ("website", "image_id", "matched_image_id", "verdict")} == {
        "website": "alya",
        "image_id": sha(copy),
        "matched_image_id": sha(original),
        "verdict": "not_duplicate",
    }
    assert [v["verdict"] for v in listed(url, website="alya", image_id=sha(copy))] == ["not_duplicate"]
    assert [v["verdict"] for v in listed(url, website="alya", image_id=sha(original))] == ["not_duplicate"]
    assert listed(url, website="blysk", image_id=sha(original)) == []
    # When the same pair, both stored and named the other way round, is recorded "same piece"
    store(url, copy, "alya")
    again = put(url, website="alya", image_id=sha(original), matched_image_id=sha(copy), verdict="same_piece")
    # Then it replaced the first: one verdict on the pair, the last one
    assert again.status_code == 200, again.text
    on_pair = listed(url, website="alya", image_id=sha(copy))
    assert [(v["image_id"], v["matched_image_id"], v["verdict"]) for v in on_pair] == [
        (sha(original), sha(copy), "same_piece")
    ]


def test_verdicts_are_listed_a_page_at_a_time_with_a_cursor_tied_to_its_scope(local_stack: LocalStack) -> None:
    url = local_stack.url
    # Given three verdicts of blysk on pairs holding one stored photo
    hub = earring_photo(7401)
    store(url, hub, "blysk")
    others = [sha(earring_photo(7402 + n)) for n in range(3)]
    for n, other in enumerate(others):
        verdict = "same_piece" if n % 2 else "not_duplicate"
        assert put(url, website="blysk", image_id=other, matched_image_id=sha(hub), verdict=verdict).status_code == 200
    # When they are listed one per page
    pages = []
    cursor, last = None, ""
    while True:
        params: dict[str, Any] = {
            "website": "blysk",
            "image_id": sha(hub),
            "limit": 1,
            **({"cursor": cursor} if cursor else {}),
        }
        page = requests.get(f"{url}/verdicts", params=params, timeout=10).json()
        pages.append(page["verdicts"])
        if (cursor := page["next_cursor"]) is None:
            break
        last = cursor
    # Then every verdict comes once, none of another pair
    assert sorted(v["image_id"] for page in pages for v in page) == sorted(others)
    # And a cursor used for another image's listing, or another storefront's, is refused, writing nothing
    before = fingerprint()
    for scope in ({"website": "blysk", "image_id": others[0]}, {"website": "alya", "image_id": sha(hub)}):
        refused = requests.get(f"{url}/verdicts", params={**scope, "cursor": last}, timeout=10)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_cursor")
    assert changed(before, fingerprint()) == []


def test_calibrate_takes_a_storefronts_verdicts_from_the_api_with_their_photos(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    url = local_stack.url
    # Given two stored photos of alya that a reviewer called the same piece, and one upload (not
    # stored) called not a duplicate of the first
    first, second, upload = earring_photo(7501), reencoded(earring_photo(7501)), earring_photo(7502)
    store(url, first, "alya")
    store(url, second, "alya")
    assert put(url, website="alya", image_id=sha(second), matched_image_id=sha(first), verdict="same_piece").ok
    assert put(url, website="alya", image_id=sha(upload), matched_image_id=sha(first), verdict="not_duplicate").ok
    # And groups of two other products
    groups = tmp_path / "groups"
    for stem in ("image1", "image5"):
        (groups / stem).mkdir(parents=True)
        shutil.copy(PHOTOS / f"{stem}.jpg", groups / stem / "original.jpg")
    # When calibrate fetches alya's verdicts from the API
    out = tmp_path / "out"
    calibrate.main([str(groups), "--out", str(out), "--verdicts-from-api", url, "--website", "alya"])
    # Then the verdicts were saved, the stored photos fetched by id, and the pair between them used
    saved = {(v["image_id"], v["verdict"]) for v in json.loads((out / "verdicts.json").read_text())["verdicts"]}
    assert {(sha(second), "same_piece"), (sha(upload), "not_duplicate")} <= saved
    fetched = {path.name for path in (out / "verdict-photos").iterdir()}
    assert {f"{sha(first)}.img", f"{sha(second)}.img"} <= fetched and f"{sha(upload)}.img" not in fetched
    figures = json.loads((out / "thresholds.json").read_text())["verdicts"]
    assert figures["used"] >= 1 and figures["skipped_photo_not_found"] >= 1  # the upload's photo is nowhere


def test_verdicts_recorded_before_their_index_existed_are_listed_newest_first_once_it_is_added(
    local_stack: LocalStack,
) -> None:
    # Given a catalogue table as a stage had it before the verdicts' index (its key only)
    dynamodb = aws.client("dynamodb")
    table = f"catalogue-before-index-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "content_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "content_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        # And verdicts in it as the code before the index wrote them: five of blysk, recorded at
        # different times (written out of order), one of alya, and a stored image's claim
        hub = sha(b"hub")
        recorded = {sha(f"other {n}".encode()): at for n, at in enumerate((300, 100, 500, 200, 400))}
        for other, at in [*recorded.items(), (sha(b"alya's"), 600)]:
            website = "alya" if at == 600 else "blysk"
            item = {
                "content_id": verdict_item_id(website, other, hub),
                "website": website,
                "image_id": other,
                "matched_image_id": hub,
                "verdict": "same_piece",
                "recorded_at": at,
                "recorded_by": "reviewer",
            }
            dynamodb.put_item(TableName=table, Item=to_item(item))
        claim = {"content_id": f"blysk#{hub}", "website": "blysk", "state": "stored", "sha256": hub}
        dynamodb.put_item(TableName=table, Item=to_item(claim))
        # When the stack provisions its tables over it, as a start on a kept state folder does
        provision(get_settings().model_copy(update={"catalogue_table": table}))
        # Then the table has the verdicts' index, as declared (and the stored images' one, GET /images)
        indexes = dynamodb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]
        assert {index["IndexName"] for index in indexes} == {VERDICTS_BY_WEBSITE.name, IMAGES_BY_WEBSITE.name}
        # And blysk's verdicts are listed from it, two a page, newest first, each once, alya's and the claim left out
        verdicts = Verdicts(ContentClaims(table=table))
        caller = Caller("reviewer", frozenset({"blysk"}))
        pages, cursor = [], None
        while True:
            page = verdicts.page(caller, "blysk", None, cursor, 2)
            pages.append([(v["image_id"], v["recorded_at"]) for v in page["verdicts"]])
            if (cursor := page["next_cursor"]) is None:
                break
        newest_first = sorted(recorded.items(), key=lambda pair: -pair[1])
        assert [pair for page in pages for pair in page] == newest_first
        assert [len(page) for page in pages[:2]] == [2, 2]
        # And those on pairs holding one image, the same way
        other = newest_first[3][0]
        assert [v["image_id"] for v in verdicts.page(caller, "blysk", other, None, 2)["verdicts"]] == [other]
    finally:
        dynamodb.delete_table(TableName=table)
