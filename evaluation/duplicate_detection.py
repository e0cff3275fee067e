"""Labelled evaluation of duplicate detection on real photos: precision and recall per class.

Every photo in the given folders is an original; `evaluation/variants.py` makes its re-exports (which
must be found), its colour variants (which must not) and the evaluation adds unrelated photos. The
catalogue a query is checked against is realistic, not a tiny test set: every other original and
all of their variants are in it as distractors, and so are the query's own original and its colour
variants (a jewelry line's other colours are real products). The decision is the service's own
(`duplicates.decide`) on top-k exact inner-product search, so retrieval is measured without HNSW's
approximation (`make bench BENCH_ARGS=dedupe` measures HNSW recall).

    python -m evaluation.duplicate_detection                      # the weight-free descriptor
    python -m evaluation.duplicate_detection --model build/clip/model.onnx   # a CLIP export too

Each photo's design is in the dev or the test split (`evaluation/splits.json`, by design: a photo's
variants go with it). Every query is asked against the whole catalogue (both splits' photos are
distractors), but the threshold curve, and the retrieval threshold it chooses, use the dev split's
queries only (`choose_threshold` raises SplitLeak on a test design); the figures are given per split
with their sample size and 95 % Wilson interval.

Prints, per model: the table per class (found, wrong, missed, precision, recall, and which rule
matched), the figures per split, the dev curve over the retrieval threshold with the threshold it
chooses, and how retrieval would behave in a larger catalogue (the pairwise similarity of unrelated
photos, extrapolated).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation import splits
from evaluation import variants as variant_set
from evaluation.duplicate_items import Item, Prepared, build_items, prepare
from evaluation.stats import Proportion, cell
from listing_vision.config import Settings, get_settings
from listing_vision.jewelry import duplicates
from listing_vision.jewelry.vector_index import Hit

DEFAULT_PHOTOS = splits.PHOTO_FOLDERS
METAL_COLOURWAY = "metal colourway"  # a design's photo asked against its other metals' photos
GROUPS = {
    "re-exports": variant_set.RE_EXPORTS,
    "crops, rotations, mirrors, grayscale": variant_set.GEOMETRIC,
    "colour variants": variant_set.COLOUR_VARIANTS,
    "metal colourways": (METAL_COLOURWAY,),
    "unrelated": ("unrelated",),
}
GOALS = {"re-exports": 0.99, "crops, rotations, mirrors, grayscale": 0.90}
UNRELATED_QUERY_KINDS = ("original", "crop", "rotate")  # asked with their whole design out of the catalogue
# A design shot in several metals (`ring7@gold.jpg`, `ring7@silver.jpg`): each of these is asked with
# its own photo's family out and the design's other metals in; naming any of them is a false duplicate.
METAL_QUERY_KINDS = UNRELATED_QUERY_KINDS
CURVE = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
CATALOGUE_SIZES = (1_000, 10_000, 100_000)


@dataclass
class Outcome:
    query: int
    expected: int | None  # index of the original a duplicate must name; None: must be new
    found: list[tuple[int, str]]  # (item index, match rule)
    also_acceptable: frozenset[int] = frozenset()  # a grayscale copy may also name its design's other colours
    forbidden: frozenset[int] = frozenset()  # a metal colourway: what it must not name (its design's other metals)

    def verdict(self) -> str:
        if self.expected is None:
            named = {index for index, _ in self.found}
            return "false_duplicate" if (named & self.forbidden if self.forbidden else named) else "correct"
        named = {index for index, _ in self.found}
        if self.expected not in named:
            return "wrong" if named else "missed"
        return "correct" if named <= {self.expected, *self.also_acceptable} else "wrong"


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    recall: float  # duplicate classes: the original found, nothing else named
    wrong: int  # duplicates answered with another photo named too
    false_duplicates: int  # colour variants and unrelated photos called duplicates
    candidates: float  # verified per query


@dataclass
class Report:
    model: str
    settings: Settings
    catalogue_size: int
    outcomes: dict[str, list[Outcome]] = field(default_factory=lambda: defaultdict(list))
    rules: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    curve: list[CurvePoint] = field(default_factory=list)
    chosen_threshold: float | None = None  # chosen on the dev split's curve only
    scale: dict[str, list[float]] = field(default_factory=dict)
    split_of: dict[int, str] = field(default_factory=dict)  # query item → its design's split
    originals: dict[int, str] = field(default_factory=dict)  # query item → its original photo
    # every curve threshold's outcomes by class (`outcomes` is the configured threshold's)
    outcomes_at: dict[float, dict[str, list[Outcome]]] = field(default_factory=dict)

    def counts(self, kinds: Sequence[str]) -> Counter[str]:
        return Counter(o.verdict() for kind in kinds for o in self.outcomes.get(kind, []))


def _catalogue_mask(items: Sequence[Item], query: int, out: str) -> np.ndarray:
    """Which items are in the catalogue when `query` is uploaded. `out`: "none" (the query's
    original and its colour variants stay), "family" (every item of the query's photo leaves) or
    "design" (every item of every photo of its design leaves: its other metals too)."""
    family = np.array([item.original == items[query].original for item in items])
    if out == "design":
        design = splits.design_of(items[query].original)
        family = np.array([splits.design_of(item.original) == design for item in items])
    kept_from_family = np.array([item.kind == "original" or item.kind in variant_set.COLOUR_VARIANTS for item in items])
    mask = ~family | (kept_from_family & (out == "none"))
    mask[query] = False
    return mask


def _hits(prepared: Prepared, query: int, mask: np.ndarray, top_k: int) -> list[Hit]:
    scores = np.where(mask, prepared.vectors @ prepared.vectors[query], -np.inf)
    best = np.argsort(-scores, kind="stable")[:top_k]
    return [Hit(int(i), float(scores[i]), str(i), "alya") for i in best if np.isfinite(scores[i])]


def design_split(dataset: str, original: str) -> str:
    """The split of a photo's design: from the manifest for the shipped photos, by the manifest's
    hash rule for a folder it does not cover."""
    return splits.split_of(dataset, splits.design_of(original))


def choose_threshold(curve: list[CurvePoint], designs: Iterable[str], dataset: str = splits.PHOTOS) -> float | None:
    """The retrieval threshold: highest recall with no false duplicate, then the fewest candidates.
    Tuning: `designs` (those the curve was measured on) must all be dev, else SplitLeak."""
    splits.require_dev(dataset, designs, "choosing the retrieval threshold")
    clean = [point for point in curve if point.false_duplicates == 0]
    if not clean:
        return None
    best = max(point.recall for point in clean)
    return min(point.threshold for point in clean if point.recall >= best - 1e-9)


def evaluate(prepared: Prepared, settings: Settings | None = None, dataset: str = splits.PHOTOS) -> Report:
    """Every query through retrieval (top-k, exact) and the service's decision; the curve and the
    threshold it chooses from the dev split's queries only, the figures per split."""
    settings = settings or get_settings()
    items = prepared.items
    loosest = settings.model_copy(update={"retrieval_threshold": max(max(CURVE), settings.retrieval_threshold)})
    report = Report(prepared.model, settings, len(items))
    index_of_original = {item.original: i for i, item in enumerate(items) if item.kind == "original"}
    # A design's other metals: the originals that share its design (`ring7@gold` → `ring7@silver`, ...)
    metals = {
        original: frozenset(
            i
            for other, i in index_of_original.items()
            if other != original and splits.design_of(other) == splits.design_of(original)
        )
        for original in index_of_original
    }
    questions = [
        (kind, query, out)
        for query, item in enumerate(items)
        for kind, out in (
            ([(item.kind, "none")] if item.kind != "original" else [])
            + ([("unrelated", "design")] if item.kind in UNRELATED_QUERY_KINDS else [])
            + ([(METAL_COLOURWAY, "family")] if item.kind in METAL_QUERY_KINDS and metals[item.original] else [])
        )
    ]

    def ask(question: tuple[str, int, str]) -> tuple[str, int | None, int, list[Hit], list[duplicates.Match]]:
        kind, query, out = question
        hits = _hits(prepared, query, _catalogue_mask(items, query, out), settings.search_top_k)
        shortlist = duplicates.candidates(hits, loosest)
        matches = duplicates.decide(
            shortlist,
            prepared.features[query],
            [prepared.features[h.id] for h in shortlist],
            loosest,
            prepared.verify,
        )
        expected = index_of_original[items[query].original] if kind in variant_set.DUPLICATE_CLASSES else None
        return kind, expected, query, shortlist, matches

    # Matches at the loosest threshold; the curve filters them. OpenCV releases the GIL: threads help.
    # A query's questions (its catalogues) share most candidates: asked catalogue by catalogue, not side
    # by side on two threads, so that the second finds the pairs the first verified (Prepared.verify).
    order = sorted(range(len(questions)), key=lambda i: ("none", "design", "family").index(questions[i][2]))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        answers = dict(zip(order, pool.map(ask, [questions[i] for i in order]), strict=True))
    asked = [answers[i] for i in range(len(questions))]
    # What a grayscale copy cannot tell apart: its design's colour variants, other metals and their copies
    design_items: dict[str, set[int]] = defaultdict(set)
    for i, other in enumerate(items):
        design_items[splits.design_of(other.original)].add(i)
    colourways = {
        item.original: frozenset(
            i
            for i in design_items[splits.design_of(item.original)]
            if items[i].original != item.original or items[i].kind in variant_set.COLOUR_VARIANTS
        )
        for item in items
    }
    report.originals = {query: items[query].original for _, _, query, _, _ in asked}
    report.split_of = {query: design_split(dataset, original) for query, original in report.originals.items()}
    dev_asked = [question for question in asked if report.split_of[question[2]] == "dev"]
    for threshold in sorted({*CURVE, settings.retrieval_threshold}):
        tally: Counter[str] = Counter()
        candidates = 0
        for kind, expected, query, shortlist, matches in asked:
            kept = [m for m in matches if m.hit.distance < threshold]
            candidates += sum(h.distance < threshold for h in shortlist) if report.split_of[query] == "dev" else 0
            # Grayscale has no colour to tell a design's colourways (and their copies) apart: naming them is no error.
            original = items[query].original
            acceptable = colourways[original] | metals[original] if kind == "grayscale" else frozenset()
            forbidden = metals[original] if kind == METAL_COLOURWAY else frozenset()
            outcome = Outcome(query, expected, [(m.hit.id, m.match) for m in kept], acceptable, forbidden)
            report.outcomes_at.setdefault(threshold, defaultdict(list))[kind].append(outcome)
            if threshold == settings.retrieval_threshold:
                report.outcomes[kind].append(outcome)
                report.rules[kind].update(rule for _, rule in outcome.found)
            if report.split_of[query] != "dev":
                continue  # the curve is for tuning: dev only
            verdict = outcome.verdict()
            tally[verdict] += 1
            if expected is not None:
                tally["positives"] += 1
                tally["found"] += verdict == "correct"
        report.curve.append(
            CurvePoint(
                threshold,
                tally["found"] / max(tally["positives"], 1),
                tally["wrong"],
                tally["false_duplicate"],
                candidates / max(len(dev_asked), 1),
            )
        )
    if dev_asked:
        designs = {splits.design_of(items[q].original) for _, _, q, _, _ in dev_asked}
        report.chosen_threshold = choose_threshold(report.curve, designs, dataset)
    report.scale = _scale(prepared, settings)
    return report


def _scale(prepared: Prepared, settings: Settings) -> dict[str, list[float]]:
    """Expected recall of top-k retrieval in a catalogue of N unrelated photos, per class: a query's
    original stays within the top k while fewer than k unrelated photos outscore it; the chance
    that one unrelated photo does is read off every unrelated pair measured here."""
    items = prepared.items
    families = np.array([item.original for item in items])
    similarity = prepared.vectors @ prepared.vectors.T
    unrelated = np.sort(similarity[families[:, None] != families[None, :]])
    if not len(unrelated):
        return {}
    index_of_original = {item.original: i for i, item in enumerate(items) if item.kind == "original"}
    estimates: dict[str, list[float]] = {}
    by_kind: dict[str, list[float]] = defaultdict(list)
    for query, item in enumerate(items):
        if item.kind in variant_set.DUPLICATE_CLASSES:
            by_kind[item.kind].append(float(similarity[query, index_of_original[item.original]]))
    for kind, scores in by_kind.items():
        above = 1 - np.searchsorted(unrelated, np.array(scores)) / len(unrelated)  # share of unrelated above
        estimates[kind] = [float(np.mean(above * size < settings.search_top_k)) for size in CATALOGUE_SIZES]
    return estimates


NEGATIVE_GROUPS = ("colour variants", "metal colourways", "unrelated")
NEGATIVE_KINDS = (*variant_set.COLOUR_VARIANTS, METAL_COLOURWAY, "unrelated")


def figures(report: Report, threshold: float | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Per split (dev, test, all) and class group: for duplicate classes the recall (the original
    found, nothing else named) and the precision of what was flagged; for colour variants and
    unrelated photos the share kept apart (no false duplicate). Each with n and a 95 % interval.
    At the configured retrieval threshold, or another of the curve's."""
    outcomes_by_kind = report.outcomes if threshold is None else report.outcomes_at[threshold]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split in (*splits.SPLITS, "all"):
        by_group: dict[str, dict[str, Any]] = {}
        for group, kinds in GROUPS.items():
            outcomes = [
                o
                for kind in kinds
                for o in outcomes_by_kind.get(kind, [])
                if split == "all" or report.split_of.get(o.query) == split
            ]
            verdicts = Counter(o.verdict() for o in outcomes)
            if group in NEGATIVE_GROUPS:
                by_group[group] = {"kept_apart": Proportion(verdicts["correct"], len(outcomes)).as_json()}
            else:
                flagged = verdicts["correct"] + verdicts["wrong"]
                by_group[group] = {
                    "recall": Proportion(verdicts["correct"], len(outcomes)).as_json(),
                    "precision": Proportion(verdicts["correct"], flagged).as_json(),
                }
        designs = {
            splits.design_of(report_item)
            for query, report_item in report.originals.items()
            if split == "all" or report.split_of.get(query) == split
        }
        by_group["designs"] = {"n": len(designs)}
        out[split] = by_group
    return out


def render(report: Report) -> str:
    items_note = f"{report.catalogue_size} photos (originals and variants)"
    s = report.settings
    lines = [
        f"## {report.model}",
        "",
        f"Catalogue: {items_note}; top {s.search_top_k}, retrieval threshold {s.retrieval_threshold}, "
        f"near threshold {s.duplicate_threshold}, verification: ≥ {s.verify_min_inliers} inliers, "
        f"colour disagreement ≤ {s.verify_max_colour_disagreement:.0%}.",
        "",
        "| class | queries | found | wrong | missed | precision | recall | results by rule |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, kinds in GROUPS.items():
        for kind in [*kinds, group] if len(kinds) > 1 else kinds:
            members = kinds if kind == group else (kind,)
            outcomes = [o for k in members for o in report.outcomes.get(k, [])]
            if not outcomes:
                continue
            counts = report.counts(members)
            rules = sum((report.rules[k] for k in members), Counter())
            label = f"**{group}**" if kind == group else kind
            if kind in NEGATIVE_KINDS or (group in NEGATIVE_GROUPS and kind == group):
                false = counts["false_duplicate"] + counts["wrong"]
                lines.append(f"| {label} | {len(outcomes)} | — | — | — | — | — | {false} false duplicates |")
                continue
            flagged = counts["correct"] + counts["wrong"]
            precision = counts["correct"] / flagged if flagged else 1.0
            recall = counts["correct"] / len(outcomes)
            matched = ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items())) or "—"
            goal = GOALS.get(group) if kind == group else None
            mark = "" if goal is None else (" ✓" if recall >= goal else f" ✗ (goal {goal:.0%})")
            lines.append(
                f"| {label} | {len(outcomes)} | {counts['correct']} | {counts['wrong']} | {counts['missed']} "
                f"| {precision:.3f} | {recall:.3f}{mark} | {matched} |"
            )
    lines += ["", "Per split (designs split by evaluation/splits.json; value (n; 95 % Wilson interval)):", ""]
    lines += ["| split | designs | " + " | ".join(GROUPS) + " |", "|---|---|" + "---|" * len(GROUPS)]
    for split, groups in figures(report).items():
        cells = [
            f"kept apart {cell(groups[g]['kept_apart'])}"
            if g in NEGATIVE_GROUPS
            else f"recall {cell(groups[g]['recall'])}"
            for g in GROUPS
        ]
        lines.append(f"| {split} | {groups['designs']['n']} | " + " | ".join(cells) + " |")
    lines += ["", "Retrieval threshold curve (recall over all duplicate classes; dev split's queries only):", ""]
    lines += [
        "| retrieval threshold | recall | wrong | false duplicates | candidates verified per query |",
        "|---|---|---|---|---|",
    ]
    for point in report.curve:
        lines.append(
            f"| {point.threshold:g} | {point.recall:.3f} | {point.wrong} | {point.false_duplicates} "
            f"| {point.candidates:.1f} |"
        )
    chosen = (
        "none (every threshold has false duplicates)" if report.chosen_threshold is None else report.chosen_threshold
    )
    lines += [
        "",
        f"Chosen retrieval threshold (on dev: highest recall with no false duplicate, fewest candidates): {chosen}",
    ]
    sizes = " / ".join(f"{n:,}" for n in CATALOGUE_SIZES)
    lines += [
        "",
        f"Retrieval at scale: share of queries whose original stays in the top {s.search_top_k} among {sizes}",
    ]
    lines += ["unrelated photos (each pair of unrelated photos measured here, extrapolated):", ""]
    lines += [
        "| class | " + " | ".join(f"{n:,}" for n in CATALOGUE_SIZES) + " |",
        "|---|" + "---|" * len(CATALOGUE_SIZES),
    ]
    for kind, estimates in report.scale.items():
        lines.append(f"| {kind} | " + " | ".join(f"{e:.2f}" for e in estimates) + " |")
    return "\n".join(lines)


def meets_goals(report: Report) -> bool:
    for group, goal in GOALS.items():
        outcomes = [o for k in GROUPS[group] for o in report.outcomes.get(k, [])]
        if outcomes and Counter(o.verdict() for o in outcomes)["correct"] / len(outcomes) < goal:
            return False
    negatives = NEGATIVE_KINDS
    return sum(o.verdict() != "correct" for k in negatives for o in report.outcomes.get(k, [])) == 0


def main(argv: list[str] | None = None) -> int:
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder

    parser = argparse.ArgumentParser(
        prog="python -m evaluation.duplicate_detection", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--photos", action="append", help=f"folder of originals (default: {', '.join(DEFAULT_PHOTOS)})")
    parser.add_argument("--model", help="a CLIP ONNX export to evaluate too (default: CLIP_MODEL_PATH or build/clip)")
    parser.add_argument("--seed", type=int, default=15, help="seed of the variants (crops, rotations, hues)")
    args = parser.parse_args(argv)
    settings = get_settings()
    folders = args.photos or DEFAULT_PHOTOS
    # The shipped photos' designs are split by the manifest; another folder's by the manifest's rule
    dataset = splits.PHOTOS if not args.photos else "photos:" + ",".join(folders)
    items = build_items(folders, args.seed)
    if not items:
        parser.error(f"no .jpg photos in {', '.join(folders)} (run from the repository root, or pass --photos)")
    models = [str(DESCRIPTOR_MODEL)]
    clip = (
        args.model
        or settings.clip_model_path
        or ("build/clip/model.onnx" if os.path.exists("build/clip/model.onnx") else None)
    )
    if clip:
        models.append(clip)
    ok = True
    for model in models:
        prepared = prepare(items, OnnxEmbedder(model, resize=settings.clip_resize))
        report = evaluate(prepared, settings, dataset)
        print(render(report), end="\n\n", flush=True)
        ok &= meets_goals(report) if model == str(DESCRIPTOR_MODEL) else True
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
