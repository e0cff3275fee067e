"""Concurrent requests share one model call, and each caller gets exactly its own rows back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from listing_vision.embeddings.batching import MicroBatcher


def doubled(pixels: np.ndarray) -> np.ndarray:
    return pixels * 2


def test_a_lone_request_runs_at_once_as_it_came() -> None:
    batcher = MicroBatcher(doubled, max_batch=8)
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert np.array_equal(batcher(rows), rows * 2)
    assert batcher.calls == 1


def test_requests_waiting_while_the_model_is_busy_run_together_and_get_their_own_rows() -> None:
    # Given a model whose first call blocks until five more requests are waiting behind it
    first_call_started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def model(pixels: np.ndarray) -> np.ndarray:
        seen.append(len(pixels))
        if len(seen) == 1:
            first_call_started.set()
            release.wait(10)
        return pixels * 2

    batcher = MicroBatcher(model, max_batch=64)
    requests = [np.full((index + 1, 2), index, np.float32) for index in range(6)]
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher, requests[0])
        assert first_call_started.wait(10)
        rest = [pool.submit(batcher, r) for r in requests[1:]]
        while len(batcher._waiting) < 5:  # the five are queued behind the busy model
            threading.Event().wait(0.001)
        release.set()
        answers = [first.result(10)] + [f.result(10) for f in rest]
    # Then the five waiting requests ran as one call of 2+3+4+5+6 rows, and each got its own rows
    assert seen == [1, 20]
    for request, answer in zip(requests, answers, strict=True):
        assert np.array_equal(answer, request * 2)


def test_a_batch_never_exceeds_max_batch_images_unless_one_request_alone_does() -> None:
    gate = threading.Event()
    sizes: list[int] = []

    def model(pixels: np.ndarray) -> np.ndarray:
        sizes.append(len(pixels))
        gate.wait(10)
        return pixels

    batcher = MicroBatcher(model, max_batch=4)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(batcher, np.zeros((3, 1), np.float32))]
        while not sizes:
            threading.Event().wait(0.001)
        futures += [pool.submit(batcher, np.zeros((n, 1), np.float32)) for n in (3, 1, 9)]
        while len(batcher._waiting) < 3:
            threading.Event().wait(0.001)
        gate.set()
        for future in futures:
            future.result(10)
    assert sizes == [3, 4, 9]


def test_a_model_error_reaches_every_caller_of_that_call_and_the_batcher_goes_on() -> None:
    calls = []

    def model(pixels: np.ndarray) -> np.ndarray:
        calls.append(len(pixels))
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return pixels

    batcher = MicroBatcher(model, max_batch=8)
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher(np.zeros((1, 1), np.float32))
    assert len(batcher(np.ones((2, 1), np.float32))) == 2
