"""The servers the local stack runs beside its own threads: osmem-server (OpenSearch) as a process, and
stopping several threaded servers at once."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from socketserver import BaseServer

from osmem_server import OsmemError, OsmemServer, resolve_binary


def start_opensearch(addr: str, timeout_s: float = 30.0) -> OsmemServer:
    """osmem-server in its own session, so Ctrl-C reaches only us and we can snapshot before it
    stops; it still exits with us (it watches our pid and its stdin)."""
    args = [resolve_binary(), "--parent-pid", str(os.getpid()), "--no-ja", "--addr", addr]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        with suppress(ValueError):
            ready = json.loads(line)
            if isinstance(ready, dict) and "url" in ready:
                return OsmemServer(
                    process, ready["url"], ready.get("pid", process.pid), ready.get("version", ""), False
                )
    process.kill()
    raise OsmemError(f"osmem-server did not start on {addr}")


def stop_together(*stops: Callable[[], object]) -> None:
    """Run every stop at once and wait for all (raising the first one's error): a socketserver's shutdown()
    waits for its loop's next poll, up to half a second, so servers stopped one after another wait that
    long each."""
    if not stops:
        return
    with ThreadPoolExecutor(len(stops), thread_name_prefix="stop") as pool:
        for stopped in [pool.submit(stop) for stop in stops]:
            stopped.result()


def shut_down(server: BaseServer) -> None:
    server.shutdown()
    server.server_close()
