"""The evaluation's split manifest: every labelled phrase and every evaluation photo's design is in
`dev` (may be looked at and tuned on) or `test` (measured, never tuned on).

    python -m evaluation.splits            # the counts, and whether splits.json is current
    python -m evaluation.splits --write    # rewrite evaluation/splits.json from the shipped data

The manifest, `evaluation/splits.json`, is committed; it is built deterministically from the data:

- a phrase set's phrases by the parity of the SHA-256 of the phrase (UTF-8): even dev, odd test,
  except a set that was tuned on as a whole (the adversarial probe: rules came from its misses),
  which is dev entirely;
- photos by design, never by variant: a photo's design is its file name's stem up to any `@`
  (`ring7@silver.jpg` and `ring7@gold.jpg` are one design), and a design goes to dev or test by
  the parity of the SHA-256 of its name. The evaluation's variants (re-exports, crops, colour
  edits) of a photo belong to its design.

Tuning code calls `require_dev`, which raises `SplitLeak` when it is handed a test item, so a
threshold or a rule can only be chosen on dev. A unit test holds splits.json equal to what the
data gives, so a phrase or photo added without a split fails until the manifest is rewritten.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal

Split = Literal["dev", "test"]
SPLITS: tuple[Split, ...] = ("dev", "test")
ROOT = Path(__file__).resolve().parents[1]
MANIFEST = Path(__file__).with_name("splits.json")
DATA = ROOT / "tests" / "data"
# Phrase sets: file name → rule. "hash": SHA-256 parity; "dev": tuned on as a whole.
PHRASE_SETS = {
    "labelled_feature_phrases.csv": "hash",
    "negated_feature_phrases.csv": "hash",
    "probe_feature_phrases.csv": "dev",
}
PHOTO_FOLDERS = ("tests/data/photos", "tests/data/package_photos", "tests/data/jewelry")
PHOTOS = "photos"  # the dataset name of the evaluation photos' designs


class SplitLeak(Exception):
    """Tuning code was handed an item of the test split."""


class Unassigned(KeyError):
    """An item of a dataset the manifest covers is not in it: rewrite the manifest."""


def hash_split(key: str) -> Split:
    return "dev" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2 == 0 else "test"


def design_of(photo: str | Path) -> str:
    """A photo's design: its stem up to any '@' (`ring7@silver.jpg` → `ring7`)."""
    return Path(photo).stem.split("@", 1)[0]


def read_phrases(path: str | Path) -> list[dict[str, str]]:
    """A phrase CSV's rows (lines starting with # are comments)."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(lines))


def build_manifest(root: Path = ROOT) -> dict[str, Any]:
    """The manifest the shipped data gives (deterministic)."""
    datasets: dict[str, Any] = {}
    for name, rule in PHRASE_SETS.items():
        phrases = sorted(row["phrase"] for row in read_phrases(root / "tests" / "data" / name))
        datasets[name] = {"rule": "sha256 parity" if rule == "hash" else "all dev (tuned on)"} | {
            split: [p for p in phrases if (hash_split(p) if rule == "hash" else "dev") == split] for split in SPLITS
        }
    designs = sorted({design_of(p) for folder in PHOTO_FOLDERS for p in (root / folder).glob("*.jpg")})
    datasets[PHOTOS] = {"rule": "sha256 parity of the design", "folders": list(PHOTO_FOLDERS)} | {
        split: [d for d in designs if hash_split(d) == split] for split in SPLITS
    }
    return {
        "about": "Evaluation splits: dev may be looked at and tuned on; test is measured only. "
        "Built by python -m evaluation.splits --write (rules in evaluation/splits.py).",
        "datasets": datasets,
    }


@cache
def load_manifest(path: str = str(MANIFEST)) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _index(dataset: str) -> dict[str, Split] | None:
    entry = load_manifest()["datasets"].get(dataset)
    if entry is None:
        return None
    return {key: split for split in SPLITS for key in entry[split]}


def split_of(dataset: str, key: str) -> Split:
    """The split of a phrase (dataset: its CSV's file name) or a design (dataset `photos`).

    A dataset the manifest does not cover (a user's own file) is split by the same hash rule."""
    index = _index(dataset)
    if index is None:
        return hash_split(key)
    if key not in index:
        raise Unassigned(f"{key!r} of {dataset} is not in {MANIFEST.name}: run python -m evaluation.splits --write")
    return index[key]


def require_dev(dataset: str, keys: Iterable[str], what: str) -> None:
    """Raise SplitLeak when any of `keys` is in the test split: `what` tunes on dev only."""
    leaked = sorted({key for key in keys if split_of(dataset, key) == "test"})
    if leaked:
        shown = ", ".join(repr(k) for k in leaked[:5]) + (f" and {len(leaked) - 5} more" if len(leaked) > 5 else "")
        raise SplitLeak(f"{what} tunes on the dev split only; it was handed test items of {dataset}: {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.splits", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {MANIFEST.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    built = build_manifest()
    if args.write:
        MANIFEST.write_text(json.dumps(built, indent=1, ensure_ascii=False) + "\n")
        load_manifest.cache_clear()
    for name, entry in built["datasets"].items():
        print(f"{name}: dev {len(entry['dev'])}, test {len(entry['test'])} ({entry['rule']})")
    current = MANIFEST.exists() and json.loads(MANIFEST.read_text()) == built
    print(f"{MANIFEST.relative_to(ROOT)}: " + ("current" if current else "NOT current (run with --write)"))
    return 0 if current else 1


if __name__ == "__main__":
    sys.exit(main())
