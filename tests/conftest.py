"""Shared fixtures. The local stack (moto, osmem-server, Milvus Lite, the gateway) starts once per
test session, on free ports and a temporary state folder, exactly as `make run` starts it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack import LocalStack

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

PHOTOS = Path(__file__).parent / "data" / "photos"


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(state_dir=tmp_path_factory.mktemp("state"), port=0, keep_snapshot=False)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    return sorted(PHOTOS.glob("*.jpg"))
