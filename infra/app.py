"""CDK entry point: `make synth` / `make deploy` (the pinned CDK CLI), or `python -m infra.app`.

Every deployment setting comes from context and is checked first (infra/config.py); the README's
"Deploying" section lists each key. Build inputs: `layers_dir` (build/layers, from `make layer`:
one folder per layer of layers/layers.json) and `clip_model_tarball` (build/clip/model.tar.gz, from
`make clip-model`, for the stage's endpoint mode: the synth refuses the other mode's package).

`make synth` passes `-c synth_only=true`: without a CLIP package it synthesizes with the weight-free
descriptor packaged in its place (build/clip/descriptor-synth-only.tar.gz), and says so loudly, so a
fresh clone synthesizes. `make deploy` never passes it: a deploy needs `make clip-model`, which
refuses the descriptor unless asked (CLIP_DESCRIPTOR=1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from infra import config as deployment
from infra.nag import add_checks
from infra.stack import ListingVisionStack
from serving.clip.package import installs_offline
from serving.clip.targets import target_refusal

ROOT = Path(__file__).resolve().parents[1]


def main(app: cdk.App | None = None) -> None:
    """Synthesize into `app`: by default the CLI's (context and output folder from the environment); the
    tests pass their own, so the synth runs in their process, whose CDK runtime is already loaded."""
    app = app if app is not None else cdk.App()
    context = app.node.try_get_context
    settings = deployment.load(context, ROOT)
    layers_dir = ROOT / (context("layers_dir") or "build/layers")
    tarball = ROOT / (context("clip_model_tarball") or "build/clip/model.tar.gz")
    groups = [name for name in json.loads((ROOT / "layers/layers.json").read_text()) if not name.startswith("//")]
    missing = [name for name in groups if not (layers_dir / name / "python").is_dir()]
    if missing:
        sys.exit(f"The layers {', '.join(missing)} are not built in {layers_dir}: run `make layer` first.")
    if not tarball.is_file():
        if str(context("synth_only")).lower() != "true":
            sys.exit(f"No CLIP model package at {tarball}: run `make clip-model` first.")
        tarball = descriptor_for_synth(tarball)
    elif str(context("synth_only")).lower() != "true" and not installs_offline(tarball):
        sys.exit(
            f"The CLIP model package {tarball} would download its dependencies at start (no wheels in it), "
            "which the endpoint's network isolation forbids: rebuild it with `make clip-model`."
        )
    if refusal := target_refusal(tarball, settings.endpoint_mode):
        sys.exit(refusal)  # its ONNX Runtime is the other mode's (the construct refuses it too)
    ListingVisionStack(
        app,
        f"ListingVision-{settings.stage}",
        config=settings,
        layer_code={name: lambda_.Code.from_asset(str(layers_dir / name)) for name in groups},
        clip_model_tarball=str(tarball),
    )
    add_checks(app)
    app.synth()


def descriptor_for_synth(missing: Path) -> Path:
    """The weight-free descriptor, packaged as the endpoint's model for a synth that has no CLIP
    package (never for a deploy: the template would serve it as CLIP)."""
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL
    from serving.clip.package import build

    stand_in = build(DESCRIPTOR_MODEL, ROOT / "build/clip/descriptor-synth-only.tar.gz", allow_descriptor=True)
    print(
        f"\n*** NOTE: no CLIP model package at {missing}. This synth packages the weight-free descriptor in its "
        f"place ({stand_in.relative_to(ROOT)}), so the template is complete; do not deploy this cdk.out. "
        "`make deploy` needs `make clip-model` (real CLIP, or CLIP_DESCRIPTOR=1 on purpose). ***\n",
        file=sys.stderr,
    )
    return stand_in


if __name__ == "__main__":
    main()
