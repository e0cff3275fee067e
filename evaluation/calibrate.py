"""Calibrate the duplicate check on your own catalogue: a folder of labelled groups in, a retrieval
threshold for a target precision and an HTML report out.

    python -m evaluation.calibrate GROUPS [--model build/clip/model.onnx] [--target-precision 0.99]
                                          [--out build/calibration]
    python -m evaluation.calibrate --demo-groups DIR [--demo-photos N]   # groups made from the shipped photos
    python -m evaluation.calibrate GROUPS --verdicts FILE [--verdict-photos DIR]
    python -m evaluation.calibrate GROUPS --verdicts-from-api URL --website W [--api-key K]

GROUPS holds one folder per product; the photos in a folder are the same product (re-exports,
crops, other shots of one piece), photos in different folders are different products. Colourways
of one design are different products: name their folders `<design>@<colour>` (`ring7@gold`,
`ring7@silver`) so they share a design. Designs, not folders, are split into dev and test by the
split manifest's hash rule (`evaluation/splits.py`): the threshold is chosen on dev pairs only
(`choose` raises SplitLeak on a test design) and reported on test, with n and 95 % intervals.

It runs the deployed model path: the model (the weight-free descriptor by default, or any CLIP ONNX
export) embeds every photo, each photo queries the others (exact top-k, SEARCH_TOP_K), and every
retrieved candidate goes through the service's own decision (`duplicates.decide`: the near rule and
verification). The retrieval threshold chosen is the one with the highest recall whose precision
on dev reaches the target (the fewest candidates on a tie). It prints the change against the
current settings, with `--stage-file infra/stages/<stage>.json` writes `retrieval_threshold` into
that stage's context file (deploy sets RETRIEVAL_THRESHOLD from it) and prints the diff, and writes
`thresholds.json` (the settings, as environment variables) and
`report.html` (score histograms of same and different pairs, the precision/recall curve with the
chosen point, and thumbnails of the worst false positives and false negatives).

Reviewers' verdicts (PUT /verdicts: "same piece", "not a duplicate") are extra pair labels: each
overrides what the folders say of its pair, and photos in no folder join as products of their own
(`evaluation/verdict_labels.py` says where they come from and how photos are found by their id).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from evaluation import splits, verdict_labels
from evaluation.stats import Proportion
from evaluation.verdict_labels import Labels, Verdict
from listing_vision.config import Settings, get_settings
from listing_vision.embeddings.base import Embedder
from listing_vision.jewelry import duplicates
from listing_vision.jewelry.vector_index import Hit


@dataclass(frozen=True)
class Photo:
    group: str
    path: Path

    @property
    def design(self) -> str:
        return splits.design_of(self.group)


@dataclass(frozen=True)
class Pair:
    """A query and one retrieved candidate, with what the service decided."""

    query: int
    candidate: int
    distance: float
    same: bool  # same group: the same product
    decided: bool  # the service's decision (near or verified) at any retrieval threshold
    reason: str
    split: str  # the query's design's split


def load_groups(folder: Path) -> list[Photo]:
    photos = [
        Photo(group.name, path)
        for group in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        for path in sorted(group.iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]
    if len({p.group for p in photos}) < 2:
        raise ValueError(f"{folder}: need at least two group folders, each holding photos of one product")
    return photos


def with_verdict_photos(photos: list[Photo], folder: Path | None) -> list[Photo]:
    """The groups' photos, then each photo of `folder` the groups do not hold (by content), as a product
    of its own: a verdict names it by id, and only verdicts join it to another."""
    if folder is None:
        return photos
    known = verdict_labels.photo_ids(p.path for p in photos)
    extra = verdict_labels.photo_ids(verdict_labels.images_in(folder))
    return photos + [Photo(f"verdict-{sha[:12]}", path) for sha, path in extra.items() if sha not in known]


def labels_of(photos: Sequence[Photo], verdicts: Sequence[Verdict] = ()) -> Labels:
    ids = [verdict_labels.image_id(p.path) for p in photos] if verdicts else []
    return Labels([p.group for p in photos], ids, verdicts)


def collect(
    photos: Sequence[Photo], embedder: Embedder, settings: Settings, dataset: str, labels: Labels | None = None
) -> list[Pair]:
    """Every photo against all the others: top-k retrieval, then the service's decision; a pair is the
    same product by `labels` (the groups, and the verdicts over them)."""
    labels = labels or labels_of(photos)
    described = []
    for start in range(0, len(photos), 32):
        described += embedder.describe([p.path.read_bytes() for p in photos[start : start + 32]])
    vectors = np.stack([d.embedding for d in described])
    loosest = settings.model_copy(update={"retrieval_threshold": 2.0})  # every candidate decided
    pairs = []
    for query, photo in enumerate(photos):
        scores = vectors @ vectors[query]
        scores[query] = -np.inf
        best = [int(i) for i in np.argsort(-scores, kind="stable")[: settings.search_top_k] if np.isfinite(scores[i])]
        hits = [Hit(i, float(scores[i]), str(i), "calibration") for i in best]
        shortlist = duplicates.candidates(hits, loosest)
        verdicts = duplicates.decide(
            shortlist,
            described[query].features,
            [described[h.id].features for h in shortlist],
            loosest,
            embedder.verify,
        )
        matched = {m.hit.id: m.match for m in verdicts}
        split = splits.split_of(dataset, photo.design)
        for hit in shortlist:
            same = labels.same(query, hit.id)
            reason = str(matched.get(hit.id, "not matched"))
            pairs.append(Pair(query, hit.id, hit.distance, same, hit.id in matched, reason, split))
    return pairs


def positives(photos: Sequence[Photo], queries: Iterable[int], labels: Labels | None = None) -> int:
    """Same-product pairs a perfect check would flag, one per (query, other photo of its product)."""
    if labels is not None:
        return sum(labels.positives(q) for q in queries)
    sizes: dict[str, int] = {}
    for photo in photos:
        sizes[photo.group] = sizes.get(photo.group, 0) + 1
    return sum(sizes[photos[q].group] - 1 for q in queries)


def curve(pairs: Sequence[Pair], total_positives: int) -> list[dict[str, Any]]:
    """Precision and recall of the service's decision at every useful retrieval threshold."""
    thresholds = sorted({round(p.distance + 1e-6, 6) for p in pairs if p.decided})
    points = []
    for threshold in thresholds:
        flagged = [p for p in pairs if p.decided and p.distance < threshold]
        true = sum(p.same for p in flagged)
        points.append(
            {
                "threshold": threshold,
                "precision": Proportion(true, len(flagged)),
                "recall": Proportion(true, total_positives),
                "candidates": sum(p.distance < threshold for p in pairs),
            }
        )
    return points


def choose(
    pairs: Sequence[Pair], photos: Sequence[Photo], target: float, dataset: str, labels: Labels | None = None
) -> dict[str, Any] | None:
    """The threshold with the highest recall whose precision reaches `target` (fewest candidates on a
    tie). Tuning: every pair's query must be a dev design, else SplitLeak."""
    splits.require_dev(dataset, {photos[p.query].design for p in pairs}, "calibrate's threshold choice")
    queries = {p.query for p in pairs} | {
        i for i, photo in enumerate(photos) if splits.split_of(dataset, photo.design) == "dev"
    }
    points = curve(pairs, positives(photos, queries, labels))
    good = [p for p in points if (p["precision"].value or 0) >= target]
    if not good:
        return None
    best = max(p["recall"].successes for p in good)
    return min((p for p in good if p["recall"].successes == best), key=lambda p: p["candidates"])


# --- the report ------------------------------------------------------------------------------
def _histogram_svg(same: list[float], different: list[float], chosen: float | None, width: int = 520) -> str:
    top = max([*same, *different, 0.01])
    bins = 24
    edges = np.linspace(0, top, bins + 1)
    counts = [np.histogram(values, edges)[0] for values in (same, different)]
    peak = max(1, *(int(c.max()) for c in counts if len(c)))
    height, bar = 160, width / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}">']
    for series, (colour, offset) in enumerate((("#2a7", 0.0), ("#d44", 0.5))):
        for i, count in enumerate(counts[series]):
            h = height * int(count) / peak
            parts.append(
                f'<rect x="{i * bar + offset * bar:.1f}" y="{height - h:.1f}" width="{bar / 2:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{int(count)}</title></rect>'
            )
    if chosen is not None:
        x = width * chosen / top
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#000" stroke-dasharray="4"/>')
    parts.append(
        f'<text x="0" y="{height + 20}" font-size="12">distance 0 … {top:.2f}; green: same product, '
        "red: different products; dashed: chosen threshold</text></svg>"
    )
    return "".join(parts)


def _curve_svg(points: list[dict[str, Any]], chosen: dict[str, Any] | None, size: int = 320) -> str:
    pad = 30
    scale = size - 2 * pad

    def xy(point: dict[str, Any]) -> tuple[float, float]:
        return pad + scale * (point["recall"].value or 0), pad + scale * (1 - (point["precision"].value or 0))

    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(xy, points))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}">',
        f'<rect x="{pad}" y="{pad}" width="{scale}" height="{scale}" fill="none" stroke="#999"/>',
        f'<polyline points="{line}" fill="none" stroke="#36c" stroke-width="2"/>',
        f'<text x="{pad}" y="{size - 8}" font-size="12">recall →</text>',
        f'<text x="2" y="{pad - 8}" font-size="12">precision ↑ (1.0 at top)</text>',
    ]
    if chosen is not None:
        x, y = xy(chosen)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#d80"><title>chosen</title></circle>')
    return "".join(parts) + "</svg>"


def _thumbnail(path: Path, side: int = 112) -> str:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img src="data:image/jpeg;base64,{data}" alt="{html.escape(path.name)}">'


def _pair_rows(pairs: Sequence[Pair], photos: Sequence[Photo]) -> str:
    if not pairs:
        return "<p>None.</p>"
    rows = [
        f"<tr><td>{_thumbnail(photos[p.query].path)}</td><td>{_thumbnail(photos[p.candidate].path)}</td>"
        f"<td>{html.escape(photos[p.query].group)}/{html.escape(photos[p.query].path.name)}<br>"
        f"{html.escape(photos[p.candidate].group)}/{html.escape(photos[p.candidate].path.name)}<br>"
        f"distance {p.distance:.3f}; decision: {html.escape(p.reason)}</td></tr>"
        for p in pairs
    ]
    return "<table>" + "".join(rows) + "</table>"


def report_html(
    summary: dict[str, Any],
    pairs: list[Pair],
    photos: list[Photo],
    points: list[dict[str, Any]],
    chosen: dict[str, Any] | None,
    worst: int = 6,
) -> str:
    threshold = chosen["threshold"] if chosen else None
    dev = [p for p in pairs if p.split == "dev"]
    flagged_wrong = sorted(
        (p for p in pairs if p.decided and not p.same and (threshold is None or p.distance < threshold)),
        key=lambda p: p.distance,
    )
    closest_different = sorted((p for p in pairs if not p.same), key=lambda p: p.distance)
    false_positives = flagged_wrong or closest_different
    missed = sorted(
        (p for p in pairs if p.same and not (p.decided and threshold is not None and p.distance < threshold)),
        key=lambda p: -p.distance,
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Duplicate check calibration</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}td{{padding:4px;vertical-align:top}}
pre{{background:#f4f4f4;padding:8px}}</style></head><body>
<h1>Duplicate check calibration</h1>
<pre>{html.escape(json.dumps(summary, indent=1))}</pre>
<h2>Distances of retrieved pairs (dev)</h2>
{_histogram_svg([p.distance for p in dev if p.same], [p.distance for p in dev if not p.same], threshold)}
<h2>Precision and recall over the retrieval threshold (dev)</h2>
{_curve_svg(points, chosen)}
<h2>Worst false positives{"" if flagged_wrong else " (none flagged: the closest different-product pairs)"}</h2>
{_pair_rows(false_positives[:worst], photos)}
<h2>Worst false negatives (same product, not flagged at the chosen threshold)</h2>
{_pair_rows(missed[:worst], photos)}
</body></html>
"""


def calibrate(
    folder: Path,
    embedder: Embedder,
    target: float,
    out: Path,
    settings: Settings | None = None,
    verdicts: Sequence[Verdict] = (),
    verdict_photos: Path | None = None,
) -> dict[str, Any]:
    settings = settings or get_settings()
    dataset = f"calibrate:{folder.resolve()}"
    photos = with_verdict_photos(load_groups(folder), verdict_photos)
    labels = labels_of(photos, verdicts)
    pairs = collect(photos, embedder, settings, dataset, labels)
    dev = [p for p in pairs if p.split == "dev"]
    chosen = choose(dev, photos, target, dataset, labels)
    dev_queries = [i for i, ph in enumerate(photos) if splits.split_of(dataset, ph.design) == "dev"]
    test_queries = [i for i, ph in enumerate(photos) if splits.split_of(dataset, ph.design) == "test"]
    summary: dict[str, Any] = {
        "model": embedder.model_id,
        "photos": len(photos),
        "groups": len({p.group for p in photos}),
        "designs": {
            s: len({p.design for p in photos if splits.split_of(dataset, p.design) == s}) for s in splits.SPLITS
        },
        "target_precision": target,
        "current": {"RETRIEVAL_THRESHOLD": settings.retrieval_threshold},
        "chosen": None,
        **({"verdicts": dict(labels.summary())} if verdicts else {}),
    }
    if chosen is not None:
        threshold = chosen["threshold"]
        summary["chosen"] = {"RETRIEVAL_THRESHOLD": threshold}
        for split, queries in (("dev", dev_queries), ("test", test_queries)):
            subset = [p for p in pairs if p.split == split]
            flagged = [p for p in subset if p.decided and p.distance < threshold]
            summary[split] = {
                "precision": Proportion(sum(p.same for p in flagged), len(flagged)).as_json(),
                "recall": Proportion(sum(p.same for p in flagged), positives(photos, queries, labels)).as_json(),
            }
    out.mkdir(parents=True, exist_ok=True)
    (out / "thresholds.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "report.html").write_text(
        report_html(summary, pairs, photos, curve(dev, positives(photos, dev_queries, labels)), chosen)
    )
    return summary


def write_demo_groups(
    folder: Path, photo_dirs: Sequence[str | Path] = ("tests/data/photos",), limit: int | None = None
) -> int:
    """Groups made from the shipped photos (the first `limit` in name order; all by default): each
    original with one copy of each kind of re-export, crop, rotation, mirror and grayscale (one
    product of 11 photos), and each colour variant a product of its own (`<photo>@<variant>`, the
    same design)."""
    from evaluation import variants

    photos = [photo for directory in photo_dirs for photo in sorted(Path(directory).glob("*.jpg"))][:limit]
    for photo in photos:
        data = photo.read_bytes()
        (folder / photo.stem).mkdir(parents=True, exist_ok=True)
        (folder / photo.stem / "original.jpg").write_bytes(data)
        kinds: set[str] = set()
        for n, variant in enumerate(variants.variants(photo.stem, data)):
            colour = variant.kind in variants.COLOUR_VARIANTS
            if not colour and variant.kind in kinds:
                continue  # one copy of each kind: a group smaller than the top k
            kinds.add(variant.kind)
            group = folder / (f"{photo.stem}@{variant.kind}{n}" if colour else photo.stem)
            group.mkdir(parents=True, exist_ok=True)
            (group / f"{variant.kind}-{n}.img").write_bytes(variant.data)
    return len(photos)


def main(argv: list[str] | None = None) -> int:
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder

    parser = argparse.ArgumentParser(prog="python -m evaluation.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="?", help="folder of group folders (one product each)")
    parser.add_argument("--model", help="a CLIP ONNX export (default: the weight-free descriptor)")
    parser.add_argument("--target-precision", type=float, default=0.99, help="precision to reach on dev (0.99)")
    parser.add_argument("--out", default="build/calibration", help="where thresholds.json and report.html go")
    parser.add_argument(
        "--stage-file", help="a stage context file (infra/stages/<stage>.json) to write retrieval_threshold into"
    )
    labelled = parser.add_mutually_exclusive_group()
    labelled.add_argument("--verdicts", metavar="FILE", help="reviewers' verdicts (GET /verdicts' JSON) as pair labels")
    labelled.add_argument("--verdicts-from-api", metavar="URL", help="fetch every verdict of --website from the API")
    parser.add_argument("--website", help="the storefront whose verdicts --verdicts-from-api fetches")
    parser.add_argument("--api-key", help="a client key for --verdicts-from-api (where the API needs one)")
    parser.add_argument("--verdict-photos", metavar="DIR", help="photos the verdicts name that the groups do not hold")
    parser.add_argument("--demo-groups", metavar="DIR", help="write groups made from tests/data/photos to DIR and stop")
    # --demo-groups from the first N shipped photos only; CALIBRATE_DEMO_PHOTOS as LOCAL_DEMO_LISTINGS for the stack
    default_photos = int(os.environ.get("CALIBRATE_DEMO_PHOTOS", "0")) or None  # None: all
    parser.add_argument("--demo-photos", type=int, default=default_photos, metavar="N", help="(--demo-groups) first N")
    args = parser.parse_args(argv)
    if args.demo_groups:
        made = write_demo_groups(Path(args.demo_groups), limit=args.demo_photos)
        print(f"{made} photos' groups written to {args.demo_groups}")
        return 0
    if not args.groups or not Path(args.groups).is_dir():
        parser.error(f"no folder of groups at {args.groups or '(none given)'}; --demo-groups DIR makes one")
    settings = get_settings()
    embedder = OnnxEmbedder(args.model or str(DESCRIPTOR_MODEL), resize=settings.clip_resize)
    verdicts: list[Verdict] = []
    photos_dir = Path(args.verdict_photos) if args.verdict_photos else None
    if args.verdicts:
        verdicts = verdict_labels.load_file(Path(args.verdicts))
    elif args.verdicts_from_api:
        if not args.website:
            parser.error("--verdicts-from-api needs --website")
        verdicts, fetched = verdict_labels.fetch_from_api(
            args.verdicts_from_api, args.website, Path(args.out), args.api_key
        )
        if photos_dir is not None:  # the given photos and the fetched ones, in one folder
            for path in photos_dir.iterdir():
                if path.is_file() and not (fetched / path.name).exists():
                    (fetched / path.name).write_bytes(path.read_bytes())
        photos_dir = fetched
    summary = calibrate(
        Path(args.groups), embedder, args.target_precision, Path(args.out), settings, verdicts, photos_dir
    )
    if "verdicts" in summary:
        print("verdicts: " + ", ".join(f"{key} {value}" for key, value in summary["verdicts"].items()))
    current, chosen = summary["current"], summary["chosen"]
    if chosen is None:
        print(f"no retrieval threshold reaches precision {args.target_precision} on dev; report in {args.out}")
        return 1
    for key, value in chosen.items():
        print(f"{key}: {current[key]} → {value}")
    for split in splits.SPLITS:
        figures = summary[split]
        print(
            f"{split}: precision {Proportion(figures['precision']['successes'], figures['precision']['n']).text()}, "
            f"recall {Proportion(figures['recall']['successes'], figures['recall']['n']).text()}"
        )
    print(f"wrote {args.out}/thresholds.json and {args.out}/report.html")
    if args.stage_file:
        print(write_stage_file(Path(args.stage_file), chosen["RETRIEVAL_THRESHOLD"]))
    return 0


def write_stage_file(path: Path, threshold: float) -> str:
    """Set `retrieval_threshold` in a stage context file, which deploy reads (every other key kept);
    the change, as a line."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such stage file (start from infra/stages/dev.example.json)")
    context = json.loads(path.read_text())
    before = context.get("retrieval_threshold")
    context["retrieval_threshold"] = round(threshold, 4)
    path.write_text(json.dumps(context, indent=2, ensure_ascii=False) + "\n")
    shown = "(unset)" if before is None else before
    return f"{path}: retrieval_threshold: {shown} → {context['retrieval_threshold']}"


if __name__ == "__main__":
    sys.exit(main())
