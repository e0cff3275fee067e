"""Runs the real Lambda handlers in this process, as Lambda would.

`LambdaRouter.install()` patches moto's docker-free Lambda backend so that every `Invoke`
(from boto3, or from moto's Step Functions interpreter) reaches the in-process handler named by
the function: a handler's exception becomes a Lambda function error (`FunctionError: Unhandled`),
so Step Functions Retry/Catch see what they would on AWS; `InvocationType=Event` runs in the
background and answers at once, as an asynchronous invoke does.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]

ACCOUNT_ID = "123456789012"


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


def load_handler(function: str) -> Handler:
    """The `lambda_handler` of functions/<function>/handler.py."""
    module = importlib.import_module(f"functions.{function}.handler")
    return module.lambda_handler  # type: ignore[no-any-return]


def invoke(handler: Handler, function_name: str, event: dict[str, Any]) -> Any:
    """Call a handler as Lambda would, with a fresh context."""
    return handler(event, LocalLambdaContext(function_name=function_name))


class LambdaRouter:
    """Maps Lambda function names (or ARNs) to in-process handlers and serves moto's Invoke."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._background = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-async")
        self._original_invoke: Any = None
        self._original_function_invoke: Any = None
        self._lock = threading.Lock()
        self._pending: set[Future[None]] = set()

    def register(self, function_name: str, handler: Handler) -> None:
        with self._lock:
            self._handlers[function_name] = handler

    def handler_for(self, function_name: str) -> Handler:
        name = function_name.split(":function:")[-1].split(":")[0]
        with self._lock:
            if name not in self._handlers:
                raise KeyError(f"no local handler registered for Lambda function {name!r}")
            return self._handlers[name]

    def invoke(self, function_name: str, payload: bytes | str | None, asynchronous: bool = False) -> tuple[bytes, bool]:
        """Run the handler; returns (response payload, whether it is a function error)."""
        handler = self.handler_for(function_name)
        name = function_name.split(":function:")[-1].split(":")[0]
        event = json.loads(payload) if payload else {}
        if asynchronous:
            future = self._background.submit(self._run_logged, handler, name, event)
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._forget)
            return b"", False
        try:
            result = invoke(handler, name, event)
        except Exception as error:  # noqa: BLE001 - becomes the Lambda function error, as on AWS
            body = {
                "errorType": type(error).__name__,
                "errorMessage": str(error),
                "stackTrace": traceback.format_tb(error.__traceback__),
            }
            return json.dumps(body).encode(), True
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

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _run_logged(self, handler: Handler, name: str, event: dict[str, Any]) -> None:
        try:
            invoke(handler, name, event)
        except Exception:  # noqa: BLE001 - an async invoke has no caller to tell
            traceback.print_exc()

    def install(self) -> None:
        """Route moto's Lambda Invoke to this router (moto's docker-free backend)."""
        from moto.awslambda_simple.models import LambdaSimpleBackend

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
