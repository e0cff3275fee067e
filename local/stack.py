"""The local stack: moto, osmem-server and Milvus Lite in one process tree, the stores the
platform needs, and an HTTP gateway that hands each request to the real Lambda handlers.

    with LocalStack(state_dir=Path(".local-state"), port=8000) as stack:
        print(stack.url)

Used by `make run` (through `python -m local`), by the integration tests and by the benchmarks.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from osmem_server import OsmemServer

from functions.specs import FUNCTIONS
from listing_vision import aws
from listing_vision import storefronts as declaration
from listing_vision.config import Settings, get_settings
from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL
from listing_vision.jewelry.vector_index import close_clients, milvus_client
from listing_vision.realestate.listings_index import opensearch_client
from listing_vision.resources import MIGRATION_STATE_MACHINE, TABLES
from listing_vision.storefronts import StorefrontSpec
from local import atomic_dynamodb, snapshot, state_lock
from local.aws_limits import AwsLimits
from local.call_recorder import CallRecorder
from local.cdn import LocalCdn
from local.event_rules import EventRules
from local.gateway import Gateway
from local.lambda_runtime import LambdaRouter
from local.provision import (
    LOCAL_SECRETS,
    bucket_names,
    create_local_secrets,
    provision,
    register_functions,
    table_names,
)
from local.s3_post_policy import PolicyCheckingMotoServer
from local.servers import shut_down, start_opensearch, stop_together
from local.store_writes import SavesWhenWritten, opensearch_writes
from local.workflow import create_state_machine, synthesize_definition
from serving.clip.container import ContainerServer

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
# The emulators take any credentials; these are the ones the local S3 checks presigned forms against.
LOCAL_CREDENTIALS = ("local", "local")


@dataclass
class LocalStack:
    """Start with `start()` (or `with`), stop with `stop()`; ports 0 pick free ones."""

    state_dir: Path
    port: int = 8000
    moto_port: int = 0
    opensearch_port: int = 0
    host: str = "127.0.0.1"
    keep_snapshot: bool = True
    # Seconds between snapshots while running (0: only at a clean stop): a killed process loses at
    # most the writes of the last interval (LOCAL_SNAPSHOT_INTERVAL_S)
    snapshot_interval_s: float = 5.0
    log_requests: bool = True
    demo_listings: int = 0  # load this many demo listings when the listings index is empty
    url: str = ""
    moto_url: str = ""
    opensearch_url: str = ""
    router: LambdaRouter = field(default_factory=LambdaRouter)
    restored: dict[str, int] = field(default_factory=dict)
    demo_loaded: dict[str, int] = field(default_factory=dict)
    reconciled: dict[str, Any] = field(default_factory=dict)
    migration_arn: str = ""
    provisioned: dict[str, Any] = field(default_factory=dict)
    # Start with only what CloudFormation creates: no Milvus collection, no listings index (the
    # deploy's provisioning not run yet); `provision_stores()` runs it later
    skip_provisioning: bool = False
    # What the provisioning run at start did (a later provision_stores() returns its own report: tests
    # share a stack, and one that provisions again must not change what another reads of the start)
    provisioning: dict[str, str] = field(default_factory=dict)
    _moto: PolicyCheckingMotoServer | None = None
    _osmem: OsmemServer | None = None
    _http: Any = None
    gateway: Gateway | None = None
    record_calls: bool = False  # record every AWS call the functions make (local/call_recorder.py)
    auth: bool = False  # API keys checked by the authorizer, one client per storefront (printed at start)
    client_keys: dict[str, str] = field(default_factory=dict)
    recorder: CallRecorder | None = None
    _container: ContainerServer | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _limits: AwsLimits | None = None
    _event_rules: EventRules = field(default_factory=EventRules)
    _snapshots: snapshot.Snapshots | None = None
    _saves: SavesWhenWritten | None = None  # a save skipped while nothing was written
    replayed: int = 0  # asynchronous events a killed run left undelivered, delivered at this start
    # The storefronts (the stage context's declaration, listing_vision.storefronts); None: cdk.json's
    storefronts: list[StorefrontSpec] | None = None
    # Links to catalogue and generated images (`image_links`): `cdn` URLs are served by `cdn` (local/cdn.py)
    image_links: str = "presigned"
    cdn_port: int = 0  # 0: a free one (`python -m local` keeps one, so links outlive a restart)
    cdn: LocalCdn | None = None
    _lock: state_lock.StateLock | None = None  # the state folder's, held from start() to stop()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> LocalStack:
        started = time.monotonic()
        self.state_dir = self.state_dir.resolve()
        self._lock = state_lock.StateLock(self.state_dir).acquire()  # first: a folder in use refuses before any port
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request otherwise
        atomic_dynamodb.install()  # conditional writes atomic, as on DynamoDB
        self._moto = PolicyCheckingMotoServer(
            dict([LOCAL_CREDENTIALS]), ip_address=self.host, port=self.moto_port, verbose=False
        )
        self._moto.start()
        moto_host, moto_port = self._moto.get_host_and_port()
        self.moto_url = f"http://{moto_host}:{moto_port}"
        requests.post(f"{self.moto_url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
        self._osmem = start_opensearch(f"{self.host}:{self.opensearch_port}")
        self.opensearch_url = self._osmem.url
        self._container = self._start_clip_container()
        self.cdn = LocalCdn(self.host, self.cdn_port).start()  # CloudFront's stand-in: its URLs go into CDN_URLS
        self._configure_environment(moto_port)
        self._limits = AwsLimits(
            {getattr(self.settings, spec.name_setting): spec.partition_key for spec in TABLES}
        )  # S3's 2 KB metadata, DynamoDB's 2,048-byte keys: refused as AWS refuses them
        self._limits.install()
        aws.reset_clients()
        if self.record_calls:
            self.recorder = CallRecorder()
            self.recorder.install()
            aws.reset_clients()  # clients made from now on carry the recorder's hook
        for spec in FUNCTIONS:
            self.router.register_spec(spec)
        self.router.journal = self.state_dir / "lambda-queue"  # durable, as Lambda's queue is
        # a delivered event's entry stays until a snapshot holds its effects (the stores are saved now and then)
        self.router.hold_until_saved = self.keep_snapshot
        self.router.install()
        self._event_rules.install(self.router)  # EventBridge rules that target functions
        create_local_secrets(self.settings)  # before Milvus: its client reads the token from Secrets Manager
        self.provisioned = provision(self.settings)  # what CloudFormation creates on AWS
        register_functions(self.settings)
        self.migration_arn = create_state_machine(
            MIGRATION_STATE_MACHINE, synthesize_definition("migration", self.settings.artifacts_bucket)
        )
        if not self.skip_provisioning:
            self.provisioning = self.provision_stores()  # what the deploy's provisioning trigger creates on AWS
        restored_objects: snapshot.ObjectCache = {}
        self.restored = snapshot.restore(self.state_dir, opensearch_client(), restored_objects)
        if not self.skip_provisioning:
            self.demo_loaded = self._load_demo_if_empty()
            # The catalogue as the last run left it, put back into agreement (an hourly schedule on AWS)
            self.reconciled = self.router.call("dedupe-reconcile", {})
        self.replayed = self.router.replay_journal()  # what a killed run accepted and never delivered
        if self.keep_snapshot:
            self._saves = SavesWhenWritten(self.store_writes)
            self._snapshots = snapshot.Snapshots(self._save_snapshot, self.snapshot_interval_s, restored_objects)
            self._snapshots.start()
        if self.auth:
            self.client_keys = self._storefront_clients()
        self.gateway = gateway = self.api_gateway(self.auth)
        self._http = gateway.serve(self.host, self.port)
        self.url = f"http://{self.host}:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, name="gateway", daemon=True).start()
        self.startup_s = time.monotonic() - started
        return self

    def provision_stores(self) -> dict[str, str]:
        """The deploy's provisioning: its function (functions/provision), run as the deploy's trigger runs
        it; the only way the local stack gets its Milvus collection and listings index. Returns what
        each step did (`aws lambda invoke --function-name provision` against moto runs it too)."""
        report: dict[str, str] = self.router.call("provision", {})["provisioned"]
        return report

    def api_gateway(self, auth: bool, console_config: dict[str, Any] | None = None) -> Gateway:
        """The API in front of this stack's functions; with `auth`, every request needs a client's key
        (the authorizer function), the OpenAPI document and its Swagger UI too, as on AWS; only the
        local /health probe (no AWS counterpart) and the review console's static files answer without one."""
        from local.console_site import console_routes

        # photos are presigned URLs to moto's S3, or the local CDN's (image_links cdn)
        sign_in = ((console_config or {}).get("signIn") or {}).get("domain")
        images = (self.moto_url, *((self.cdn.url,) if self.cdn else ()))
        console = console_routes(images, config=console_config, connect_origins=(sign_in,) if sign_in else ())
        return Gateway(
            self.router.call,
            extra_routes={"/health": self.health, "/openapi.json": self.openapi, "/swagger": self.swagger, **console},
            log_requests=self.log_requests,
            authorizer="authorizer" if auth else None,
            open_paths=frozenset({"/health", *console}),  # the console's files hold no secret
            cors_origins=tuple(get_settings().console_origins),  # none by default: the console is this origin
        )

    def _start_clip_container(self) -> ContainerServer:
        """The CLIP serving code behind the SageMaker container contract, as the endpoint runs it:
        every function embeds through boto3's sagemaker-runtime, as on AWS. It serves CLIP_MODEL_PATH
        when set, else the shipped weight-free descriptor; on CPU, by permission."""
        model_dir = self.state_dir / "clip-model"
        model_dir.mkdir(exist_ok=True)
        source = Path(os.environ.get("CLIP_MODEL_PATH") or DESCRIPTOR_MODEL)
        shutil.copyfile(source, model_dir / "model.onnx")
        self._saved_env.setdefault("CLIP_ALLOW_CPU", os.environ.get("CLIP_ALLOW_CPU"))
        os.environ["CLIP_ALLOW_CPU"] = "true"
        return ContainerServer(str(model_dir), host=self.host, port=0).start()

    def _storefront_clients(self) -> dict[str, str]:
        """One API client per storefront, made at each start (keys are shown once, here)."""
        from listing_vision.api.clients import ApiClients

        clients = ApiClients()
        existing = {client.client_id for client in clients.list()}
        keys = {}
        for website in self.settings.storefront_names:
            name = f"local-{website}-{int(time.time())}" if f"local-{website}" in existing else f"local-{website}"
            keys[website], _ = clients.create(name, (website,))
        return keys

    def _load_demo_if_empty(self) -> dict[str, int]:
        if self.demo_listings <= 0:
            return {}
        search = opensearch_client()
        if search.count(index=self.settings.listings_index)["count"] > 0:
            return {}
        from local import demo_listings as demo

        print(f"Loading {self.demo_listings:,} demo listings and their vision cache ...", flush=True)
        return demo.load(self.demo_listings)

    def stop(self) -> dict[str, int]:
        """Stop everything; returns what the snapshot saved (empty when nothing was saved)."""
        saved: dict[str, int] = {}
        self.router.drain(timeout_s=30)
        # The servers that answer clients (the API, the CDN, the CLIP container) stop together, before the
        # snapshot (which reads none of them): each notices its stop only at its next poll, half a second
        stops = [server.stop for server in (self.cdn, self._container) if server is not None]
        stops += [partial(shut_down, self._http)] if self._http is not None else []
        stop_together(*stops)
        self._http = self.cdn = self._container = None
        if self._snapshots is not None:
            saved = self._snapshots.stop()
            self._snapshots = None
        close_clients()
        if self.recorder is not None:
            self.recorder.uninstall()
        if self._osmem is not None:
            self._osmem.close()
            self._osmem = None
        self._event_rules.uninstall()
        self.router.uninstall()
        if self._moto is not None:
            with suppress(requests.RequestException):
                requests.post(f"{self.moto_url}/moto-api/reset", timeout=10)
            self._moto.stop()
            self._moto = None
        atomic_dynamodb.uninstall()
        if self._limits is not None:
            self._limits.uninstall()
            self._limits = None
        self._restore_environment()
        if self._lock is not None:  # last: the folder is free once everything that wrote to it stopped
            self._lock.release()
        return saved

    def _save_snapshot(self, cache: snapshot.ObjectCache) -> dict[str, int]:
        started_at = time.time()  # no later than the snapshot's own start: what was delivered before is in it
        assert self._saves is not None  # made with the snapshots, in start()
        counts, _ = self._saves.save(
            lambda: snapshot.save(
                self.state_dir,
                bucket_names(self.settings),
                table_names(self.settings),
                opensearch_client(),
                [self.settings.listings_index],
                cache,
            )
        )
        self.router.saved(started_at)
        return counts

    def store_writes(self, indices: list[str] | None = None) -> tuple[int, str]:
        """The saved stores' write counters (local/store_writes.py): equal, nothing was written between;
        OpenSearch's of `indices` (default: those the snapshot saves)."""
        assert self._moto is not None
        indices = [self.settings.listings_index] if indices is None else indices
        return self._moto.writes.writes, opensearch_writes(opensearch_client(), indices)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- environment --------------------------------------------------------------------------
    def environment(self, moto_port: int) -> dict[str, str]:
        """What the handlers see: every client pointed at the emulators, no real credentials."""
        return {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS[0],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS[1],
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MOTO_PORT": str(moto_port),  # moto's Step Functions interpreter calls Lambda here
            "OPENSEARCH_URL": self.opensearch_url,
            "MILVUS_CLIENT_URI": str(self.state_dir / "milvus.db"),
            "MILVUS_TOKEN_SECRET": LOCAL_SECRETS["milvus_token_secret"][0],
            "SAGEMAKER_ENDPOINT_NAME": "clip",
            "SAGEMAKER_RUNTIME_URL": self._container.url if self._container else "",
            "POWERTOOLS_TRACE_DISABLED": "true",
            # The local receivers are loopback servers; on AWS (the default) a loopback URL is refused
            "WEBHOOK_ALLOW_LOOPBACK": "true",
            # Retries waited in seconds, as the local Lambda runtime's: a receiver gone away costs 7.5 s, not 30
            "WEBHOOK_BACKOFF_S": "0.5",
            "API_AUTH": "api_keys" if self.auth else "none",
            "POWERTOOLS_SERVICE_NAME": "listing-vision-local",
            # The same declaration CDK reads, with the local bucket names
            "STOREFRONTS": declaration.runtime_value(self._storefronts(), declaration.local_bucket),
            "IMAGE_LINKS": self.image_links,
            "CDN_URLS": json.dumps(self.cdn.base_urls(self._image_buckets()) if self.cdn else {}),
        }

    def _storefronts(self) -> list[StorefrontSpec]:
        return self.storefronts if self.storefronts is not None else declaration.declared()

    def _image_buckets(self) -> list[str]:
        """The buckets a CDN serves: each storefront's, and the generated images' (local names)."""
        storefronts = [declaration.local_bucket(spec) for spec in self._storefronts()]
        return [*storefronts, Settings().generated_bucket]

    def _configure_environment(self, moto_port: int) -> None:
        for name, value in self.environment(moto_port).items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        get_settings.cache_clear()
        aws.reset_clients()

    def _restore_environment(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        get_settings.cache_clear()
        aws.reset_clients()

    @property
    def settings(self) -> Settings:
        return get_settings()

    # --- the API's OpenAPI document and its Swagger UI (functions/openapi.py) ---------------------
    def openapi(self) -> tuple[int, dict[str, Any] | str]:
        from functions.openapi import document

        return 200, document()

    def swagger(self) -> tuple[int, dict[str, Any] | str]:
        from functions.openapi import document, swagger_html

        return 200, swagger_html(document())

    # --- health -------------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        """Each component answers a real request; 503 when any does not."""
        checks: dict[str, str] = {}

        def check(name: str, probe: Any) -> None:
            try:
                probe()
                checks[name] = "ok"
            except Exception as error:  # noqa: BLE001 - reported, not raised
                checks[name] = f"error: {error}"

        settings = self.settings
        check("s3", lambda: aws.client("s3").head_bucket(Bucket=settings.bucket_for(settings.default_storefront)))
        check("dynamodb", lambda: aws.client("dynamodb").describe_table(TableName=settings.jobs_table))
        check("stepfunctions", lambda: aws.client("stepfunctions").list_state_machines(maxResults=1))
        check("opensearch", lambda: opensearch_client().indices.get(index=settings.listings_index))
        check("milvus", lambda: milvus_client().get_collection_stats(settings.milvus_collection))
        healthy = all(state == "ok" for state in checks.values())
        return (200 if healthy else 503), {"status": "ok" if healthy else "degraded", "components": checks}

    def describe(self) -> str:
        """What a person can do next, printed by `make run`."""
        lines = [
            f"Local stack up in {self.startup_s:.1f} s.",
            f"  API gateway   {self.url}          (health: {self.url}/health)",
            f"  Console       {self.url}/console/ (review in the browser: uploads, catalogue, generation)",
            f"  AWS (moto)    {self.moto_url}     S3, DynamoDB, Step Functions, Lambda",
            f"  CDN           {self.cdn.url if self.cdn else '-'}     image links: {self.image_links}",
            f"  OpenSearch    {self.opensearch_url}",
            f"  Milvus Lite   {self.settings.milvus_client_uri}",
            f"  State folder  {self.state_dir}",
        ]
        if self.skip_provisioning:
            lines.append(
                "  Provisioning  skipped: no Milvus collection, no listings index; the API answers 503 "
                "not_provisioned until its provisioning function runs (`aws lambda invoke --function-name provision`, "
                "AWS_ENDPOINT_URL as below)"
            )
        if self.restored:
            lines.append("  Restored      " + json.dumps(self.restored))
        repaired = {k: v for r in self.reconciled.get("reports", []) for k, v in r["repaired"].items()}
        if repaired:
            lines.append("  Reconciled    " + json.dumps(repaired))
        if self.replayed:
            lines.append(
                f"  Redelivered   {self.replayed} asynchronous events the last run accepted and did not run "
                "(or ran after its last snapshot)"
            )
        if self.client_keys:
            lines.append("  API keys      " + ", ".join(f"{site}: {key}" for site, key in self.client_keys.items()))
        if self.demo_loaded:
            lines.append(
                f"  Demo data     {self.demo_loaded['listings']:,} listings in {self.settings.listings_index}, "
                f"{self.demo_loaded['cache_items']:,} cached analyses in {self.settings.vision_cache_table}"
            )
        lines += [
            "",
            "Try:",
            f"  curl {self.url}/health",
            f"  curl -F file=@tests/data/photos/image1.jpg {self.url}/image_similarity_search"
            + (f" -H 'x-api-key: {self.client_keys[self.settings.default_storefront]}'" if self.client_keys else ""),
            "  AWS_ENDPOINT_URL=" + self.moto_url + " AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \\",
            "    aws s3 ls   # or any boto3 code: every AWS call goes to the emulators",
            "",
            "Ctrl-C stops everything and saves S3, DynamoDB and OpenSearch to the state folder (also saved every "
            f"{self.snapshot_interval_s:g} s while anything is written: a killed run loses at most that).",
        ]
        return "\n".join(lines)
