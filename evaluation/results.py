"""`make eval`: run the quality evaluations, write their figures as JSON under evaluation/results/,
and render the quality tables of docs/evaluation.md from those files.

    python -m evaluation.results                 # run the evaluations, write evaluation/results/*.json
    python -m evaluation.results --only phrases  # one of them (phrases: fast; dedupe: about a minute)
    python -m evaluation.results --write-readme  # render docs/evaluation.md's quality tables from the JSON

Each file holds one evaluation's run: the command, the machine, the date (UTC), the commit (with
`-dirty` when the working tree had changes), and its figures, each a row `{figure, split, n, value,
successes, ci95}` (95 % Wilson interval, `evaluation/stats.py`). The tables of docs/evaluation.md between the
`phrase-quality` and `dedupe-quality` markers are rendered from these files only, and a unit test
fails when they disagree, so no quality figure in them is typed by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from evaluation import splits
from evaluation.stats import Proportion, wilson

RESULTS = Path(__file__).with_name("results")
PAGE = splits.ROOT / "docs" / "evaluation.md"  # where the quality tables live
FILES = {"phrases": "phrase_classes.json", "dedupe": "duplicate_detection.json"}
MARKERS = {"phrases": "phrase-quality", "dedupe": "dedupe-quality"}
PHRASE_FIGURES = (
    ("amenity precision", ("taxonomy", "amenity", "precision")),
    ("amenity recall", ("taxonomy", "amenity", "recall")),
    ("exterior precision", ("taxonomy", "exterior", "precision")),
    ("exterior recall", ("taxonomy", "exterior", "recall")),
    ("interior precision", ("taxonomy", "interior", "precision")),
    ("interior recall", ("taxonomy", "interior", "recall")),
    ("amenity precision, 29-word test", ("legacy_amenity", "precision")),
    ("amenity recall, 29-word test", ("legacy_amenity", "recall")),
    ("negations kept out of the amenities", ("negation",)),
)
SPLIT_ORDER = ("test", "dev", "all")


@cache
def _commit() -> str:
    """The commit measured, `-dirty` when tracked files had changes; read once per process, before
    this run writes any result."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=splits.ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def provenance(command: str) -> dict[str, Any]:
    """Who measured what, where and when."""
    return {
        "command": command,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _commit(),
    }


def _row(figure: str, split: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"figure": figure, "split": split, **extra, **value}


def _value(report: dict[str, Any], figure: str) -> float:
    label, measure = figure.split()
    return float(report["test"]["taxonomy"][label][measure]["value"] or 0.0)


def phrase_results() -> dict[str, Any]:
    from evaluation import phrase_classes as pc

    report = pc.evaluate(pc.load_labelled(), None, pc.load_negated())
    probe = pc.evaluate(pc.load_labelled(pc.splits.DATA / "probe_feature_phrases.csv"))
    rows = []
    for split in SPLIT_ORDER:
        for figure, path in PHRASE_FIGURES:
            value: Any = report[split]
            for key in path:
                value = value[key]
            rows.append(_row(figure, split, value, set="negated" if figure.startswith("negations") else "labelled"))
    for figure in ("amenity precision", "amenity recall"):
        value = probe["dev"]["taxonomy"]["amenity"][figure.split()[1]]
        rows.append(_row(figure, "dev", value, set="probe"))
    return {
        "evaluation": "phrase classes, offline path",
        "taxonomy_version": report["taxonomy_version"],
        "labelled": report["labelled"],
        "left_out_identical_to_a_term": len(report["excluded_identical_to_a_term"]),
        "goals_on_test": {
            "amenity recall": {"goal": pc.GOALS["amenity_recall"], "value": _value(report, "amenity recall")},
            "amenity precision": {"goal": pc.GOALS["amenity_precision"], "value": _value(report, "amenity precision")},
            "negations kept out": {"goal": pc.GOALS["negation"], "value": report["test"]["negation"]["value"]},
        },
        **provenance("make eval (python -m evaluation.results --only phrases)"),
        "figures": rows,
    }


def dedupe_results() -> dict[str, Any]:
    from evaluation import duplicate_detection as dd
    from listing_vision.config import get_settings
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder

    settings = get_settings()
    items = dd.build_items([splits.ROOT / folder for folder in dd.DEFAULT_PHOTOS])
    report = dd.evaluate(dd.prepare(items, OnnxEmbedder(str(DESCRIPTOR_MODEL), resize=settings.clip_resize)))
    rows = []
    thresholds = {"configured": settings.retrieval_threshold, "chosen on dev": report.chosen_threshold}
    for which, threshold in thresholds.items():
        if threshold is None:
            continue
        for split, groups in dd.figures(report, threshold).items():
            for group, values in groups.items():
                for figure, value in values.items():
                    if figure != "n":
                        rows.append(
                            _row(f"{group}: {figure.replace('_', ' ')}", split, value, threshold=which, per="group")
                        )
    kinds = (*dd.variant_set.RE_EXPORTS, *dd.variant_set.GEOMETRIC, *dd.NEGATIVE_KINDS)
    for kind in kinds:  # per class, both splits, at the configured threshold
        outcomes = report.outcomes.get(kind, [])
        correct = sum(o.verdict() == "correct" for o in outcomes)
        figure = "kept apart" if kind in dd.NEGATIVE_KINDS else "recall"
        rows.append(
            _row(
                f"{kind}: {figure}",
                "all",
                Proportion(correct, len(outcomes)).as_json(),
                threshold="configured",
                per="class",
            )
        )
    return {
        "evaluation": "duplicate detection, weight-free descriptor",
        "model": report.model,
        "photos": len({item.original for item in items}),
        "catalogue": report.catalogue_size,
        "designs": {split: dd.figures(report)[split]["designs"]["n"] for split in SPLIT_ORDER},
        "retrieval_threshold": {"configured": settings.retrieval_threshold, "chosen_on_dev": report.chosen_threshold},
        "dev_curve": [
            {
                "threshold": p.threshold,
                "recall": round(p.recall, 4),
                "false_duplicates": p.false_duplicates,
                "candidates_per_query": round(p.candidates, 1),
            }
            for p in report.curve
        ],
        "at_scale": {"catalogue_sizes": list(dd.CATALOGUE_SIZES), "share_retrieved": report.scale},
        **provenance("make eval (python -m evaluation.results --only dedupe)"),
        "figures": rows,
    }


def write(name: str, data: dict[str, Any], folder: Path = RESULTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILES[name]
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path


def load(name: str, folder: Path = RESULTS) -> dict[str, Any]:
    return json.loads((folder / FILES[name]).read_text())


def find(data: dict[str, Any], figure: str, split: str, **match: Any) -> dict[str, Any]:
    (row,) = [
        r
        for r in data["figures"]
        if r["figure"] == figure and r["split"] == split and all(r.get(k) == v for k, v in match.items())
    ]
    return row


def _cell(row: dict[str, Any]) -> str:
    if not row["n"]:
        return "— (n 0)"
    low, high = wilson(row["successes"], row["n"])  # from the counts: rounding twice could move a decimal
    return f"{row['successes'] / row['n']:.3f} ({row['successes']}/{row['n']}; {low:.3f}–{high:.3f})"


def _stamp(data: dict[str, Any]) -> str:
    return f"`{data['command']}`, commit {data['commit']}, {data['date'][:10]}, {data['machine']}"


def phrase_table(data: dict[str, Any]) -> str:
    lines = [
        f"Taxonomy {data['taxonomy_version']}, offline path; {data['labelled']} labelled phrases, "
        f"{data['left_out_identical_to_a_term']} left out (identical to a taxonomy term). "
        "Each cell: value (successes/n; 95 % Wilson interval).",
        "",
        "| figure | **test** (held out) | dev | all |",
        "|---|---|---|---|",
    ]
    for figure, _ in PHRASE_FIGURES:
        kind = "negated" if figure.startswith("negations") else "labelled"
        cells = " | ".join(_cell(find(data, figure, split, set=kind)) for split in SPLIT_ORDER)
        lines.append(f"| {figure} | {cells} |")
    for figure in ("amenity precision", "amenity recall"):
        lines.append(
            f"| {figure}, adversarial probe (rules came from its misses: all dev) | — | "
            f"{_cell(find(data, figure, 'dev', set='probe'))} | — |"
        )
    goals = "; ".join(
        f"{name} ≥ {goal['goal']:.0%}: " + ("met" if goal["value"] >= goal["goal"] else "**not met**")
        for name, goal in data["goals_on_test"].items()
    )
    lines += ["", f"Goals, judged on test: {goals}. Measured by {_stamp(data)}."]
    return "\n".join(lines)


def dedupe_table(data: dict[str, Any]) -> str:
    from evaluation import duplicate_detection as dd

    thresholds = data["retrieval_threshold"]
    # None: every threshold on the dev curve has a false duplicate, so none is chosen
    chosen = (
        "none: false duplicates at every one"
        if thresholds["chosen_on_dev"] is None
        else f"{thresholds['chosen_on_dev']:g}"
    )
    designs = data["designs"]
    lines = [
        f"{data['photos']} photos ({designs['test']} designs in test, {designs['dev']} in dev), "
        f"{data['catalogue']} with their variants; model `{data['model']}`. Each cell: value (successes/n; 95 % "
        "Wilson interval). Duplicate classes: recall (the original found, nothing else named); colour "
        "variants and unrelated photos: share kept apart (no false duplicate).",
        "",
        "| class | **test** at the configured threshold "
        f"({thresholds['configured']:g}) | **test** at the threshold chosen on dev ({chosen}) "
        "| dev (configured) | all (configured) |",
        "|---|---|---|---|---|",
    ]
    for group in dd.GROUPS:
        figure = f"{group}: {'kept apart' if group in dd.NEGATIVE_GROUPS else 'recall'}"
        cells = [
            find(data, figure, "test", threshold="configured", per="group"),
            find(data, figure, "test", threshold="chosen on dev", per="group")
            if thresholds["chosen_on_dev"] is not None
            else {"n": 0},
            find(data, figure, "dev", threshold="configured", per="group"),
            find(data, figure, "all", threshold="configured", per="group"),
        ]
        lines.append(f"| {group} | " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "Per class, both splits, at the configured threshold:", ""]
    lines += ["| class | figure |", "|---|---|"]
    for row in data["figures"]:
        if row.get("per") == "class":
            lines.append(f"| {row['figure'].split(':')[0]} | {row['figure'].split(': ')[1]} {_cell(row)} |")
    curve = ", ".join(
        f"{p['threshold']:g} → {p['recall']:.3f} ({p['candidates_per_query']:g} candidates"
        + (f", {p['false_duplicates']} false duplicates" if p["false_duplicates"] else "")
        + ")"
        for p in data["dev_curve"]
    )
    sizes = " / ".join(f"{n:,}" for n in data["at_scale"]["catalogue_sizes"])
    weak = {k: v for k, v in data["at_scale"]["share_retrieved"].items() if min(v) < 1}
    scale = "; ".join(f"{kind} " + " / ".join(f"{share:.2f}" for share in shares) for kind, shares in weak.items())
    lines += [
        "",
        "At scale (extrapolated from every unrelated pair measured, both splits): the share of queries whose "
        f"original stays in the top k among {sizes} unrelated photos is {scale or '1.00 everywhere'}"
        + ("; every other class 1.00." if weak else "."),
        "",
        f"Dev curve (recall over the duplicate classes, dev designs only): {curve}. Measured by {_stamp(data)}.",
    ]
    return "\n".join(lines)


def tables(folder: Path = RESULTS) -> dict[str, str]:
    """Page marker → its table, rendered from the JSON results."""
    return {
        MARKERS["phrases"]: phrase_table(load("phrases", folder)),
        MARKERS["dedupe"]: dedupe_table(load("dedupe", folder)),
    }


def readme_block(text: str, marker: str) -> str:
    start = text.index("\n", text.index(f"<!-- {marker}:start")) + 1
    return text[start : text.index(f"<!-- {marker}:end -->")].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.results", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(FILES), action="append", help="run only this evaluation")
    parser.add_argument(
        "--write-readme",
        nargs="?",
        const=str(PAGE),
        metavar="PAGE",
        help="render the quality tables of docs/evaluation.md from the JSON results (runs nothing)",
    )
    args = parser.parse_args(argv)
    if args.write_readme:
        from listing_vision.config import replace_between_markers

        for marker, table in tables().items():
            replace_between_markers(args.write_readme, marker, table)
        print(f"{args.write_readme}: {', '.join(MARKERS.values())} rendered from {RESULTS.relative_to(splits.ROOT)}")
        return 0
    runners = {"phrases": phrase_results, "dedupe": dedupe_results}
    _commit()  # before any result is written
    for name in args.only or sorted(FILES, reverse=True):
        path = write(name, runners[name]())
        print(f"wrote {path.relative_to(splits.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
