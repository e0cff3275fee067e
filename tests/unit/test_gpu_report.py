"""The GPU serving tables of docs/benchmarks.md are generated from the raw results kept in bench/gpu/."""

from __future__ import annotations

from pathlib import Path

from bench.gpu_report import tables

PAGE = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def test_the_benchmarks_page_gpu_tables_are_the_generated_ones() -> None:
    text = PAGE.read_text()
    start = text.index("\n", text.index("<!-- gpu-serving:start")) + 1
    assert text[start : text.index("<!-- gpu-serving:end -->")].strip() == tables()
