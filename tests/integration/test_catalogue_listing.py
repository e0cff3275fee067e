"""GET /images reads one storefront's images from the catalogue table's `listed-created` index
(jewelry/image_listing.py), on the local engines: a small storefront's listing reads none of a big
one's records (the Query's ScannedCount, as moto counts the items it evaluated); pages are full
until the listing ends, through deletes made between pages and records the index still shows
while their deletes begin; a cursor is refused when altered, made for another storefront or by the
Scan-paged listing before; and records stored before the index existed (written straight into the
table, or restored from an old local snapshot) are listed once the deploy's provisioning or the
reconciler has run; the provisioning's Scan resumes where its time ran out, and once finished is not
run again."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from listing_vision.api.access import Caller
from listing_vision.api.cursors import CursorKind
from listing_vision.errors import InvalidRequest
from listing_vision.jewelry import image_listing
from listing_vision.jewelry.catalogue import MAX_LIMIT
from listing_vision.jewelry.catalogue import Catalogue as CatalogueService
from listing_vision.jewelry.claims import BACKFILL_ID, LISTED, ContentClaims, content_id, new_owner
from listing_vision.jewelry.vector_index import vector_id
from listing_vision.provisioning import list_stored_images
from listing_vision.realestate.listings_index import opensearch_client
from local import snapshot
from local.stack import LocalStack
from tests.images import fresh_image
from tests.isolated_catalogue import CALLER, isolated_catalogue
from tests.stores import settle, stored_through_api

pytestmark = pytest.mark.usefixtures("local_stack")  # the engines the isolated catalogues are made on
BOTH = Caller("both-storefronts", frozenset({"alya", "blysk"}))


def sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_record(claims: ContentClaims, website: str, n: int) -> str:
    """A record stored by the code's own writes (claim, then complete), with no object or vector:
    the listing reads records only."""
    sha, owner = sha_of(f"{website}-{n}".encode()), new_owner()
    assert claims.try_claim(website, sha, owner)
    path = f"s3://{website}img/catalogue/{sha[:2]}/{sha}.jpg"
    claims.complete(website, sha, owner, path, vector_id(website, sha), f"{n}.jpg")
    return sha


@contextmanager
def reads(claims: ContentClaims) -> Iterator[list[tuple[str, int]]]:
    """The catalogue reads made meanwhile: ("Query", its ScannedCount) or ("Scan", items scanned)."""
    seen: list[tuple[str, int]] = []

    def answered(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("Query", "Scan"):
            seen.append((model.name, int(parsed.get("ScannedCount", 0))))

    events = claims.dynamodb.meta.events
    events.register("after-call.dynamodb", answered)
    try:
        yield seen
    finally:
        events.unregister("after-call.dynamodb", answered)


def walk(service: CatalogueService, website: str, limit: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    while not pages or pages[-1]["next_cursor"] is not None:
        pages.append(service.list_images(BOTH, website, pages[-1]["next_cursor"] if pages else None, limit))
        assert len(pages) < 50
    return pages


def ids(page: dict[str, Any]) -> list[str]:
    return [image["image_id"] for image in page["images"]]


def test_a_small_storefronts_listing_reads_none_of_a_big_ones_records() -> None:
    # Given a catalogue of blysk's 3 photos beside 40 records of alya's
    with isolated_catalogue() as made:
        claims = made.stores.claims
        small = {sha_of(made.store(53_000 + n)[0]) for n in range(3)}
        big = {stored_record(claims, "alya", n) for n in range(40)}
        service = CatalogueService(made.stores)
        # When blysk's listing is read whole, and then one image at a time
        with reads(claims) as whole_reads:
            whole = service.list_images(BOTH, "blysk", None, MAX_LIMIT)
        with reads(claims) as walk_reads:
            pages = walk(service, "blysk", 1)
        alya = walk(service, "alya", 7)
    # Then the whole listing is one Query that evaluated blysk's 3 records and nothing else, with no cursor
    assert set(ids(whole)) == small and whole["next_cursor"] is None
    assert whole_reads == [("Query", 3)]
    # And walked, each page holds one image and evaluated at most 2 records (it and the next one's), the
    # last page alone has no cursor, and no Scan read the table
    assert [len(page["images"]) for page in pages] == [1, 1, 1]
    assert [page["next_cursor"] is None for page in pages] == [False, False, True]
    assert walk_reads == [("Query", 2), ("Query", 2), ("Query", 1)]
    assert sorted(image for page in pages for image in ids(page)) == sorted(small)
    # And alya's 40 come in full pages of 7 (the last one 5), newest first, each once
    assert [len(page["images"]) for page in alya] == [7] * 5 + [5]
    listed = [image for page in alya for image in page["images"]]
    assert sorted(image["image_id"] for image in listed) == sorted(big)
    keys = [(image["created_at"], image["image_id"]) for image in listed]
    assert keys == sorted(keys, reverse=True)


def test_a_listing_paged_through_deletes_shows_each_remaining_image_once_in_full_pages() -> None:
    # Given blysk's 6 photos, and 2 records the index still shows though their deletes began (written
    # as its lagging view: status deleting, the index's key not yet removed; newest of all)
    with isolated_catalogue() as made:
        claims = made.stores.claims
        photos = [sha_of(made.store(53_100 + n)[0]) for n in range(6)]
        stale = [sha_of(f"stale-{n}".encode()) for n in range(2)]
        for sha in stale:
            item = {"content_id": content_id("blysk", sha), "status": "deleting", "owner": new_owner()}
            item.update({LISTED: "blysk", "created_at": 4_000_000_000, "path": f"s3://{made.bucket}/x/{sha}.jpg"})
            claims.dynamodb.put_item(TableName=claims.table, Item=_typed(item))
        service = CatalogueService(made.stores)
        # When its listing is paged 2 at a time, and after the first page one image it showed and one it
        # has not shown yet are deleted
        pages = [service.list_images(CALLER, "blysk", None, 2)]
        shown_then_deleted = ids(pages[0])[0]
        never_shown = next(sha for sha in reversed(photos) if sha not in ids(pages[0]))
        for sha in (shown_then_deleted, never_shown):
            service.delete(CALLER, "blysk", sha)
        while pages[-1]["next_cursor"] is not None:
            pages.append(service.list_images(CALLER, "blysk", pages[-1]["next_cursor"], 2))
            assert len(pages) < 10
    # Then every page but the last holds 2 images, and only the last has no cursor
    assert [len(page["images"]) for page in pages[:-1]] == [2] * (len(pages) - 1) and pages[-1]["images"]
    assert [page["next_cursor"] is None for page in pages] == [False] * (len(pages) - 1) + [True]
    # And each photo still stored is listed once, the deleted one shown before its delete once, the other
    # deleted one and the records being deleted never
    listed = [sha for page in pages for sha in ids(page)]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(photos) - {never_shown} and not set(stale) & set(listed)


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    return {key: {"N": str(value)} if isinstance(value, int) else {"S": value} for key, value in item.items()}


def test_a_cursor_altered_or_of_another_storefront_or_of_the_scan_listing_is_refused() -> None:
    # Given blysk's 2 photos and the first page of its listing, one image long
    with isolated_catalogue() as made:
        for n in range(2):
            made.store(53_200 + n)
        service = CatalogueService(made.stores)
        first = service.list_images(BOTH, "blysk", None, 1)
        cursor = first["next_cursor"]
        assert cursor is not None and len(first["images"]) == 1
        sha = ids(first)[0]
        created_at = first["images"][0]["created_at"]
        # When it is used for alya's listing, altered to start elsewhere (its digest kept), or a cursor of
        # the listing before this one (version 1: a Scan's content id) is given
        altered = image_listing.encode_cursor("blysk", sha, created_at + 1).split(".")[0] + "." + cursor.split(".")[1]
        scan_cursor = CursorKind(b"catalogue-cursor", 1, 200, "listing", "storefront").seal(
            b"blysk", content_id("blysk", sha)
        )
        refused = []
        for website, given in (("alya", cursor), ("blysk", altered), ("blysk", scan_cursor)):
            with pytest.raises(InvalidRequest) as error:
                service.list_images(BOTH, website, given, 1)
            refused.append(error.value.code)
        # Then each is refused (invalid_cursor), while blysk's listing goes on from it to its other photo
        assert refused == ["invalid_cursor"] * 3
        rest = service.list_images(BOTH, "blysk", cursor, 1)
        assert len(rest["images"]) == 1 and ids(rest) != [sha] and rest["next_cursor"] is None


def test_an_image_stored_before_the_index_is_listed_once_the_deploys_provisioning_ran(
    local_stack: LocalStack,
) -> None:
    # Given a photo of alya stored, then the table as the code before the listing's index left it: the
    # record written straight into it without `listed_website`, and no listing backfill on record
    sha = stored_through_api(local_stack, fresh_image(53_300), "alya", "old.jpg")
    settle(local_stack)
    claims = ContentClaims()
    key = {"content_id": {"S": content_id("alya", sha)}}
    item = claims.dynamodb.get_item(TableName=claims.table, Key=key, ConsistentRead=True)["Item"]
    old = {name: value for name, value in item.items() if name != LISTED}
    claims.dynamodb.put_item(TableName=claims.table, Item=old)
    claims.dynamodb.delete_item(TableName=claims.table, Key={"content_id": {"S": BACKFILL_ID}})
    # Then GET /images does not list it yet
    assert sha not in listed(local_stack, "alya")
    # When the deploy's provisioning function runs
    report = local_stack.provision_stores()
    # Then it listed the record, kept as it was otherwise, and GET /images lists it with its name
    assert report[f"dynamodb:listed:{claims.table}"] == "updated"
    now = claims.dynamodb.get_item(TableName=claims.table, Key=key, ConsistentRead=True)["Item"]
    assert now == {**old, LISTED: {"S": "alya"}}
    assert listed(local_stack, "alya")[sha]["image_name"] == "old.jpg"
    # And a second run (the next deploy) has nothing left to list
    assert local_stack.provision_stores()[f"dynamodb:listed:{claims.table}"] == "unchanged"


def test_the_deploys_listing_resumes_where_its_budget_ran_out_and_once_finished_reads_one_item() -> None:
    # Given a catalogue of three stored photos whose records lack `listed_website` (written by the code
    # before the listing's index), and no listing backfill on record
    with isolated_catalogue() as made:
        claims, service = made.stores.claims, CatalogueService(made.stores)
        shas = [sha_of(made.store(seed)[0]) for seed in (53_500, 53_501, 53_502)]
        for sha in shas:
            key = {"content_id": {"S": content_id("blysk", sha)}}
            claims.dynamodb.update_item(TableName=claims.table, Key=key, UpdateExpression=f"REMOVE {LISTED}")
        assert service.list_images(CALLER, "blysk", None, 10)["images"] == []
        # When deploys run the listing with no time to spare, one item a Scan page
        outcomes, resumed_after = [], []
        while not outcomes or outcomes[-1] == "partial":
            assert len(outcomes) < 20, outcomes  # the table holds a handful of items: it must finish
            outcomes += list_stored_images(claims, budget_s=0, page_items=1).values()
            resumed_after.append(claims.listing_backfill())
        # Then each run stopped after one page, recorded where, and the next went on from there
        assert outcomes[:-1] == ["partial"] * (len(outcomes) - 1) and len(outcomes) >= 3
        positions = [resume for finished, resume in resumed_after[:-1]]
        assert len(set(positions)) == len(positions)  # never the same place twice: no run started over
        assert resumed_after[-1] == (True, None)
        # And every photo is listed, once
        assert sorted(ids(service.list_images(CALLER, "blysk", None, 10))) == sorted(shas)
        # When a record loses its key after the listing finished (the code before, still running during a deploy)
        key = {"content_id": {"S": content_id("blysk", shas[0])}}
        claims.dynamodb.update_item(TableName=claims.table, Key=key, UpdateExpression=f"REMOVE {LISTED}")
        # Then the next deploy reads the record of the finished listing and scans nothing
        assert list_stored_images(claims) == {f"dynamodb:listed:{claims.table}": "unchanged"}
        assert shas[0] not in ids(service.list_images(CALLER, "blysk", None, 10))
        # And the reconciler lists it
        assert made.reconciler().run("blysk")["repaired"] == {"record_not_listed": 1}
        assert shas[0] in ids(service.list_images(CALLER, "blysk", None, 10))


def test_an_old_snapshot_restored_is_listed_by_the_reconcile_that_follows(tmp_path: Path) -> None:
    # Given a local snapshot of a catalogue table whose stored photo's record has no `listed_website`
    # (saved by a stack before the listing's index), and that table emptied (a fresh emulator)
    with isolated_catalogue() as made:
        claims = made.stores.claims
        sha = sha_of(made.store(53_400)[0])
        key = {"content_id": {"S": content_id("blysk", sha)}}
        claims.dynamodb.update_item(TableName=claims.table, Key=key, UpdateExpression=f"REMOVE {LISTED}")
        snapshot.save(tmp_path, [], [claims.table], opensearch_client(), [])
        shutil.rmtree(tmp_path / "snapshot" / "ssm")  # the stack's secrets are not this test's to restore
        claims.dynamodb.delete_item(TableName=claims.table, Key=key)
        service = CatalogueService(made.stores)
        # When the snapshot is restored, then the photo is not listed: the index holds no record of it
        assert f"dynamodb:{claims.table}" in snapshot.restore(tmp_path, opensearch_client())
        restored = claims.dynamodb.get_item(TableName=claims.table, Key=key, ConsistentRead=True)["Item"]
        assert restored["status"] == {"S": "stored"} and LISTED not in restored
        assert service.list_images(CALLER, "blysk", None, 10)["images"] == []
        # When the reconciler runs (as the local stack runs it after each restore; hourly on AWS)
        report = made.reconciler().run("blysk")
        # Then it found and repaired the record, and the photo is listed
        assert report["findings"] == {"record_not_listed": 1} and report["repaired"] == {"record_not_listed": 1}
        assert ids(service.list_images(CALLER, "blysk", None, 10)) == [sha]
        assert made.reconciler().run("blysk")["consistent"] is True


def listed(local_stack: LocalStack, website: str) -> dict[str, dict[str, Any]]:
    """Every image of the storefront's listing through the gateway, by id."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params = {"website": website, "limit": MAX_LIMIT, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{local_stack.url}/images", params=params, timeout=30)
        assert page.status_code == 200, page.text
        found.update({image["image_id"]: image for image in page.json()["images"]})
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found
