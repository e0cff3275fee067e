"""The local stand-in for the CloudFront distributions in front of the image buckets (`image_links`
`cdn`): `GET <url>/<bucket>/<key>` answers the object as CloudFront with origin access control would.

Each bucket's base URL (`CDN_URLS`) is `<url>/<bucket>`, as each distribution's domain is on AWS. Only
what `listing_vision.jewelry.links.readable_prefixes` declares is served, the declaration CDK's bucket
policies are made from: anything else, and a missing object, is a 403 AccessDenied (the distribution
may read those prefixes and not list the bucket, so S3 answers a missing key 403, not 404).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry import links

DENIED = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
)


class LocalCdn:
    """One HTTP server for every image bucket's distribution; `base_urls` is what `CDN_URLS` holds."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._server = ThreadingHTTPServer((host, port), _handler_class())
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"

    def base_urls(self, buckets: list[str]) -> dict[str, str]:
        return {bucket: f"{self.url}/{bucket}" for bucket in buckets}

    def start(self) -> LocalCdn:
        threading.Thread(target=self._server.serve_forever, name="cdn", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def fetch(path: str) -> tuple[int, dict[str, str], bytes]:
    """What the distribution answers for a request path `/<bucket>/<key>`."""
    bucket, _, key = unquote(urlsplit(path).path).lstrip("/").partition("/")
    if not links.is_readable(get_settings(), bucket, key):
        return 403, {"Content-Type": "application/xml"}, DENIED
    try:
        found: dict[str, Any] = aws.client("s3").get_object(Bucket=bucket, Key=key)
    except ClientError:
        return 403, {"Content-Type": "application/xml"}, DENIED
    headers = {
        "Content-Type": str(found.get("ContentType") or "application/octet-stream"),
        "ETag": str(found.get("ETag", "")),
        "Cache-Control": "public, max-age=86400",
    }
    return 200, headers, bytes(found["Body"].read())


def _handler_class() -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the gateway logs the API's requests
            return

        def _answer(self, with_body: bool) -> None:
            status, headers, body = fetch(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # http.server's naming
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

    return Handler
