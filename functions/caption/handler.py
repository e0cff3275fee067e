"""POST /generate_caption: an LLM caption for a jewelry photo, after the duplicate check; the captions
of stored photos by id: GET /images/{image_id}/caption (the latest), GET /images/{image_id}/captions
(all kept, newest first), POST /images/{image_id}/caption (caption it again)."""

# No `from __future__ import annotations` here: Powertools reads the route annotations at run time.

import hashlib
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import File, Form, Header, Path, Query, UploadFile
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from listing_vision import aws
from listing_vision.api import create_resolver, current_caller
from listing_vision.api.idempotency import HEADER_DESCRIPTION, HEADER_SCHEMA, PaidCalls, parse_key, replay_headers
from listing_vision.config import Storefront
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry.caption_records import CaptionRecords
from listing_vision.jewelry.caption_service import CaptionService, StoredCaptions
from listing_vision.jewelry.captions import get_captioner
from listing_vision.jewelry.dedupe import DedupeService, Upload
from listing_vision.jewelry.image_ids import IMAGE_ID_PATTERN
from listing_vision.jewelry.storage import ImageStore
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.observability import logger, metrics, tracer

app = create_resolver()
JewelryType = Literal["earring", "necklace", "bracelet", "ring"]
Website = Storefront
WEBSITE = "The storefront; default: the client's own when it holds one, else the first configured."
IMAGE_ID = "The photo's id: the SHA-256 of its bytes, in hex (any photo stored, however it arrived)."
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description=HEADER_DESCRIPTION, json_schema_extra=HEADER_SCHEMA)
]
ImageId = Annotated[str, Path(pattern=IMAGE_ID_PATTERN, description=IMAGE_ID)]


@aws.per_container
def captions() -> CaptionService:
    dedupe = DedupeService(get_embedder(), CatalogueStores.from_settings())
    dedupe.require_ready()  # 503 not_provisioned / model_mismatch until provisioning has made the collection
    return CaptionService(dedupe)


@aws.per_container
def stored_captions() -> StoredCaptions:
    """Reading and re-captioning by id need the buckets and the catalogue table only (no Milvus)."""
    return StoredCaptions(ImageStore.from_settings(), CaptionRecords())


paid_calls = aws.per_container(PaidCalls)


@app.post("/generate_caption")
@tracer.capture_method
def generate_caption(
    file: Annotated[UploadFile, File(description="The jewelry photo (JPEG, PNG or WebP).")],
    type: Annotated[JewelryType, Form()],
    check_duplicate: Annotated[Literal["yes", "no"], Form()] = "yes",
    website: Annotated[Website | None, Form(description=WEBSITE)] = None,
    scope: Annotated[Literal["storefront", "all"], Form()] = "storefront",
    idempotency_key: IdempotencyKey = None,
) -> Response[dict[str, Any]]:
    """A new photo: its caption (stored with it, `image_id` naming it). A duplicate: `duplicate_found`,
    the `results` (each with its `image_id`) and `caption`, the nearest one's latest stored caption
    (null when it has none); no caption is paid for."""
    key, caller = parse_key(idempotency_key), current_caller(app)
    upload = Upload(file.content, file.filename, caller.storefront(website))
    # The request as it means it: the photo's bytes by their hash (a retry's multipart boundary differs)
    request = {
        "file_sha256": hashlib.sha256(file.content).hexdigest(),
        "filename": file.filename,
        "type": type,
        "check_duplicate": check_duplicate,
        "website": upload.website,
        "scope": scope,
    }
    once = paid_calls().bind("generate-caption", key, caller, request, app.lambda_context)
    outcome = once(
        lambda: captions().caption_upload(
            upload, type, get_captioner(), caller=caller, check_duplicate=check_duplicate == "yes", scope=scope
        )
    )
    # The record holds stored locations; each answer, a replay too, gets URLs made now
    return Response(
        200, content_types.APPLICATION_JSON, stored_captions().render(outcome.result), replay_headers(outcome)
    )


class RecaptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: JewelryType


@app.get("/images/<image_id>/caption")
@tracer.capture_method
def get_caption(
    image_id: ImageId, website: Annotated[Website | None, Query(description=WEBSITE)] = None
) -> dict[str, Any]:
    """The photo's latest caption, with its provider, model and time."""
    caller = current_caller(app)
    captions = stored_captions()
    return captions.render(captions.latest(caller, caller.storefront(website), image_id))


@app.get("/images/<image_id>/captions")
@tracer.capture_method
def list_captions(
    image_id: ImageId, website: Annotated[Website | None, Query(description=WEBSITE)] = None
) -> dict[str, Any]:
    """Every caption the photo keeps (the newest 20), newest first; `caption_count` counts all ever written."""
    caller = current_caller(app)
    captions = stored_captions()
    return captions.render(captions.history(caller, caller.storefront(website), image_id))


@app.post("/images/<image_id>/caption")
@tracer.capture_method
def recaption(
    image_id: ImageId,
    request: RecaptionRequest,
    website: Annotated[Website | None, Query(description=WEBSITE)] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response[dict[str, Any]]:
    """Caption the stored photo again (a paid call: the configured provider); earlier captions are kept."""
    key, caller = parse_key(idempotency_key), current_caller(app)
    storefront = caller.storefront(website)
    caller.require(storefront)  # before a key is recorded: another storefront's photo is a 403
    captions = stored_captions()
    asked = {"image_id": image_id, "website": storefront, "type": request.type}
    once = paid_calls().bind("recaption", key, caller, asked, app.lambda_context)
    outcome = once(lambda: captions.recaption(caller, storefront, image_id, request.type, get_captioner()))
    return Response(200, content_types.APPLICATION_JSON, captions.render(outcome.result), replay_headers(outcome))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
