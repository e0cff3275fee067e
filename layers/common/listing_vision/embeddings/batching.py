"""Concurrent requests share one model call: a micro-batching queue in front of the encoder.

A GPU runs a batch of 64 images about 17 times faster per image than a batch of 1 (5,195 against
312 images/s for ViT-B/32 on an H200), so requests that arrive while the model is busy wait for it
and then run together, up to `max_batch` images. There is no timer: an idle model starts on a
request at once, so a lone caller pays no extra latency, and batches grow only under load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class _Request:
    pixels: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    result: np.ndarray | None = None
    error: BaseException | None = None


class MicroBatcher:
    """`batcher(pixels)` returns what `run(pixels)` would, running waiting callers' arrays together.

    One worker thread calls `run`; callers block until their rows come back. An error in a shared
    call is every caller's error in that call."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch: int):
        self._run = run
        self.max_batch = max_batch
        self._waiting: list[_Request] = []
        self._ready = threading.Condition()
        self._worker: threading.Thread | None = None
        self.calls = 0  # model calls made: fewer than requests once batches are shared

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        request = _Request(pixels)
        with self._ready:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="micro-batcher", daemon=True)
                self._worker.start()
            self._waiting.append(request)
            self._ready.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._waiting:
                    self._ready.wait()
                batch = self._take()
            self._answer(batch)

    def _take(self) -> list[_Request]:
        """The oldest waiting requests, as many as fit `max_batch` images (always at least one)."""
        batch: list[_Request] = []
        images = 0
        while self._waiting and (not batch or images + len(self._waiting[0].pixels) <= self.max_batch):
            request = self._waiting.pop(0)
            batch.append(request)
            images += len(request.pixels)
        return batch

    def _answer(self, batch: list[_Request]) -> None:
        try:
            self.calls += 1
            pixels = batch[0].pixels if len(batch) == 1 else np.concatenate([r.pixels for r in batch])
            out = self._run(pixels)
            start = 0
            for request in batch:
                request.result = out[start : start + len(request.pixels)]
                start += len(request.pixels)
        except BaseException as error:  # noqa: BLE001 - handed to each caller, who raises it
            for request in batch:
                request.error = error
        finally:
            for request in batch:
                request.done.set()
