"""`migrate analyse-missing`: listings indexed before their photos were ever analysed get analyses
(through the loopback Anthropic server and the stack's embedding endpoint), resumably and within a
rate limit, and then their split; without a key, or as a dry run, it only counts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from doubles.loopback import ANTHROPIC_MESSAGES, LoopbackServer, anthropic_message
from listing_vision import aws
from listing_vision.realestate import migrate, migration_progress
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import opensearch_client
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.vision_cache import CachedImage, VisionCache
from local.stack import LocalStack
from tests.cli_output import printed_json
from tests.images import fresh_image
from tests.integration.test_ingest import KITCHEN  # the analysis the loopback model answers there too


@pytest.fixture
def claude() -> Iterator[LoopbackServer]:
    server = LoopbackServer({ANTHROPIC_MESSAGES: lambda request: anthropic_message(json.dumps(KITCHEN))}).start()
    yield server
    server.stop()


def indexed_before_analysis(photos: int, seed: int, extra_urls: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """A listing indexed the old way: its photos in the uploads bucket, nothing of it in the cache,
    no split fields."""
    zpid = str(uuid.uuid4().int % 10**8)
    urls = []
    for n in range(photos):
        key = f"photos/{zpid}/{n:02}.jpg"
        aws.client("s3").put_object(Bucket="listing-uploads", Key=key, Body=fresh_image(seed + n))
        urls.append(f"s3://listing-uploads/{key}")
    urls += extra_urls
    opensearch_client().index(
        index="listings-v2", id=zpid, body={"zpid": zpid, "image_urls": urls, "price": 300_000}, refresh=True
    )
    return zpid, urls


def run(*args: str, capsys: Any) -> tuple[int, dict[str, Any]]:
    try:
        status = migrate.main(["analyse-missing", *args])
    except SystemExit as exit_:  # a usage error
        return int(exit_.code or 0), {}
    return status, printed_json(capsys.readouterr().out)


def listing(zpid: str) -> dict[str, Any]:
    return dict(opensearch_client().get(index="listings-v2", id=zpid)["_source"])


def test_never_analysed_listings_are_counted_without_a_key_and_in_a_dry_run(
    local_stack: LocalStack, claude: LoopbackServer, provider_env: Callable[..., None], capsys: Any
) -> None:
    # Given two listings whose three photos were never analysed
    first, first_urls = indexed_before_analysis(2, 31_100)
    second, second_urls = indexed_before_analysis(1, 31_110)
    chosen = f"{first},{second}"
    # When the step runs without a provider key
    provider_env()
    status, result = run("--zpids", chosen, capsys=capsys)
    # Then it reports what it would analyse, says why it stopped, and fails: the work is not done
    assert status == 1
    assert (result["listings_missing"], result["images_missing"], result["analysed"]) == (2, 3, 0)
    assert "no vision provider key" in result["stopped"]
    # When it runs as a dry run with a key
    provider_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=claude.url)
    status, result = run("--dry-run", "--zpids", chosen, capsys=capsys)
    # Then it counts the same, succeeds, and calls no model
    assert status == 0 and result["images_missing"] == 3 and result["stopped"] == "dry run: nothing analysed"
    # And in neither run was anything written: no analysis cached, no field added
    assert claude.calls(ANTHROPIC_MESSAGES) == []
    assert VisionCache().get_many(first_urls + second_urls) == {}
    assert not any(field in listing(first) for field in SPLIT_FIELDS)


def test_missing_analyses_are_made_resumably_then_the_listings_split(
    local_stack: LocalStack, claude: LoopbackServer, provider_env: Callable[..., None], capsys: Any
) -> None:
    provider_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=claude.url, INGEST_CONCURRENCY="1")
    # Given a listing of three photos never analysed, and one with a cached photo, a missing one and
    # a file that is not an image
    first, first_urls = indexed_before_analysis(3, 31_120)
    text_key = f"photos/{uuid.uuid4().hex}/notes.jpg"
    aws.client("s3").put_object(Bucket="listing-uploads", Key=text_key, Body=b"not an image")
    second, second_urls = indexed_before_analysis(1, 31_130, extra_urls=(f"s3://listing-uploads/{text_key}",))
    cached_url = second_urls[0]
    VisionCache().put(CachedImage(cached_url, KITCHEN, image_hash="h"))
    chosen = f"{first},{second}"
    # When the step runs with a limit of two images
    status, result = run("--limit", "2", "--zpids", chosen, capsys=capsys)
    # Then it analyses two, says it stopped at the limit, and splits the listing that gained them
    assert status == 0 and result["analysed"] == 2 and "limit of 2 images reached" in result["stopped"], result
    assert result["images_missing"] == 4  # 3 + the second listing's file that is not an image
    assert result["split"]["counts"].get("updated") == 1, result
    # as a run of the migration: it held the lease (one run at a time) and is kept as the last run
    assert migration_progress.last_run()["run_id"] == result["split"]["run_id"]
    assert listing(first)["interior_visual_features"] == "granite countertops, natural light, white cabinets"
    # When it runs again, it goes on from what is still missing: no image is analysed twice
    status, result = run("--zpids", chosen, capsys=capsys)
    assert status == 0 and result["images_missing"] == 2 and result["analysed"] == 1, result
    assert result["invalid"] == [f"s3://listing-uploads/{text_key}"]  # reported, never sent to the model
    assert len(claude.calls(ANTHROPIC_MESSAGES)) == 3
    assert set(VisionCache().get_many(first_urls)) == set(first_urls)
    # And the listing that gained analyses carries the three fields, which coverage counts fresh; the
    # other gained none, so it is left to the migration's execute (the runbook's next step)
    assert all(field in listing(first) for field in SPLIT_FIELDS)
    assert not any(field in listing(second) for field in SPLIT_FIELDS)
    splits = Migration.from_settings().coverage(zpids=[first])["splits"]
    assert splits["stale"] == 0 and splits["migrated"] == 1, splits
    assert listing(first)["price"] == 300_000  # the rest of the listing untouched
    # And a third run finds only the file that is not an image, and calls no model
    status, result = run("--zpids", chosen, capsys=capsys)
    assert status == 0 and (result["images_missing"], result["analysed"]) == (1, 0)
    assert len(claude.calls(ANTHROPIC_MESSAGES)) == 3


def test_the_step_refuses_what_it_cannot_do(local_stack: LocalStack, capsys: Any) -> None:
    # Given options the step cannot honour, When it is started with each, Then it is a usage error
    for args in (("--via-stepfunctions",), ("--limit", "0"), ("--limit", "-3")):
        argv = [*args[:1], "analyse-missing"] if args[0] == "--via-stepfunctions" else ["analyse-missing", *args]
        with pytest.raises(SystemExit) as refused:
            migrate.main(argv)
        assert refused.value.code == 2
        assert "analyse-missing" in capsys.readouterr().err
