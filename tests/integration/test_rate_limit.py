"""The shared token bucket (DynamoDB): concurrent takers never exceed the rate, across workers."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

from listing_vision import aws
from listing_vision.providers.rate_limit import TokenBucket
from local.stack import LocalStack


class FakeClock:
    """Time that moves only when the limiter sleeps, so the schedule is exact."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_three_workers_share_one_rate(local_stack: LocalStack) -> None:
    # Given a bucket of 5 per minute (burst 5) and three workers (three jobs, three Lambdas) taking
    # turns at it, four tokens each
    clock = FakeClock()
    name = f"test-{uuid.uuid4().hex[:8]}"
    workers = [TokenBucket(name, rate_per_minute=5, burst=5, clock=clock.time, sleep=clock.sleep) for _ in range(3)]
    taken = []
    for _ in range(4):
        for worker in workers:
            worker.acquire(timeout_s=3600)
            taken.append(clock.time())
    # Then no window of a minute holds more than the burst plus a minute of refill
    for i, start in enumerate(taken):
        assert sum(1 for t in taken[i:] if t < start + 60) <= 5 + 5
    # And the twelfth token came no sooner than the limiter's lower bound, (12 - 5) tokens at 5 a minute
    assert taken[-1] - taken[0] >= (12 - 5) / 5 * 60 * 0.999
    assert taken[:5] == [taken[0]] * 5  # the burst is spent at once


def test_racing_workers_never_spend_one_token_twice(local_stack: LocalStack) -> None:
    # Given a burst of 8 and a refill too slow to matter, with 6 threads racing for 2 tokens each
    name = f"test-{uuid.uuid4().hex[:8]}"
    granted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        bucket = TokenBucket(name, rate_per_minute=0.001, burst=8)
        for _ in range(2):
            try:
                bucket.acquire(timeout_s=1)
                with lock:
                    granted.append(1)
            except Exception:  # noqa: BLE001 - RateLimited: the bucket was empty
                with lock:
                    refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly the burst was granted: conditional writes let no two workers take the same token
    assert len(granted) == 8 and len(refused) == 4


def test_racing_takers_get_their_tokens_without_retrying(local_stack: LocalStack) -> None:
    # Given a full bucket of 6 and six workers asking for a token at the same moment
    name = f"test-{uuid.uuid4().hex[:8]}"
    requests: Counter[int] = Counter()
    start = threading.Barrier(6)

    def count(**_: Any) -> None:
        requests[threading.get_ident()] += 1

    def worker() -> None:
        bucket = TokenBucket(name, rate_per_minute=0.001, burst=6)
        start.wait()
        bucket.acquire(timeout_s=1)

    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb.UpdateItem", count)
    try:
        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        events.unregister("before-call.dynamodb.UpdateItem", count)
    # Then each got its token in at most two conditional updates: no read, no lost race to retry
    assert len(requests) == 6 and max(requests.values()) <= 2, requests


def test_a_deadline_past_the_next_token_is_refused(local_stack: LocalStack) -> None:
    import pytest

    from listing_vision.errors import RateLimited

    clock = FakeClock()
    bucket = TokenBucket(
        f"test-{uuid.uuid4().hex[:8]}", rate_per_minute=1, burst=1, clock=clock.time, sleep=clock.sleep
    )
    bucket.acquire()
    with pytest.raises(RateLimited):
        bucket.acquire(timeout_s=10)
