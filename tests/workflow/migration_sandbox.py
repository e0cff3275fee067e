"""The migration workflow tests' sandbox: a private listings index and cache table behind fault
proxies, and a state machine synthesized from the CDK construct whose tasks run the real
operations against them (the `sandbox` fixture; test modules re-export it by name)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config
from opensearchpy import OpenSearch

from infra.constructs.migration import MigrationOptions
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.events import parse_event
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.migration_tasks import MigrationTask, run_task
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitRecords
from listing_vision.realestate.vision_cache import VisionCache
from local.stack import LocalStack
from local.workflow import create_state_machine, synthesize_definition
from tests.demo_migration import run_execution
from tests.demo_stores import demo_stores, phrase_table
from tests.faults import (
    FaultProxy,
)

LISTINGS = 40


@dataclass
class Sandbox:
    """A private listings index and cache table, reached through fault proxies, and a state
    machine whose tasks run the real operations against them."""

    index: str
    table: str
    dynamodb_proxy: FaultProxy
    opensearch_proxy: FaultProxy
    machine_arn: str
    phrases: str
    raised: list[str] = field(default_factory=list)  # errors the tasks raised, in order
    log: list[str] = field(default_factory=list)  # "task OPERATION" as each task starts (and what a test adds)
    before: dict[str, Callable[[], None]] = field(default_factory=dict)  # run once as the task OPERATION starts

    def migration(self) -> Migration:
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.dynamodb_proxy.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"mode": "standard", "total_max_attempts": 2}),
        )
        search = OpenSearch(
            hosts=[self.opensearch_proxy.url],
            max_retries=2,
            retry_on_status=(429, 502, 503, 504),
            retry_on_timeout=True,
        )
        return Migration(
            ListingsIndex(search, self.index),
            VisionCache(table=self.table, client=client, sleep=lambda s: None),
            PhraseStore(table=self.phrases),
            get_settings().artifacts_bucket,
            SplitRecords(client=client, sleep=lambda s: None),  # keyed by this private index
        )

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        described = run_execution(self.machine_arn, payload)
        history = aws.client("stepfunctions").get_execution_history(
            executionArn=described["executionArn"], maxResults=1000
        )
        return described | {"history": history["events"]}


@pytest.fixture
def sandbox(local_stack: LocalStack) -> Iterator[Sandbox]:
    index, table = demo_stores("listings", LISTINGS, seed=11)
    dynamodb_proxy = FaultProxy(local_stack.moto_url).start()
    opensearch_proxy = FaultProxy(local_stack.opensearch_url).start()
    suffix = index.rsplit("-", 1)[-1]
    function = f"regenerate-{suffix}"
    box = Sandbox(index, table, dynamodb_proxy, opensearch_proxy, "", phrase_table())

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        box.log.append(f"task {event.get('operation')}")
        hook = box.before.pop(str(event.get("operation")), None)
        if hook:
            hook()
        try:
            return run_task(parse_event(event, MigrationTask), box.migration())
        except Exception as error:  # observed for the assertions, then raised as Lambda would
            box.raised.append(type(error).__name__)
            raise

    local_stack.router.register(
        function, handler
    )  # private stores: the deployed function's calls are recorded elsewhere
    # One poisoned batch of 8 is within the tolerance (moto does not apply it: local/workflow.py)
    options = MigrationOptions(batch_retry_attempts=2, retry_interval_s=1, tolerated_failure_percentage=25)
    box.machine_arn = create_state_machine(
        f"migration-{suffix}", synthesize_definition(function, local_stack.settings.artifacts_bucket, options)
    )
    yield box
    dynamodb_proxy.stop()
    opensearch_proxy.stop()


def dynamodb_batch_get(zpid: str):
    """BatchGetItem requests reading this listing's images."""
    return lambda method, path, headers, body: (
        headers.get("X-Amz-Target", "").endswith(".BatchGetItem") and f"/{zpid}/".encode() in body
    )


def sources(box: Sandbox) -> dict[str, dict[str, Any]]:
    migration = box.migration()
    migration.listings.refresh()
    hits = migration.listings.client.search(index=box.index, size=1000)["hits"]["hits"]
    return {doc["_id"]: doc["_source"] for doc in hits}
