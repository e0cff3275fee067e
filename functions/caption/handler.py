"""POST /generate_caption: an LLM caption for a jewelry photo, after the duplicate check."""

# No `from __future__ import annotations` here: Powertools reads the route annotations at run time.

import hashlib
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import File, Form, Header, UploadFile
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.api import create_resolver, current_caller
from listing_vision.api.idempotency import HEADER_DESCRIPTION, HEADER_SCHEMA, PaidCalls, parse_key, replay_headers
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry.caption_service import CaptionService
from listing_vision.jewelry.captions import get_captioner
from listing_vision.jewelry.dedupe import DedupeService, Upload
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.observability import logger, metrics, tracer

app = create_resolver()


@aws.per_container
def captions() -> CaptionService:
    dedupe = DedupeService(get_embedder(), CatalogueStores.from_settings())
    dedupe.require_ready()  # 503 not_provisioned / model_mismatch until provisioning has made the collection
    return CaptionService(dedupe)


paid_calls = aws.per_container(PaidCalls)


@app.post("/generate_caption")
@tracer.capture_method
def generate_caption(
    file: Annotated[UploadFile, File(description="The jewelry photo (JPEG, PNG or WebP).")],
    type: Annotated[Literal["earring", "necklace", "bracelet", "ring"], Form()],
    check_duplicate: Annotated[Literal["yes", "no"], Form()] = "yes",
    website: Annotated[
        Literal["alya", "blysk"] | None,
        Form(description="The storefront; default: the client's own when it holds one, else alya."),
    ] = None,
    scope: Annotated[Literal["storefront", "all"], Form()] = "storefront",
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description=HEADER_DESCRIPTION, json_schema_extra=HEADER_SCHEMA)
    ] = None,
) -> Response[dict[str, Any]]:
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
    return Response(200, content_types.APPLICATION_JSON, outcome.result, replay_headers(outcome))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
