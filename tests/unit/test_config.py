from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from listing_vision.config import Settings, get_settings, settings_table
from listing_vision.jewelry.verdicts import VERDICT_PREFIX
from listing_vision.storefronts import RESERVED_NAMES, check_names

SETTINGS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_defaults_work_without_any_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an environment with none of the settings
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    # When settings are read
    settings = get_settings()
    # Then the documented defaults hold
    assert settings.milvus_collection == "image_embeddings_ip"
    assert settings.duplicate_threshold == 0.05
    assert settings.search_ef == 64 and settings.search_top_k == 20
    assert settings.retrieval_threshold == 0.5 and settings.clip_resize == "squash"
    assert settings.bucket_for("alya") == "alyaimg" and settings.bucket_for("blysk") == "blyskimg"
    assert settings.listings_index == "listings-v2"
    assert settings.vision_cache_table == "hearth-vision-cache"


def test_environment_overrides_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUPLICATE_THRESHOLD", "0.1")
    monkeypatch.setenv("STOREFRONTS", '{"blysk": "blysk-prod-images", "corvo": "corvoimg"}')
    monkeypatch.setenv("SEARCH_TOP_K", "7")
    settings = get_settings()
    assert settings.duplicate_threshold == pytest.approx(0.1)
    assert settings.bucket_for("blysk") == "blysk-prod-images"
    assert settings.storefront_names == ("blysk", "corvo") and settings.default_storefront == "blysk"
    assert settings.search_top_k == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEARCH_TOP_K", "0"),
        ("DUPLICATE_THRESHOLD", "-1"),
        ("PRESIGN_EXPIRY_S", "999999999"),
        ("SEARCH_EF", "many"),
        ("VERIFY_MIN_INLIERS", "2"),
        ("VERIFY_MAX_COLOUR_DISAGREEMENT", "1.5"),
        ("CLIP_RESIZE", "stretch"),
        ("RETRIEVAL_THRESHOLD", "0.01"),  # tighter than DUPLICATE_THRESHOLD: near matches never retrieved
        ("STOREFRONTS", '{"alya": "photos", "blysk": "photos"}'),  # one bucket, two storefronts: whose photo?
        ("STOREFRONTS", '{"alya": "alyaimg", "verdict": "verdictimg"}'),  # the prefix of verdicts' items
    ],
)
def test_out_of_range_settings_are_refused_at_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        get_settings()


def test_settings_are_read_once_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("SEARCH_EF", "128")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().search_ef == 128


def test_docs_document_every_setting() -> None:
    # Given the settings table of docs/configuration.md
    text = SETTINGS_PAGE.read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", text, flags=re.MULTILINE))
    # Then every setting, and nothing else, is listed
    assert documented >= {name.upper() for name in Settings.model_fields}
    # And the generated table is current
    start = text.index("<!-- settings:start")
    body = text[text.index("\n", start) + 1 : text.index("<!-- settings:end -->")].strip()
    assert body == settings_table()


def test_no_storefront_takes_the_prefix_of_the_catalogue_tables_other_items() -> None:
    # Given the prefix reviewers' verdicts are kept under in the catalogue table, beside `<website>#<sha256>`
    # When storefront names are checked (the settings and the stage context both check them so)
    # Then that name is reserved: a scan of its records would read every storefront's verdicts
    assert VERDICT_PREFIX.removesuffix("#") in RESERVED_NAMES
    with pytest.raises(ValueError, match="verdicts"):
        check_names(["alya", VERDICT_PREFIX.removesuffix("#")])
