"""CDK entry point: `npx cdk synth` (see Makefile) or `python -m infra.app`."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from infra.nag import add_checks
from infra.stack import ListingVisionStack

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    app = cdk.App()
    stage = app.node.try_get_context("stage") or "dev"
    layer_dir = ROOT / (app.node.try_get_context("layer_dir") or "build/layer")
    if not (layer_dir / "python").is_dir():
        sys.exit(f"The common layer is not built at {layer_dir}: run `make layer` first.")
    stack = ListingVisionStack(
        app, f"ListingVision-{stage}", layer_code=lambda_.Code.from_asset(str(layer_dir)), stage=stage
    )
    add_checks(app, stack, list(stack.storage.buckets.values()))
    app.synth()


if __name__ == "__main__":
    main()
