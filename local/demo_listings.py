"""Demo listings for the local stack and the tests: realistic listings and their vision-cache items.

1,588 listings by default (the size of the production catalogue), about 20 images each (a third exterior), with
90–95 % of listings fully cached, some partially and some not at all. Each listing has a ground
truth (style, colour, materials, features, amenities); each image's analysis reports part of it
with some noise and a confidence, the way a vision model does. An amenity (`AMENITIES`) is named
in whatever words a model might use for it, differently from photo to photo ("hot tub",
"jacuzzi", "swim spa"), a few of them words the feature taxonomy does not know ("solarium");
features include look-alikes ("pool table", "garden tub", "shed roof"). `visual_features_text` is
aggregated from all of a listing's analyses, as uploads did before the cache existed for every
image.

Image vectors and cached embeddings are shortened (`vector_dim`, default 32) to keep the local
stack light; nothing in the migration reads them.

    python -m local.demo_listings --listings 1588    # load into the configured stores
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from listing_vision.dynamodb_batch import batch_put
from listing_vision.dynamodb_items import to_item
from listing_vision.realestate.features import visual_features_text

STYLES = [
    "ranch",
    "colonial",
    "craftsman",
    "victorian",
    "cape cod",
    "tudor",
    "modern",
    "contemporary",
    "mediterranean",
    "farmhouse",
    "split-level",
    "bungalow",
    "mid-century modern",
    "georgian",
]
COLOURS = ["white", "gray", "beige", "blue", "red", "tan", "yellow", "green", "brown", "black"]
MATERIALS = ["vinyl", "brick", "stone", "wood", "stucco", "fiber cement", "cedar shake", "aluminum"]
EXTERIOR_FEATURES = [
    "vinyl siding",
    "brick facade",
    "shutters",
    "dormer windows",
    "bay window",
    "large windows",
    "gabled roof",
    "hip roof",
    "flat roof",
    "chimney",
    "stone accents",
    "metal roof",
    "front porch",
    "covered porch",
    "attached garage",
    "detached garage",
    "two-car garage",
    "wood deck",
    "patio",
    "in-ground pool",
    "fenced yard",
    "landscaped yard",
    "solar panels",
    "balcony",
    "shed roof",
    "juliet balcony",
    "basketball hoop",
]
INTERIOR_FEATURES = [
    "granite countertops",
    "quartz countertops",
    "white cabinets",
    "dark wood cabinets",
    "stainless steel appliances",
    "kitchen island",
    "hardwood floors",
    "tile floors",
    "carpet",
    "vaulted ceiling",
    "crown molding",
    "recessed lighting",
    "fireplace",
    "walk-in closet",
    "double vanity",
    "soaking tub",
    "walk-in shower",
    "open floor plan",
    "built-in shelves",
    "breakfast nook",
    "white walls",
    "exposed beams",
    "pool table",
    "spa-like bathroom",
    "garden tub",
    "jetted tub",
]
# Amenities a buyer filters by, each with the kind of photo that shows it and the words vision
# models use for it (the phrasings follow tests/data/labelled_feature_phrases.csv, written before
# the taxonomy; the last of some is a phrasing the taxonomy does not know).
AMENITIES: dict[str, tuple[str, list[str]]] = {
    "hot tub": ("exterior", ["hot tub", "jacuzzi on the deck", "outdoor spa", "covered hot tub", "swim spa"]),
    "wood stove": ("interior", ["wood-burning stove", "cast iron wood stove", "pellet stove in the corner"]),
    "screened porch": ("exterior", ["screened porch", "screened-in back porch", "large screened porch"]),
    "sunroom": ("interior", ["sunroom with lots of windows", "three-season room", "florida room", "solarium"]),
    "dock": ("exterior", ["private boat dock", "floating dock on the lake", "boat dock with lift"]),
    "basement": ("interior", ["finished basement", "walkout basement", "basement rec room", "unfinished basement"]),
    "ev charger": ("exterior", ["ev charger", "electric vehicle charging station", "wall-mounted ev charger"]),
    "outdoor kitchen": ("exterior", ["outdoor kitchen", "built-in grill", "built-in barbecue", "outdoor pizza oven"]),
    "home gym": ("interior", ["home gym with mirrors", "exercise room", "workout room", "fitness studio"]),
    "fire pit": ("exterior", ["fire pit with seating", "stone fire pit", "gas fire pit table"]),
    "guest house": ("exterior", ["guest house", "detached guest cottage", "casita", "mother-in-law cottage"]),
    "carport": ("exterior", ["carport", "attached carport", "carport with metal roof"]),
}
INTERIOR_VISUAL = ["natural light", "spacious", "updated", "cozy", "modern finishes", "high ceilings"]
EXTERIOR_VISUAL = ["curb appeal", "mature trees", "well-maintained", "manicured lawn", "sunny"]
CITIES = [
    ("Austin", "TX"),
    ("Denver", "CO"),
    ("Raleigh", "NC"),
    ("Columbus", "OH"),
    ("Boise", "ID"),
    ("Portland", "OR"),
    ("Nashville", "TN"),
    ("Madison", "WI"),
]
STREETS = ["Oak", "Maple", "Cedar", "Pine", "Elm", "Willow", "Birch", "Lakeview", "Hillcrest", "Sunset"]
CONFIDENCE = ["high"] * 6 + ["medium"] * 3 + ["low"]


@dataclass
class Truth:
    """What a listing really is; used to label the search-quality queries."""

    zpid: str
    style: str
    colour: str
    materials: list[str]
    exterior: list[str]
    interior: list[str]
    amenities: list[str] = field(default_factory=list)  # keys of AMENITIES


@dataclass
class DemoListing:
    truth: Truth
    doc: dict[str, Any]
    cache_items: list[dict[str, Any]] = field(default_factory=list)
    coverage: str = "full"


def _amenity_phrases(rng: random.Random, truth: Truth, kind: str) -> list[str]:
    """The listing's amenities this photo shows (each in about half the photos of its kind), each in
    words picked for this photo."""
    return [
        rng.choice(AMENITIES[name][1]) for name in truth.amenities if AMENITIES[name][0] == kind and rng.random() < 0.5
    ]


def _analysis(rng: random.Random, truth: Truth, kind: str) -> dict[str, Any]:
    confidence = rng.choice(CONFIDENCE)
    if kind == "exterior":
        return {
            "image_type": "exterior",
            "architecture_style": truth.style if rng.random() < 0.85 else rng.choice(STYLES),
            "exterior_color": truth.colour if rng.random() < 0.9 else rng.choice(COLOURS),
            "materials": rng.sample(truth.materials, k=rng.randint(1, len(truth.materials))),
            "features": rng.sample(truth.exterior, k=min(len(truth.exterior), rng.randint(2, 4)))
            + _amenity_phrases(rng, truth, kind),
            "visual_features": rng.sample(EXTERIOR_VISUAL, k=1),
            "confidence": confidence,
        }
    return {
        "image_type": "interior",
        "architecture_style": None,
        "exterior_color": None,
        "materials": [],
        "features": rng.sample(truth.interior, k=min(len(truth.interior), rng.randint(2, 4)))
        + _amenity_phrases(rng, truth, kind),
        "visual_features": rng.sample(INTERIOR_VISUAL, k=rng.randint(0, 2)),
        "confidence": confidence,
    }


def generate(listings: int = 1588, seed: int = 0, vector_dim: int = 32) -> Iterator[DemoListing]:
    rng = random.Random(seed)
    vectors = np.random.default_rng(seed)
    for number in range(listings):
        zpid = str(10_000_000 + number * 7 + 3)
        truth = Truth(
            zpid=zpid,
            style=rng.choice(STYLES),
            colour=rng.choice(COLOURS),
            materials=rng.sample(MATERIALS, k=rng.randint(1, 2)),
            exterior=rng.sample(EXTERIOR_FEATURES, k=rng.randint(4, 7)),
            interior=rng.sample(INTERIOR_FEATURES, k=rng.randint(5, 9)),
            amenities=rng.sample(sorted(AMENITIES), k=rng.choice([0, 0, 1, 1, 2, 3])),
        )
        count = rng.randint(15, 25)
        kinds = ["exterior"] * max(2, count // 3) + ["interior"] * (count - max(2, count // 3))
        analyses = [_analysis(rng, truth, kind) for kind in kinds]
        urls = [f"https://photos.hearth.example/{zpid}/{index:02d}.jpg" for index in range(count)]
        roll = rng.random()
        coverage = "full" if roll < 0.925 else "partial" if roll < 0.975 else "none"
        cached = (
            set(range(count))
            if coverage == "full"
            else set(rng.sample(range(count), k=rng.randint(count // 4, 3 * count // 4)))
            if coverage == "partial"
            else set()
        )
        city, state = rng.choice(CITIES)
        doc = {
            "zpid": zpid,
            "address": f"{rng.randint(100, 9999)} {rng.choice(STREETS)} {rng.choice(['St', 'Ave', 'Dr', 'Ln'])}",
            "city": city,
            "state": state,
            "price": rng.randrange(180_000, 1_400_000, 1000),
            "bedrooms": rng.randint(1, 6),
            "bathrooms": rng.choice([1, 1.5, 2, 2.5, 3, 3.5, 4]),
            "living_area": rng.randrange(700, 5200, 10),
            "year_built": rng.randint(1905, 2024),
            "description": f"{truth.style.title()} home in {city} with {rng.randint(1, 6)} bedrooms.",
            "visual_features_text": visual_features_text(analyses),
            "image_vectors": [
                {
                    "image_url": url,
                    "image_type": kind,
                    "vector": [round(float(x), 4) for x in vectors.standard_normal(vector_dim)],
                }
                for url, kind in zip(urls, kinds, strict=True)
            ],
        }
        items = []
        for index in sorted(cached):
            analysis = analyses[index]
            raw = json.dumps(analysis, sort_keys=True)
            items.append(
                to_item(
                    {
                        "image_url": urls[index],
                        "analysis": raw,
                        "llm_response": raw,
                        "image_hash": hashlib.sha256(urls[index].encode()).hexdigest(),
                        "embedding": vectors.standard_normal(vector_dim).astype("<f4").tobytes(),
                        "analysis_model": "claude-sonnet-4-5",
                        "embedding_model": "clip-vit-base-patch32",
                        "cached_at": 1767225600,
                    }
                )
            )
        yield DemoListing(truth, doc, items, coverage)


def load(
    listings: int = 1588,
    seed: int = 0,
    progress: Any = None,
    index: str | None = None,
    table: str | None = None,
    start: int = 0,
    cache: bool = True,
) -> dict[str, int]:
    """Generate and write the demo data into the index and cache table (default: the configured ones).
    `start` skips the first listings (already loaded: ids are stable per seed); `cache=False` writes
    the listings alone (what the operations that never read the cache need, e.g. memory benches)."""
    from opensearchpy import helpers

    from listing_vision import aws
    from listing_vision.config import get_settings
    from listing_vision.realestate.listings_index import ListingsIndex, opensearch_client

    settings = get_settings()
    index = index or settings.listings_index
    table = table or settings.vision_cache_table
    search = opensearch_client()
    ListingsIndex(search, index).ensure_index()
    dynamodb = aws.client("dynamodb")
    docs: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    counts = {"listings": 0, "cache_items": 0}

    def flush() -> None:
        helpers.bulk(search, ({"_index": index, "_id": d["zpid"], "_source": d} for d in docs), chunk_size=200)
        batch_put(dynamodb, table, items)
        if progress:
            progress(len(docs))
        docs.clear()
        items.clear()

    for listing in itertools.islice(generate(listings, seed), start, None):
        docs.append(listing.doc)
        if cache:
            items.extend(listing.cache_items)
            counts["cache_items"] += len(listing.cache_items)
        counts["listings"] += 1
        if len(docs) >= 100:
            flush()
    flush()
    search.indices.refresh(index=index)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo_listings")
    parser.add_argument("--listings", type=int, default=1588)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(load(args.listings, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
