"""The benchmark tables in the docs are rendered from recorded runs (bench/records.py), never typed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import records
from bench.figures import Figure

GENERATED = re.compile(r"<!-- (?P<name>[a-z_:-]+):start \(generated[^>]*-->\n.*?<!-- (?P=name):end -->", re.S)


def test_every_recorded_table_in_the_docs_matches_its_record() -> None:
    # Given the benchmarks page as committed
    page = records.PAGE.read_text()
    # When its record blocks are rendered again from bench/records
    # Then nothing changes: a figure edited by hand, or a record rerun without --write-readme, fails here
    assert records.refreshed(page) == page, "run: python -m bench.records --write-readme"
    assert records.BLOCK.search(page), "no recorded table on the page"


def test_every_record_is_shown_and_says_how_it_was_made() -> None:
    page = records.PAGE.read_text()
    shown = {m["name"] for m in records.BLOCK.finditer(page)}
    for name in records.recorded():
        record = records.load(name)
        # Each record is on the page, and carries what a reader needs to trust or repeat it
        assert name in shown, f"{name} is recorded but not shown in {records.PAGE.name}"
        assert record["command"].endswith(f"make bench BENCH_ARGS={name}")
        assert record["commit"] != "unknown" and record["machine"] and record["date"]
        assert record["figures"], f"{name} records no figure"


# Tables still typed from runs made before records existed, each to become a record when its bench is
# rerun on a quiet machine (a run on the shared, loaded development machine would publish the load).
# Empty since 2026-12-07: every bench's table is its record.
AWAITING_A_RECORD: set[str] = set()


def test_no_benchmark_table_is_typed_by_hand() -> None:
    # Given the page with every generated block taken out
    page = GENERATED.sub("", records.BLOCK.sub("", records.PAGE.read_text()))
    rows = [line.split("|")[1].strip() for line in page.splitlines() if line.startswith("| ")]
    benchmarks = {row for row in rows if row and row not in ("benchmark", "---")} & set(records.known())
    # Then no benchmark's figures are typed outside a generated block, but those awaiting their rerun
    assert benchmarks <= AWAITING_A_RECORD, benchmarks - AWAITING_A_RECORD
    # And none awaits a rerun that has a record already (the list only shrinks)
    assert not AWAITING_A_RECORD & set(records.recorded())


def test_a_figure_changed_by_hand_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a record and the page rendered from it
    monkeypatch.setattr(records, "RECORDS", tmp_path)
    figure = Figure("demo", "S3 GET p50", 3.5, 2.8, "ms", "one client made at import")
    records.write("demo", [figure], started=0.0, load_before=1.0)
    page = f"intro\n\n{records.block('demo')}\n\nafter\n"
    assert records.refreshed(page) == page
    assert "| demo | S3 GET p50 | 3.5 ms | 2.8 ms, one client made at import | 0.80× |" in page
    # When the table's value is edited on the page
    # Then rendering it again restores the recorded value
    edited = page.replace("| 3.5 ms |", "| 1.2 ms |")
    assert records.refreshed(edited) == page
    # And a block naming no record is refused
    with pytest.raises(SystemExit, match="no record for missing"):
        records.refreshed(page.replace("demo", "missing"))
    assert json.loads((tmp_path / "demo.figures.json").read_text())["figures"][0]["ratio"] == pytest.approx(0.8)


def test_a_bench_whose_own_report_shows_its_figures_leaves_no_figures_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import bench_migration_latency

    # Given the records kept in an empty folder, and a figure from each of two benches
    monkeypatch.setattr(records, "RECORDS", tmp_path)
    figure = Figure("demo", "S3 GET p50", 3.5, 2.8, "ms", "one client made at import")
    # When the migration at AWS latencies (its figures shown by its own record's report) and a bench
    # without a report of its own are kept
    kept = records.keep("migration_latency", bench_migration_latency.SHOWN_BY, [figure], 0.0, 1.0)
    records.keep("demo", None, [figure], 0.0, 1.0)
    # Then only the second leaves a figures file (the first's would be a record no page block shows,
    # which test_every_record_is_shown_and_says_how_it_was_made refuses), and the first says where its figures are
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo.figures.json"]
    assert "bench.migration_report" in kept and records.RESULTS_NAME in kept
