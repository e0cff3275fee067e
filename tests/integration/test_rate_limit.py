"""The shared rate limit (DynamoDB): concurrent takers never exceed it, across workers, in any window."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from listing_vision import aws
from listing_vision.errors import RateLimited
from listing_vision.providers.rate_limit import TokenBucket
from local.stack import LocalStack


def run_together(worker: Callable[[], None], count: int) -> None:
    """`count` threads running `worker` at once, all joined."""
    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


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
    # Then no window of a minute holds more than the burst (a provider's sliding window of 5 a minute)
    assert max_in_any_window(taken, 60) <= 5
    # And the twelfth start came no sooner than two windows after the first (5, then 5, then 2)
    assert taken[-1] - taken[0] >= 2 * 60
    assert taken[:5] == [taken[0]] * 5  # the burst is spent at once


def max_in_any_window(starts: list[float], window_s: float) -> int:
    """The most starts in any window of `window_s` seconds (a window ends just before start + window_s)."""
    return max(sum(1 for t in starts if start <= t < start + window_s) for start in starts)


def test_starts_at_chosen_moments_never_exceed_the_burst_in_any_window(local_stack: LocalStack) -> None:
    # Given a limit of 5 a minute (burst 5: a window of 60 s), and three workers that, every 6 s for
    # four minutes, take turns starting as many edits as the limiter lets through at that moment
    clock = FakeClock()
    name = f"test-{uuid.uuid4().hex[:8]}"
    workers = [TokenBucket(name, rate_per_minute=5, burst=5, clock=clock.time, sleep=clock.sleep) for _ in range(3)]
    taken: list[float] = []
    for moment in range(40):
        clock.now = 1_000.0 + 6 * moment
        for turn in range(8):
            try:
                workers[(moment + turn) % 3].acquire(timeout_s=0)
            except RateLimited:
                break
            taken.append(clock.now)
    # Then no window of 60 s ever held more than 5 starts (a token bucket lets a burst of 5 and then
    # one more every 12 s through: 9 in the first minute, which the provider answers 429)
    assert max_in_any_window(taken, 60) <= 5, taken
    # And each window's 5 came as soon as the first of the previous ones left it (60 s and the
    # 0.1 s margin for workers' clocks later: the next moment, 66 s on)
    assert taken == [1_000.0 + 66 * n for n in range(4) for _ in range(5)], taken
    # And the log keeps only a few windows' entries: expired ones are cleared as it goes
    item = aws.client("dynamodb").get_item(TableName=workers[0].table, Key={"bucket_id": {"S": name}})["Item"]
    assert len(item["starts"]["M"]) < 2 * 5


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

    run_together(worker, 6)
    # Then exactly the burst was granted: conditional writes let no two workers take the same token
    assert len(granted) == 8 and len(refused) == 4


def test_takers_racing_when_the_window_has_moved_on_take_exactly_its_places(local_stack: LocalStack) -> None:
    # Given a burst of 6 at 1 a minute (a window of 6 minutes), spent at once, and 8 workers racing for
    # a start just after it has left the window (each worker's first view of the log holds 6 expired
    # starts, which one of them clears out, under a new generation, as it takes its place)
    name = f"test-{uuid.uuid4().hex[:8]}"
    clock = FakeClock()
    first = TokenBucket(name, rate_per_minute=1, burst=6, clock=clock.time, sleep=clock.sleep)
    for _ in range(6):
        first.acquire(timeout_s=0)
    clock.now += first.window_s + 1
    start = threading.Barrier(8)
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        bucket = TokenBucket(name, rate_per_minute=1, burst=6, clock=clock.time, sleep=clock.sleep)
        start.wait()
        try:
            bucket.acquire(timeout_s=0)
        except RateLimited:
            return
        with lock:
            granted.append(1)

    run_together(worker, 8)
    # Then exactly the window's 6 places were taken: none lost to the clean-up, none given twice
    assert len(granted) == 6


class CountedUpdates:
    """The UpdateItem requests each thread sends to one bucket, counted on the client's event hook.

    Only that bucket's key is counted: the stack's own threads (an event redelivered, a job's worker
    finishing) share the process's client and may update other items meanwhile."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.by_thread: Counter[int] = Counter()
        self.events = aws.client("dynamodb").meta.events

    def count(self, params: dict[str, Any], **_: Any) -> None:
        if self.bucket in repr(params.get("Key")):
            self.by_thread[threading.get_ident()] += 1

    def __enter__(self) -> CountedUpdates:
        self.events.register("provide-client-params.dynamodb.UpdateItem", self.count)
        return self

    def __exit__(self, *_: object) -> None:
        self.events.unregister("provide-client-params.dynamodb.UpdateItem", self.count)


def test_racing_takers_get_their_tokens_without_retrying(local_stack: LocalStack) -> None:
    # Given a full bucket of 6 and six workers asking for a token at the same moment (time held still)
    name = f"test-{uuid.uuid4().hex[:8]}"
    clock = FakeClock()
    start = threading.Barrier(6)

    def worker() -> None:
        bucket = TokenBucket(name, rate_per_minute=0.001, burst=6, clock=clock.time, sleep=clock.sleep)
        start.wait()
        bucket.acquire(timeout_s=1)

    with CountedUpdates(name) as updates:
        run_together(worker, 6)
    # Then each got its token in at most two conditional updates: no read, no lost race to retry
    requests = updates.by_thread
    assert len(requests) == 6 and max(requests.values()) <= 2 and clock.now == 1_000.0, requests


def test_a_taker_whose_clock_is_behind_still_gets_the_burst(local_stack: LocalStack) -> None:
    # Given a bucket of 5 a minute, restarted by a worker whose clock reads 50 ms later than ours
    name = f"test-{uuid.uuid4().hex[:8]}"
    ahead, behind = FakeClock(), FakeClock()
    ahead.now += 0.05
    TokenBucket(name, rate_per_minute=5, burst=5, clock=ahead.time, sleep=ahead.sleep).acquire()
    ours = TokenBucket(name, rate_per_minute=5, burst=5, clock=behind.time, sleep=behind.sleep)
    # When we take the other four tokens of the burst
    with CountedUpdates(name) as updates:
        for _ in range(4):
            ours.acquire(timeout_s=1)
    # Then each came at once, without waiting out the 50 ms: two requests for the first (it tries a
    # new log first, and the refusal shows it the one there), one for each after (its view is still good)
    assert behind.now == 1_000.0 and ours.waited_s == 0.0
    assert sum(updates.by_thread.values()) == 2 + 3
    # And the sixth start is not in the burst: it waits for the first to leave the window (60 s)
    with pytest.raises(RateLimited):
        ours.acquire(timeout_s=10)


def test_a_deadline_past_the_next_token_is_refused(local_stack: LocalStack) -> None:
    clock = FakeClock()
    bucket = TokenBucket(
        f"test-{uuid.uuid4().hex[:8]}", rate_per_minute=1, burst=1, clock=clock.time, sleep=clock.sleep
    )
    bucket.acquire()
    with pytest.raises(RateLimited):
        bucket.acquire(timeout_s=10)
