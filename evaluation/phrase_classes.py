"""Phrase classes on labelled data: precision and recall per class (amenity, exterior, interior) of the
split's phrase classes on a labelled set, on the offline path (taxonomy, then the offline rule), and
the negation class: the share of phrases naming an absent amenity ("no pool", "pool: none", "garage
converted to office") that are kept out of the amenities.

    python -m evaluation.phrase_classes [tests/data/labelled_feature_phrases.csv]

The labelled file is CSV (`phrase,label`; lines starting with # are comments); the negated file is
CSV (`phrase`). A labelled phrase that is exactly a taxonomy term is left out and counted, so copying
the labelled set into the taxonomy cannot raise the figures. Each phrase's split (dev or test) comes
from the manifest (`evaluation/splits.py`); figures are given per split and for both together, each
with its sample size and 95 % Wilson interval. The goals are judged on test. `--misses` lists the
dev split's misses only (test is measured, never inspected phrase by phrase: `dev_misses` raises
SplitLeak if handed a test result). The split before the taxonomy (29 words) is measured beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation import splits
from evaluation.legacy_split import LegacyVocabulary
from evaluation.stats import Proportion, cell
from listing_vision.realestate.taxonomy import LABELS, Label, PhraseClassifier, Taxonomy, load_taxonomy

DEFAULT_LABELLED = splits.DATA / "labelled_feature_phrases.csv"
DEFAULT_NEGATED = splits.DATA / "negated_feature_phrases.csv"
GOALS = {"amenity_recall": 0.95, "amenity_precision": 0.98, "negation": 0.95}
HALVES = ("test", "dev", "all")


@dataclass(frozen=True)
class Labelled:
    phrase: str
    label: Label
    split: str


def load_labelled(path: Path | str = DEFAULT_LABELLED) -> list[Labelled]:
    rows = []
    for row in splits.read_phrases(path):
        if row["label"] not in LABELS:
            raise ValueError(f"{path}: {row['phrase']!r} has label {row['label']!r}, not one of {LABELS}")
        split = splits.split_of(Path(path).name, row["phrase"])
        rows.append(Labelled(row["phrase"], row["label"], split))  # type: ignore[arg-type]
    phrases = [r.phrase for r in rows]
    if len(set(phrases)) != len(phrases):
        raise ValueError(f"{path}: phrases must be distinct")
    return rows


def load_negated(path: Path | str = DEFAULT_NEGATED) -> list[tuple[str, str]]:
    """The negated phrases, each with its split."""
    return [(row["phrase"], splits.split_of(Path(path).name, row["phrase"])) for row in splits.read_phrases(path)]


def without_negation(taxonomy: Taxonomy) -> Taxonomy:
    """The taxonomy with its negation handling switched off (no negation or absence words): the
    evaluation's own check that the negation class measures that handling."""
    return dataclasses.replace(
        taxonomy, negations=frozenset(), absences=frozenset(), final_absences=frozenset(), _memo={}
    )


def scores(rows: Iterable[tuple[Label, Label]]) -> dict[str, dict[str, Any]]:
    """Per class: support (labelled), predicted, correct, precision and recall (each with n and interval)."""
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
            "precision": Proportion(correct, predicted).as_json(),
            "recall": Proportion(correct, support).as_json(),
        }
    return out


def dev_misses(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The misses a person may look at to change the taxonomy: dev only (SplitLeak on a test result)."""
    leaked = [r["phrase"] for r in results if r["split"] != "dev"]
    if leaked:
        raise splits.SplitLeak(f"misses are inspected on dev only; handed test phrases: {leaked[:5]}")
    return [r for r in results if r["predicted"] != r["label"]]


def evaluate(
    labelled: list[Labelled], taxonomy: Taxonomy | None = None, negated: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The offline path's figures (and the 29-word split's amenity figures) on the labelled set, and
    the negation class's figure on the negated phrases."""
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
    negations: list[dict[str, Any]] = [
        {
            "phrase": phrase,
            "label": "not amenity",
            "split": split,
            "predicted": "amenity" if classifier.is_amenity(phrase) else "not amenity",
        }
        for phrase, split in negated or []
    ]

    def figures(subset: list[dict[str, Any]], negated_subset: list[dict[str, Any]]) -> dict[str, Any]:
        legacy_rows: list[tuple[Label, Label]] = [
            ("amenity" if r["label"] == "amenity" else "exterior", "amenity" if r["legacy_amenity"] else "exterior")
            for r in subset
        ]
        kept_out = sum(r["predicted"] == "not amenity" for r in negated_subset)
        return {
            "phrases": len(subset),
            "taxonomy": scores((r["label"], r["predicted"]) for r in subset),
            "legacy_amenity": scores(legacy_rows)["amenity"],
            "negation": Proportion(kept_out, len(negated_subset)).as_json(),
            "decided_by": {
                source: sum(1 for r in subset if r["source"] == source) for source in ("taxonomy", "offline_rule")
            },
        }

    report: dict[str, Any] = {
        "taxonomy_version": taxonomy.version,
        "taxonomy_terms": taxonomy.term_count,
        "labelled": len(labelled),
        "negated": len(negations),
        "excluded_identical_to_a_term": copied,
        "all": figures(results, negations),
        **{
            split: figures([r for r in results if r["split"] == split], [r for r in negations if r["split"] == split])
            for split in splits.SPLITS
        },
        "dev_misses": dev_misses([r for r in results + negations if r["split"] == "dev"]),
    }
    report["goals_met"] = goals_met(report["test"] if report["test"]["phrases"] else report["all"])
    return report


def goals_met(half: dict[str, Any]) -> bool:
    amenity = half["taxonomy"]["amenity"]
    negation = half["negation"]
    return (
        (amenity["recall"]["value"] or 0) >= GOALS["amenity_recall"]
        and (amenity["precision"]["value"] or 0) >= GOALS["amenity_precision"]
        and (not negation["n"] or negation["value"] >= GOALS["negation"])
    )


def render(report: dict[str, Any], show: Callable[[str], None] = print) -> None:
    show(
        f"taxonomy {report['taxonomy_version']} ({report['taxonomy_terms']} terms), offline path; "
        f"{report['labelled']} labelled phrases, {len(report['excluded_identical_to_a_term'])} left out "
        f"(identical to a taxonomy term); {report['negated']} negated phrases. "
        "Each figure: value (n; 95 % Wilson interval)"
    )
    for half in HALVES:
        figures = report[half]
        show(f"\n{half} ({figures['phrases']} labelled phrases)")
        for label in LABELS:
            scored = figures["taxonomy"][label]
            show(f"  {label:<9} precision {cell(scored['precision'])}   recall {cell(scored['recall'])}")
        legacy = figures["legacy_amenity"]
        show(f"  amenity, before (29 words): precision {cell(legacy['precision'])}   recall {cell(legacy['recall'])}")
        show(f"  negation: kept out of the amenities {cell(figures['negation'])}")
    decided = report["all"]["decided_by"]
    show(f"\ndecided by the taxonomy: {decided['taxonomy']}, by the offline rule: {decided['offline_rule']}")
    show(
        f"goals on test (amenity recall ≥ {GOALS['amenity_recall']:.0%}, precision ≥ "
        f"{GOALS['amenity_precision']:.0%}, negations kept out ≥ {GOALS['negation']:.0%}): "
        + ("met" if report["goals_met"] else "NOT met")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.phrase_classes")
    parser.add_argument("labelled", nargs="?", default=str(DEFAULT_LABELLED), help="the labelled CSV")
    parser.add_argument("--negated", default=str(DEFAULT_NEGATED), help="the negated phrases' CSV ('' for none)")
    parser.add_argument("--taxonomy", help="another taxonomy file (default: the shipped one)")
    parser.add_argument("--misses", action="store_true", help="list the dev split's misses")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)
    report = evaluate(
        load_labelled(args.labelled),
        load_taxonomy(args.taxonomy) if args.taxonomy else None,
        load_negated(args.negated) if args.negated else None,
    )
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "dev_misses" or args.misses}, indent=2))
    else:
        render(report)
        if args.misses:
            for miss in report["dev_misses"]:
                print(f"  dev miss: {miss['phrase']!r} is {miss['label']}, classed {miss['predicted']}")
    return 0 if report["goals_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
