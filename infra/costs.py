"""What the CLIP endpoint costs in each endpoint mode, read from the synthesized templates.

`python -m infra.costs` synthesizes the endpoint of the example dev stage (infra/stages/dev.example.json)
once per mode, reads from each template what is billed (instance type and minimum count, or the
serverless memory), prices it with PRICES and prints the table of docs/deploying.md; `--write-readme`
writes it between the `endpoint-costs` markers there. tests/infra checks the page is current.

Usage-priced figures (the serverless mode) follow the assumptions in USAGE; instance-priced modes
cost their idle price at these upload rates, since one instance serves far more (measured: ViT-B/32
on 4 CPU threads embeds about 50 images/s, a catalogue receives about 1 upload/s at 100,000 a day).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOURS_PER_MONTH = 730
DAYS_PER_MONTH = 30
MODES = ("realtime_gpu", "realtime_cpu", "serverless_cpu")
UPLOAD_RATES = (1_000, 100_000)  # uploads a day

# On-demand SageMaker AI prices in us-east-1, from https://aws.amazon.com/sagemaker/pricing/ (real-time
# inference instance hours; serverless inference per second of a memory size, and per GB processed),
# as recorded on 2026-12-06 from the page's figures as quoted in October 2025; not re-read since.
# Check the page for your region before budgeting.
PRICES_SOURCE = "aws.amazon.com/sagemaker/pricing, us-east-1 on-demand, recorded 2026-12-06"
INSTANCE_HOURLY_USD = {"ml.g5.xlarge": 1.408, "ml.c6i.xlarge": 0.204}
SERVERLESS_USD_PER_GB_SECOND = 0.0000200  # 6,144 MB: $0.00012 a second
SERVERLESS_USD_PER_GB_PROCESSED = 0.016  # data in plus data out


@dataclass(frozen=True)
class Usage:
    """What one upload costs the model side (assumptions, stated in the README under the table)."""

    invocations: int = 2  # describe (embedding and features), then verify against the candidates
    # Billed seconds an invocation on 6 GB serverless (about 4 vCPUs): the host path measured at 92 images/s
    # on 2 cores (README, Benchmarks: ~22 CPU-ms an image with features) plus ViT-B/32 on CPU at 50 images/s
    # on 4 threads (issue 26, 20 ms an image) is ~30 ms for one image; 0.1 s leaves 3× for a one-image batch,
    # the verify call and a slower serverless CPU share. Measured 2026-12-06 on this repository's 2-core CI host
    # under load (load average ~10): the handler's describe of one upload as Lambda sends it (65 KB, features)
    # on the descriptor, median of 21, took 77 ms, so ~0.1 s with ViT-B/32's 20 ms. An assumption for
    # serverless's CPUs, not a serverless measurement.
    seconds_per_invocation: float = 0.1
    megabytes_processed: float = 0.5  # a 1,024 px JPEG in, its features (~60 KB) out, the verify request


USAGE = Usage()


@dataclass(frozen=True)
class Billed:
    """What a mode's template provisions, as billed."""

    mode: str
    instance_type: str | None
    min_instances: int
    serverless_memory_mb: int | None

    @property
    def idle_per_month(self) -> float:
        if self.instance_type is None:
            return 0.0
        return INSTANCE_HOURLY_USD[self.instance_type] * self.min_instances * HOURS_PER_MONTH

    def per_month(self, uploads_a_day: int, usage: Usage = USAGE) -> float:
        if self.serverless_memory_mb is None:
            return self.idle_per_month  # one instance serves these rates; autoscaling adds more at peaks
        uploads = uploads_a_day * DAYS_PER_MONTH
        gb_seconds = uploads * usage.invocations * usage.seconds_per_invocation * self.serverless_memory_mb / 1024
        data_gb = uploads * usage.megabytes_processed / 1024
        return gb_seconds * SERVERLESS_USD_PER_GB_SECOND + data_gb * SERVERLESS_USD_PER_GB_PROCESSED


def billed(template: dict[str, Any], mode: str) -> Billed:
    """Read what is billed from a synthesized template: the endpoint config's variant, and the
    autoscaling target's minimum where there is one."""
    resources = template["Resources"].values()
    (config,) = [r for r in resources if r["Type"] == "AWS::SageMaker::EndpointConfig"]
    (variant,) = config["Properties"]["ProductionVariants"]
    serverless = variant.get("ServerlessConfig")
    if serverless:
        return Billed(mode, None, 0, int(serverless["MemorySizeInMB"]))
    targets = [r for r in resources if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"]
    minimum = int(targets[0]["Properties"]["MinCapacity"]) if targets else int(variant["InitialInstanceCount"])
    return Billed(mode, str(variant["InstanceType"]), minimum, None)


def synthesize_endpoint(mode: str, root: Path, package: Path | None = None) -> dict[str, Any]:
    """The endpoint of the example dev stage in `mode`, synthesized alone (the rest of the stack bills
    by use and does not depend on the mode), with `package` as its model (default: a stand-in)."""
    import aws_cdk as cdk

    from infra.config import validate
    from infra.constructs.clip_endpoint import ClipEndpoint, endpoint_options

    settings = {k: v for k, v in json.loads((root / "infra/stages/dev.example.json").read_text()).items()}
    settings = {k: v for k, v in settings.items() if not k.startswith("//")}
    settings["endpoint_mode"] = mode
    if mode != "serverless_cpu":
        settings.pop("clip_serverless_max_concurrency", None)
    config = validate(settings)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = package or Path(tmp) / "model.tar.gz"
        if package is None:
            tarball.write_bytes(b"not read to synthesize")
        app = cdk.App(outdir=str(Path(tmp) / "cdk.out"))
        stack = cdk.Stack(app, f"Costs-{mode.replace('_', '-')}")
        ClipEndpoint(stack, "Clip", model_tarball=str(tarball), options=endpoint_options(config))
        return dict(app.synth().get_stack_by_name(stack.stack_name).template)


def cost_table(root: Path | None = None) -> str:
    root = root or Path(__file__).resolve().parents[1]
    rows = [
        "| endpoint_mode | instance type | minimum instances | serverless memory | idle per month | "
        + " | ".join(f"{rate:,} uploads a day, per month" for rate in UPLOAD_RATES)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(UPLOAD_RATES),
    ]
    for mode in MODES:
        b = billed(synthesize_endpoint(mode, root), mode)
        memory = f"{b.serverless_memory_mb:,} MB" if b.serverless_memory_mb else "—"
        rows.append(
            f"| `{mode}` | {b.instance_type or '— (serverless)'} | {b.min_instances} | {memory} | "
            f"${b.idle_per_month:,.2f} | " + " | ".join(f"${b.per_month(rate):,.2f}" for rate in UPLOAD_RATES) + " |"
        )
    rows.append("")
    rows.append(
        f"Prices: {PRICES_SOURCE} ({', '.join(f'{k} ${v}/h' for k, v in INSTANCE_HOURLY_USD.items())}; serverless "
        f"${SERVERLESS_USD_PER_GB_SECOND:.7f} per GB-second and ${SERVERLESS_USD_PER_GB_PROCESSED} per GB processed), "
        f"{HOURS_PER_MONTH} hours and {DAYS_PER_MONTH} days a month. Serverless usage: {USAGE.invocations} "
        f"invocations an upload of {USAGE.seconds_per_invocation} s each (assumed, infra/costs.py) and "
        f"{USAGE.megabytes_processed} MB processed an upload; cold starts are not billed."
    )
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    from listing_vision.config import replace_between_markers

    if sys.argv[1:2] == ["--write-readme"]:
        page = sys.argv[2] if len(sys.argv) > 2 else "docs/deploying.md"
        replace_between_markers(page, "endpoint-costs", cost_table())
    else:
        print(cost_table())
