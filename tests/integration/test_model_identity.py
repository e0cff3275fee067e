"""One model's vectors per collection: the collection records the model whose vectors it holds, a
function whose model differs is refused (503 `model_mismatch`) before it searches or writes, and an
endpoint that starts answering from another model (a deployment shifting traffic) is noticed before
a vector is stored, and healed when it answers from the collection's model again."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
import requests

from doubles.loopback import ANTHROPIC_MESSAGES, LoopbackServer, anthropic_message
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.factory import get_embedder
from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder
from listing_vision.embeddings.sagemaker import SageMakerEmbedder
from listing_vision.errors import ModelMismatch, NotProvisioned
from listing_vision.jewelry import storage
from listing_vision.jewelry.claims import ContentClaims
from listing_vision.jewelry.dedupe import DedupeService, Upload
from listing_vision.jewelry.vector_index import VectorIndex, milvus_client
from listing_vision.provisioning import provision
from listing_vision.realestate.ingest import ListingDocument, ListingIngest, default_vision
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitRecords
from listing_vision.realestate.vision_cache import VisionCache
from local.stack import LocalStack
from serving.clip.container import ContainerServer
from tests.images import fresh_image
from tests.integration.test_ingest import KITCHEN
from tests.isolated_catalogue import CALLER, isolated_catalogue

# The same model file with CLIPImageProcessor's centre crop: another preprocessing, so another model
OTHER_MODEL = OnnxEmbedder(DESCRIPTOR_MODEL, resize="clip").model_signature


def test_the_collection_records_the_model_the_endpoint_serves(local_stack: LocalStack) -> None:
    # Given the stack provisioned by its provision function, asking the endpoint for its model
    served = get_embedder().model_signature
    # Then the collection records that model: the same bytes served in process sign alike
    assert VectorIndex(get_settings().milvus_collection).model() == served
    assert served == OnnxEmbedder(DESCRIPTOR_MODEL).model_signature
    # And another preprocessing of the same file is another model
    assert served != OTHER_MODEL and OTHER_MODEL.endswith("/clip-224")


@pytest.fixture
def collection_of_another_model(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[VectorIndex]:
    """The stage pointed (MILVUS_COLLECTION) at a collection provisioned for OTHER_MODEL's vectors."""
    index = VectorIndex("other_model_vectors")
    index.ensure_collection(get_settings().embedding_dim, OTHER_MODEL)
    monkeypatch.setenv("MILVUS_COLLECTION", index.collection)
    get_settings.cache_clear()
    aws.reset_clients()
    yield index
    milvus_client().drop_collection(index.collection)
    monkeypatch.delenv("MILVUS_COLLECTION")
    get_settings.cache_clear()
    aws.reset_clients()


def test_a_collection_of_another_models_vectors_is_refused_and_nothing_is_written(
    local_stack: LocalStack, collection_of_another_model: VectorIndex
) -> None:
    data = fresh_image(72_001)
    sha = storage.sha256_hex(data)
    settings = get_settings()
    # When a photo is uploaded through the API
    answer = requests.post(
        f"{local_stack.url}/image_similarity_search",
        files={"file": ("piece.jpg", data, "image/jpeg")},
        data={"website": "blysk"},
        timeout=30,
    )
    # Then it is refused, naming both models and the way out
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "model_mismatch" and "Backfill" in error["message"]
    # And nothing was written: no vector, no object, no record
    assert collection_of_another_model.count() == 0
    assert "Contents" not in aws.client("s3").list_objects_v2(
        Bucket=settings.bucket_for("blysk"), Prefix=f"catalogue/{sha[:2]}/"
    )
    assert ContentClaims().get("blysk", sha) is None
    # And provisioning refuses to adopt it for this model too
    with pytest.raises(ModelMismatch, match="Backfill"):
        provision(settings)


def test_a_collection_made_before_models_were_recorded_is_recorded_by_provisioning(local_stack: LocalStack) -> None:
    served = get_embedder().model_signature
    index = VectorIndex("unrecorded_model_vectors")
    index.ensure_collection(get_settings().embedding_dim, served)
    try:
        # Given a collection as an earlier version made it: no model recorded
        milvus_client().drop_collection_properties(index.collection, property_keys=["embedding.model"])
        assert index.model() is None
        # Then a function refuses it until provisioning has run
        with pytest.raises(NotProvisioned, match="does not record"):
            index.require(served)
        # When provisioning runs, Then it records the stage's model, and a second run changes nothing
        assert index.ensure_collection(get_settings().embedding_dim, served) == "model recorded"
        assert index.ensure_collection(get_settings().embedding_dim, served) == "unchanged"
        index.require(served)
    finally:
        milvus_client().drop_collection(index.collection)


def container(model_dir: Path, monkeypatch: pytest.MonkeyPatch, resize: str) -> ContainerServer:
    model_dir.mkdir()
    shutil.copyfile(DESCRIPTOR_MODEL, model_dir / "model.onnx")
    monkeypatch.setenv("CLIP_ALLOW_CPU", "true")
    monkeypatch.setenv("CLIP_RESIZE", resize)
    return ContainerServer(str(model_dir), port=0).start()


def runtime(server: ContainerServer) -> object:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_an_endpoint_answering_from_another_model_stores_nothing_until_it_answers_as_before(
    local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two variants of the endpoint: the collection's model, and the same file with another preprocessing
    current = container(tmp_path / "current", monkeypatch, "squash")
    other = container(tmp_path / "other", monkeypatch, "clip")
    try:
        with isolated_catalogue() as catalogue:
            embedder = SageMakerEmbedder("clip", runtime(current), get_settings().embedding_dim)
            service = DedupeService(embedder, catalogue.stores)
            service.require_ready()  # a function's start: the endpoint's model is the collection's
            # When the endpoint's traffic moves to the other variant (a deployment shifting it)
            embedder.client = runtime(other)
            # Then an upload is refused before anything is stored, and so is the next one
            for seed in (72_101, 72_102):
                with pytest.raises(ModelMismatch):
                    service.check_and_store(Upload(fresh_image(seed), "piece.jpg", "blysk"), caller=CALLER)
            assert catalogue.stores.vectors.count() == 0
            assert "Contents" not in aws.client("s3").list_objects_v2(Bucket=catalogue.bucket)
            # When the deployment rolls back, Then uploads are stored again
            embedder.client = runtime(current)
            result = service.check_and_store(Upload(fresh_image(72_103), "piece.jpg", "blysk"), caller=CALLER)
            assert result.duplicate_found is False and catalogue.stores.vectors.count() == 1
    finally:
        current.stop()
        other.stop()


def test_listing_ingest_records_the_model_that_embedded_each_photo_whichever_it_is(
    local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider_env: Callable[..., None]
) -> None:
    """The vision cache holds no one model's vectors: an endpoint that moved to another model while a
    container runs is no error for ingest (no collection to contradict), but each vector names its model."""
    current = container(tmp_path / "current", monkeypatch, "squash")
    other = container(tmp_path / "other", monkeypatch, "clip")
    claude = LoopbackServer({ANTHROPIC_MESSAGES: lambda request: anthropic_message(json.dumps(KITCHEN))}).start()
    try:
        provider_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=claude.url)
        # Given an ingest whose endpoint was first asked for its model, then moved to the other variant
        embedder = SageMakerEmbedder("clip", runtime(current), get_settings().embedding_dim)
        stores = (VisionCache(), PhraseStore(), ListingsIndex.from_settings(), SplitRecords())
        ingest = ListingIngest(embedder, default_vision(), *stores)
        pinned = embedder.model_signature
        embedder.client = runtime(other)
        zpid = str(uuid.uuid4().int % 10**8)
        key = f"photos/{zpid}/01.jpg"
        aws.client("s3").put_object(Bucket="listing-uploads", Key=key, Body=fresh_image(72_201))
        url = f"s3://listing-uploads/{key}"
        # When a listing with a new photo is ingested
        outcome = ingest.ingest(ListingDocument(zpid=zpid, image_urls=[url]))
        # Then the photo is analysed and cached, its vector recorded as the new model's, not the pinned one's
        assert outcome.analysed == 1 and outcome.pending == []
        cached = VisionCache().get_many([url], with_embeddings=True)[url]
        assert cached.embedding_model == OTHER_MODEL != pinned
    finally:
        claude.stop()
        current.stop()
        other.stop()
