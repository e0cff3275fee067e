"""Reviewers' verdicts (PUT /verdicts, the review console's buttons) as calibration labels.

A verdict names a pair of images by id (the SHA-256 of each photo's bytes): "same_piece" or
"not_duplicate". `python -m evaluation.calibrate` takes them besides its groups, as extra pairs
labelled same or different (`Labels`): a verdict overrides what the folders say of that pair, and a
verdict on photos in no group adds them, each a product of its own joined only by its verdicts.

Where the verdicts come from:
- `--verdicts FILE`: a JSON file, GET /verdicts' page (`{"verdicts": [...]}`), a list of verdicts,
  or what `--verdicts-from-api` saved (`verdicts.json`);
- `--verdicts-from-api URL --website W [--api-key K]`: every page of GET /verdicts, saved under the
  output folder, and each image's photo fetched through GET /images/{id} (the stored ones; a duplicate
  upload is not stored, so its photo must be in the groups or in `--verdict-photos DIR`).

A photo is found by its id: every file of the groups and of `--verdict-photos` is hashed. A verdict
whose two photos are not both found is counted as skipped and not used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from PIL import Image

VERDICTS = {"same_piece": True, "not_duplicate": False}


@dataclass(frozen=True)
class Verdict:
    image_id: str
    matched_image_id: str
    same: bool


def parse(document: Any) -> list[Verdict]:
    """Verdicts from GET /verdicts' page shape or a list of them; refuses an entry it cannot read."""
    entries = document.get("verdicts") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise ValueError('verdicts: expected {"verdicts": [...]} or a list of verdicts')
    found = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("verdict") not in VERDICTS:
            raise ValueError(f"verdict {number}: needs image_id, matched_image_id, verdict: same_piece|not_duplicate")
        found.append(Verdict(str(entry["image_id"]), str(entry["matched_image_id"]), VERDICTS[entry["verdict"]]))
    return found


def load_file(path: Path) -> list[Verdict]:
    return parse(json.loads(path.read_text(encoding="utf-8")))


def fetch_from_api(url: str, website: str, out: Path, api_key: str | None = None) -> tuple[list[Verdict], Path]:
    """Every verdict of a storefront through GET /verdicts, saved as `out/verdicts.json`, and the photos
    the storefront stores for them through GET /images/{id}, under `out/verdict-photos/`: (verdicts, that folder)."""
    session = requests.Session()
    if api_key:
        session.headers["x-api-key"] = api_key
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"website": website, "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = session.get(f"{url.rstrip('/')}/verdicts", params=params, timeout=30)
        page.raise_for_status()
        entries += page.json()["verdicts"]
        if (cursor := page.json()["next_cursor"]) is None:
            break
    out.mkdir(parents=True, exist_ok=True)
    (out / "verdicts.json").write_text(json.dumps({"verdicts": entries}, indent=1) + "\n")
    photos = out / "verdict-photos"
    photos.mkdir(exist_ok=True)
    for image_id in dict.fromkeys(i for e in entries for i in (e["image_id"], e["matched_image_id"])):
        target = photos / f"{image_id}.img"
        if target.exists():
            continue
        answer = session.get(f"{url.rstrip('/')}/images/{image_id}", params={"website": website}, timeout=60)
        if answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == image_id:
            target.write_bytes(answer.content)  # an upload the check found duplicate is not stored: 404
    return parse(entries), photos


def images_in(folder: Path) -> list[Path]:
    """The files of `folder` Pillow reads as images, in name order (a README beside the photos is not one)."""
    found = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, SyntaxError, ValueError):  # what Pillow raises for a file it cannot read
            continue
        found.append(path)
    return found


def image_id(path: Path) -> str:
    """A photo's image id, as the API names it: the SHA-256 of its bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo_ids(paths: Iterable[Path]) -> dict[str, Path]:
    """Each photo's image id and its file, the first file of each id."""
    found: dict[str, Path] = {}
    for path in paths:
        found.setdefault(image_id(path), path)
    return found


class Labels:
    """Which pairs of photos (by index) are the same product: their group folders' word, overridden
    per pair by the verdicts whose two photos are known."""

    def __init__(self, groups: Sequence[str], ids: Sequence[str] = (), verdicts: Sequence[Verdict] = ()):
        self.groups = list(groups)
        index = {image_id: i for i, image_id in reversed(list(enumerate(ids)))}
        self.overrides: dict[frozenset[int], bool] = {}
        self.skipped = 0
        for verdict in verdicts:
            a, b = index.get(verdict.image_id), index.get(verdict.matched_image_id)
            if a is None or b is None or a == b:
                self.skipped += 1
                continue
            self.overrides[frozenset((a, b))] = verdict.same  # the later verdict on a pair counts
        self.used = len(verdicts) - self.skipped

    def same(self, a: int, b: int) -> bool:
        pair = frozenset((a, b))
        return self.overrides[pair] if pair in self.overrides else self.groups[a] == self.groups[b]

    def positives(self, query: int) -> int:
        """The other photos that are the same product as `query`."""
        in_group = sum(1 for i, group in enumerate(self.groups) if i != query and group == self.groups[query])
        for pair, same in self.overrides.items():
            if query in pair:
                (other,) = pair - {query}
                in_group += int(same) - int(self.groups[other] == self.groups[query])
        return in_group

    def summary(self) -> Mapping[str, int]:
        return {
            "given": self.used + self.skipped,
            "used": self.used,
            "skipped_photo_not_found": self.skipped,
            "same_piece": sum(self.overrides.values()),
            "not_duplicate": sum(not same for same in self.overrides.values()),
        }
