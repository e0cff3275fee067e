"""The bad-input corpus, part four: the query string of GET /listings/search (unknown and repeated
parameters, over-long and control-character text, amenities the taxonomy does not know, limits at
their edges, cursors that no search returned), of GET /listings/migration (it takes none) and of
GET /listings/{zpid} (ids not of ingest's form, a listing the index does not hold)."""

from __future__ import annotations

import base64

from listing_vision.realestate.listing_search import MAX_RESULT_WINDOW, ListingQuery, encode_cursor
from tests.integration.bad_input.image_and_form_cases import Case

ROUTE = "/listings/search"
PROGRESS = "/listings/migration"
# A cursor in the right shape whose digest was not made by the search: made up, not altered from one
FORGED = base64.urlsafe_b64encode(b"[2,20]").decode().rstrip("=") + ".AAAAAAAAAAAAAAAAAAAAAA"
# Cursors with a right digest for q=pool (it is a check, not a secret) but an offset no search returns
PAST_WINDOW = encode_cursor(ListingQuery(q="pool"), MAX_RESULT_WINDOW)
OFFSET_ZERO = encode_cursor(ListingQuery(q="pool"), 0)


def search_cases() -> list[Case]:
    queries: list[tuple[str, str | dict[str, str], int, str]] = [
        ("unknown-parameter", {"query": "pool"}, 400, "unknown_parameter"),
        ("unknown-parameter-website", {"q": "pool", "website": "alya"}, 400, "unknown_parameter"),
        ("parameter-case", {"Q": "pool"}, 400, "unknown_parameter"),
        ("repeated-q", "q=pool&q=garage", 400, "invalid_request"),
        ("repeated-amenities", "amenities=pool&amenities=garage", 400, "invalid_request"),
        ("unknown-amenity", {"amenities": "pool,unicorn"}, 400, "unknown_amenity"),
        ("amenity-is-a-material", {"amenities": "brick"}, 400, "unknown_amenity"),
        ("amenity-look-alike", {"amenities": "pool table"}, 400, "unknown_amenity"),
        (
            "eleven-amenities",
            {
                "amenities": ",".join(
                    [
                        "pool",
                        "garage",
                        "hot tub",
                        "fire pit",
                        "dock",
                        "sunroom",
                        "basement",
                        "carport",
                        "home gym",
                        "guest house",
                        "ev charger",
                    ]
                )
            },
            400,
            "invalid_request",
        ),
        ("q-201-chars", {"q": "a" * 201}, 400, "invalid_request"),
        ("q-10k-chars", {"q": "pool " * 2000}, 400, "invalid_request"),
        ("exterior-201-chars", {"exterior": "b" * 201}, 400, "invalid_request"),
        ("interior-201-chars", {"interior": "c" * 201}, 400, "invalid_request"),
        ("amenities-401-chars", {"amenities": "," * 401}, 400, "invalid_request"),
        ("q-nul", {"q": "pool\x00"}, 400, "invalid_request"),
        ("q-line-separator", {"q": "pool\u2028garage"}, 400, "invalid_request"),
        ("exterior-bidi-override", {"exterior": "brick\u202e"}, 400, "invalid_request"),
        ("limit-zero", {"limit": "0"}, 400, "invalid_request"),
        ("limit-101", {"limit": "101"}, 400, "invalid_request"),
        ("limit-negative", {"limit": "-1"}, 400, "invalid_request"),
        ("limit-fraction", {"limit": "2.5"}, 400, "invalid_request"),
        ("limit-word", {"limit": "ten"}, 400, "invalid_request"),
        ("cursor-garbage", {"cursor": "garbage"}, 400, "invalid_cursor"),
        ("cursor-two-dots", {"cursor": "a.b.c"}, 400, "invalid_cursor"),
        ("cursor-not-base64", {"cursor": "!!!!.AAAA"}, 400, "invalid_cursor"),
        ("cursor-forged", {"cursor": FORGED}, 400, "invalid_cursor"),
        ("cursor-unicode", {"cursor": "é.é"}, 400, "invalid_cursor"),
        ("cursor-past-result-window", {"q": "pool", "cursor": PAST_WINDOW}, 400, "invalid_cursor"),
        ("cursor-offset-zero", {"q": "pool", "cursor": OFFSET_ZERO}, 400, "invalid_cursor"),
        ("cursor-401-chars", {"cursor": "A" * 401}, 400, "invalid_request"),
    ]
    progress = [  # GET /listings/migration takes no parameter: a misspelt one is refused, not ignored
        ("unknown-parameter", {"run_id": "20260101T000000Z-abcd1234"}, 400, "unknown_parameter"),
        ("unknown-parameter-website", {"website": "alya"}, 400, "unknown_parameter"),
    ]
    listing = [  # GET /listings/{zpid}: an id of ingest's form, no parameter
        ("zpid-dot-dot", "..%2Fsearch", {}, 400, "invalid_request"),
        ("zpid-41-chars", "1" * 41, {}, 400, "invalid_request"),
        ("zpid-full-width-digits", "\uff11\uff12\uff13", {}, 400, "invalid_request"),
        ("zpid-unknown", "0000000000unknown", {}, 404, "listing_not_found"),
        ("unknown-parameter", "12345", {"fields": "all"}, 400, "unknown_parameter"),
    ]
    one = [
        Case(f"listing-get:{name}", "GET", f"/listings/{zpid}", status, code, "/listings/{zpid}", {"params": params})
        for name, zpid, params, status, code in listing
    ]
    return (
        one
        + [
            Case(f"listings-search:{name}", "GET", ROUTE, status, code, ROUTE, {"params": params})
            for name, params, status, code in queries
        ]
        + [
            Case(f"listings-migration:{name}", "GET", PROGRESS, status, code, PROGRESS, {"params": params})
            for name, params, status, code in progress
        ]
    )
