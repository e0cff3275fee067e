"""Which embedder this process uses, from settings (one per process, built on first use)."""

from __future__ import annotations

import threading

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.base import Embedder

_lock = threading.Lock()
_embedders: dict[tuple[str, str | None, str | None, str], Embedder] = {}


def get_embedder() -> Embedder:
    """SageMaker when an endpoint is configured (EMBEDDER=auto|sagemaker); otherwise ONNX Runtime in
    process with CLIP_MODEL_PATH, or the shipped weight-free descriptor when no model is given."""
    settings = get_settings()
    mode = settings.embedder
    if mode == "auto":
        mode = "sagemaker" if settings.sagemaker_endpoint_name else "onnx"
    key = (mode, settings.sagemaker_endpoint_name, settings.clip_model_path, settings.clip_resize)
    with _lock:
        if key not in _embedders:
            _embedders[key] = _build(mode)
        return _embedders[key]


def _build(mode: str) -> Embedder:
    settings = get_settings()
    if mode == "sagemaker":
        if not settings.sagemaker_endpoint_name:
            raise ValueError("EMBEDDER=sagemaker needs SAGEMAKER_ENDPOINT_NAME")
        from listing_vision.embeddings.sagemaker import SageMakerEmbedder

        return SageMakerEmbedder(
            settings.sagemaker_endpoint_name,
            aws.client("sagemaker-runtime", read_timeout_s=settings.embedding_timeout_s),
            settings.embedding_dim,
            transport_px=settings.embedding_transport_px,
            max_pixels=settings.max_image_pixels,
            max_payload_bytes=settings.sagemaker_max_payload_bytes,
        )
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder

    embedder = OnnxEmbedder(
        settings.clip_model_path or DESCRIPTOR_MODEL, max_pixels=settings.max_image_pixels, resize=settings.clip_resize
    )
    if embedder.dim != settings.embedding_dim:
        raise ValueError(
            f"{embedder.model_path} gives {embedder.dim}-d vectors; EMBEDDING_DIM is {settings.embedding_dim}"
        )
    return embedder


def reset_embedders() -> None:
    with _lock:
        _embedders.clear()
