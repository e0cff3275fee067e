"""Phrase classes on labelled data: precision and recall per class (amenity, exterior, interior) of the split's
phrase classes on a labelled set, on the offline path (taxonomy, then the offline rule).

    python -m evaluation.phrase_classes [tests/data/labelled_feature_phrases.csv]

The labelled file is CSV (`phrase,label,split`; lines starting with # are comments). A labelled
phrase that is exactly a taxonomy term is left out and counted, so copying the labelled set into
the taxonomy cannot raise the figures. Figures are given for the whole set and for its `dev` and
`heldout` halves; `--misses` lists the dev half's misses only (the held-out half is measured,
never inspected phrase by phrase). The split before the taxonomy (29 words) is measured beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.legacy_split import LegacyVocabulary
from listing_vision.realestate.taxonomy import LABELS, Label, PhraseClassifier, Taxonomy, load_taxonomy

DEFAULT_LABELLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "labelled_feature_phrases.csv"
GOALS = {"amenity_recall": 0.95, "amenity_precision": 0.98}


@dataclass(frozen=True)
class Labelled:
    phrase: str
    label: Label
    split: str


def load_labelled(path: Path | str = DEFAULT_LABELLED) -> list[Labelled]:
    lines = [line for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]
    rows = []
    for row in csv.DictReader(lines):
        if row["label"] not in LABELS:
            raise ValueError(f"{path}: {row['phrase']!r} has label {row['label']!r}, not one of {LABELS}")
        rows.append(Labelled(row["phrase"], row["label"], row.get("split") or "dev"))  # type: ignore[arg-type]
    phrases = [r.phrase for r in rows]
    if len(set(phrases)) != len(phrases):
        raise ValueError(f"{path}: phrases must be distinct")
    return rows


def scores(rows: Iterable[tuple[Label, Label]]) -> dict[str, dict[str, Any]]:
    """Per class: support (labelled), predicted, correct, precision and recall."""
    pairs = list(rows)
    out: dict[str, dict[str, Any]] = {}
    for label in LABELS:
        support = sum(1 for truth, _ in pairs if truth == label)
        predicted = sum(1 for _, guess in pairs if guess == label)
        correct = sum(1 for truth, guess in pairs if truth == guess == label)
        out[label] = {
            "support": support,
            "predicted": predicted,
            "correct": correct,
            "precision": round(correct / predicted, 4) if predicted else 0.0,
            "recall": round(correct / support, 4) if support else 0.0,
        }
    return out


def evaluate(labelled: list[Labelled], taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """The offline path's figures (and the 29-word split's amenity figures) on the labelled set."""
    taxonomy = taxonomy or load_taxonomy()
    classifier = PhraseClassifier(taxonomy)
    legacy = LegacyVocabulary()
    terms = {taxonomy.canonical(term) for concept in taxonomy.concepts for term in concept.terms}
    copied = [row.phrase for row in labelled if taxonomy.canonical(row.phrase) in terms]
    measured = [row for row in labelled if row.phrase not in set(copied)]
    results = []
    for row in measured:
        decided = classifier.classify(row.phrase)
        results.append(
            {
                "phrase": row.phrase,
                "label": row.label,
                "split": row.split,
                "predicted": decided.label,
                "source": decided.source,
                "legacy_amenity": legacy.is_amenity(row.phrase),
            }
        )

    def figures(subset: list[dict[str, Any]]) -> dict[str, Any]:
        legacy_rows: list[tuple[Label, Label]] = [
            ("amenity" if r["label"] == "amenity" else "exterior", "amenity" if r["legacy_amenity"] else "exterior")
            for r in subset
        ]
        return {
            "phrases": len(subset),
            "taxonomy": scores((r["label"], r["predicted"]) for r in subset),
            "legacy_amenity": scores(legacy_rows)["amenity"],
            "decided_by": {
                source: sum(1 for r in subset if r["source"] == source) for source in ("taxonomy", "offline_rule")
            },
        }

    report: dict[str, Any] = {
        "taxonomy_version": taxonomy.version,
        "taxonomy_terms": taxonomy.term_count,
        "labelled": len(labelled),
        "excluded_identical_to_a_term": copied,
        "all": figures(results),
        "dev": figures([r for r in results if r["split"] == "dev"]),
        "heldout": figures([r for r in results if r["split"] == "heldout"]),
        "dev_misses": [r for r in results if r["split"] == "dev" and r["predicted"] != r["label"]],
    }
    amenity = report["all"]["taxonomy"]["amenity"]
    report["goals_met"] = (
        amenity["recall"] >= GOALS["amenity_recall"] and amenity["precision"] >= GOALS["amenity_precision"]
    )
    return report


def render(report: dict[str, Any], show: Callable[[str], None] = print) -> None:
    halves = ("all", "dev", "heldout")
    show(
        f"taxonomy {report['taxonomy_version']} ({report['taxonomy_terms']} terms), offline path; "
        f"{report['labelled']} labelled phrases, {len(report['excluded_identical_to_a_term'])} left out "
        "(identical to a taxonomy term)"
    )
    titles = [f"{half} ({report[half]['phrases']})" for half in halves]
    header = f"{'class':<10}" + "".join(f"{title:>30}" for title in titles)
    show(header)
    show(f"{'':<10}" + "".join(f"{'n':>6}{'precision':>12}{'recall':>12}" for _ in halves))
    for label in LABELS:
        cells = "".join(
            f"{report[h]['taxonomy'][label]['support']:>6}{report[h]['taxonomy'][label]['precision']:>12.3f}"
            f"{report[h]['taxonomy'][label]['recall']:>12.3f}"
            for h in halves
        )
        show(f"{label:<10}{cells}")
    cells = "".join(
        f"{report[h]['legacy_amenity']['support']:>6}{report[h]['legacy_amenity']['precision']:>12.3f}"
        f"{report[h]['legacy_amenity']['recall']:>12.3f}"
        for h in halves
    )
    show(f"{'amenity, before (29 words)':<10}")
    show(f"{'':<10}{cells}")
    decided = report["all"]["decided_by"]
    show(f"decided by the taxonomy: {decided['taxonomy']}, by the offline rule: {decided['offline_rule']}")
    show(
        f"goals (amenity recall ≥ {GOALS['amenity_recall']:.0%}, precision ≥ {GOALS['amenity_precision']:.0%}): "
        + ("met" if report["goals_met"] else "NOT met")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.phrase_classes")
    parser.add_argument("labelled", nargs="?", default=str(DEFAULT_LABELLED), help="the labelled CSV")
    parser.add_argument("--taxonomy", help="another taxonomy file (default: the shipped one)")
    parser.add_argument("--misses", action="store_true", help="list the dev half's misses")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)
    report = evaluate(load_labelled(args.labelled), load_taxonomy(args.taxonomy) if args.taxonomy else None)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "dev_misses" or args.misses}, indent=2))
    else:
        render(report)
        if args.misses:
            for miss in report["dev_misses"]:
                print(
                    f"  dev miss: {miss['phrase']!r} is {miss['label']}, classed {miss['predicted']} ({miss['source']})"
                )
    return 0 if report["goals_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
