"""The GPU serving tables of docs/benchmarks.md, generated from the raw results of `bench/gpu_serving.py`.

    python -m bench.gpu_report                 # print the tables
    python -m bench.gpu_report --write-readme  # replace them in docs/benchmarks.md

The results are the JSON lines a GPU run wrote, kept in `bench/gpu/` (no GPU in CI: these are the
record of the runs, not a test).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "gpu"
RUNS = ("h200-2026-12-04-run1.jsonl", "h200-2026-12-04-run2.jsonl")


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (RESULTS / name).read_text().splitlines() if line.strip()]


def _one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    (row,) = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return row


def handler_table(rows: list[dict[str, Any]]) -> str:
    """Run 2: model-server layouts against the handler as it was, both in that run."""
    lines = [
        "| vCPUs | workers × threads | request | img/s | baseline (same run) | ratio |",
        "|---|---|---|---|---|---|",
    ]
    scenarios = (("64 embedded", 64, False), ("16 described", 16, True), ("dedupe upload", 1, True))
    layouts = ((16, 8, False), (16, 4, False), (16, 4, True), (16, 2, False), (16, 1, False), (4, 2, False))
    for vcpus, workers, fp16 in (*layouts, (4, 1, False)):
        for scenario, batch, features in scenarios:
            row = _one(rows, step="workers", vcpus=vcpus, workers=workers, fp16=fp16, scenario=scenario)
            base = _one(rows, step="handler", code="baseline", vcpus=vcpus, batch=max(batch, 16), features=features)
            what = {True: "with features", False: "embeddings only"}[features]
            request = f"{scenario} ({what})" + (", fp16" if fp16 else "")
            lines.append(
                f"| {vcpus} | {workers} × {row['threads_per_worker']} | {request} | {row['img_per_s']:,.0f} "
                f"| {base['img_per_s']:,.1f} (before: 1 process, JSON of base64 1,024 px, batch {base['batch']}) "
                f"| {row['img_per_s'] / base['img_per_s']:.1f}× |"
            )
    return "\n".join(lines)


def model_table(runs: list[list[dict[str, Any]]]) -> str:
    """`ClipEncoder.encode_pixels` fp16 against fp32 at each batch, per run, and the export's own check."""
    lines = ["| run | batch | fp32 img/s | fp16 img/s | fp16 / fp32 |", "|---|---|---|---|---|"]
    for number, rows in enumerate(runs, start=1):
        for batch in (1, 8, 64, 256):
            fp32 = _one(rows, step="encode_pixels", model="fp32", batch=batch)["img_per_s"]
            fp16 = _one(rows, step="encode_pixels", model="fp16", batch=batch)["img_per_s"]
            lines.append(f"| {number} | {batch} | {fp32:,.0f} | {fp16:,.0f} | {fp16 / fp32:.2f}× |")
        export = _one(rows, step="export")
        lines.append(
            f"| {number} | 64, the export's check (`model-report.json`) | {export['fp32_img_per_s']:,.0f} "
            f"| {export['fp16_img_per_s']:,.0f} | {export['fp16_speedup']:.2f}× |"
        )
    return "\n".join(lines)


def tables() -> str:
    runs = [load(name) for name in RUNS]
    return f"{handler_table(runs[1])}\n\n{model_table(runs)}"


if __name__ == "__main__":  # pragma: no cover - documentation helper
    if sys.argv[1:2] == ["--write-readme"]:
        from listing_vision.config import replace_between_markers

        replace_between_markers("docs/benchmarks.md", "gpu-serving", tables())
    else:
        print(tables())
