"""Runs the real Lambda handlers in this process, as Lambda would.

`LambdaRouter.install()` patches moto's docker-free Lambda backend so that every `Invoke`
(from boto3, or from moto's Step Functions interpreter) reaches the in-process handler named by
the function: a handler's exception becomes a Lambda function error (`FunctionError: Unhandled`),
so Step Functions Retry/Catch see what they would on AWS. Asynchronous invocations
(`InvocationType=Event`, S3 notifications) answer at once and run in the background with the
function's declared delivery (functions/specs.py): retried after a failure, and sent to the
function's failure queue (SQS, Lambda's on-failure destination record) when the retries are spent.
`current_function` names the function whose handler is running, in its thread, and
`current_invocation` the context of the attempt running (each retry is an attempt of its own).

A function can die, as a process does on Lambda (killed, out of memory, exited): a handler that
raises `FunctionKilled` (a BaseException, so nothing of the function's own catches it) loses its
execution environment, which is never reused, and its invocation is answered as Lambda answers one
whose runtime exited, `Runtime.ExitError`; an asynchronous one is retried as declared. Lambda
retries an asynchronous event with the same request id (`aws_request_id`), so here too: a function
can tell its own earlier attempt from another invocation by it.

Lambda's queue of asynchronous events is durable: an event it accepted is delivered even if
nothing else survives. Here, with a journal folder (`LambdaRouter.journal`), each accepted event is
written there before the invoke answers and removed once delivered (or sent to the failure queue);
`replay_journal()` at the next start delivers what a killed process left (at least once, as Lambda).
With `hold_until_saved` (stores saved by snapshots) a delivered event's entry is kept, `.delivered`,
until `saved()` reports a snapshot begun after it: a kill before that redelivers it, losing nothing.

As on Lambda, an execution environment handles one event at a time: a function's concurrent
invocations each get their own environment (a fresh copy of its handler module, so module-level
state such as the API resolver is never shared between requests), and idle environments are
reused. A function declared with a reserved concurrency runs at most that many at once; a further
invocation waits for one to finish (on AWS an asynchronous one waits in Lambda's queue likewise,
and a synchronous one is throttled).

Powertools keeps per-process state that threads here would share: `local.powertools_state`
makes it per invocation.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.util
import json
import os
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.specs import AsyncDelivery, FunctionSpec
from listing_vision import aws
from listing_vision.observability import logger
from local.powertools_state import own_log_keys, per_thread_resolver_event

Handler = Callable[[dict[str, Any], Any], Any]
current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_function", default=None)

ACCOUNT_ID = "123456789012"
EXIT_ERROR = "Runtime.ExitError"


class FunctionKilled(BaseException):
    """The function's process died mid-invocation (kill -9, out of memory): not an Exception, so
    nothing of the function's own handles it, and the runtime answers `Runtime.ExitError`."""

    request_id = "-"  # the invocation it killed, set by the runtime


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_s: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    region: str = "us-east-1"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


current_invocation: contextvars.ContextVar[LocalLambdaContext | None] = contextvars.ContextVar(
    "current_invocation", default=None
)


def load_handler(spec: FunctionSpec, environment: int = 0) -> Handler:
    """The `lambda_handler` of functions/<package>/<module>.py: the imported module for the first
    execution environment, a fresh copy of it (its own module-level state) for each further one."""
    name = f"functions.{spec.package}.{spec.module}"
    if environment == 0:
        return importlib.import_module(name).lambda_handler  # type: ignore[no-any-return]
    source = importlib.util.find_spec(name)
    assert source is not None and source.origin is not None
    copy = importlib.util.spec_from_file_location(f"{name}__environment_{environment}", source.origin)
    assert copy is not None and copy.loader is not None
    module = importlib.util.module_from_spec(copy)
    copy.loader.exec_module(module)
    return module.lambda_handler  # type: ignore[no-any-return]


def invoke(
    handler: Handler,
    function_name: str,
    event: dict[str, Any],
    timeout_s: float = 900.0,
    request_id: str | None = None,
) -> Any:
    """Call a handler as Lambda would, with a fresh context (its request id given for a retry of an
    asynchronous event), as that function, its log records carrying its own keys
    (`own_log_keys`)."""
    context = LocalLambdaContext(function_name=function_name, timeout_s=timeout_s)
    if request_id is not None:
        context.aws_request_id = request_id
    token = current_function.set(function_name)
    attempt = current_invocation.set(context)
    try:
        with own_log_keys():
            logger.append_keys(service=function_name)  # as each function's POWERTOOLS_SERVICE_NAME on AWS
            return handler(event, context)
    except FunctionKilled as killed:
        killed.request_id = context.aws_request_id
        raise
    finally:
        current_invocation.reset(attempt)
        current_function.reset(token)


@dataclass
class Registration:
    handler: Handler  # the first execution environment's
    timeout_s: float = 900.0
    delivery: AsyncDelivery | None = None
    failure_queue: str | None = None
    new_environment: Callable[[int], Handler] | None = None  # None: one handler serves every call
    runs_as: str | None = None  # the deployed function this handler stands in for (its role's calls)
    concurrency: int | None = None  # its reserved concurrency: invocations at once (None: unbounded)
    idle: list[Handler] = field(default_factory=list)
    environments: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.idle.append(self.handler)
        self.slots = threading.BoundedSemaphore(self.concurrency) if self.concurrency else None

    def acquire(self) -> Handler:
        """An idle execution environment, or a new one when all are busy."""
        with self.lock:
            if self.idle:
                return self.idle.pop()
            if self.new_environment is None:
                return self.handler
            number = self.environments
            self.environments += 1
        return self.new_environment(number)

    def release(self, handler: Handler) -> None:
        with self.lock:
            if self.new_environment is not None or handler not in self.idle:
                self.idle.append(handler)

    def run(self, name: str, event: dict[str, Any], request_id: str | None = None) -> Any:
        if self.slots is not None:
            self.slots.acquire()
        handler = self.acquire()
        died = False
        try:
            return invoke(handler, self.runs_as or name, event, self.timeout_s, request_id)
        except FunctionKilled:
            died = True  # its environment is gone with it: never handed to another invocation
            raise
        finally:
            if not died:
                self.release(handler)
            elif self.new_environment is None:
                self.release(handler)  # one handler serves every call: it stands for a fresh one
            if self.slots is not None:
                self.slots.release()


class LambdaRouter:
    """Maps Lambda function names (or ARNs) to in-process handlers and serves moto's Invoke."""

    def __init__(self, retry_delays_s: tuple[float, ...] = (1.0, 2.0), journal: Path | None = None) -> None:
        # Lambda waits about a minute, then two, between asynchronous retries; locally seconds.
        self.retry_delays_s = retry_delays_s
        self.journal = journal  # accepted asynchronous events not yet delivered (None: kept in memory only)
        # keep a delivered event's entry until a snapshot begun after its delivery is saved (`saved()`)
        self.hold_until_saved = False
        self._delivered: list[tuple[float, Path]] = []  # (when delivered, its entry), held for a snapshot
        self.invocations: Counter[str] = Counter()  # invocations per function (not counting retries)
        self._handlers: dict[str, Registration] = {}
        self._background = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-async")
        self._original_invoke: Any = None
        self._original_function_invoke: Any = None
        self._lock = threading.Lock()
        self._pending: set[Future[None]] = set()

    def register(
        self,
        function_name: str,
        handler: Handler,
        timeout_s: float = 900.0,
        delivery: AsyncDelivery | None = None,
        failure_queue: str | None = None,
        new_environment: Callable[[int], Handler] | None = None,
        runs_as: str | None = None,
        concurrency: int | None = None,
    ) -> None:
        registration = Registration(handler, timeout_s, delivery, failure_queue, new_environment, runs_as, concurrency)
        with self._lock:
            self._handlers[function_name] = registration

    def register_spec(self, spec: FunctionSpec) -> None:
        """A function as declared in functions/specs.py: its handler, timeout, asynchronous delivery and
        reserved concurrency, with a new execution environment for each concurrent invocation."""
        self.register(
            spec.name,
            load_handler(spec),
            spec.timeout_s,
            spec.asynchronous,
            spec.failure_queue,
            new_environment=lambda number: load_handler(spec, number),
            concurrency=spec.reserved_concurrency,
        )

    def call(self, function_name: str, event: dict[str, Any]) -> Any:
        """A synchronous invocation (API Gateway's): the handler's result, or its exception."""
        name, registration = self._registration(function_name)
        with self._lock:
            self.invocations[name] += 1
        return registration.run(name, event)

    def _registration(self, function_name: str) -> tuple[str, Registration]:
        name = function_name.split(":function:")[-1].split(":")[0]
        with self._lock:
            if name not in self._handlers:
                raise KeyError(f"no local handler registered for Lambda function {name!r}")
            return name, self._handlers[name]

    def handler_for(self, function_name: str) -> Handler:
        return self._registration(function_name)[1].handler

    def invoke(self, function_name: str, payload: bytes | str | None, asynchronous: bool = False) -> tuple[bytes, bool]:
        """Run the handler; returns (response payload, whether it is a function error)."""
        name, registration = self._registration(function_name)
        event = json.loads(payload) if payload else {}
        with self._lock:
            self.invocations[name] += 1
        if asynchronous:
            request_id = str(uuid.uuid4())  # kept by every retry of this event, as Lambda keeps it
            self._accept(name, registration, event, self._journal_event(name, event, request_id), request_id)
            return b"", False
        try:
            result = registration.run(name, event)
        except (Exception, FunctionKilled) as error:  # noqa: BLE001 - becomes the Lambda function error, as on AWS
            return json.dumps(error_payload(error)).encode(), True
        return json.dumps(result).encode(), False

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until no asynchronous invocation is running (one may start another); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return True
            wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        return False

    def _accept(
        self, name: str, registration: Registration, event: dict[str, Any], entry: Path | None, request_id: str
    ) -> None:
        future = self._background.submit(self._deliver, name, registration, event, entry, request_id)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _journal_event(self, name: str, event: dict[str, Any], request_id: str) -> Path | None:
        """The event on disk before the invoke answers: written beside, then renamed (whole or absent)."""
        if self.journal is None:
            return None
        self.journal.mkdir(parents=True, exist_ok=True)
        entry = self.journal / f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
        partial = entry.with_suffix(".partial")
        with partial.open("w") as out:
            json.dump({"function": name, "event": event, "request_id": request_id}, out)
            out.flush()
            os.fsync(out.fileno())
        partial.rename(entry)
        return entry

    def replay_journal(self) -> int:
        """Deliver the asynchronous events a killed process accepted and never finished; returns how many."""
        if self.journal is None or not self.journal.exists():
            return 0
        # and delivered ones no snapshot held (`.delivered`): run again, as Lambda may
        entries = sorted([*self.journal.glob("*.json"), *self.journal.glob("*.delivered")], key=lambda p: p.name)
        for entry in entries:
            pending = json.loads(entry.read_text())
            name, registration = self._registration(pending["function"])
            request_id = pending.get("request_id") or str(uuid.uuid4())
            self._accept(name, registration, pending["event"], entry, request_id)
        for partial in self.journal.glob("*.partial"):  # never accepted: its invoke did not answer
            partial.unlink()
        return len(entries)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver(
        self, name: str, registration: Registration, event: dict[str, Any], entry: Path | None, request_id: str
    ) -> None:
        """An asynchronous invocation: tried, retried as declared (each attempt with the event's
        request id), then recorded in the failure queue; its journal entry removed only then (a
        process killed before keeps it for the next start)."""
        retries = registration.delivery.retry_attempts if registration.delivery else 0
        for attempt in range(retries + 1):
            try:
                registration.run(name, event, request_id)
                break
            except (Exception, FunctionKilled) as error:  # noqa: BLE001 - an async invoke has no caller to tell
                if isinstance(error, FunctionKilled):
                    print(f"{name} {request_id}: {EXIT_ERROR} ({error})")
                else:
                    traceback.print_exc()
                if attempt < retries:
                    time.sleep(self.retry_delays_s[min(attempt, len(self.retry_delays_s) - 1)])
                    continue
                if registration.failure_queue:
                    self._send_failure(
                        registration.runs_as or name, registration.failure_queue, event, error, attempt + 1
                    )
        if entry is not None and self.hold_until_saved:
            held = entry.with_suffix(".delivered")  # not waiting to run; replayed if no snapshot holds it
            entry.rename(held)
            with self._lock:
                self._delivered.append((time.time(), held))
        elif entry is not None:
            entry.unlink(missing_ok=True)

    def saved(self, started_at: float) -> int:
        """A snapshot begun at `started_at` is saved: the entries of events delivered before then go."""
        with self._lock:
            done = [entry for at, entry in self._delivered if at <= started_at]
            self._delivered = [(at, entry) for at, entry in self._delivered if at > started_at]
        for entry in done:
            entry.unlink(missing_ok=True)
        return len(done)

    @staticmethod
    def _send_failure(name: str, queue: str, event: dict[str, Any], error: BaseException, attempts: int) -> None:
        """Lambda's on-failure destination record, sent to the function's failure queue with the
        function's role (as Lambda does; the queue's URL is looked up outside it)."""
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{name}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": error_payload(error),
        }
        sqs = aws.client("sqs")
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        token = current_function.set(name)
        try:
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record, default=str))
        finally:
            current_function.reset(token)

    def install(self) -> None:
        """Route moto's Lambda Invoke to this router (moto's docker-free backend)."""
        from moto.awslambda_simple.models import LambdaSimpleBackend

        per_thread_resolver_event()
        router = self

        def routed_invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            asynchronous = (headers or {}).get("X-Amz-Invocation-Type") == "Event"
            payload, failed = router.invoke(function_name, body, asynchronous=asynchronous)
            if failed:
                response_headers["x-amz-function-error"] = "Unhandled"
            return payload or b"{}"

        def routed_event(function: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
            # How moto delivers S3 event notifications: asynchronous on AWS, so here too.
            payload, _ = router.invoke(function.function_name, body, asynchronous=True)
            return payload

        from moto.awslambda.models import LambdaFunction

        self._original_invoke = LambdaSimpleBackend.invoke
        self._original_function_invoke = LambdaFunction.invoke
        LambdaSimpleBackend.invoke = routed_invoke  # type: ignore[method-assign,assignment]
        LambdaFunction.invoke = routed_event  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        from moto.awslambda.models import LambdaFunction
        from moto.awslambda_simple.models import LambdaSimpleBackend

        if self._original_invoke is not None:
            LambdaSimpleBackend.invoke = self._original_invoke  # type: ignore[method-assign]
            LambdaFunction.invoke = self._original_function_invoke  # type: ignore[method-assign]
            self._original_invoke = None
        self._background.shutdown(wait=True, cancel_futures=True)


def error_payload(error: BaseException) -> dict[str, Any]:
    """What Lambda answers for an unhandled error, or for a function whose runtime died."""
    if isinstance(error, FunctionKilled):
        message = f"RequestId: {error.request_id} Error: Runtime exited with error: {error}"
        return {"errorType": EXIT_ERROR, "errorMessage": message}
    return {
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_tb(error.__traceback__),
    }
