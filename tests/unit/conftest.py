from __future__ import annotations

from collections.abc import Iterator

import pytest

from listing_vision import aws
from listing_vision.config import get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each unit test reads settings from its own environment, and leaves none cached behind."""
    get_settings.cache_clear()
    aws.reset_clients()
    yield
    get_settings.cache_clear()
    aws.reset_clients()
