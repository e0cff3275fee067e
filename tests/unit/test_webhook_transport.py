"""The webhook transport's connects (listing_vision.jewelry.webhook_transport.connect) against real
loopback sockets: a name may answer several addresses, and the attempt's one deadline bounds the
connects to all of them together, not each one. A blackholed address is a listening socket whose
queue of connections is full: the kernel drops the SYNs it gets, so a connect to it hangs, as one to
an unroutable address does."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from listing_vision.jewelry.webhook_transport import AttemptTimedOut, connect


@contextmanager
def blackholed(address: str, port: int) -> Iterator[None]:
    """A listener at `address`:`port` that never accepts, its queue filled until a connect to it hangs."""
    listener = socket.create_server((address, port), backlog=0)
    queued: list[socket.socket] = []
    try:
        for _ in range(64):
            client = socket.socket()
            queued.append(client)
            client.settimeout(3)  # only a probe: a connect still pending after 3 s is one the kernel dropped
            try:
                client.connect((address, port))
            except TimeoutError:
                break
        else:
            raise AssertionError(f"{address}:{port} kept taking connections: its queue never filled")
        yield
    finally:
        for client in queued:
            client.close()
        listener.close()


def test_the_connects_to_a_names_addresses_share_the_attempts_deadline() -> None:
    with ExitStack() as stack:
        # Given a name's three addresses on one port: two blackholed, then one that takes connections
        taking = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        port = taking.getsockname()[1]
        stack.enter_context(blackholed("127.0.0.2", port))
        stack.enter_context(blackholed("127.0.0.3", port))
        taking.setblocking(False)
        # When an attempt with 1 s to go connects to them in turn
        with pytest.raises(AttemptTimedOut):
            connect(["127.0.0.2", "127.0.0.3", "127.0.0.1"], port, time.monotonic() + 1)
        # Then the deadline ended it: the address after the blackholed ones was never tried (a timeout
        # of each connect's own would have reached it, after two of them)
        with pytest.raises(BlockingIOError):
            taking.accept()


def test_an_address_refusing_at_once_passes_the_attempt_to_the_next() -> None:
    with ExitStack() as stack:
        # Given a name's two addresses on one port: nothing listens at the first, the second takes connections
        taking = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        port = taking.getsockname()[1]
        # When an attempt connects
        sock = stack.enter_context(connect(["127.0.0.4", "127.0.0.1"], port, time.monotonic() + 30))
        # Then it is connected to the second, with what is left of the deadline as its connect's timeout
        assert sock.getpeername() == ("127.0.0.1", port)
        timeout = sock.gettimeout()
        assert timeout is not None and 0 < timeout <= 30


def test_a_spent_deadline_tries_no_address() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taking:
        # Given an address that takes connections, and an attempt whose deadline has passed
        taking.setblocking(False)
        # When it connects, then it times out without a connect
        with pytest.raises(AttemptTimedOut):
            connect(["127.0.0.1"], taking.getsockname()[1], time.monotonic())
        with pytest.raises(BlockingIOError):
            taking.accept()
