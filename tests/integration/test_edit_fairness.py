"""A fair share of image edits: each client key's daily edit quota (a run over it ends
`quota_exceeded`, paying for nothing), and turns at the shared rate limit round-robin across
clients, measured by the order in which the edits reach the loopback image server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from doubles.loopback import OPENAI_IMAGE_EDITS, LoopbackServer
from listing_vision.api.clients import ApiClients
from listing_vision.config import get_settings
from listing_vision.errors import RateLimited
from listing_vision.jewelry.edit_quota import EditQuota
from listing_vision.jewelry.image_types import TYPE_SETS
from listing_vision.providers.fair_turns import STALE_S, FairTurns
from listing_vision.providers.rate_limit import TokenBucket
from local.stack import LocalStack
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo
from tests.integration.test_rate_limit import FakeClock
from tests.stores import settle


@dataclass
class Keys:
    url: str
    first: str
    second: str
    ids: tuple[str, str]
    settle: Callable[[], None]


@pytest.fixture
def two_keys(local_stack: LocalStack) -> Iterator[Keys]:
    """A gateway running the authorizer as deployed, and two new clients' keys, both holding alya."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_AUTH", "api_keys")
        get_settings.cache_clear()
        ids = (f"fair-a-{uuid.uuid4().hex[:8]}", f"fair-b-{uuid.uuid4().hex[:8]}")
        keys = [ApiClients().create(client_id, ("alya",))[0] for client_id in ids]
        server = local_stack.api_gateway(auth=True).serve("127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield Keys(f"http://127.0.0.1:{server.server_address[1]}", keys[0], keys[1], ids, lambda: settle(local_stack))
        server.shutdown()
        server.server_close()
    get_settings.cache_clear()


def stored(keys: Keys, api_key: str, seed: int) -> str:
    answer = requests.post(
        f"{keys.url}/image_similarity_search",
        headers={"x-api-key": api_key},
        files={"file": ("earring.jpg", earring_photo(seed), "image/jpeg")},
        data={"check_duplicate": "no", "website": "alya"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["s3_url"])


def generate(
    keys: Keys, api_key: str, sources: str | list[str], types: list[int], product: str = "ear"
) -> dict[str, Any]:
    answer = requests.post(
        f"{keys.url}/generate-images",
        headers={**RESPOND_ASYNC, "x-api-key": api_key},
        json={"s3_urls": sources, "product_type": product, "image_types": types},
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def wait(keys: Keys, api_key: str, job_id: str) -> dict[str, Any]:
    """The job once it has ended (its worker runs in the background; the drain waits for it)."""
    view: dict[str, Any] = {}
    for _ in range(30):
        view = requests.get(f"{keys.url}/jobs/{job_id}", headers={"x-api-key": api_key}, timeout=10).json()
        if view["status"] not in ("queued", "running"):
            return view
        keys.settle()
    pytest.fail(f"job {job_id} did not end: {view}")


PROMPTS = {(product, n): t.prompt.encode() for product in ("earring", "ring") for n, t in TYPE_SETS[product].items()}


def edited(body: bytes) -> str:
    """Which client an edit at the image server was for, by its prompt: earrings are the first's, rings the other's."""
    (product,) = [product for (product, _), prompt in PROMPTS.items() if prompt and prompt in body]
    return "first" if product == "earring" else "other"


def test_a_client_over_its_daily_edit_quota_pays_for_nothing(
    local_stack: LocalStack,
    two_keys: Keys,
    edit_provider: Callable[..., None],
    image_server: LoopbackServer,
) -> None:
    # Given a quota of two edits a day per client key, and a client that has started none today
    edit_provider(image_server, IMAGE_EDITS_PER_CLIENT_PER_DAY="2")
    source = stored(two_keys, two_keys.first, 401)
    # When it asks for three edits of a photo
    over = generate(two_keys, two_keys.first, source, [2, 4, 5])
    view = wait(two_keys, two_keys.first, over["job_id"])
    # Then the job ends failed with `quota_exceeded`, and no edit reached the provider
    assert view["status"] == "failed" and view["reason"] == "quota_exceeded"
    assert {f["image_type"]: f["reason"] for f in view["failed"]} == {t: "quota_exceeded" for t in (2, 4, 5)}
    assert image_server.calls(OPENAI_IMAGE_EDITS) == []
    # And two edits fit, and are made
    within = wait(two_keys, two_keys.first, generate(two_keys, two_keys.first, source, [2, 4])["job_id"])
    assert within["status"] == "done" and len(image_server.calls(OPENAI_IMAGE_EDITS)) == 2
    # And then its next edit, even alone, is refused too, while another client's is made
    spent = wait(two_keys, two_keys.first, generate(two_keys, two_keys.first, source, [5])["job_id"])
    assert spent["status"] == "failed" and spent["reason"] == "quota_exceeded"
    other = wait(two_keys, two_keys.second, generate(two_keys, two_keys.second, source, [5])["job_id"])
    assert other["status"] == "done" and len(image_server.calls(OPENAI_IMAGE_EDITS)) == 3
    # As the quota's counts say
    assert [EditQuota().used(client) for client in two_keys.ids] == [2, 1]


def test_a_client_with_one_edit_is_not_queued_behind_all_of_another_clients_edits(
    local_stack: LocalStack,
    two_keys: Keys,
    edit_provider: Callable[..., None],
    image_server: LoopbackServer,
) -> None:
    # Given a provider that takes one edit at a time, every 3 s, and a quota that does not bind
    edit_provider(
        image_server,
        IMAGE_EDIT_RATE_PER_MINUTE="20",
        IMAGE_EDIT_BURST="1",
        IMAGE_EDITS_PER_CLIENT_PER_DAY="1000",
    )
    many = [stored(two_keys, two_keys.first, 410 + n) for n in range(2)]
    one = stored(two_keys, two_keys.second, 420)
    # When the first client asks for six edits (two earring photos, types 2, 4 and 5), and then the
    # other client for one (a ring photo, type 2)
    batch = generate(two_keys, two_keys.first, many, [2, 4, 5])
    single = generate(two_keys, two_keys.second, one, [2], product="ring")
    jobs = [(two_keys.first, p["job_id"]) for p in batch["photos"]] + [(two_keys.second, single["job_id"])]
    for api_key, job_id in jobs:
        assert wait(two_keys, api_key, job_id)["status"] == "done"
    # Then the other client's edit reached the provider after at most two of the first's, not after all six
    # (its turn comes after each client's edit under way when it queued: one, or two if one was just served)
    order = [edited(call.body) for call in image_server.calls(OPENAI_IMAGE_EDITS)]
    assert order.count("first") == 6 and order.count("other") == 1
    assert order.index("other") <= 2, order


def test_a_newcomers_ticket_goes_ahead_of_a_busy_clients_backlog_and_dead_tickets_are_skipped(
    local_stack: LocalStack,
) -> None:
    # Given a queue where one client waits with three edits
    turns = FairTurns(TokenBucket(f"test-turns-{uuid.uuid4().hex[:8]}", rate_per_minute=5, burst=1))
    busy = [turns._register(f"busy{n}", "busy", 1_000.0 + n) for n in range(3)]
    # When another client queues one edit after them
    assert turns._register("newcomer", "newcomer", 1_010.0) == busy[0]
    # Then only the busy client's first edit is ahead of it (same tag, earlier), not all three
    assert [turns._look(t, 1_011.0) for t in ("busy0", "newcomer", "busy1", "busy2")] == [0, 1, 2, 3]
    # And once that edit is served, the newcomer is next
    turns._leave("busy0", busy[0])
    assert turns._look("newcomer", 1_012.0) == 0
    # And tickets whose waiters stopped looking (their workers died) are skipped after STALE_S, and removed
    assert turns._look("busy2", 1_012.0 + STALE_S + 1) == 0
    assert turns._look("busy1", 1_013.0 + STALE_S) is None  # had it only stalled, it queues again


def waiters(bucket: str, clock: FakeClock, burst: int, count: int) -> list[FairTurns]:
    """`count` workers' views of one queue and bucket of `burst` at 1 a minute, on one clock that
    moves only when a waiter sleeps (each worker's limiter counts its own waits)."""
    return [
        FairTurns(TokenBucket(bucket, rate_per_minute=1, burst=burst, clock=clock.time, sleep=clock.sleep))
        for _ in range(count)
    ]


def test_a_clients_edits_queued_at_once_take_a_full_buckets_tokens_without_waiting(local_stack: LocalStack) -> None:
    # Given a full bucket of 3, and one client's three edits queued at once (one job's edits in parallel:
    # each holds its ticket before any is served, so two of them are behind the first)
    clock = FakeClock()
    workers = waiters(f"test-turns-{uuid.uuid4().hex[:8]}", clock, burst=3, count=3)
    for n, worker in enumerate(workers):
        worker._register(f"edit{n}", "solo", clock.time())
    # When each takes its turn, the last queued first
    for n, worker in reversed(list(enumerate(workers))):
        worker.acquire("solo", f"edit{n}", timeout_s=5)
    # Then each took a token at once: no sleep was asked for, and no limiter recorded a wait
    assert clock.now == 1_000.0 and [w.bucket.waited_s for w in workers] == [0.0, 0.0, 0.0]
    # And the burst is spent: a fourth edit waits for the next token
    with pytest.raises(RateLimited):
        workers[0].acquire("solo", "edit3", timeout_s=5)


def test_a_later_ticket_takes_a_free_token_but_never_one_owed_to_a_ticket_ahead(local_stack: LocalStack) -> None:
    # Given a full bucket of 2 (1 a minute), and the queue a0, b0, a1, a2: client a queued three
    # edits, then client b one (its turn comes right after a's first)
    clock = FakeClock()
    a0, b0, a1, a2 = waiters(f"test-turns-{uuid.uuid4().hex[:8]}", clock, burst=2, count=4)
    for worker, (client, ticket) in zip(
        (a0, b0, a1, a2), (("a", "a0"), ("b", "b0"), ("a", "a1"), ("a", "a2")), strict=True
    ):
        worker._register(ticket, client, clock.time())
    # When a2, three tickets ahead of it, asks first: the bucket never holds a token for each
    with pytest.raises(RateLimited):
        a2.acquire("a", "a2", timeout_s=10)
    moved = clock.now
    # Then b0, one ticket ahead, finds a token for itself and one for a0 still there: it takes its own at once
    b0.acquire("b", "b0", timeout_s=10)
    assert b0.bucket.waited_s == 0.0 and clock.now == moved
    # And a1, behind a0 only, does not take the last token: it is a0's (refused within 10 s, the next is 60 s away)
    with pytest.raises(RateLimited):
        a1.acquire("a", "a1", timeout_s=10)
    # And a0, the head, takes that token at once
    moved = clock.now
    a0.acquire("a", "a0", timeout_s=10)
    assert a0.bucket.waited_s == 0.0 and clock.now == moved
