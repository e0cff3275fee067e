"""Listing search (GET /listings/search): the search evaluation's field-scoped queries
(`realestate/search.py`) over the three split fields, with filters and deterministic paging.

- `q` goes to the split field that describes it (`build_query`: amenities, interior or exterior,
  amenity words expanded through the taxonomy), as the search evaluation measured.
- `amenities=pool,garage` requires each named amenity in the amenities field, in whatever words
  the vision model used (`amenity_query`); a name the taxonomy does not know is refused
  (`unknown_amenity`), since it could never match. `exterior=` and `interior=` require all their
  words in that field. The migration writes only the three text fields, so filters are matches on
  them, not boolean fields.
- Relevance: `q` is scored as OpenSearch scores it (BM25 on its routed field, the query the
  search evaluation measured), so the listing whose field says it best comes first; the filters
  only narrow (filter context, no score). Without `q` every hit scores the same.
- Pages: `from`/`size` under the sort `[_score desc, zpid asc]`, a total order (the zpid breaks
  ties), so for an unchanged index the pages together are the one big query's hits, each once and
  in its order. `search_after` on `_score` would avoid offsets, but a float score does not survive
  the trip through a cursor exactly (a stand-in rounds it) and then the hits of a tie repeat or
  vanish. The price of offsets: a listing written or deleted between two pages shifts the later
  pages by one (a hit seen twice or never), as with any offset paging; and OpenSearch answers only
  within `max_result_window` (MAX_RESULT_WINDOW, 10,000 hits), so the last page ends there, without
  a `next_cursor`, and a cursor past it is refused: narrow the search to see further.
- The cursor is opaque: the next page's offset with a digest over it and the query, so a
  garbled cursor, or one from another query, is refused (`invalid_cursor`) rather than paging
  something else. It grants nothing a caller could not ask for directly, so it is checked, not
  signed with a secret.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from listing_vision.api.cursors import CursorKind
from listing_vision.errors import InvalidRequest
from listing_vision.realestate.features import SPLIT_FIELDS, normalise
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.search import FIELD_OF, amenity_query, build_query
from listing_vision.realestate.taxonomy import Taxonomy, load_taxonomy

PARAMETERS = ("q", "amenities", "exterior", "interior", "cursor", "limit")
MAX_TEXT_CHARS = 200  # q, exterior, interior: a query, not a document
MAX_AMENITIES = 10
MAX_AMENITIES_CHARS = 400  # the comma-separated list
MAX_CURSOR_CHARS = 400
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
SORT: list[dict[str, str]] = [{"_score": "desc"}, {"zpid": "asc"}]
MAX_RESULT_WINDOW = 10_000  # OpenSearch's index.max_result_window: from + size may not pass it


@functools.cache
def _taxonomy() -> Taxonomy:
    return load_taxonomy()


@dataclass(frozen=True)
class ListingQuery:
    """What is searched, normalised (lower case, single spaces, amenities sorted): two requests that
    mean the same have the same fingerprint, so one's cursor serves the other."""

    q: str = ""
    amenities: tuple[str, ...] = ()
    exterior: str = ""
    interior: str = ""

    def fingerprint(self) -> bytes:
        return json.dumps([self.q, list(self.amenities), self.exterior, self.interior]).encode()

    def body(self, size: int, offset: int = 0) -> dict[str, Any]:
        """The OpenSearch request for the `size` hits from `offset` on, best first."""
        taxonomy = _taxonomy()
        must: list[dict[str, Any]] = []
        filters: list[dict[str, Any]] = []
        if self.q:
            must.append(build_query(self.q)["query"])  # scored: the relevance the search evaluation measured
        for amenity in self.amenities:
            expanded = amenity_query(amenity, taxonomy=taxonomy)
            if expanded is None:  # parse() refused it already; a caller building the query itself gets this
                raise _unknown_amenity(amenity)
            filters.append(expanded)
        for text, field in ((self.exterior, FIELD_OF["exterior"]), (self.interior, FIELD_OF["interior"])):
            if text:
                filters.append({"match": {field: {"query": text, "operator": "and"}}})
        return {
            "from": offset,
            "size": size,
            "query": {"bool": {"must": must or [{"match_all": {}}], "filter": filters}},
            "sort": SORT,
            "track_total_hits": True,
            "_source": ["zpid", *SPLIT_FIELDS],
        }


@dataclass(frozen=True)
class SearchRequest:
    query: ListingQuery
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _invalid(message: str, field: str) -> InvalidRequest:
    return InvalidRequest(message, details={"fields": [{"field": field, "problem": message}]})


def _unknown_amenity(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"{name[:80]!r} is not an amenity the feature taxonomy knows (pool, garage, hot tub, fire pit, …).",
        code="unknown_amenity",
        details={"amenity": name[:80]},
    )


def _text(name: str, value: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(value) > limit:
        raise _invalid(f"{name} is over {limit} characters.", name)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") for c in value):
        raise _invalid(f"{name} holds control or unassigned characters.", name)
    return normalise(value)


def parse(parameters: Mapping[str, Sequence[str]]) -> SearchRequest:
    """A search request from the query string's parameters, each with its values (API Gateway's
    `multiValueQueryStringParameters`); refuses what is not one of PARAMETERS (`unknown_parameter`),
    a parameter given twice, over-long text, an unknown amenity and a bad cursor."""
    unknown = sorted(name for name in parameters if name not in PARAMETERS)
    if unknown:
        raise InvalidRequest(
            f"Unknown query parameter {unknown[0][:40]!r}: this search takes {', '.join(PARAMETERS)}.",
            code="unknown_parameter",
            details={"parameters": [name[:40] for name in unknown[:5]], "known": list(PARAMETERS)},
        )
    single: dict[str, str] = {}
    for name, values in parameters.items():
        if len(values) != 1:
            raise _invalid(f"{name} is given {len(values)} times; give it once.", name)
        single[name] = values[0]
    amenities: list[str] = []
    listed = _text("amenities", single.get("amenities", ""), MAX_AMENITIES_CHARS)
    for name in dict.fromkeys(part.strip() for part in listed.split(",")):
        if not name:
            continue
        if amenity_query(name, taxonomy=_taxonomy()) is None:
            raise _unknown_amenity(name)
        amenities.append(name)
    if len(amenities) > MAX_AMENITIES:
        raise _invalid(f"amenities names over {MAX_AMENITIES} amenities.", "amenities")
    query = ListingQuery(
        q=_text("q", single.get("q", "")),
        amenities=tuple(sorted(amenities)),
        exterior=_text("exterior", single.get("exterior", "")),
        interior=_text("interior", single.get("interior", "")),
    )
    limit_text = single.get("limit", str(DEFAULT_LIMIT))
    if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise _invalid(f"limit is a whole number from 1 to {MAX_LIMIT}.", "limit")
    cursor = single.get("cursor")
    return SearchRequest(query, int(limit_text), decode_cursor(cursor, query) if cursor else 0)


_CURSORS = CursorKind(b"listing-search-cursor", 2, MAX_CURSOR_CHARS, "search", "query")  # 1 carried search_after


def encode_cursor(query: ListingQuery, offset: int) -> str:
    return _CURSORS.seal(query.fingerprint(), offset)


def decode_cursor(cursor: str, query: ListingQuery) -> int:
    """The offset a cursor of `encode_cursor` carries; refuses (`invalid_cursor`) one that is
    garbled, altered, made for another query, or past MAX_RESULT_WINDOW."""
    (offset,) = _CURSORS.unseal(cursor, query.fingerprint(), arity=1)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 1:
        raise _CURSORS.refuse("malformed")
    if offset >= MAX_RESULT_WINDOW:
        raise InvalidRequest(
            f"The cursor points past the first {MAX_RESULT_WINDOW:,} hits, the most a search pages through: "
            "narrow the search (q, amenities, exterior, interior) to see further.",
            code="invalid_cursor",
            details={"reason": "past the result window", "offset": offset, "max_result_window": MAX_RESULT_WINDOW},
        )
    return offset


def search(index: ListingsIndex, request: SearchRequest) -> dict[str, Any]:
    """One page: up to `limit` listings, best first, and the cursor of the next page (None after the
    last hit, or once the page reaches MAX_RESULT_WINDOW)."""
    size = min(request.limit, MAX_RESULT_WINDOW - request.offset)  # from + size within the window
    response = index.search(request.query.body(size, request.offset))
    page = response["hits"]["hits"]
    total = int(response["hits"]["total"]["value"])
    end = request.offset + len(page)
    more = len(page) == size and end < total and end < MAX_RESULT_WINDOW
    return {
        "listings": [
            {
                "zpid": str(hit["_source"].get("zpid", hit["_id"])),
                "score": hit["sort"][0],
                **{field: hit["_source"].get(field) for field in SPLIT_FIELDS},
            }
            for hit in page
        ],
        "total": total,
        "next_cursor": encode_cursor(request.query, end) if more else None,
    }
