"""Figures quoted in the docs' sentences, rendered from the result files like the tables are.

A measured figure in a sentence sits between two markers naming where it comes from:

    ... embedded <!-- figure:gpu.best_16 -->1,896<!-- /figure --> images/s ...

Each name is a function below that reads the figure from its file (bench/records, bench/gpu,
evaluation/results), so a rerun that moves a figure moves every sentence quoting it.

    python -m bench.prose                 # list every marked figure and what it reads now
    python -m bench.prose --write-readme  # rewrite the marked figures in README.md and docs/*.md

tests/unit/test_bench_prose.py fails when a page disagrees with its files, names a figure that does
not exist, or quotes a measurement outside a marker.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import gpu_report, records

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"<!-- figure:(?P<name>[a-z0-9_.]+) -->(?P<text>.*?)<!-- /figure -->")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# --- readers ---------------------------------------------------------------------------------------


def _gpu(run: int = 2, **match: Any) -> dict[str, Any]:
    return gpu_report._one(gpu_report.load(gpu_report.RUNS[run - 1]), **match)


def _workers(vcpus: int, workers: int, scenario: str, fp16: bool = False) -> float:
    return float(_gpu(step="workers", vcpus=vcpus, workers=workers, fp16=fp16, scenario=scenario)["img_per_s"])


def _recorded(name: str, part: str) -> dict[str, Any]:
    """The one figure of record `name` whose name contains `part`."""
    found = [f for f in records.load(name)["figures"] if part in f["name"]]
    if len(found) != 1:
        raise KeyError(f"record {name}: {len(found)} figures named like {part!r}, not one")
    return found[0]


def _quoted(name: str, part: str, field: str = "value", scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
    """One field of one recorded figure, as a sentence quotes it."""
    return f"{scale * _recorded(name, part)[field]:,.{digits}f}{unit}"


def _grown(name: str, part: str) -> float:
    """How many times its baseline a recorded figure is (a growth, where the record's ratio is "× better")."""
    figure = _recorded(name, part)
    return float(figure["value"] / figure["baseline"])


def _ratios(name: str, part: str) -> list[float]:
    return [f["ratio"] for f in records.load(name)["figures"] if part in f["name"]]


def _span(values: list[float], digits: int = 2, unit: str = "") -> str:
    low, high = f"{min(values):,.{digits}f}", f"{max(values):,.{digits}f}"
    return f"{low}{unit}" if low == high else f"{low}–{high}{unit}"


def _best_16() -> float:
    return _workers(16, 8, "64 embedded")


def _described(vcpus: int, workers: int) -> float:
    return _workers(vcpus, workers, "16 described")


def _baselines() -> list[float]:
    rows = gpu_report.load(gpu_report.RUNS[1])
    return [r["img_per_s"] for r in rows if r["step"] == "handler" and r["code"] == "baseline"]


def _fp16_at_64() -> list[float]:
    return [
        _gpu(run, step="encode_pixels", model="fp16", batch=64)["img_per_s"]
        / _gpu(run, step="encode_pixels", model="fp32", batch=64)["img_per_s"]
        for run in (1, 2)
    ]


PER_CANDIDATE = "per candidate (each verify call ÷ its candidates): "  # the dedupe record's rows
OVERHEAD = "per-image overhead"  # the generation record's row

FIGURES: dict[str, Callable[[], str]] = {
    # the GPU host (bench/gpu_serving.py on an H200, raw JSON lines in bench/gpu/)
    "gpu.model_64": lambda: f"{_gpu(step='encode_pixels', model='fp32', batch=64)['img_per_s']:,.0f}",
    "gpu.handler_before": lambda: _span(_baselines(), 0),
    "gpu.best_16": lambda: f"{_best_16():,.0f}",
    "gpu.short_of_2000": lambda: f"{100 * (1 - _best_16() / 2000):.0f} %",
    "gpu.one_process_16": lambda: f"{_workers(16, 1, '64 embedded'):,.0f}",
    "gpu.fp16_4x4_16": lambda: f"{_workers(16, 4, '64 embedded', fp16=True):,.0f}",
    "gpu.best_4": lambda: f"{_workers(4, 2, '64 embedded'):,.0f}",
    "gpu.described_16": lambda: f"{_described(16, 8):,.0f}",
    "gpu.described_4": lambda: f"{_described(4, 2):,.0f}",
    "gpu.per_vcpu": lambda: f"{_best_16() / 16:,.0f}",
    "gpu.per_vcpu_described": lambda: f"{_described(16, 8) / 16:,.0f}",
    "gpu.cpu_ms_described": lambda: f"{16_000 / _described(16, 8):.0f} ms",
    "gpu.backfill_200k_4": lambda: f"{200_000 / _described(4, 2) / 60:.0f} minutes",
    "gpu.fp16_at_64": lambda: _span(_fp16_at_64(), 2, "×"),
    "gpu.fp16_export": lambda: " and ".join(f"{_gpu(run, step='export')['fp16_speedup']:.2f}×" for run in (1, 2)),
    # the CPU records (make bench)
    "clip.fp32_vs_eager": lambda: _span(_ratios("clip", "ORT fp32 throughput"), 2, "×"),
    "clip.int8_vs_eager": lambda: _span(_ratios("clip", "ORT int8 throughput"), 2, "×"),
    "clip.int8_cosine": lambda: _quoted("clip", "int8 min cosine", digits=4),
    "dedupe.per_candidate_p50": lambda: _quoted("dedupe", PER_CANDIDATE + "p50", unit=" ms"),
    "dedupe.per_candidate_p95": lambda: _quoted("dedupe", PER_CANDIDATE + "p95", unit=" ms"),
    "generation.overhead_threads": lambda: _quoted("generation", OVERHEAD, scale=1000, unit=" ms", digits=0),
    "generation.overhead_sequential": lambda: _quoted(
        "generation", OVERHEAD, "baseline", scale=1000, unit=" ms", digits=0
    ),
    "generation.cutout": lambda: _quoted("generation", "cut-out of a", unit=" s", digits=2),
    "generation.cutout_rank_filters": lambda: _quoted("generation", "cut-out of a", "baseline", unit=" s", digits=2),
    "migration_memory.hold_all_growth": lambda: f"{_grown('migration_memory', 'hold_all'):.1f}×",
    "dedupe.verify_call_vs_loop": lambda: _span(_ratios("dedupe", "verify call, one query's candidates"), 2, "×"),
}


# --- pages -----------------------------------------------------------------------------------------


def rendered(page: str) -> str:
    """The page with every marked figure read again from its file (an unknown name is an error)."""
    unknown = sorted({m["name"] for m in FIGURE.finditer(page)} - FIGURES.keys())
    if unknown:
        raise KeyError(f"no reader for figure {', '.join(unknown)} (bench/prose.py FIGURES)")
    return FIGURE.sub(lambda m: f"<!-- figure:{m['name']} -->{FIGURES[m['name']]()}<!-- /figure -->", page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prose", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true", help="rewrite the marked figures in README and docs/")
    args = parser.parse_args(argv)
    if not args.write_readme:
        for name, read in FIGURES.items():
            print(f"{name}: {read()}")
        return 0
    changed = 0
    for path in pages():
        text = path.read_text()
        new = rendered(text)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"{changed} page(s) rewritten; {len(FIGURES)} figures known")
    return 0


if __name__ == "__main__":
    sys.exit(main())
