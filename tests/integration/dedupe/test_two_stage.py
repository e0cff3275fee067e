"""Two-stage duplicate decisions on real photos (retrieval, then geometric and colour verification):
re-exports are found, colour variants are new products, the upload trigger decides the same, and
images indexed without verification features are verified from the image itself."""

from __future__ import annotations

from pathlib import Path

from evaluation import variants
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.imaging.features import ImageFeatures
from listing_vision.jewelry import storage
from local.stack import LocalStack
from tests.integration.dedupe.conftest import Post, catalogue_record, key_of, s3_objects, tags
from tests.stores import settle

PACKAGE_PHOTOS = Path(__file__).resolve().parents[2] / "data" / "package_photos"


def labelled(name: str) -> tuple[bytes, dict[str, bytes]]:
    """A real photo and one variant of each class (fixed seed): the first, and for crops the tightest
    (far enough from the original in embedding space that only verification can match it)."""
    original = (PACKAGE_PHOTOS / f"{name}.jpg").read_bytes()
    chosen: dict[str, bytes] = {}
    tightest = 1.0
    for variant in variants.variants(name, original, seed=15):
        chosen.setdefault(variant.kind, variant.data)
        if variant.kind == "crop" and float(variant.detail.split("%")[0]) / 100 < tightest:
            tightest = float(variant.detail.split("%")[0]) / 100
            chosen["crop"] = variant.data
    return original, chosen


def test_re_exports_are_found_in_two_stages_and_colour_variants_are_new_products(post: Post) -> None:
    # Given a real photo in the catalogue
    original, by_kind = labelled("coffee")
    stored = post(original, "coffee.jpg", website="blysk").json()
    assert stored["duplicate_found"] is False
    # When each kind of re-export is uploaded (squashed, cropped, rotated, mirrored, grayscale, ...)
    for kind in variants.DUPLICATE_CLASSES:
        answer = post(by_kind[kind], f"{kind}.jpg", website="blysk").json()
        # Then it is a duplicate of that photo, saying why
        assert answer["duplicate_found"] is True, kind
        assert key_of(answer["results"][0]["path"]) == key_of(stored["s3_url"]), kind
        assert answer["results"][0]["match"] in ("near", "verified"), kind
        assert 0 <= answer["results"][0]["distance"] < get_settings().retrieval_threshold, kind
    # When colour variants of the design arrive (a hue rotation, the piece recoloured as gold or silver)
    for kind in variants.COLOUR_VARIANTS:
        answer = post(by_kind[kind], f"{kind}.jpg", website="blysk").json()
        # Then each is a new product, stored
        assert answer["duplicate_found"] is False, kind
        assert "/blyskimg/catalogue/" in answer["s3_url"]


def test_the_upload_trigger_takes_the_same_two_stage_decision(local_stack: LocalStack) -> None:
    s3 = aws.client("s3")
    original, by_kind = labelled("china")
    # Given a photo dropped into the bucket and indexed by the trigger
    s3.put_object(Bucket="alyaimg", Key="console/china.jpg", Body=original)
    settle(local_stack)
    assert tags("alyaimg", "console/china.jpg") == {"dedupe-status": "indexed"}
    # Then its verification features are kept in its catalogue record, not as objects in the bucket
    ImageFeatures.from_bytes(catalogue_record("alya", storage.sha256_hex(original))["verification_features"]["B"])
    assert [key for key in s3_objects("alyaimg") if key.startswith("verification/")] == []
    # When a crop and a recoloured copy are dropped in
    s3.put_object(Bucket="alyaimg", Key="console/china-crop.jpg", Body=by_kind["crop"])
    s3.put_object(Bucket="alyaimg", Key="console/china-gold.jpg", Body=by_kind["metal"])
    settle(local_stack)
    # Then the crop is recorded as a verified duplicate and the colour variant is indexed as new
    assert tags("alyaimg", "console/china-crop.jpg") == {
        "dedupe-status": "duplicate",
        "duplicate-of": "s3://alyaimg/console/china.jpg",
        "duplicate-match": "verified",
    }
    assert tags("alyaimg", "console/china-gold.jpg") == {"dedupe-status": "indexed"}


def test_images_indexed_without_features_are_still_verified_from_the_image(post: Post) -> None:
    dynamodb = aws.client("dynamodb")
    original, by_kind = labelled("flower")
    stored = post(original, "flower.jpg", website="alya").json()
    key = {"content_id": {"S": f"alya#{storage.sha256_hex(original)}"}}
    table = get_settings().catalogue_table
    # Given an image indexed before verification features were kept (none in its record)
    dynamodb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE verification_features")
    # When a crop of it is uploaded
    answer = post(by_kind["crop"], website="alya").json()
    # Then the image itself is read and the crop verified; its features are written back for next time
    assert answer["duplicate_found"] is True and answer["results"][0]["match"] in ("near", "verified")
    assert key_of(answer["results"][0]["path"]) == key_of(stored["s3_url"])
    rewritten = catalogue_record("alya", storage.sha256_hex(original))["verification_features"]["B"]
    assert ImageFeatures.from_bytes(rewritten).descriptors.shape[1] == 32
    # And damaged features are found again the same way
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET verification_features = :damaged",
        ExpressionAttributeValues={":damaged": {"B": b"PK\x03\x04 damaged"}},
    )
    assert post(by_kind["rotate"], website="alya").json()["duplicate_found"] is True
    assert catalogue_record("alya", storage.sha256_hex(original))["verification_features"]["B"] == rewritten
