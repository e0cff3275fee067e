"""The split of per-image analyses into exterior, interior and amenities text."""

from __future__ import annotations

import itertools
import random

import pytest

from evaluation.legacy_split import LegacyVocabulary
from listing_vision.realestate.features import (
    SplitFeatures,
    split_visual_features,
    visual_features_text,
)
from listing_vision.realestate.taxonomy import PhraseClassifier, load_taxonomy


def exterior(**fields: object) -> dict[str, object]:
    return {"image_type": "exterior", "confidence": "high", **fields}


def interior(**fields: object) -> dict[str, object]:
    return {"image_type": "interior", "confidence": "high", **fields}


SEED_EXAMPLE = [
    exterior(
        architecture_style="ranch",
        exterior_color="white",
        materials=["vinyl"],
        features=["vinyl siding", "front porch", "attached garage"],
    ),
    interior(features=["granite countertops", "white cabinets", "hardwood floors"]),
]


def test_the_seed_example() -> None:
    split = split_visual_features(SEED_EXAMPLE)
    assert split.exterior == "ranch style white exterior with vinyl siding; materials: vinyl"
    assert split.interior == "granite countertops, hardwood floors, white cabinets"
    assert split.amenities == "attached garage, front porch"
    assert split.as_fields() == {
        "exterior_visual_features": split.exterior,
        "interior_visual_features": split.interior,
        "amenities_visual_features": split.amenities,
    }


def test_majority_vote_for_style_and_colour() -> None:
    votes = [exterior(architecture_style="colonial", exterior_color="blue")] * 2 + [
        exterior(architecture_style="ranch", exterior_color="white")
    ]
    assert split_visual_features(votes).exterior.startswith("colonial style blue exterior")


def test_ties_go_to_the_alphabetically_first_value_whatever_the_order() -> None:
    votes = [
        exterior(architecture_style="victorian", exterior_color="red"),
        exterior(architecture_style="craftsman", exterior_color="gray"),
    ]
    results = {split_visual_features(list(order)).exterior for order in itertools.permutations(votes)}
    assert results == {"craftsman style gray exterior"}


def test_low_confidence_counts_less() -> None:
    votes = [
        exterior(architecture_style="ranch", confidence="high"),
        exterior(architecture_style="colonial", confidence="low"),
        exterior(architecture_style="colonial", confidence="low"),
    ]
    assert split_visual_features(votes).exterior.startswith("ranch style")  # 3 beats 1 + 1
    only_low = [exterior(architecture_style="tudor", confidence="low", features=["bay window"])]
    assert split_visual_features(only_low).exterior == "tudor style exterior with bay window"


def test_missing_fields_and_empty_input() -> None:
    assert split_visual_features([]) == SplitFeatures("", "", "")
    assert visual_features_text([]) == ""
    sparse = [{"image_type": "exterior"}, {"image_type": "interior", "features": None}, {}, {"features": ["pool"]}]
    assert split_visual_features(sparse) == SplitFeatures("", "", "")
    no_style = [exterior(exterior_color="beige", confidence=None)]
    assert split_visual_features(no_style).exterior == "beige exterior"


def test_odd_casing_whitespace_and_repeats() -> None:
    messy = [
        exterior(architecture_style=" Ranch ", exterior_color="WHITE", features=["Vinyl  Siding", "vinyl siding"]),
        {"image_type": "EXTERIOR ", "confidence": "HIGH", "architecture_style": "ranch", "features": ["VINYL SIDING"]},
        interior(features=["Hardwood Floors", "hardwood floors", "  "], visual_features=["Natural Light"]),
    ]
    split = split_visual_features(messy)
    assert split.exterior == "ranch style white exterior with vinyl siding"
    assert split.interior == "hardwood floors, natural light"


def test_nothing_interior_reaches_exterior_or_amenities() -> None:
    # Given interior analyses full of words that also describe exteriors
    analyses = [
        exterior(architecture_style="modern", exterior_color="gray", features=["flat roof", "pool"]),
        interior(
            features=["white cabinets", "brick accent wall", "red sofa", "fireplace"],
            exterior_color="white",
            architecture_style="victorian",
            materials=["marble"],
        ),
    ]
    split = split_visual_features(analyses)
    for word in ("white", "cabinets", "brick", "sofa", "victorian", "marble"):
        assert word not in split.exterior
        assert word not in split.amenities
    # and an amenity seen inside (a fireplace) is an amenity, not interior text
    assert split.amenities == "fireplace, pool"
    assert "fireplace" not in split.interior


def test_amenities_are_drawn_by_the_taxonomy() -> None:
    features = [
        "front porch",
        "two-car garage",
        "in-ground pool",
        "wood deck",
        "covered patio",
        "stone fireplace",
        "granite countertops",
        "large windows",
    ]
    split = split_visual_features([exterior(features=features)])
    assert split.amenities.split(", ") == sorted(features[:6])
    assert split.exterior == "exterior with granite countertops and large windows"


def test_amenities_in_the_words_a_vision_model_uses_and_look_alikes_stay_out() -> None:
    # Given features the 29-word vocabulary missed, and look-alikes it took for amenities
    found = ["jacuzzi on the deck", "cast iron wood stove", "screened lanai", "boat lift", "finished basement"]
    analyses = [
        exterior(features=[*found[:3], "shed roof"]),
        interior(features=[*found[3:], "game room with a pool table", "spa-like bathroom", "garden tub"]),
    ]
    split = split_visual_features(analyses)
    # Then every amenity is in the amenities text and no look-alike is
    assert sorted(split.amenities.split(", ")) == sorted(found)
    assert "shed roof" in split.exterior
    assert all(
        phrase in split.interior for phrase in ("game room with a pool table", "spa-like bathroom", "garden tub")
    )
    # While the split before the taxonomy filed them the other way round
    before = split_visual_features(analyses, LegacyVocabulary())
    assert "boat lift" not in before.amenities and "pool table" in before.amenities and "shed roof" in before.amenities


def test_a_cached_class_decides_a_phrase_the_taxonomy_does_not_know() -> None:
    taxonomy = load_taxonomy()
    analyses = [exterior(features=["zen koi garden bridge", "solarium", "front porch"])]
    assert taxonomy.classify("solarium") is None
    # Without a cached class the offline rule keeps it out of the amenities
    assert split_visual_features(analyses).amenities == "front porch"
    # With one (keyed by the taxonomy version and the normalised phrase) it is an amenity, in any spelling
    cached = PhraseClassifier(cached={taxonomy.key("The  SOLARIUM"): "amenity"})
    assert split_visual_features(analyses, cached).amenities == "front porch, solarium"
    assert taxonomy.key("solarium").startswith(taxonomy.version + "#")


def test_any_order_gives_the_same_text() -> None:  # with the taxonomy and a phrase cache alike
    rng = random.Random(7)
    analyses = [
        exterior(
            architecture_style=rng.choice(["ranch", "colonial", "cape cod"]),
            exterior_color=rng.choice(["white", "gray", "blue"]),
            materials=rng.sample(["brick", "vinyl", "stone", "wood"], 2),
            features=rng.sample(["porch", "shutters", "garage", "dormer windows", "pool"], 3),
            confidence=rng.choice(["high", "medium", "low"]),
        )
        for _ in range(8)
    ] + [interior(features=rng.sample(["island", "tile floors", "vaulted ceiling", "fireplace"], 2)) for _ in range(6)]
    analyses.append(interior(features=["solarium", "home cinema"]))
    classifier = PhraseClassifier(cached={load_taxonomy().key("home cinema"): "amenity"})
    expected = split_visual_features(analyses, classifier)
    assert "home cinema" in expected.amenities
    for _ in range(20):
        rng.shuffle(analyses)
        assert split_visual_features(analyses, classifier) == expected


def test_combined_text_is_made_the_same_way() -> None:
    assert visual_features_text(SEED_EXAMPLE) == (
        "Ranch style white exterior with vinyl siding; materials: vinyl. "
        "Interior: granite countertops, hardwood floors, white cabinets. "
        "Amenities: attached garage, front porch."
    )


@pytest.mark.parametrize("bad", [None, "exterior", 3, ["x"]])
def test_non_mapping_entries_are_ignored(bad: object) -> None:
    assert split_visual_features([bad, *SEED_EXAMPLE]) == split_visual_features(SEED_EXAMPLE)  # type: ignore[list-item]
