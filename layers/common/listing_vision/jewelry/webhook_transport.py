"""One webhook POST: to an address the URL's check allowed, within one deadline for the whole attempt.

Two things a receiver, or the DNS of its name, must not be able to do to the sender:

- Rebind. `webhooks.check_url` resolves the host and checks every address it answers; the connection
  is then made to one of those checked addresses, never by resolving the name again (a name with a
  short TTL could answer a public address to the check and a private one to the connect). The request
  still goes to the name: the Host header is the URL's, and for https the TLS SNI and the certificate's
  verification are for the name, not the address.
- Hold. The timeout bounds the whole attempt (connect, TLS, sending, the answer's status line and
  headers), not each socket read: a watchdog shuts the socket down at the deadline, so a receiver
  trickling its headers a byte at a time cannot hold the invocation. The connects come before there is
  a socket to watch: each is given what is left of the deadline, not a timeout of its own, so a name
  answering several blackholed addresses cannot stretch an attempt to several timeouts. The answer's
  body is never read.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit


class AttemptTimedOut(Exception):
    """The attempt's deadline passed before the receiver's answer (status and headers) was in."""


class _Watchdog:
    """Shuts down the socket it watches once `timeout_s` has passed (a read or write blocked on it ends)."""

    def __init__(self, timeout_s: float) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            # the plain socket's shutdown, on the descriptor (an SSLSocket's own would drop its TLS
            # state under a thread still reading it)
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shut()

    def stop(self) -> bool:
        """Stop watching; whether the deadline had passed already (what was read since may be cut short)."""
        self._timer.cancel()
        with self._lock:
            self._sock = None
            return self.expired


def _connect_order(addresses: list[str]) -> list[str]:
    """IPv4 first (a Lambda function in a VPC often has no IPv6 route), each as checked."""
    return sorted(addresses, key=lambda a: ipaddress.ip_address(a.split("%")[0]).version)


def connect(addresses: list[str], port: int, deadline: float) -> socket.socket:
    """A socket connected to the first of `addresses` (in `_connect_order`) that takes the connection,
    each connect given only what is left until `deadline` (a `time.monotonic()` instant).

    Raises `AttemptTimedOut` when the deadline passes first (the addresses not yet tried are not
    tried), the last connect's `OSError` when every address refused."""
    if not addresses:
        raise OSError("no address to connect to")
    failed: OSError | None = None
    for address in _connect_order(addresses):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            return socket.create_connection((address, port), timeout=left)
        except OSError as error:
            failed = error
    if failed is None or isinstance(failed, TimeoutError) or time.monotonic() >= deadline:
        raise AttemptTimedOut("no connection within the attempt's deadline") from failed
    raise failed


def post(
    url: str,
    addresses: list[str],
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    tls: ssl.SSLContext | None = None,
) -> int:
    """POST `body` to `url` at one of `addresses` (tried in turn while connecting fails); the answer's status.

    Raises `AttemptTimedOut` when `timeout_s` passes first, `OSError` / `http.client.HTTPException` /
    `ssl.SSLError` when the connection or the answer breaks."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout_s
    watchdog = _Watchdog(timeout_s)  # started after the deadline was set: it never fires before it
    sock: socket.socket | None = None
    try:
        try:
            sock = connect(addresses, port, deadline)
        except AttemptTimedOut as late:
            raise AttemptTimedOut(f"no connection within {timeout_s:g} s") from late.__cause__
        sock.settimeout(timeout_s)  # from here the watchdog bounds the attempt; no read ends before it
        watchdog.watch(sock)
        if https:
            context = tls or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=parts.hostname, do_handshake_on_connect=False)
            watchdog.watch(sock)
            sock.do_handshake()  # verifies the certificate for the name (check_hostname)
        connection = http.client.HTTPConnection(parts.hostname or "", port, timeout=timeout_s)
        connection.sock = sock  # already connected, to the checked address: http.client resolves nothing
        try:
            # the Host header is the URL's (http.client then adds none of its own)
            connection.request("POST", target, body=body, headers={**headers, "Host": parts.netloc})
            answer = connection.getresponse()
            if watchdog.stop():  # the socket shut down under the answer: its headers ended early, not whole
                raise AttemptTimedOut(f"no whole answer within {timeout_s:g} s")
            return answer.status
        finally:
            connection.close()  # the body is never read; the connection goes with it
    except (OSError, http.client.HTTPException) as error:
        if watchdog.expired:
            raise AttemptTimedOut(f"no answer within {timeout_s:g} s") from error
        raise
    finally:
        watchdog.stop()
        if sock is not None:
            sock.close()
