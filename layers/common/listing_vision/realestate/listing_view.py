"""One listing as the review console's listings tab shows it (GET /listings/{zpid}, read-only): its
photos (links: the `image_urls` it was ingested with, else those its image vectors name) and its
text before and after the visual-features split: `visual_features_text`, the aggregated text the
migration splits (kept on the listing beside the split, as verify's spot checks read it), and the
three split fields (null where the listing has not been split yet). One `_mget` of the fields shown."""

from __future__ import annotations

from typing import Any

from listing_vision.errors import NotFound
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingsIndex

ZPID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"  # as ingest and the migration take a zpid
BEFORE = "visual_features_text"
PENDING = "visual_features_pending"
SHOWN = ["image_urls", "image_vectors.image_url", BEFORE, PENDING, *SPLIT_FIELDS]


def view(listings: ListingsIndex, zpid: str) -> dict[str, Any]:
    found = listings.get_docs([zpid], source=SHOWN).get(zpid)
    if found is None:
        raise NotFound(f"No listing {zpid}.", code="listing_not_found", details={"zpid": zpid})
    source = found.source
    split = {name: source.get(name) for name in SPLIT_FIELDS}
    return {
        "zpid": zpid,
        "photos": [
            {"url": url, "link": url if url.startswith(("https://", "http://")) else None} for url in found.image_urls
        ],
        "before": {BEFORE: source.get(BEFORE)},
        "after": split,
        "split": all(value is not None for value in split.values()) and not source.get(PENDING),
        "images_pending": bool(source.get(PENDING)),
    }
