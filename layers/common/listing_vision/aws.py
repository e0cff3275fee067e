"""One factory for boto3 clients.

The same code talks to AWS or to the local emulators: `AWS_ENDPOINT_URL` (settings) points every
client at moto. Clients are cached per (service, endpoint) and are thread-safe; the botocore
`standard` retry mode retries throttling and transient errors with jittered backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

from listing_vision.config import get_settings

_session_lock = threading.Lock()
# One session for every client until reset_clients: a session reads and parses the endpoint rules and
# each service's model (JSON files of megabytes) once, where a session per client read them again for
# each, a fraction of a second of CPU per client at every cold start and every start of the local stack.
_sessions: list[boto3.session.Session] = []
# And one botocore loader for every session of the process: reset_clients makes a new session (for the
# credentials and settings of now), but the files the loader parses and keeps (the endpoint rules, each
# service's model) are botocore's own and never change; a fresh loader parsed them again, 80-140 ms of CPU
# for each client after each reset (the tests reset between settings, the local stack at every start).
_loaders: list[botocore.loaders.Loader] = []
_generation = 0  # bumped by reset_clients: what was built with the old clients is rebuilt
T = TypeVar("T")


def _config(service: str, read_timeout_s: float | None = None) -> Config:
    settings = get_settings()
    return Config(
        # Presigned forms and URLs signed with SigV4: S3 refuses SigV2, botocore's default for a
        # presigned POST in us-east-1, on every bucket created since June 2020.
        signature_version="s3v4" if service == "s3" else None,
        region_name=settings.aws_region,
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        connect_timeout=settings.aws_connect_timeout_s,
        read_timeout=read_timeout_s or settings.aws_read_timeout_s,
        max_pool_connections=32,
    )


@cache
def _cached_client(service: str, endpoint_url: str | None, region: str, read_timeout_s: float | None) -> Any:
    # boto3's default session is not thread-safe while creating clients; clients themselves are.
    with _session_lock:
        if not _sessions:
            _sessions.append(_new_session())
        return _sessions[0].client(service, endpoint_url=endpoint_url, config=_config(service, read_timeout_s))


def _new_session() -> boto3.session.Session:
    core = botocore.session.get_session()
    if _loaders:
        core.register_component("data_loader", _loaders[0])
    session = boto3.session.Session(botocore_session=core)
    loader = core.get_component("data_loader")
    if not _loaders:
        _loaders.append(loader)
    # boto3 adds its own data folder to the loader's search paths at each new session: keep it once.
    loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


def client(service: str, read_timeout_s: float | None = None) -> Any:
    """A cached boto3 client for `service`, honouring the endpoint overrides from settings.

    `read_timeout_s` bounds one call where a service has its own budget (model invocations)."""
    settings = get_settings()
    endpoint = settings.aws_endpoint_url
    if service == "sagemaker-runtime" and settings.sagemaker_runtime_url:
        endpoint = settings.sagemaker_runtime_url
    return _cached_client(service, endpoint, settings.aws_region, read_timeout_s)


def reset_clients() -> None:
    """Forget cached clients (after settings change, in tests and the local stack)."""
    global _generation
    _generation += 1
    with _session_lock:
        _sessions.clear()  # the credentials and settings of now, for the clients made from here on
        _cached_client.cache_clear()


def per_container(build: Callable[[], T]) -> Callable[[], T]:
    """`build()` once per container, on first use (importing a handler connects to nothing), and again
    only when the settings or clients were reset: never in a Lambda container; in the local stack and
    tests, which point the same process at other stores."""
    built: dict[tuple[int, int], T] = {}
    lock = threading.Lock()

    def get() -> T:
        key = (id(get_settings()), _generation)
        with lock:
            if key not in built:
                built.clear()
                built[key] = build()
            return built[key]

    return get


def secret(name: str, max_age: int = 3600) -> str:
    """A Secrets Manager secret's value, kept `max_age` seconds (Powertools' cache), read with this
    module's client. Powertools' get_secret made a session of its own for its client, which parsed the
    endpoint rules and the service's model again: about 0.1 s of CPU at a cold start, and in the tests
    after every reset. Forgotten with the clients (reset_clients) and when the settings change."""
    return str(_secrets().get(name, max_age=max_age))


def _secrets_provider() -> Any:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client("secretsmanager"))


_secrets = per_container(_secrets_provider)
