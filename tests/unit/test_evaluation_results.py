"""`make eval`'s results: the quality tables of docs/evaluation.md are rendered from the JSON under
evaluation/results/, each figure names its split, sample size and interval, and the committed
phrase figures are what the code measures now."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from evaluation import results

PAGE = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"


def test_the_docs_quality_tables_are_the_ones_the_json_results_give() -> None:
    # Given the committed JSON results, when their tables are rendered
    text = PAGE.read_text()
    # Then each block of the page is exactly that table (run `make eval`, or --write-readme, to refresh)
    for marker, table in results.tables().items():
        assert results.readme_block(text, marker) == table, f"docs/evaluation.md block {marker} disagrees with its JSON"


def test_every_figure_names_its_split_sample_size_interval_and_provenance() -> None:
    for name in results.FILES:
        data = results.load(name)
        assert {"command", "machine", "date", "commit"} <= set(data), name
        assert data["figures"]
        for row in data["figures"]:
            assert {"figure", "split", "n", "value", "successes", "ci95"} <= set(row), row
            assert row["split"] in ("dev", "test", "all")
            if row["n"]:
                low, high = row["ci95"]
                assert low <= row["value"] <= high and row["value"] == round(row["successes"] / row["n"], 4)


def test_a_table_that_disagrees_with_its_json_is_caught(tmp_path: Path) -> None:
    # Given a copy of the results in which one test figure changed
    for name in results.FILES.values():
        shutil.copy(results.RESULTS / name, tmp_path / name)
    data = results.load("phrases", tmp_path)
    row = next(r for r in data["figures"] if r["figure"] == "amenity recall" and r["split"] == "test")
    row.update(successes=row["successes"] - 1, value=round((row["successes"] - 1) / row["n"], 4))
    (tmp_path / results.FILES["phrases"]).write_text(json.dumps(data))
    # When its tables are rendered, then the page's phrase block no longer matches
    block = results.readme_block(PAGE.read_text(), results.MARKERS["phrases"])
    assert results.tables(tmp_path)[results.MARKERS["phrases"]] != block
    # and --write-readme puts the rendered tables into a copy of the page between its markers
    readme = tmp_path / "evaluation.md"
    shutil.copy(PAGE, readme)
    assert results.main(["--write-readme", str(readme)]) == 0
    for marker, table in results.tables().items():
        assert results.readme_block(readme.read_text(), marker) == table


def test_the_committed_phrase_figures_are_what_the_code_measures_now() -> None:
    # Given the phrase evaluation run now (fast: the offline path only)
    measured = results.phrase_results()
    # Then its figures equal the committed ones: a taxonomy change without `make eval` fails here
    assert measured["figures"] == results.load("phrases")["figures"]
