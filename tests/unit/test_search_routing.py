from __future__ import annotations

import pytest

from listing_vision.realestate.search import build_query, route


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("white exterior", "exterior_visual_features"),
        ("ranch style", "exterior_visual_features"),
        ("white cabinets", "interior_visual_features"),
        ("Hardwood  Floors", "interior_visual_features"),
        ("pool", "amenities_visual_features"),
        ("house with a two-car garage", "amenities_visual_features"),
        ("kitchen with a fireplace", "amenities_visual_features"),
    ],
)
def test_context_words_choose_the_field(query: str, field: str) -> None:
    assert route(query).field == field


def test_the_combined_text_is_the_baseline() -> None:
    assert build_query("white exterior", use_split_fields=False)["query"] == {
        "match": {"visual_features_text": {"query": "white exterior", "operator": "and"}}
    }
    assert build_query("White Exterior")["query"]["match"] == {
        "exterior_visual_features": {"query": "white exterior", "operator": "and"}
    }


def _phrases(body: dict) -> set[str]:  # type: ignore[type-arg]
    expanded = body["query"]["bool"]["should"][0]["bool"]["must"]
    return {
        clause["match_phrase"]["amenities_visual_features"]
        for c in expanded
        if "bool" in c
        for clause in c["bool"]["should"]
    }


def _qualifiers(body: dict) -> list[str]:  # type: ignore[type-arg]
    expanded = body["query"]["bool"]["should"][0]["bool"]["must"]
    return [c["match"]["amenities_visual_features"]["query"] for c in expanded if "match" in c]


def test_an_amenity_query_matches_the_amenity_in_any_of_its_words() -> None:
    body = build_query("Hot Tub")
    assert {"hot tub", "hot tubs", "jacuzzi", "jacuzzis", "swim spa", "spa"} <= _phrases(body)
    assert _qualifiers(body) == []
    # or all its own words, as the query builder did before
    assert body["query"]["bool"]["should"][1] == {
        "match": {"amenities_visual_features": {"query": "hot tub", "operator": "and"}}
    }
    assert "pool table" not in _phrases(build_query("pool"))


@pytest.mark.parametrize(
    ("query", "qualifiers"),
    [
        ("wood deck", ["wood"]),  # narrows the concept
        ("front porch", ["front"]),
        ("home gym", []),  # a generic word
        ("kitchen with a fireplace", []),  # names where, not what
        ("house with a two-car garage", ["two car"]),
    ],
)
def test_an_amenity_query_keeps_its_qualifiers(query: str, qualifiers: list[str]) -> None:
    assert _qualifiers(build_query(query)) == qualifiers
