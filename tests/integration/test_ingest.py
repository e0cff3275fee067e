"""Listing ingest: documents dropped into the uploads bucket (moto S3 events, the regenerate handler),
the cache, osmem for the index, and Claude through the real Anthropic SDK against a loopback server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from doubles.loopback import ANTHROPIC_MESSAGES, LoopbackServer, Reply, anthropic_error, anthropic_message
from listing_vision import aws
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import opensearch_client
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.phrase_store import PhraseStore, StoredPhrase
from listing_vision.realestate.taxonomy import load_taxonomy
from listing_vision.realestate.vision_cache import CachedImage, VisionCache
from local.stack import LocalStack
from tests.images import fresh_image
from tests.stores import settle

MESSAGES = ANTHROPIC_MESSAGES
EXTERIOR = {
    "image_type": "exterior",
    "features": ["front porch", "vinyl siding"],
    "architecture_style": "ranch",
    "exterior_color": "white",
    "materials": ["vinyl"],
    "visual_features": ["curb appeal"],
    "confidence": "high",
}
KITCHEN = {
    "image_type": "interior",
    "features": ["granite countertops", "white cabinets"],
    "architecture_style": None,
    "exterior_color": None,
    "materials": [],
    "visual_features": ["natural light"],
    "confidence": "medium",
}


@pytest.fixture
def claude() -> Iterator[LoopbackServer]:
    server = LoopbackServer({MESSAGES: lambda request: anthropic_message(json.dumps(KITCHEN))}).start()
    yield server
    server.stop()


def put_photo(key: str, data: bytes) -> str:
    aws.client("s3").put_object(Bucket="listing-uploads", Key=key, Body=data)
    return f"s3://listing-uploads/{key}"


def drop(local_stack: LocalStack, document: dict[str, Any]) -> None:
    aws.client("s3").put_object(
        Bucket="listing-uploads", Key=f"listings/{document['zpid']}.json", Body=json.dumps(document).encode()
    )
    settle(local_stack)


def listing(zpid: str) -> dict[str, Any]:
    return opensearch_client().get(index="listings-v2", id=zpid)["_source"]


def test_a_new_listing_is_indexed_with_the_split_fields(
    local_stack: LocalStack, claude: LoopbackServer, provider_env: Callable[..., None]
) -> None:
    provider_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=claude.url, PROVIDER_MAX_RETRIES="2")
    zpid = str(uuid.uuid4().int % 10**8)
    # Given one cached exterior and two new interior photos, one answered malformed once, one after a 529
    cached_url = f"https://photos.hearth.example/{zpid}/00.jpg"
    VisionCache().put(CachedImage(cached_url, EXTERIOR, image_hash="h", embedding=[0.1] * 512))
    kitchen = put_photo(f"photos/{zpid}/01.jpg", fresh_image(30_001))
    bedroom = put_photo(f"photos/{zpid}/02.jpg", fresh_image(30_002))
    claude.script(
        MESSAGES, anthropic_message("this is not json"), anthropic_error(529, "overloaded_error", "Overloaded")
    )
    # When the listing document lands in the uploads bucket
    drop(
        local_stack,
        {"zpid": zpid, "image_urls": [cached_url, kitchen, bedroom], "price": 450_000, "address": "12 Oak St"},
    )
    # Then the listing is indexed with the split fields, vectors for every image, its own fields
    source = listing(zpid)
    assert (
        source["exterior_visual_features"] == "ranch style white exterior with curb appeal and vinyl siding; "
        "materials: vinyl"
    )
    assert source["interior_visual_features"] == "granite countertops, natural light, white cabinets"
    assert source["amenities_visual_features"] == "front porch"
    assert source["visual_features_text"].startswith("Ranch style white exterior")
    assert [v["image_url"] for v in source["image_vectors"]] == [cached_url, kitchen, bedroom]
    assert all(len(v["vector"]) == 512 for v in source["image_vectors"])
    assert source["price"] == 450_000 and source["visual_features_pending"] == [] and source["invalid_images"] == []
    # And the new analyses were cached with the raw reply, hash and model names
    fresh = VisionCache().get_many([kitchen, bedroom], with_embeddings=True)
    assert set(fresh) == {kitchen, bedroom}
    assert json.loads(fresh[kitchen].llm_response or "{}") == KITCHEN
    assert fresh[kitchen].analysis_model == "claude-sonnet-4-6" and fresh[kitchen].embedding_model
    assert fresh[kitchen].image_hash and fresh[kitchen].embedding is not None
    analysed = len(claude.calls(MESSAGES))
    assert analysed == 4  # 2 images + one repair + the 529 retried by the SDK
    # And its split is recorded as the migration records it: coverage counts it fresh, not stale
    splits = Migration.from_settings().coverage(zpids=[zpid])["splits"]
    assert (splits["migrated"], splits["fresh"], splits["stale"]) == (1, 1, 0), splits
    record_key = {"listing_key": {"S": f"listings-v2#{zpid}"}}
    aws.client("dynamodb").update_item(  # marked, to see below whether a re-delivery rewrites it
        TableName="hearth-listing-splits",
        Key=record_key,
        UpdateExpression="SET split_at = :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
    )
    # When the same event is delivered again, nothing changes and nothing is re-analysed
    version = opensearch_client().get(index="listings-v2", id=zpid)["_version"]
    handler = local_stack.router.handler_for("listing-ingest")
    from local.lambda_runtime import invoke

    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "listing-uploads"}, "object": {"key": f"listings/{zpid}.json"}},
            }
        ]
    }
    result = invoke(handler, "listing-ingest", event)
    assert result["outcomes"][0]["status"] == "unchanged"
    assert opensearch_client().get(index="listings-v2", id=zpid)["_version"] == version
    record = aws.client("dynamodb").get_item(TableName="hearth-listing-splits", Key=record_key)["Item"]
    assert record["split_at"] == {"N": "0"}  # its split record is read, found the same, not rewritten
    assert len(claude.calls(MESSAGES)) == analysed


def test_without_a_key_nothing_is_invented(local_stack: LocalStack, provider_env: Callable[..., None]) -> None:
    provider_env()
    zpid = str(uuid.uuid4().int % 10**8)
    cached_url = f"https://photos.hearth.example/{zpid}/00.jpg"
    VisionCache().put(CachedImage(cached_url, KITCHEN, image_hash="h"))
    new = put_photo(f"photos/{zpid}/01.jpg", fresh_image(30_010))
    drop(local_stack, {"zpid": zpid, "image_urls": [cached_url, new]})
    source = listing(zpid)
    assert source["visual_features_pending"] == [new]
    assert source["interior_visual_features"] == "granite countertops, natural light, white cabinets"
    assert source["exterior_visual_features"] == ""
    assert new not in VisionCache().get_many([new])
    # When the pending image is analysed later (cached), the migration's execute picks the listing up
    VisionCache().put(CachedImage(new, EXTERIOR, image_hash="h2"))
    from listing_vision.realestate.migration import Migration

    report = Migration.from_settings().execute_batch([zpid])
    assert report.counts["updated"] == 1, report
    assert listing(zpid)["exterior_visual_features"].startswith("ranch style white exterior")


def test_bad_images_are_recorded_not_retried_and_other_hosts_refused(
    local_stack: LocalStack, claude: LoopbackServer, provider_env: Callable[..., None]
) -> None:
    provider_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=claude.url)
    zpid = str(uuid.uuid4().int % 10**8)
    good = put_photo(f"photos/{zpid}/00.jpg", fresh_image(30_020))
    text = put_photo(f"photos/{zpid}/01.jpg", b"this is a text file")
    elsewhere = "http://169.254.169.254/latest/meta-data/iam"
    drop(local_stack, {"zpid": zpid, "image_urls": [good, text, elsewhere]})
    source = listing(zpid)
    assert source["invalid_images"] == [text, elsewhere]
    assert source["visual_features_pending"] == []
    assert len(claude.calls(MESSAGES)) == 1  # only the good image reached the model


def test_a_provider_outage_leaves_the_listing_indexed_and_marked_for_a_rerun(
    local_stack: LocalStack, claude: LoopbackServer, provider_env: Callable[..., None]
) -> None:
    provider_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=claude.url, PROVIDER_MAX_RETRIES="0")
    zpid = str(uuid.uuid4().int % 10**8)
    first = put_photo(f"photos/{zpid}/00.jpg", fresh_image(30_030))
    second = put_photo(f"photos/{zpid}/01.jpg", fresh_image(30_031))
    claude.script(
        MESSAGES,
        Reply(
            200,
            {
                "type": "message",
                "id": "m",
                "role": "assistant",
                "model": "x",
                "content": [{"type": "text", "text": json.dumps(EXTERIOR)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        ),
        anthropic_error(529, "overloaded_error", "Overloaded"),
    )
    document = {"zpid": zpid, "image_urls": [first, second]}
    aws.client("dynamodb")  # the cache table exists already
    from listing_vision.realestate.ingest import ListingDocument, ListingIngest

    ingest = ListingIngest.from_settings()  # the stack's stores, as the handler builds them
    ingest.concurrency = 1  # deterministic order: the first image gets the good reply
    outcome = ingest.ingest(ListingDocument.model_validate(document))
    assert outcome.analysed == 1 and outcome.pending == [second]
    assert all(f in listing(zpid) for f in SPLIT_FIELDS) and listing(zpid)["visual_features_pending"] == [second]
    # When the provider is back and the document is dropped again, the listing completes
    completed = ListingIngest.from_settings().ingest(ListingDocument.model_validate(document))
    assert completed.cached == 1 and completed.analysed == 1 and completed.pending == []
    assert listing(zpid)["visual_features_pending"] == []


HEAD = b'{"zpid": "Z", "image_urls": ["https://photos.hearth.example/1/00.jpg"], '
BROKEN_DOCUMENTS = {
    "bad-zpid": b'{"zpid": "../x"}',
    "nan": HEAD + b'"price": NaN}',
    "infinite": HEAD + b'"big": 1e400}',
    "past-64-bits": HEAD + b'"n": 123456789012345678901234567890}',
    "empty-field-name": HEAD + b'"": 1}',
    "nested-empty-field-name": HEAD + b'"a": {" ": 1}}',
    "metadata-field": HEAD + b'"_id": "x"}',
    "nested-100000-deep": HEAD + b'"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


def object_tags(key: str) -> dict[str, str]:
    tags = aws.client("s3").get_object_tagging(Bucket="listing-uploads", Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in tags}


@pytest.mark.parametrize("body", BROKEN_DOCUMENTS.values(), ids=BROKEN_DOCUMENTS.keys())
def test_a_document_that_is_not_a_listing_is_recorded(
    local_stack: LocalStack, provider_env: Callable[..., None], body: bytes
) -> None:
    provider_env()
    # Given a document the index could never hold, When it is dropped
    key = f"listings/broken-{uuid.uuid4().hex}.json"
    aws.client("s3").put_object(Bucket="listing-uploads", Key=key, Body=body)
    settle(local_stack)
    # Then it is tagged invalid with the reason, and no listing was indexed
    assert object_tags(key) == {"ingest-status": "invalid", "reason": "invalid_listing_document"}
    assert not opensearch_client().exists(index="listings-v2", id="Z")


def test_a_document_the_index_refuses_is_tagged_invalid_not_retried(
    local_stack: LocalStack, provider_env: Callable[..., None]
) -> None:
    provider_env()
    # Given listings whose price is a number (the index maps it so)
    url = "https://photos.hearth.example/10000003/00.jpg"
    good = str(uuid.uuid4().int % 10**8)
    drop(local_stack, {"zpid": good, "image_urls": [url], "price": 399000})
    assert listing(good)["price"] == 399000
    # When a listing arrives with a price in words
    bad = str(uuid.uuid4().int % 10**8)
    drop(local_stack, {"zpid": bad, "image_urls": [url], "price": "four hundred"})
    # Then the object is tagged invalid as the index refused it, and nothing was indexed
    assert object_tags(f"listings/{bad}.json") == {"ingest-status": "invalid", "reason": "listing_refused_by_index"}
    assert not opensearch_client().exists(index="listings-v2", id=bad)


def test_a_new_listing_splits_with_the_stored_phrase_classes(
    local_stack: LocalStack, provider_env: Callable[..., None]
) -> None:
    provider_env()  # no key
    zpid = str(uuid.uuid4().int % 10**8)
    # Given a cached photo naming a phrase the taxonomy does not know, whose class a model stored
    taxonomy = load_taxonomy()
    phrase = f"glass solarium {zpid}"
    PhraseStore().put_many([StoredPhrase(taxonomy.key(phrase), phrase, "amenity", "llm", "outdoor living", "m")])
    url = f"https://photos.hearth.example/{zpid}/00.jpg"
    VisionCache().put(CachedImage(url, {**EXTERIOR, "features": ["front porch", phrase]}, image_hash="h"))
    # When the listing is dropped
    drop(local_stack, {"zpid": zpid, "image_urls": [url]})
    # Then the ingest function split it with the stored class, as the migration does
    assert listing(zpid)["amenities_visual_features"] == f"front porch, {phrase}"
