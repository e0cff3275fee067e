"""The feature taxonomy: its data file, and how phrases are matched against it."""

from __future__ import annotations

import pytest

from listing_vision.realestate.taxonomy import LABELS, PhraseClassifier, load_taxonomy, offline_label, parse_taxonomy

RESO_FIELDS_OF_THE_ISSUE = {
    "PoolFeatures",
    "SpaFeatures",
    "FireplaceFeatures",
    "ParkingFeatures",
    "PatioAndPorchFeatures",
    "CommunityFeatures",
    "LotFeatures",
    "InteriorFeatures",
    "ExteriorFeatures",
}


def test_the_file_is_versioned_cites_its_sources_and_documents_its_policy() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.version
    reso = next(source for source in taxonomy.sources if source["id"] == "reso")
    assert set(reso["fields"]) >= RESO_FIELDS_OF_THE_ISSUE
    assert {"zillow", "realtor", "redfin"} <= {source["id"] for source in taxonomy.sources}
    assert set(taxonomy.policy) >= {"amenity", "exterior", "interior", "offline_rule"}
    cited = {ref.split(":")[0] for concept in taxonomy.concepts for ref in concept.sources}
    assert cited <= {"reso", "zillow", "realtor", "redfin", "policy"}
    assert all(concept.sources and concept.terms for concept in taxonomy.concepts)
    assert {c.label for c in taxonomy.concepts} == set(LABELS)


@pytest.mark.parametrize(
    ("phrase", "label"),
    [
        ("In-Ground Swimming Pools", "amenity"),  # case, hyphen, plural
        ("hot tubs", "amenity"),
        ("wraparound porches", "amenity"),  # -es plural
        ("balconies", "amenity"),  # -ies plural
        ("A/C unit", "amenity"),  # replacement before the article "a" is dropped
        ("fireplace mantel", "amenity"),
        ("garage door opener", "amenity"),
        ("shed dormer over the garage", "amenity"),  # an amenity named anywhere
        ("pool table", "interior"),  # the longer term hides "pool"
        ("deck of cards", "interior"),
        ("shed roof", "exterior"),
        ("spa-blue walls", "interior"),  # a look, not a spa
        ("porch-style pendant light", "interior"),
        ("exterior sconces", "exterior"),  # context word
        ("vinyl siding with black shutters", "exterior"),  # head of the first segment
        ("stainless steel appliances", "interior"),
    ],
)
def test_phrases_are_classed(phrase: str, label: str) -> None:
    decided = load_taxonomy().classify(phrase)
    assert decided is not None and decided.label == label


@pytest.mark.parametrize("phrase", ["no garage", "house without a pool", "yard without a fence"])
def test_a_negated_amenity_is_not_counted(phrase: str) -> None:
    decided = load_taxonomy().classify(phrase)
    assert decided is None or decided.label != "amenity"


@pytest.mark.parametrize(
    "phrase", ["pool: none", "garage converted to office", "dock removed", "porch enclosed and converted to a den"]
)
def test_an_amenity_said_absent_after_it_is_not_counted(phrase: str) -> None:
    # Given an amenity followed within three words by an absence word, then it is not counted
    decided = load_taxonomy().classify(phrase)
    assert decided is None or decided.label != "amenity"


@pytest.mark.parametrize(
    "phrase", ["pool, no diving board", "pool house", "garage with an old workbench, since converted"]
)
def test_an_amenity_followed_by_other_words_still_counts(phrase: str) -> None:
    # Given "no" after the amenity (not an absence word) or an absence word more than three words on
    decided = load_taxonomy().classify(phrase)
    assert decided is not None and decided.label == "amenity"


@pytest.mark.parametrize(
    "phrase",
    [
        "w/o garage",
        "pool - n/a",
        "lacks a fireplace",
        "former boat dock",
        "converted garage",
        "hot tub not included",
        "spa does not convey",
        "no HOA pool access",
        "no access to the community pool",
        "non-functional fireplace",
        "fireplace (decommissioned)",
        "pool was filled in",
        "pool no longer in use",
    ],
)
def test_listing_shorthand_for_an_absent_amenity_is_not_counted(phrase: str) -> None:
    # Given how US listings say a feature is gone, lacking, excluded or out of use
    decided = load_taxonomy().classify(phrase)
    # Then no amenity is counted
    assert decided is None or decided.label != "amenity"


@pytest.mark.parametrize("phrase", ["pool: no", "garage: n", "garage spaces: 0", "pool y/n: n"])
def test_a_final_absence_word_ends_the_amenity(phrase: str) -> None:
    # Given a listing field whose value, the phrase's last word, says no
    decided = load_taxonomy().classify(phrase)
    # Then the amenity is absent
    assert decided is None or decided.label != "amenity"


@pytest.mark.parametrize(
    "phrase",
    [
        "pool, no slide",
        "zero-entry pool",
        "no HOA fees, community pool",
        "garage w/o opener",
        "non-heated pool",
        "pool with filled cracks",
        "hot tub conveys",
        "sauna/a-frame cabin",
    ],
)
def test_absence_rules_do_not_eat_an_amenity_that_is_there(phrase: str) -> None:
    # Given an amenity that is there, beside a word that can say absence elsewhere ("no", "zero",
    # "n/a" inside another word, a fee the negation names instead of the amenity)
    decided = load_taxonomy().classify(phrase)
    # Then it still counts
    assert decided is not None and decided.label == "amenity"


def test_replacements_rewrite_whole_words_only() -> None:
    # Given a taxonomy whose shorthand rewrites "n/a" and "access to"
    taxonomy = parse_taxonomy(
        {"version": "t", "grammar": {"replacements": {"n/a": " na ", "access to": " access ", "&": " and "}}}
    )
    # Then they rewrite the shorthand, not the same letters inside longer words
    assert taxonomy.tokens("pool - n/a") == ["pool", "na"]
    assert taxonomy.tokens("sauna/a") == ["sauna", "a"]
    assert taxonomy.tokens("access tower & access to pool") == ["access", "tower", "and", "access", "pool"]


def test_unknown_and_generic_phrases_go_to_the_cache_or_the_offline_rule() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.classify("solarium") is None
    assert taxonomy.classify("home cinema") is None  # "home" alone says only which side
    classifier = PhraseClassifier()
    assert classifier.classify("home cinema").label == "exterior"  # the generic word's side
    assert classifier.classify("solarium").label == "interior"  # never seen, no generic word
    assert classifier.classify("solarium").source == "offline_rule"
    assert offline_label("solarium", seen_exterior=3, seen_interior=1) == "exterior"
    assert classifier.unknown(["solarium", "The Solarium", "front porch", "home cinema"]) == ["solarium", "home cinema"]


def test_a_term_in_two_concepts_or_an_unknown_class_is_refused() -> None:
    base = {"version": "t", "grammar": {}}
    twice = {
        **base,
        "concept": [
            {"id": "a", "class": "amenity", "facet": "x", "terms": ["pool"], "sources": ["policy"]},
            {"id": "b", "class": "interior", "terms": ["Pools"], "sources": ["policy"]},
        ],
    }
    with pytest.raises(ValueError, match="both"):
        parse_taxonomy({**twice, "concept": [*twice["concept"][:1], {**twice["concept"][1], "terms": ["pool"]}]})
    with pytest.raises(ValueError, match="class"):
        parse_taxonomy({**base, "concept": [{"id": "a", "class": "garden", "terms": ["x"]}]})
    with pytest.raises(ValueError, match="facet"):
        parse_taxonomy({**base, "concept": [{"id": "a", "class": "amenity", "terms": ["x"]}]})


def test_a_new_version_changes_every_cache_key() -> None:
    taxonomy = load_taxonomy()
    other = parse_taxonomy({"version": "next", "grammar": {"articles": ["the"]}, "concept": []})
    assert taxonomy.key("The Solarium") == f"{taxonomy.version}#solarium"
    assert other.key("The Solarium") == "next#solarium"


def test_keys_tell_apart_phrases_in_any_script_and_long_ones() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.key("バルコニー") != taxonomy.key("プール") != taxonomy.key("")
    assert taxonomy.key("Piscina Climatizada") == f"{taxonomy.version}#piscina climatizada"
    long_a, long_b = "x " * 150 + "a", "x " * 150 + "b"
    assert taxonomy.key(long_a) != taxonomy.key(long_b)
    assert len(taxonomy.key(long_a).encode()) < 400
