"""Whether anything was written to the saved stores since the last snapshot, told cheaply.

A snapshot reads every item, object and document (the demo's 30,000 cached analyses and 1,588
listings among them) and writes them out: about a second and a half of CPU. Saved every 5 s while
nobody used the stack, that kept a third of a core busy doing nothing. A save is skipped instead
when this fingerprint is the one read before the last save began:

- moto: `WriteCounter` counts the requests to moto's server that may write: every one but S3's
  GET/HEAD and the JSON APIs' reads (`Get*`, `BatchGet*`, `Query`, `Scan`, `Describe*`, `List*`).
  What it cannot tell (a query-protocol form, moto's own API) counts as a write. It counts a request
  once moto has answered it, so a write under way while a save starts is counted after that start,
  and the next interval saves it.
- OpenSearch: each index's indexing counters and document count (its `_stats`, which count every
  index, update and delete), and its mapping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from opensearchpy import NotFoundError, OpenSearch

Environ = dict[str, Any]
WsgiApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]
READ_OPERATIONS = ("Get", "BatchGet", "Query", "Scan", "Describe", "List")


class SavesWhenWritten:
    """Runs a save unless the stores' write counters (`writes()`) are those read as the last save began:
    then that save holds every write acknowledged before this call, and it stands for a new one."""

    def __init__(self, writes: Callable[[], object]):
        self.writes = writes
        self._saved: object = None  # the counters read before the last save
        self._counts: dict[str, int] = {}  # what it saved

    def save(self, save_now: Callable[[], dict[str, int]]) -> tuple[dict[str, int], bool]:
        """What the snapshot holds, per store, and whether this call wrote it."""
        writes = self.writes()
        if self._saved is not None and writes == self._saved:
            return self._counts, False
        counts = save_now()
        self._saved, self._counts = writes, counts
        return counts, True


class WriteCounter:
    """A WSGI layer in front of moto's server counting the requests that may have written."""

    def __init__(self) -> None:
        self.writes = 0
        self._lock = threading.Lock()

    def counting(self, app: WsgiApp) -> WsgiApp:
        def counted(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
            try:
                return app(environ, start_response)
            finally:
                if not is_read(environ):
                    with self._lock:
                        self.writes += 1

        return counted


def is_read(environ: Environ) -> bool:
    """A request that writes nothing: S3's (and any REST API's) GET or HEAD, a JSON API's read."""
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
        return not str(environ.get("PATH_INFO", "")).startswith("/moto-api")
    operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).rpartition(".")[2]
    return bool(operation) and operation.startswith(READ_OPERATIONS)


def opensearch_writes(client: OpenSearch, indices: list[str]) -> str:
    """The indices' write counters, document counts and mappings, as one comparable text."""
    seen: dict[str, Any] = {}
    for index in indices:
        try:
            stats = client.indices.stats(index=index, metric="indexing,docs")["_all"]["primaries"]
            mapping = client.indices.get_mapping(index=index)
        except NotFoundError:  # not provisioned yet (--skip-provisioning)
            seen[index] = None
            continue
        indexing = stats["indexing"]
        seen[index] = [indexing["index_total"], indexing["delete_total"], stats["docs"]["count"], mapping]
    return json.dumps(seen, sort_keys=True)
