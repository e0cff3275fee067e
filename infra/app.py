"""CDK entry point: `make synth` / `make deploy` (the pinned CDK CLI), or `python -m infra.app`.

Context (`-c key=value` or cdk.json): `stage` (dev; `prod` retains data), `layer_dir`
(build/layer), `clip_model_tarball` (build/clip/model.tar.gz), `clip_instance_type`
(ml.g5.xlarge), `clip_image_uri` (the PyTorch GPU inference DLC), `clip_max_instances` (4),
`clip_fp16` (false), `opensearch_endpoint`, `opensearch_domain_arn`, `migration_max_concurrency`
(10), `migration_tolerated_failure_percentage` (5), `milvus_uri`, `milvus_collection`,
`milvus_token_secret` (a Secrets Manager secret name holding the Milvus/Zilliz token),
`openai_key_secret`, `anthropic_key_secret` (secret names holding the provider keys).
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from infra.constructs.clip_endpoint import EndpointOptions
from infra.constructs.migration import MigrationOptions
from infra.nag import add_checks
from infra.stack import ListingVisionStack, MilvusConnection, OpenSearchDomain, ProviderSecrets

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    app = cdk.App()
    context = app.node.try_get_context
    stage = context("stage") or "dev"
    layer_dir = ROOT / (context("layer_dir") or "build/layer")
    tarball = ROOT / (context("clip_model_tarball") or "build/clip/model.tar.gz")
    if not (layer_dir / "python").is_dir():
        sys.exit(f"The common layer is not built at {layer_dir}: run `make layer` first.")
    if not tarball.is_file():
        sys.exit(f"No CLIP model package at {tarball}: run `make clip-model` first.")
    defaults = EndpointOptions()
    options = EndpointOptions(
        instance_type=context("clip_instance_type") or defaults.instance_type,
        image_uri=context("clip_image_uri") or defaults.image_uri,
        max_instances=int(context("clip_max_instances") or defaults.max_instances),
        fp16=str(context("clip_fp16") or "false").lower() == "true",
    )
    stack = ListingVisionStack(
        app,
        f"ListingVision-{stage}",
        layer_code=lambda_.Code.from_asset(str(layer_dir)),
        stage=stage,
        clip_model_tarball=str(tarball),
        clip_options=options,
        milvus=MilvusConnection(
            uri=context("milvus_uri") or MilvusConnection.uri,
            collection=context("milvus_collection") or MilvusConnection.collection,
            token_secret_name=context("milvus_token_secret"),
        ),
        opensearch=OpenSearchDomain(
            endpoint=context("opensearch_endpoint") or OpenSearchDomain.endpoint,
            domain_arn=context("opensearch_domain_arn") or OpenSearchDomain.domain_arn,
        ),
        providers=ProviderSecrets(
            openai_key_secret=context("openai_key_secret"), anthropic_key_secret=context("anthropic_key_secret")
        ),
        migration_options=MigrationOptions(
            max_concurrency=int(context("migration_max_concurrency") or MigrationOptions.max_concurrency),
            tolerated_failure_percentage=int(
                context("migration_tolerated_failure_percentage") or MigrationOptions.tolerated_failure_percentage
            ),
        ),
    )
    add_checks(app, stack, list(stack.storage.buckets.values()), stack.nag_acknowledgements())
    app.synth()


if __name__ == "__main__":
    main()
