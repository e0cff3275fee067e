"""Every Lambda function of the platform, declared once: its code, its size, how it is invoked.

CDK (infra/) builds one function per spec, sized as declared, and the local stack (local/)
registers the same names with the same handlers, so both run the same functions. A capability
has several functions over the same library where their timeout, memory or scaling differ: an
API request (API Gateway cuts it at 29 s), indexing an object of up to 50 MB, a backfill page,
a generation job of several image edits.

Each declares its concurrency on purpose (`reserved_concurrency`): every function not behind the
API is capped, so a backfill, a migration or a burst of S3 events cannot take the account's
concurrency from the API functions (asynchronous events over the cap wait in Lambda's queue and
are retried, up to their maximum age); the API functions are not reserved, so they scale with the
account's unreserved pool, bounded by the stage's throttle and the clients' usage plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AsyncDelivery:
    """How an asynchronously invoked function (S3 notifications, `InvocationType=Event`) is retried:
    Lambda tries `retry_attempts` more times, drops events older than `max_event_age_s`, and sends
    what still failed to the function's failure queue (`<name>-failures`)."""

    retry_attempts: int  # 0-2
    max_event_age_s: int  # 60-21600


# The Lambda layers, by what they hold (layers/layers.json lists their packages): every function
# gets `base` and only the others its code imports, which keeps each function within Lambda's
# 250 MB and its cold start short.
MILVUS, OPENSEARCH, PROVIDERS, TOKENS = "milvus", "opensearch", "providers", "tokens"


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # the function's name (locally as is; on AWS prefixed with the stack's stage)
    package: str  # its folder under functions/
    module: str  # the module in that folder whose `lambda_handler` runs
    capability: str
    description: str
    timeout_s: int
    memory_mb: int
    asynchronous: AsyncDelivery | None = None
    layers: tuple[str, ...] = ()  # beyond `base`
    # The metric the function emits for each request it refuses by raising (an authorizer's
    # `Unauthorized`): Lambda counts those as errors, so the errors alarm subtracts them.
    refusals_metric: str | None = None
    # Settings (environment variables of listing_vision.config) this function runs with on AWS beyond
    # the stage's: e.g. provider timeouts that fit API Gateway's 29 s (infra checks it at synth).
    settings: tuple[tuple[str, str], ...] = ()
    # Executions at once on AWS (reserved concurrency) and on the local stack; None: the account's
    # unreserved pool (API functions only). Required, so each function says.
    reserved_concurrency: int | None = field(kw_only=True)

    @property
    def all_layers(self) -> tuple[str, ...]:
        return ("base", *self.layers)

    @property
    def failure_queue(self) -> str | None:
        return f"{self.name}-failures" if self.asynchronous else None


# Every function is released as a version behind this alias, and everything that invokes a function
# (API Gateway, the authorizer, S3 notifications, Step Functions, EventBridge, other functions) names
# the alias, never $LATEST: a release moves the alias (infra/constructs/releases.py).
RELEASE_ALIAS = "live"

# The migration's Map runs at most this many batches at once (context migration_max_concurrency is
# refused above it), each an invocation of the migration function.
MIGRATION_CONCURRENCY = 20

FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "authorizer",
        "authorizer",
        "handler",
        "api",
        "Checks API keys and people's tokens: the caller and its storefronts",
        10,
        256,
        layers=(TOKENS,),
        refusals_metric="KeysRefused",
        reserved_concurrency=None,
    ),
    FunctionSpec(
        "dedupe",
        "dedupe",
        "handler",
        "dedupe",
        "Duplicate check, store and index; presigned uploads",
        29,
        1024,
        layers=(MILVUS,),
        reserved_concurrency=None,
    ),
    FunctionSpec(
        "dedupe-indexer",
        "dedupe",
        "indexer",
        "dedupe",
        "Dedupes and indexes images that reach a storefront bucket without the API",
        300,
        2048,
        AsyncDelivery(retry_attempts=2, max_event_age_s=6 * 3600),
        layers=(MILVUS,),
        reserved_concurrency=10,
    ),
    FunctionSpec(
        "dedupe-backfill",
        "dedupe",
        "backfill",
        "dedupe",
        "Indexes one page of a storefront bucket",
        900,
        2048,
        layers=(MILVUS,),
        reserved_concurrency=2,
    ),
    FunctionSpec(
        "dedupe-reconcile",
        "dedupe",
        "reconcile",
        "dedupe",
        "Compares the catalogue's photos, records and vectors, and repairs them",
        900,
        2048,
        layers=(MILVUS,),
        reserved_concurrency=1,  # one reconcile at a time: two would repair the same findings twice
    ),
    FunctionSpec(
        "caption",
        "caption",
        "handler",
        "captions",
        "Duplicate check, then an LLM caption",
        29,
        1024,
        layers=(MILVUS, PROVIDERS),
        # A reply and its one repair, 12 s each and no SDK retry (a retry may wait out a 429's retry-after
        # of up to 2 minutes): 24 s of the 29, the rest for the duplicate check.
        settings=(("PROVIDER_TIMEOUT_S", "12"), ("PROVIDER_MAX_RETRIES", "0")),
        reserved_concurrency=None,
    ),
    FunctionSpec(
        "generate",
        "generate",
        "handler",
        "generation",
        "Generation jobs: submit, regenerate, status",
        29,
        512,
        reserved_concurrency=None,
    ),
    FunctionSpec(
        "generate-worker",
        "generate",
        "worker",
        "generation",
        "Renders the catalogue images of one generation job",
        900,
        2048,
        AsyncDelivery(retry_attempts=1, max_event_age_s=3600),
        layers=(PROVIDERS,),
        reserved_concurrency=10,
    ),
    FunctionSpec(
        "webhook-delivery",
        "generate",
        "webhook_delivery",
        "generation",
        "Delivers each finished generation run to the storefront's webhooks, signed, with retries",
        # every registration of a storefront at once, each up to WEBHOOK_ATTEMPTS tries of at most
        # WEBHOOK_TIMEOUT_S in all with doubling waits (5 x 10 s + 2+4+8+16 s = 80 s by default); an
        # attempt that would outlast the invocation is left to Lambda's retry of the event
        600,
        256,
        # EventBridge invokes it asynchronously: a crash (not a receiver's failure, which its record
        # keeps) is retried twice, then the event goes to its failure queue
        AsyncDelivery(retry_attempts=2, max_event_age_s=3600),
        reserved_concurrency=5,
    ),
    FunctionSpec(
        "listing-ingest",
        "regenerate",
        "ingest",
        "listings",
        "Ingests listing documents dropped into the uploads bucket",
        900,
        1024,
        AsyncDelivery(retry_attempts=2, max_event_age_s=6 * 3600),
        layers=(OPENSEARCH, PROVIDERS),
        reserved_concurrency=10,
    ),
    FunctionSpec(
        "listing-search",
        "regenerate",
        "search",
        "listings",
        "Searches listings by their split visual features",
        29,
        512,
        layers=(OPENSEARCH,),
        reserved_concurrency=None,
    ),
    FunctionSpec(
        "migration",
        "regenerate",
        "handler",
        "listings",
        "The visual-features migration's tasks",
        900,
        1024,
        layers=(OPENSEARCH, PROVIDERS),  # classify-phrases asks a model
        reserved_concurrency=MIGRATION_CONCURRENCY,
    ),
    FunctionSpec(
        "provision",
        "provision",
        "handler",
        "platform",
        "Creates what CloudFormation does not: the Milvus collection, the listings index, OpenSearch role mappings",
        300,
        512,
        layers=(MILVUS, OPENSEARCH),
        reserved_concurrency=1,  # run by each deploy's trigger, or by hand: never two at once
    ),
)

BY_NAME: dict[str, FunctionSpec] = {spec.name: spec for spec in FUNCTIONS}


def spec(name: str) -> FunctionSpec:
    return BY_NAME[name]
