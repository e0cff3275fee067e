"""S3's browser-upload (POST Object) policy, enforced on the local S3 as AWS enforces it.

moto stores whatever a form posts: a presigned form whose key, Content-Type or metadata was edited
would overwrite any object, where AWS refuses it. This WSGI layer in front of moto checks a POST
form as S3 does before anything is written (AWS's "Creating a POST policy" and "Calculating a
signature" pages):

- SigV4 only (S3 refuses SigV2 forms on buckets made since 2020), and the signature of the policy,
  from the form's credential and a known secret;
- the policy's expiration;
- every condition: exact matches (`{"key": ...}`, `["eq", "$field", ...]`), `starts-with`, the
  bucket, and `content-length-range` against the file's size;
- every form field is covered by a condition (except `policy`, `x-amz-signature`, `file` and
  `x-ignore-*` fields), so a field added to a form is refused.

A refusal is S3's XML error: 403 `AccessDenied` ("Invalid according to Policy: ..."), or 400
`EntityTooLarge` / `EntityTooSmall` for a file outside the length range.

A form's `ObjectCreated:Post` event is also held until the object is complete (`events_after_the_form`):
moto fires it from inside `put_object`, before it sets the form's Content-Type and metadata, so an
upload trigger running at once could read an object with neither. AWS sends the event once the
object exists as posted. And a POST replaces an object whole, tags included (the new object has only
the tags its form sets), where moto keeps the tags of the object it overwrote in an unversioned
bucket: a form posted again would read as the first post's outcome.

A presigned URL (SigV4 query: `X-Amz-Date` + `X-Amz-Expires`) past its expiry is refused 403 AccessDenied
"Request has expired", as S3 refuses it; moto would serve it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from errno import EADDRINUSE
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3 import notifications
from moto.s3.responses import S3Response
from werkzeug.formparser import parse_form_data
from werkzeug.serving import make_server

from local.store_writes import WriteCounter

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
UNCHECKED_FIELDS = {"policy", "x-amz-signature", "file"}


class PolicyRefused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def denied(message: str) -> PolicyRefused:
    return PolicyRefused(403, "AccessDenied", f"Invalid according to Policy: {message}")


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def check_form(bucket: str, fields: dict[str, str], size: int, secrets: dict[str, str], now: datetime) -> None:
    """Raise `PolicyRefused` unless S3 would accept this form for `bucket` with a file of `size` bytes."""
    policy_b64 = fields.get("policy")
    if not policy_b64:
        raise PolicyRefused(403, "AccessDenied", "Access Denied")  # the buckets are private: no anonymous POST
    if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":  # SigV2 forms (AWSAccessKeyId, signature)
        message = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        raise PolicyRefused(400, "InvalidRequest", message)
    credential = fields.get("x-amz-credential", "")
    access_key, _, scope = credential.partition("/")
    date, region, service, *_ = [*scope.split("/"), "", "", ""]
    secret = secrets.get(access_key)
    if secret is None:
        raise PolicyRefused(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist.")
    expected = hmac.new(signing_key(secret, date, region, service), policy_b64.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("x-amz-signature", "")):
        raise PolicyRefused(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
        expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        conditions = policy["conditions"]
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as error:
        raise PolicyRefused(400, "MalformedPOSTRequest", "The policy is not valid.") from error
    if expiration <= now:
        raise denied("Policy expired.")
    values = {name.lower(): value for name, value in fields.items()} | {"bucket": bucket}
    covered = {"bucket"}
    for condition in conditions:
        covered.add(check_condition(condition, values, size))
    extra = sorted(
        name for name in values if name not in covered | UNCHECKED_FIELDS and not name.startswith("x-ignore-")
    )
    if extra:
        raise denied(f"Extra input fields: {', '.join(extra)}")


def check_condition(condition: Any, values: dict[str, str], size: int) -> str:
    """Check one condition; returns the field it covers."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((name, expected),) = condition.items()
        operator, field = "eq", name.lower()
    elif isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
        low, high = int(condition[1]), int(condition[2])
        if size > high:
            raise PolicyRefused(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        if size < low:
            raise PolicyRefused(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
        return "content-length-range"
    elif isinstance(condition, list) and len(condition) == 3 and str(condition[1]).startswith("$"):
        operator, field, expected = str(condition[0]).lower(), str(condition[1])[1:].lower(), condition[2]
    else:
        raise PolicyRefused(400, "MalformedPOSTRequest", f"Unknown policy condition: {json.dumps(condition)}")
    actual = values.get(field, "")
    matched = actual == expected if operator == "eq" else operator == "starts-with" and actual.startswith(expected)
    if not matched:
        raise denied(f"Policy Condition failed: {json.dumps(condition)}")
    return field


class PostPolicyCheck:
    """WSGI middleware for moto's server: POST Object forms are checked before moto sees them."""

    def __init__(self, app: WsgiApp, secrets: dict[str, str], clock: Callable[[], datetime] | None = None):
        self.app = app
        self.secrets = secrets
        self.clock = clock or (lambda: datetime.now(UTC))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if presigned_url_expired(environ.get("QUERY_STRING", ""), self.clock()):
            return self._refuse(PolicyRefused(403, "AccessDenied", "Request has expired"), start_response)
        bucket = self._form_bucket(environ)
        if bucket is None:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        _, form, files = parse_form_data(environ)
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the form again
        fields = {name: form[name] for name in form}
        size = len(files["file"].read()) if "file" in files else 0
        try:
            check_form(bucket, fields, size, self.secrets, self.clock())
        except PolicyRefused as refused:
            return self._refuse(refused, start_response)
        return self.app(environ, start_response)

    @staticmethod
    def _refuse(refused: PolicyRefused, start_response: StartResponse) -> Iterable[bytes]:
        xml = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{refused.code}</Code>"
            f"<Message>{escape(refused.message)}</Message></Error>"
        ).encode()
        start_response(
            f"{refused.status} {'Forbidden' if refused.status == 403 else 'Bad Request'}",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))],
        )
        return [xml]

    @staticmethod
    def _form_bucket(environ: Environ) -> str | None:
        """The bucket of a POST Object form request (path style, as the local endpoint is addressed)."""
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING"):
            return None
        if not environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
            return None
        path = urlsplit(environ.get("PATH_INFO", "")).path.strip("/")
        return path if path and "/" not in path else None


def presigned_url_expired(query: str, now: datetime) -> bool:
    """Whether a SigV4 presigned URL's query (X-Amz-Date + X-Amz-Expires) has expired: S3 answers such a
    request 403 AccessDenied "Request has expired"; moto serves it."""
    values = parse_qs(query)
    if "X-Amz-Expires" not in values or "X-Amz-Date" not in values:
        return False
    try:
        signed = datetime.strptime(values["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(values["X-Amz-Expires"][0])
    except ValueError:
        return False  # malformed: moto's own signature check answers it
    return now > signed + timedelta(seconds=expires)


_held_events = threading.local()  # per request thread: the events of the form being stored
_moto_send_event = notifications.send_event
_moto_bucket_post = S3Response._bucket_response_post


def _send_or_hold(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
    held = getattr(_held_events, "events", None)
    if held is None:
        _moto_send_event(account_id, event_name, bucket, key)
    else:
        held.append((account_id, event_name, bucket, key))


_posting = threading.Lock()
_keys_posting: dict[tuple[str, str], threading.Lock] = {}


def _key_lock(bucket_name: str, key: str) -> threading.Lock:
    with _posting:
        return _keys_posting.setdefault((bucket_name, key), threading.Lock())


def _bucket_post_then_events(self: S3Response, request: Any, bucket_name: str) -> Any:
    """One form's object stored, its tags reset, its events sent. Posts of one key take turns: moto
    closes the bytes of an object it overwrites, so a post overlapping another's event would fail
    (a 500 where S3 stores both, the last one winning)."""
    key = (self.querystring.get("key") or [""])[0]
    with _key_lock(bucket_name, key):
        return _post_then_events(self, request, bucket_name)


def _post_then_events(self: S3Response, request: Any, bucket_name: str) -> Any:
    _held_events.events = []
    try:
        answer = _moto_bucket_post(self, request, bucket_name)
        if str(answer[0]).startswith("2"):  # a new object: only the tags its form set (ours set none)
            key = self.backend.get_object(bucket_name, self.querystring["key"][0])
            if key is not None:
                self.backend.tagger.delete_all_tags_for_resource(key.arn)
        held, _held_events.events = _held_events.events, None
        for event in held:  # the object now has the form's Content-Type and metadata
            _moto_send_event(*event)
        return answer
    finally:
        _held_events.events = None


def events_after_the_form() -> None:
    """A POST Object's event notifications sent after moto has stored the whole form (idempotent)."""
    notifications.send_event = _send_or_hold  # type: ignore[assignment]
    S3Response._bucket_response_post = _bucket_post_then_events  # type: ignore[method-assign]


class PolicyCheckingMotoServer(ThreadedMotoServer):
    """moto's threaded server with `PostPolicyCheck` in front of its application, and a form's
    events sent once its object is complete; `writes` counts the requests that may have written."""

    def __init__(self, secrets: dict[str, str], **options: Any):
        super().__init__(**options)
        self.secrets = secrets
        self.writes = WriteCounter()
        self._refused: OSError | None = None
        events_after_the_form()

    def start(self) -> None:
        """Serving, or the OSError its port refused it with (moto's own start waits for a server that a
        port in use never makes: the start hung, the error only printed by the server's thread)."""
        super().start()
        if self._refused is not None:
            raise self._refused

    def _server_entry(self) -> None:
        app = self.writes.counting(PostPolicyCheck(DomainDispatcherApplication(create_backend_app), self.secrets))
        try:
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        except (OSError, SystemExit) as refused:  # werkzeug prints a bind's error, then exits (this thread only)
            in_use = OSError(EADDRINUSE, f"moto's port {self._port} is in use")
            self._refused = refused if isinstance(refused, OSError) else in_use
            self._server_ready_event.set()
            return
        self._server_ready_event.set()
        # A stop waits for the loop's next poll, and the reset the stack sends just before it starts a new one:
        # a tenth of a second, not the default half
        self._server.serve_forever(poll_interval=0.1)
