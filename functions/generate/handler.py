"""Catalogue-image generation: POST /generate-images, POST /regenerate-image, GET /jobs/{id}."""

# No `from __future__ import annotations` here: Powertools reads the route annotations at run time.

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from listing_vision.api import create_resolver
from listing_vision.errors import NotImplementedYet
from listing_vision.observability import logger, metrics, tracer

app = create_resolver()


class GenerateImagesRequest(BaseModel):
    s3_urls: str = Field(description="S3 URL of the source product photo in a storefront bucket.")
    product_type: str = Field(description="Product type, e.g. `ear` for earrings.")
    image_types: list[int] | None = Field(None, description="Catalogue image types; default [1, 2, 4, 5].")


class RegenerateImageRequest(BaseModel):
    job_id: str
    image_type: int


@app.post("/generate-images")
@tracer.capture_method
def generate_images(request: GenerateImagesRequest) -> dict[str, Any]:
    raise NotImplementedYet("Image generation is not built yet (issue 6); nothing was started.")


@app.post("/regenerate-image")
@tracer.capture_method
def regenerate_image(request: RegenerateImageRequest) -> dict[str, Any]:
    raise NotImplementedYet("Image regeneration is not built yet (issue 6); nothing was started.")


@app.get("/jobs/<job_id>")
@tracer.capture_method
def get_job(job_id: str) -> dict[str, Any]:
    raise NotImplementedYet("Generation jobs are not built yet (issue 6).", details={"job_id": job_id})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
