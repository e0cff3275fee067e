"""DynamoDB's conditional writes are atomic; moto's, served from several threads, are not.

moto checks a write's condition and then applies the write with no lock, so two concurrent
conditional writes to one item can both pass (two regenerations of one job accepted, two uploads
claiming the same content). The local stack serialises moto's DynamoDB writes under one lock,
so a condition and its write happen together, as on DynamoDB. Reads are left concurrent; the
snapshots read a table in this process under the same lock (`writes_held`), so each item is whole.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")

_lock = threading.RLock()
_originals: dict[str, Callable[..., Any]] = {}


def install() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in WRITES:
        if name in _originals or not hasattr(DynamoDBBackend, name):
            continue
        original = getattr(DynamoDBBackend, name)
        _originals[name] = original

        @functools.wraps(original)
        def atomic(*args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with _lock:
                return __original(*args, **kwargs)

        setattr(DynamoDBBackend, name, atomic)


@contextmanager
def writes_held() -> Iterator[None]:
    """No DynamoDB write is applied meanwhile (once installed): a read in this process sees whole writes."""
    with _lock:
        yield


def uninstall() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name, original in _originals.items():
        setattr(DynamoDBBackend, name, original)
    _originals.clear()
