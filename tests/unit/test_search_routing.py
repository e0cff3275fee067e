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
