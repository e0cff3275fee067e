"""The backfill indexes a bucket's existing images in pages, resumes after a kill, and skips what
is done on a rerun."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.base import Description
from listing_vision.embeddings.factory import get_embedder
from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder
from listing_vision.jewelry import backfill, storage, uploads, vector_index
from local.stack import LocalStack
from tests.images import fresh_image, resized_copy


@pytest.fixture(params=["alya", "blysk"])
def legacy_objects(local_stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[tuple[str, list[bytes]]]:
    """Seven images already in a storefront's bucket before indexing existed: six distinct, one resized copy."""
    website = request.param
    yield website, put_without_events(local_stack, website, "legacy/", 9000 if website == "blysk" else 9100)


def put_without_events(local_stack: LocalStack, website: str, prefix: str, seed: int) -> list[bytes]:
    """Six distinct images and a resized copy of the first, put with the bucket's notifications off."""
    bucket = local_stack.settings.bucket_for(website)
    s3 = aws.client("s3")
    saved = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    images = [fresh_image(seed + i) for i in range(6)]
    for index, image in enumerate(images):
        s3.put_object(Bucket=bucket, Key=f"{prefix}{index:03d}.jpg", Body=image)
    s3.put_object(Bucket=bucket, Key=f"{prefix}099-small-copy-of-000.jpg", Body=resized_copy(images[0]))
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)
    return images


def rows_for(website: str, images: list[bytes]) -> int:
    index = vector_index.VectorIndex("image_embeddings_ip")
    return sum(len(index.find_exact(storage.sha256_hex(i), website)) for i in images)


def test_backfill_resumes_after_a_kill_and_reruns_change_nothing(legacy_objects: tuple[str, list[bytes]]) -> None:
    website, images = legacy_objects
    assert backfill.count_objects(website, prefix="legacy/") == 7
    assert rows_for(website, images) == 0
    # Given a run through the backfill function that is killed after its first page of 3
    first = next(backfill.pages(website, "", 3, "legacy/", via_lambda="dedupe-backfill"))
    assert first["processed"] == 3 and first["counts"] == {"indexed": 3}
    assert rows_for(website, images) == 3
    # When it resumes from the key it printed
    resumed = list(backfill.pages(website, first["next_start_after"], 3, "legacy/", via_lambda="dedupe-backfill"))
    # Then the rest is indexed, and the copy is recorded as a duplicate, not indexed
    totals: dict[str, int] = {}
    for page in resumed:
        for status, count in page["counts"].items():
            totals[status] = totals.get(status, 0) + count
    assert totals == {"indexed": 3, "duplicate": 1}
    assert rows_for(website, images) == 6
    # And a full rerun (the CLI, in process this time) changes nothing
    assert backfill.main(["--website", website, "--prefix", "legacy/", "--page-size", "4"]) == 0
    assert rows_for(website, images) == 6
    rerun = list(backfill.pages(website, "", 4, "legacy/", via_lambda=None))
    assert sum(page["counts"].get("indexed", 0) for page in rerun) == 0


@pytest.mark.parametrize("website", ["alya", "blysk"])
def test_a_page_holds_the_leases_of_one_batch_at_a_time(
    local_stack: LocalStack, website: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page may hold 1,000 keys; its content claims must not be held across all of it, or a slow page
    outlasts `claim_lease_s` and another run takes its claims over while it is still storing."""
    # Given seven unindexed objects and an indexer that holds at most three keys' leases at once
    images = put_without_events(local_stack, website, "batched/", 9200 if website == "blysk" else 9300)
    monkeypatch.setattr(uploads, "HOLD_BATCH", 3)
    indexer = backfill.in_process_indexer()
    table = indexer.claims.table
    dynamodb = aws.client("dynamodb")
    pending_at_each_embedding: list[int] = []
    describe = indexer.embedder.describe

    def describe_and_count_held_claims(data: list[bytes]) -> list[Description]:
        items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
        held = [i for i in items if i["content_id"]["S"].startswith(f"{website}#") and i["status"]["S"] == "pending"]
        pending_at_each_embedding.append(len(held))
        return describe(data)

    monkeypatch.setattr(indexer.embedder, "describe", describe_and_count_held_claims)
    # When one page of all seven objects is indexed
    page = backfill.backfill_page(indexer, website, "", 10, "batched/")
    # Then it is embedded in batches of three, each holding only its own claims
    assert page["processed"] == 7 and page["counts"] == {"indexed": 6, "duplicate": 1}
    assert len(pending_at_each_embedding) == 3
    assert max(pending_at_each_embedding) <= 3
    # And no claim is left held after the page
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    assert not [i for i in items if i["content_id"]["S"].startswith(f"{website}#") and i["status"]["S"] == "pending"]
    assert rows_for(website, images) == 6


def test_a_model_change_fills_a_new_collection_while_the_stage_serves_from_its_own(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    website, prefix, target = "blysk", "model-change/", "model_change_vectors"
    # The same model file with another preprocessing: another model, whose vectors the stage cannot search
    new_model = OnnxEmbedder(DESCRIPTOR_MODEL, resize="clip")
    live = vector_index.VectorIndex(get_settings().milvus_collection)
    images = put_without_events(local_stack, website, prefix, 9400)
    shas = [storage.sha256_hex(image) for image in images]
    # Given a catalogue indexed in the stage's collection, with the stage's model
    assert backfill.main(["--website", website, "--prefix", prefix]) == 0
    assert rows_for(website, images) == 6
    capsys.readouterr()
    try:
        # When the backfill fills a new collection with the new model, in this process
        args = ["--website", website, "--prefix", prefix, "--collection", target]
        assert backfill.main([*args, "--model", str(DESCRIPTOR_MODEL), "--resize", "clip"]) == 0
        # Then every catalogued photo has the new model's vector there (the copy stays a duplicate)
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary == {"website": website, "objects": 7, "collection": target, "indexed": 6, "duplicate": 1}
        fresh = vector_index.VectorIndex(target)
        assert fresh.model() == new_model.model_signature != live.model()
        assert sum(len(fresh.find_exact(sha, website)) for sha in shas) == 6
        # And a resized copy embedded by the new model finds its photo in it
        [hit] = fresh.search(new_model.embed([resized_copy(images[1])])[0], website=website, limit=1, ef=64)
        assert hit.sha256 == shas[1] and hit.score > 0.9
        # And the stage's collection and answers are as before: its model, its rows, a copy found as a duplicate
        assert live.model() == get_embedder().model_signature and rows_for(website, images) == 6
        answer = requests.post(
            f"{local_stack.url}/image_similarity_search",
            files={"file": ("copy.jpg", resized_copy(images[2]), "image/jpeg")},
            data={"website": website, "check_duplicate": "yes"},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["duplicate_found"] is True, answer.text
        # And a rerun (after the stage switches, it catches photos uploaded meanwhile) writes nothing new
        assert backfill.main([*args, "--model", str(DESCRIPTOR_MODEL), "--resize", "clip"]) == 0
        rerun = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert rerun["already_indexed"] == 6 and "indexed" not in rerun
        assert fresh.count() == 6
    finally:
        vector_index.milvus_client().drop_collection(target)


def test_a_model_change_never_writes_the_new_models_vectors_into_a_collection_of_another(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    live = vector_index.VectorIndex(get_settings().milvus_collection)
    before = live.count()
    # When the new model is pointed at the stage's own collection, Then it is refused with the way out
    args = ["--website", "alya", "--collection", live.collection, "--model", str(DESCRIPTOR_MODEL)]
    assert backfill.main([*args, "--resize", "clip"]) == 2
    assert "model_mismatch" in capsys.readouterr().err
    assert live.count() == before
    # And the in-process options cannot be sent to a function, which embeds with the stage's endpoint
    with pytest.raises(SystemExit):
        backfill.main(["--website", "alya", "--collection", "x", "--via-lambda", "dedupe-backfill"])
    with pytest.raises(SystemExit):
        backfill.main(["--website", "alya", "--model", str(DESCRIPTOR_MODEL)])


@pytest.mark.parametrize("model", ["missing.onnx", "not-a-model.onnx"])
def test_a_model_change_with_a_model_file_it_cannot_load_is_refused_before_anything_is_written(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path, model: str
) -> None:
    # Given a --model that does not exist, or a file that is no ONNX model
    path = tmp_path / model
    if model == "not-a-model.onnx":
        path.write_text("not a model\n")
    target = "backfill_unloadable_model"
    # When the backfill is run with it into a new collection
    answer = backfill.main(["--website", "alya", "--collection", target, "--model", str(path)])
    # Then it is refused with the file named (an error line, not onnxruntime's traceback), and no collection is made
    assert answer == 2
    assert f"invalid_request: --model {path}: not an ONNX model" in capsys.readouterr().err
    assert not vector_index.milvus_client().has_collection(target)
