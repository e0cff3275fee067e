"""GET /listings/search through the local gateway, against osmem: field filters narrow the listings
as the words of each split field say, pages return every hit once and in the one big query's order
(small pages, many ties), and cursors are refused when garbled or from another query."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from opensearchpy import helpers

from listing_vision.realestate.listing_search import MAX_RESULT_WINDOW, ListingQuery, encode_cursor
from listing_vision.realestate.listings_index import ListingsIndex
from local.stack import LocalStack

EXTERIORS = ("brick exterior, front porch", "vinyl siding, white exterior", "stone accents, brick chimney")
# The split puts a look-alike ("pool table") with the interior: a pool filter must not find it there
INTERIORS = ("hardwood floors, white cabinets", "tile floors, granite countertops", "carpet, pool table")
AMENITIES = (
    "in-ground pool, attached garage",
    "swimming pool",
    "two-car garage",
    "hot tub",
    "wood deck",
    "",
)


def expected(listing: dict[str, str], **wanted: Any) -> bool:
    """Which listings a search should return, from how the test data was made."""
    amenities = listing["amenities_visual_features"]
    has = {
        "pool": "pool" in amenities,
        "garage": "garage" in amenities,
    }
    return all(has[name] for name in wanted.get("amenities", ())) and all(
        word in listing[field].replace(",", " ").split()
        for field, words in (("exterior_visual_features", wanted.get("exterior", "")),)
        for word in words.split()
    )


@pytest.fixture(scope="module")
def listings(local_stack: LocalStack) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """60 listings, each of the same few phrasings (many exact ties), marked by a word of their own so
    the searches see only them in the shared index."""
    marker = f"mark{uuid.uuid4().hex[:10]}"
    index = ListingsIndex.from_settings()
    index.ensure_split_mapping()
    docs = {}
    for i in range(60):
        zpid = f"7{uuid.uuid4().int % 10**9:09d}"
        docs[zpid] = {
            "zpid": zpid,
            "exterior_visual_features": f"{EXTERIORS[i % 3]}, {marker}",
            "interior_visual_features": INTERIORS[i % 3],
            "amenities_visual_features": AMENITIES[i % 6],
        }
    helpers.bulk(index.client, ({"_index": index.name, "_id": z, "_source": d} for z, d in docs.items()))
    index.refresh()
    yield marker, docs
    helpers.bulk(index.client, ({"_op_type": "delete", "_index": index.name, "_id": z} for z in docs))
    index.refresh()


def search(local_stack: LocalStack, **params: Any) -> requests.Response:
    return requests.get(f"{local_stack.url}/listings/search", params=params, timeout=60)


def every_page(local_stack: LocalStack, **params: Any) -> tuple[list[str], int]:
    """The zpids of every page, in order, following `next_cursor`; and how many pages there were."""
    zpids: list[str] = []
    cursor = None
    for pages in range(1, 200):
        answer = search(local_stack, **params, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        zpids += [hit["zpid"] for hit in body["listings"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return zpids, pages
    raise AssertionError("the pages never ended")


def test_field_filters_narrow_to_the_listings_whose_fields_say_so(
    local_stack: LocalStack, listings: tuple[str, dict[str, dict[str, str]]]
) -> None:
    marker, docs = listings
    # Given 60 listings in the index, When they are searched with amenity and exterior filters
    cases: list[dict[str, Any]] = [
        {"exterior": marker},
        {"exterior": f"{marker} brick"},
        {"exterior": marker, "amenities": ("pool",)},
        {"exterior": marker, "amenities": ("pool", "garage")},
        {"exterior": f"brick {marker}", "amenities": ("garage",)},
    ]
    for wanted in cases:
        params = {**wanted, "limit": 100}
        if "amenities" in wanted:
            params["amenities"] = ",".join(wanted["amenities"])
        answer = search(local_stack, **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        found = {hit["zpid"] for hit in body["listings"]}
        # Then exactly the listings whose split fields hold those words (a pool table is no pool)
        assert found == {z for z, d in docs.items() if expected(d, **wanted)}, wanted
        assert body["total"] == len(found) and body["next_cursor"] is None
    # And an interior filter matches the interior field only: "white" is also some exteriors' colour
    answer = search(local_stack, exterior=marker, interior="white", limit=100).json()
    assert {hit["zpid"] for hit in answer["listings"]} == {
        z for z, d in docs.items() if "white" in d["interior_visual_features"]
    }
    # And a query goes to the field it describes, its phrase first: "pool" is an amenity query
    answer = search(local_stack, q="pool", exterior=marker, limit=100).json()
    assert {hit["zpid"] for hit in answer["listings"]} == {
        z for z, d in docs.items() if expected(d, amenities=("pool",))
    }
    assert [hit["score"] for hit in answer["listings"]] == sorted(
        (h["score"] for h in answer["listings"]), reverse=True
    )


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1},
        {"limit": 7},
        {"q": "pool", "limit": 2},
        {"amenities": "garage", "limit": 3},
    ],
    ids=["every-listing-by-one", "by-seven", "query-with-ties-by-two", "amenity-by-three"],
)
def test_pages_return_every_hit_exactly_once_in_the_one_queries_order(
    local_stack: LocalStack, listings: tuple[str, dict[str, dict[str, str]]], params: dict[str, Any]
) -> None:
    marker, _ = listings
    # Given one search whose hits mostly tie (the same phrasings, the same score)
    one = search(local_stack, **{**params, "exterior": marker, "limit": 100}).json()
    assert one["next_cursor"] is None and one["total"] == len(one["listings"]) > 5
    # When it is read a few listings at a time, twice
    first, pages = every_page(local_stack, **params, exterior=marker)
    again, _ = every_page(local_stack, **params, exterior=marker)
    # Then the pages hold every hit exactly once, in the big query's order, every time, best first
    assert first == [hit["zpid"] for hit in one["listings"]] == again
    scores = [hit["score"] for hit in one["listings"]]
    assert scores == sorted(scores, reverse=True)
    assert len(set(first)) == len(first) == one["total"]
    assert pages == -(-one["total"] // params["limit"])  # no empty last page


def test_listings_come_in_relevance_order_the_better_match_first(local_stack: LocalStack) -> None:
    # Given listings whose interiors hold "granite countertops" among few words (the better match:
    # the same words weigh more in a short field) or among many, three of each (ties), and one without
    marker = f"mark{uuid.uuid4().hex[:10]}"
    interiors = {
        "short": "granite countertops",
        "long": "granite countertops, hardwood floors, white cabinets, stainless steel appliances, "
        "tile backsplash, recessed lighting, crown molding, walk-in closet",
        "none": "hardwood floors, white cabinets",
    }
    docs = {
        f"8{uuid.uuid4().int % 10**9:09d}": {"exterior_visual_features": f"brick exterior, {marker}", "kind": kind}
        for kind in interiors
        for _ in range(3)
    }
    index = ListingsIndex.from_settings()
    index.ensure_split_mapping()
    sources = (
        {
            "zpid": zpid,
            "exterior_visual_features": doc["exterior_visual_features"],
            "interior_visual_features": interiors[doc["kind"]],
            "amenities_visual_features": "",
        }
        for zpid, doc in docs.items()
    )
    helpers.bulk(index.client, ({"_index": index.name, "_id": d["zpid"], "_source": d} for d in sources))
    index.refresh()
    try:
        # When they are searched for those words, one at a time and all at once
        one = search(local_stack, q="granite countertops", exterior=marker, limit=100).json()
        paged, _ = every_page(local_stack, q="granite countertops", exterior=marker, limit=1)
    finally:
        helpers.bulk(index.client, ({"_op_type": "delete", "_index": index.name, "_id": z} for z in docs))
        index.refresh()
    # Then only the listings holding the words come, scores never rising, the short interiors first
    kinds = [docs[hit["zpid"]]["kind"] for hit in one["listings"]]
    assert kinds == ["short"] * 3 + ["long"] * 3, kinds
    scores = [hit["score"] for hit in one["listings"]]
    assert scores == sorted(scores, reverse=True) and scores[2] > scores[3], scores
    # And ties go by zpid, the same order page by page
    assert [hit["zpid"] for hit in one["listings"][:3]] == sorted(z for z, d in docs.items() if d["kind"] == "short")
    assert paged == [hit["zpid"] for hit in one["listings"]]


def test_a_cursor_serves_only_its_own_query_and_refuses_tampering(
    local_stack: LocalStack, listings: tuple[str, dict[str, dict[str, str]]]
) -> None:
    marker, _ = listings
    # Given the cursor of a first page
    cursor = search(local_stack, exterior=marker, amenities="garage", limit=2).json()["next_cursor"]
    assert cursor
    # When it is sent with the same query written otherwise (case, spaces, amenity order), it pages on
    same = search(local_stack, exterior=f"  {marker.upper()} ", amenities="garage", cursor=cursor, limit=2)
    assert same.status_code == 200, same.text
    # But with another query, altered, truncated or made up, it is refused with a stable code
    encoded, digest = cursor.split(".")
    for params in (
        {"exterior": marker, "amenities": "pool", "cursor": cursor},
        {"exterior": marker, "amenities": "garage", "cursor": f"{encoded[:-2]}AA.{digest}"},
        {"exterior": marker, "amenities": "garage", "cursor": cursor[:-3]},
        {"exterior": marker, "amenities": "garage", "cursor": "not-a-cursor"},
    ):
        answer = search(local_stack, **params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_cursor"


def test_paging_ends_at_the_result_window_and_refuses_cursors_past_it(local_stack: LocalStack) -> None:
    # Given more listings matching one search than OpenSearch's result window lets a search page through
    marker = f"mark{uuid.uuid4().hex[:10]}"
    zpids = [f"9{n:09d}{marker[-4:]}" for n in range(MAX_RESULT_WINDOW + 5)]
    index = ListingsIndex.from_settings()
    index.ensure_split_mapping()
    helpers.bulk(
        index.client,
        ({"_index": index.name, "_id": z, "_source": {"zpid": z, "exterior_visual_features": marker}} for z in zpids),
        chunk_size=2000,
    )
    index.refresh()
    try:
        # When the page that reaches the window is asked for (its cursor made as the search makes it)
        query = ListingQuery(exterior=marker)
        last = search(local_stack, exterior=marker, limit=5, cursor=encode_cursor(query, MAX_RESULT_WINDOW - 2))
        past = search(local_stack, exterior=marker, cursor=encode_cursor(query, MAX_RESULT_WINDOW))
    finally:
        helpers.bulk(index.client, ({"_op_type": "delete", "_index": index.name, "_id": z} for z in zpids))
        index.refresh()
    # Then it holds the window's last hits and no next cursor, though more listings match
    assert last.status_code == 200, last.text
    body = last.json()
    assert [hit["zpid"] for hit in body["listings"]] == sorted(zpids)[MAX_RESULT_WINDOW - 2 : MAX_RESULT_WINDOW]
    assert body["total"] == len(zpids) and body["next_cursor"] is None
    # And a cursor past the window is refused, saying why
    assert past.status_code == 400, past.text
    assert past.json()["error"]["code"] == "invalid_cursor"
    assert past.json()["error"]["details"]["reason"] == "past the result window"
