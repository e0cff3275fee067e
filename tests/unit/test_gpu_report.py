"""The README's GPU serving tables are generated from the raw results kept in bench/gpu/."""

from __future__ import annotations

from pathlib import Path

from bench.gpu_report import tables

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_gpu_tables_are_the_generated_ones() -> None:
    text = README.read_text()
    start = text.index("\n", text.index("<!-- gpu-serving:start")) + 1
    assert text[start : text.index("<!-- gpu-serving:end -->")].strip() == tables()
