"""Webhooks against hostile names, receivers and interleavings (a review's findings): a name that
resolves to one address for the check and another for the connect, a receiver trickling its answer,
an invocation running out of time, and a DELETE landing between a PUT's two writes.

The deliveries run the library's `WebhookDelivery` in-process against the local stack's stores; the
resolver a store is given is the seam DNS would be (the check's answer is what the connection uses),
and the receivers are loopback servers."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from doubles.loopback import LoopbackServer, Reply
from listing_vision import aws
from listing_vision.errors import NotFound
from listing_vision.jewelry.job_events import DETAIL_TYPE, SOURCE
from listing_vision.jewelry.webhook_delivery import WebhookDelivery
from listing_vision.jewelry.webhooks import WebhookStore, system_resolver
from local.stack import LocalStack

HOOK = "/hook"


def receiver(address: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> LoopbackServer:
    """A loopback receiver bound to `address` answering each POST to HOOK with no content (204); it
    records each (its Host header among them) and, with `tls`, the name (SNI) each client asked for."""
    return LoopbackServer({HOOK: lambda request: Reply(204, b"")}, address, port, tls).start()


def hosts(server: LoopbackServer) -> list[str | None]:
    """The Host header of each POST the receiver got."""
    return [request.headers.get("Host") for request in server.calls(HOOK)]


def pinned(names: dict[str, str]) -> Callable[[str, int], list[str]]:
    """A resolver answering `names` as DNS would (one address each), the system's for any other name."""
    return lambda host, port: [names[host]] if host in names else system_resolver(host, port)


def finish_event(website: str) -> dict[str, Any]:
    """A finish event of a run of `website`, as the rule passes it to the function."""
    return {
        "id": uuid.uuid4().hex,
        "source": SOURCE,
        "detail-type": DETAIL_TYPE,
        "time": "2026-12-07T00:00:00Z",
        "detail": {"website": website, "job_id": uuid.uuid4().hex, "run_id": uuid.uuid4().hex, "status": "done"},
    }


@pytest.fixture
def website(local_stack: LocalStack) -> Iterator[str]:
    """A storefront of this test's own (no other test's registration is delivered with it); its
    registrations are removed afterwards."""
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    yield name
    for registration in WebhookStore().for_website(name):
        WebhookStore().delete(name, registration.client_id)


@pytest.fixture
def two_attempts(provider_env: Callable[..., None]) -> None:
    # 3 s an attempt: a receiver that answers at once does so within it even on a loaded machine (where
    # this process also runs the stack's threads); the trickling one (7 s) never does
    provider_env(WEBHOOK_ATTEMPTS="2", WEBHOOK_BACKOFF_S="0.05", WEBHOOK_TIMEOUT_S="3")


def test_an_attempt_connects_to_the_address_the_check_allowed_not_a_second_resolution(
    website: str, two_attempts: None
) -> None:
    # Given two receivers on one port: the one the system resolves `localhost` to (127.0.0.1), and
    # another at 127.0.0.2
    system = receiver("127.0.0.1")
    checked = receiver("127.0.0.2", system.port)
    try:
        url = f"http://localhost:{system.port}{HOOK}"
        WebhookStore().register(website, "client", url)
        # When the delivery's check resolves `localhost` to 127.0.0.2 (a name switching address between
        # the check and the connect: a second resolution, as the system's, would answer 127.0.0.1)
        (record,) = WebhookDelivery(WebhookStore(resolve=pinned({"localhost": "127.0.0.2"}))).deliver_event(
            finish_event(website)
        )
        # Then the POST reached the checked address, still addressed to the name, and the other none
        assert record["status"] == "delivered", record
        assert hosts(checked) == [f"localhost:{system.port}"]
        assert system.requests == []
    finally:
        system.stop()
        checked.stop()


def tls_for(name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for `name`, and a client context trusting only it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as chain:
        chain.write(pem + key_pem)
        chain.flush()
        server.load_cert_chain(chain.name)
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


def test_https_at_the_checked_address_is_verified_for_the_name(website: str, two_attempts: None) -> None:
    # Given a TLS receiver at 127.0.0.1 whose certificate is for hook.example (a name no system resolves)
    server, client = tls_for("hook.example")
    secure = receiver("127.0.0.1", tls=server)
    store = WebhookStore(resolve=pinned({"hook.example": "127.0.0.1", "other.example": "127.0.0.1"}))
    try:
        store.register(website, "right", f"https://hook.example:{secure.port}{HOOK}")
        store.register(website, "wrong", f"https://other.example:{secure.port}{HOOK}")
        # When a run finishes, the name resolving (for the check) to the receiver's address
        records = WebhookDelivery(store, tls=client).deliver_event(finish_event(website))
        # Then the URL whose name the certificate is for is delivered, the SNI and Host header being the name
        by_url = {record["url"].split("//")[1].split(":")[0]: record for record in records}
        assert by_url["hook.example"]["status"] == "delivered", by_url
        assert hosts(secure) == [f"hook.example:{secure.port}"]
        assert "hook.example" in secure.server_names
        # And the other name, at the same address, is refused by the certificate's check: never posted
        assert by_url["other.example"]["status"] == "failed"
        assert {a["error"] for a in by_url["other.example"]["attempts"]} == {"connection"}
        assert "certificate" in by_url["other.example"]["attempts"][0]["message"].lower()
    finally:
        secure.stop()


def trickling() -> LoopbackServer:
    """A receiver answering 200 a header byte every 0.1 s (each read is quick; the whole is not)."""
    slow = receiver()
    slow.defaults[HOOK] = lambda request: Reply(200, b"", trickle_s=0.1)
    return slow


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_attempts_deadline(website: str, two_attempts: None) -> None:
    # Given a receiver that answers 200 a header byte every 0.1 s, 7 s in all (each read well within the
    # 3 s timeout), and another that answers at once
    slow, quick = trickling(), receiver()
    WebhookStore().register(website, "slow", f"http://127.0.0.1:{slow.port}{HOOK}")
    WebhookStore().register(website, "quick", f"http://127.0.0.1:{quick.port}{HOOK}")
    try:
        # When a run finishes
        records = WebhookDelivery().deliver_event(finish_event(website))
        # Then each of the trickling receiver's attempts ended at its deadline as a timeout (the 200 it
        # would end with never counts), and the delivery failed; the other was delivered
        by_port = {int(record["url"].split(":")[2].split("/")[0]): record for record in records}
        assert [(a["attempt"], a.get("error")) for a in by_port[slow.port]["attempts"]] == [
            (1, "timeout"),
            (2, "timeout"),
        ]
        assert by_port[slow.port]["status"] == "failed"
        assert by_port[quick.port]["status"] == "delivered" and len(quick.calls(HOOK)) == 1
    finally:
        slow.stop()
        quick.stop()


def test_a_delivery_the_invocation_has_no_time_for_stays_pending_and_the_event_fails(
    website: str, provider_env: Callable[..., None]
) -> None:
    # Given a trickling receiver, five attempts of 3 s each
    provider_env(WEBHOOK_ATTEMPTS="5", WEBHOOK_BACKOFF_S="0.05", WEBHOOK_TIMEOUT_S="3")
    slow = trickling()
    WebhookStore().register(website, "slow", f"http://127.0.0.1:{slow.port}{HOOK}")
    event = finish_event(website)
    delivery = WebhookDelivery()
    try:
        # When the invocation has time for one attempt only: 11 s left, 5 s of it kept for the records, so the
        # first attempt starts if it is reached within 3 s (reading the secret and opening the record: 6.5 s
        # left it half a second, too little on a loaded machine) and a second one, which could start only
        # 2.95 s in, never can after a first that took its whole 3 s
        with pytest.raises(RuntimeError, match="1 ran out of time"):
            delivery.deliver_event(event, remaining_s=11)
        # Then the delivery is left pending with its one attempt, for Lambda's retry of the event
        (record,) = delivery_records(event)
        assert record["status"] == "pending"
        assert [(a["attempt"], a.get("error")) for a in record["attempts"]] == [(1, "timeout")]
        # And the retry, with time enough, continues it (attempts 2 to 5) and ends it
        (record,) = delivery.deliver_event(event, remaining_s=600)
        assert record["status"] == "failed" and [a["attempt"] for a in record["attempts"]] == [1, 2, 3, 4, 5]
    finally:
        slow.stop()


def delivery_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    from listing_vision.jewelry.webhook_delivery import list_deliveries

    registration = WebhookStore().for_website(event["detail"]["website"])[0]
    found = list_deliveries(WebhookStore(), registration.website, registration.client_id, 10)
    return [record for record in found if record["job_id"] == event["detail"]["job_id"]]


def test_a_delete_between_a_puts_two_writes_leaves_no_registration_without_its_secret(website: str) -> None:
    # Given a registration, and a second PUT of the same client stopped right after its first write
    store = WebhookStore()
    store.register(website, "client", "http://127.0.0.1:9/hook")
    ssm = aws.client("ssm")
    first_write_done, go_on = threading.Event(), threading.Event()

    def pause(**_: Any) -> None:
        if threading.current_thread() is worker and not first_write_done.is_set():
            first_write_done.set()
            assert go_on.wait(300)  # hang guards, generous for a loaded machine

    def second_put() -> None:
        WebhookStore().register(website, "client", "http://127.0.0.1:10/hook")

    worker = threading.Thread(target=second_put)
    ssm.meta.events.register("after-call.ssm.PutParameter", pause)
    dynamodb = aws.client("dynamodb")
    dynamodb.meta.events.register("after-call.dynamodb.PutItem", pause)
    try:
        worker.start()
        assert first_write_done.wait(300)
        # When the client's DELETE runs to its end in between
        WebhookStore().delete(website, "client")
        go_on.set()
        worker.join(300)
    finally:
        ssm.meta.events.unregister("after-call.ssm.PutParameter", pause)
        dynamodb.meta.events.unregister("after-call.dynamodb.PutItem", pause)
        go_on.set()
    # Then whatever registration is left can be signed: its secret is there
    try:
        registration = store.get(website, "client")
    except NotFound:
        return
    assert store.secret(registration).startswith("whsec_")


def test_the_receivers_deadline_counts_for_tls_handshakes_too(website: str, two_attempts: None) -> None:
    # Given a "TLS" receiver that accepts connections and never says a word (the handshake hangs)
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    store = WebhookStore(resolve=pinned({"mute.example": "127.0.0.1"}))
    store.register(website, "client", f"https://mute.example:{listener.getsockname()[1]}{HOOK}")
    try:
        # When a run finishes
        started = time.monotonic()
        (record,) = WebhookDelivery(store).deliver_event(finish_event(website))
        # Then both attempts timed out and the delivery failed
        assert [a.get("error") for a in record["attempts"]] == ["timeout", "timeout"], time.monotonic() - started
        assert record["status"] == "failed"
    finally:
        stop.set()
        listener.close()
        for sock in accepted:
            sock.close()
