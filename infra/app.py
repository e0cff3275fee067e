"""CDK entry point: `make synth` / `make deploy` (the pinned CDK CLI), or `python -m infra.app`.

Every deployment setting comes from context and is checked first (infra/config.py); the README's
"Deploying" section lists each key. Build inputs: `layer_dir` (build/layer, from `make layer`) and
`clip_model_tarball` (build/clip/model.tar.gz, from `make clip-model`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from infra import config as deployment
from infra.nag import add_checks
from infra.stack import ListingVisionStack

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    app = cdk.App()
    context = app.node.try_get_context
    settings = deployment.load(context, ROOT)
    layer_dir = ROOT / (context("layer_dir") or "build/layer")
    tarball = ROOT / (context("clip_model_tarball") or "build/clip/model.tar.gz")
    if not (layer_dir / "python").is_dir():
        sys.exit(f"The common layer is not built at {layer_dir}: run `make layer` first.")
    if not tarball.is_file():
        sys.exit(f"No CLIP model package at {tarball}: run `make clip-model` first.")
    ListingVisionStack(
        app,
        f"ListingVision-{settings.stage}",
        config=settings,
        layer_code=lambda_.Code.from_asset(str(layer_dir)),
        clip_model_tarball=str(tarball),
    )
    add_checks(app)
    app.synth()


if __name__ == "__main__":
    main()
