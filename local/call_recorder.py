"""Every AWS call the functions make on the local stack, as (function, IAM action, resource ARN).

A botocore event hook (`before-parameter-build`, registered for every session botocore creates,
so Powertools' own clients too) sees each API call and each presigned URL; OpenSearch requests
are seen at opensearch-py's transport (they are signed with the function's role on AWS, as
`es:ESHttp<Method>` on the domain's paths). Secrets are read through `listing_vision.aws.secret`, which
caches them (Powertools' cache) for the whole process here (one process per execution environment on AWS): every read is
recorded, so each function that reads a secret is seen doing so. Each call is attributed to the function whose
handler is running (`local.lambda_runtime.current_function`); calls made outside any function
(provisioning, tests) are not recorded. The infrastructure tests check that each function's
role in the synthesized template allows every recorded pair, and list the grants no call used.

A read of an object that is not there (GetObject or HeadObject answered 404) also records
`s3:ListBucket` on its bucket: without that permission S3 answers such a read 403 AccessDenied,
not 404, and the code that handles a missing object would fail instead.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.handlers
import botocore.signers
from opensearchpy import Transport

from listing_vision import aws
from local.lambda_runtime import ACCOUNT_ID, current_function

REGION = "us-east-1"
OPENSEARCH_DOMAIN = "listings"  # the local stand-in's domain name in recorded ARNs
SECRET_SUFFIX = "-Ab12Cd"  # Secrets Manager appends six random characters to a secret's ARN

# IAM actions of the S3 operations whose action is not `s3:<Operation>`.
S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
}
# Reads whose 404 a caller only sees with s3:ListBucket on the bucket (else 403).
MISSING_OBJECT_READS = ("GetObject", "HeadObject")
LAMBDA_ACTIONS = {"Invoke": "lambda:InvokeFunction", "InvokeAsync": "lambda:InvokeFunction"}
_recording: contextvars.ContextVar[bool] = contextvars.ContextVar("recording", default=True)


@dataclass(frozen=True)
class Call:
    function: str
    action: str
    resource: str


class CallRecorder:
    def __init__(self) -> None:
        self.calls: set[Call] = set()
        self._lock = threading.Lock()
        self._original_perform_request: Callable[..., Any] | None = None
        self._original_presigned_post: Callable[..., Any] | None = None
        self._original_get_secret: Callable[..., Any] | None = None

    def record(self, action: str, resource: str) -> None:
        function = current_function.get()
        if function is not None and _recording.get():
            with self._lock:
                self.calls.add(Call(function, action, resource))

    def for_function(self, function: str) -> set[Call]:
        with self._lock:
            return {call for call in self.calls if call.function == function}

    @staticmethod
    @contextmanager
    def paused() -> Iterator[None]:
        """Calls made inside are not recorded: for tests that misconfigure a function on purpose."""
        token = _recording.set(False)
        try:
            yield
        finally:
            _recording.reset(token)

    def dump(self, path: Path) -> None:
        """The recorded calls as JSON, sorted (LOCAL_RECORDED_CALLS=path makes the tests write them)."""
        with self._lock:
            rows = sorted(
                (asdict(call) for call in self.calls), key=lambda r: (r["function"], r["action"], r["resource"])
            )
        path.write_text(json.dumps(rows, indent=1))

    # --- installation -----------------------------------------------------------------------
    def install(self) -> None:
        """Hook every botocore session created from now on, and OpenSearch's transport."""
        botocore.handlers.BUILTIN_HANDLERS.append(("before-parameter-build", self._on_aws_call))
        botocore.handlers.BUILTIN_HANDLERS.append(("after-call.s3", self._on_s3_answer))
        recorder = self
        original = Transport.perform_request
        self._original_perform_request = original

        def perform_request(transport: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            path = urlsplit(url).path
            recorder.record(
                f"es:ESHttp{method.capitalize()}", f"arn:aws:es:{REGION}:{ACCOUNT_ID}:domain/{OPENSEARCH_DOMAIN}{path}"
            )
            return original(transport, method, url, *args, **kwargs)

        Transport.perform_request = perform_request  # type: ignore[method-assign,assignment]
        # A presigned POST is built on CreateBucket's model without its key: seen here instead.
        presign = botocore.signers.generate_presigned_post
        self._original_presigned_post = presign

        def generate_presigned_post(client: Any, Bucket: str, Key: str, *args: Any, **kwargs: Any) -> Any:
            recorder.record("s3:PutObject", f"arn:aws:s3:::{Bucket}/{Key}")
            return presign(client, Bucket, Key, *args, **kwargs)

        botocore.signers.generate_presigned_post = generate_presigned_post
        read_secret = aws.secret
        self._original_get_secret = read_secret

        def get_secret(name: str, *args: Any, **kwargs: Any) -> Any:
            for action, resource in describe("secretsmanager", "GetSecretValue", {"SecretId": name}):
                recorder.record(action, resource)
            return read_secret(name, *args, **kwargs)

        aws.secret = get_secret

    def uninstall(self) -> None:
        for handler in (("before-parameter-build", self._on_aws_call), ("after-call.s3", self._on_s3_answer)):
            if handler in botocore.handlers.BUILTIN_HANDLERS:
                botocore.handlers.BUILTIN_HANDLERS.remove(handler)
        if self._original_perform_request is not None:
            Transport.perform_request = self._original_perform_request  # type: ignore[method-assign]
            self._original_perform_request = None
        if self._original_presigned_post is not None:
            botocore.signers.generate_presigned_post = self._original_presigned_post
            self._original_presigned_post = None
        if self._original_get_secret is not None:
            aws.secret = self._original_get_secret
            self._original_get_secret = None

    # --- botocore ---------------------------------------------------------------------------
    def _on_aws_call(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if current_function.get() is None:
            return
        service = model.service_model.endpoint_prefix
        operation = model.name
        if service == "s3" and operation == "CreateBucket" and context.get("is_presign_request"):
            return  # a presigned POST (botocore builds it on CreateBucket's model): recorded with its key above
        for action, resource in describe(service, operation, params):
            self.record(action, resource)
        if service == "s3" and operation in MISSING_OBJECT_READS:
            context["recorded_bucket"] = params.get("Bucket", "")

    def _on_s3_answer(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        """A read of a missing object: S3 answers it 404 only to a caller that may list the bucket."""
        if http_response.status_code == 404 and "recorded_bucket" in context:
            self.record("s3:ListBucket", f"arn:aws:s3:::{context['recorded_bucket']}")


def describe(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs one API call needs."""
    arn = f"{REGION}:{ACCOUNT_ID}"
    if service == "s3":
        action = S3_ACTIONS.get(operation, f"s3:{operation}")
        bucket, key = params.get("Bucket", ""), params.get("Key")
        return [(action, f"arn:aws:s3:::{bucket}/{key}" if key is not None else f"arn:aws:s3:::{bucket}")]
    if service == "dynamodb":
        tables = list(params.get("RequestItems", {})) or [params.get("TableName", "")]
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""  # a query of an index needs its ARN
        return [(f"dynamodb:{operation}", f"arn:aws:dynamodb:{arn}:table/{table}{index}") for table in tables]
    if service == "events" and operation == "PutEvents":
        buses = {str(entry.get("EventBusName") or "default") for entry in params.get("Entries", [])}
        return [
            ("events:PutEvents", bus if bus.startswith("arn:") else f"arn:aws:events:{arn}:event-bus/{bus}")
            for bus in sorted(buses)
        ]
    if service == "lambda":
        # The qualifier stays in the ARN, as IAM sees it: a grant on the alias `name:live` does not allow
        # invoking `name` ($LATEST), nor the other way round
        name = str(params.get("FunctionName", "")).split(":function:")[-1]
        if params.get("Qualifier"):
            name = f"{name}:{params['Qualifier']}"
        return [(LAMBDA_ACTIONS.get(operation, f"lambda:{operation}"), f"arn:aws:lambda:{arn}:function:{name}")]
    if service == "runtime.sagemaker":
        return [(f"sagemaker:{operation}", f"arn:aws:sagemaker:{arn}:endpoint/{params['EndpointName'].lower()}")]
    if service == "secretsmanager":
        secret = str(params.get("SecretId", ""))
        name = secret.split(":secret:")[-1] if secret.startswith("arn:") else secret + SECRET_SUFFIX
        return [(f"secretsmanager:{operation}", f"arn:aws:secretsmanager:{arn}:secret:{name}")]
    if service == "ssm":
        # A parameter's ARN is `parameter` + its name when the name is a path (`/a/b`), as the webhooks' are;
        # a version selector (`name:3`, a character names cannot hold) is no part of it
        name = str(params.get("Name", "")).split(":")[0]
        return [(f"ssm:{operation}", f"arn:aws:ssm:{arn}:parameter{name if name.startswith('/') else '/' + name}")]
    if service == "sqs":
        queue = str(params.get("QueueUrl") or params.get("QueueName", "")).rstrip("/").rsplit("/", 1)[-1]
        return [(f"sqs:{operation}", f"arn:aws:sqs:{arn}:{queue}")]
    if service == "states" and params.get("executionArn"):
        return [(f"states:{operation}", str(params["executionArn"]))]
    return [(f"{service}:{operation}", "*")]
