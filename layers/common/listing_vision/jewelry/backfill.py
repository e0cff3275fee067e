"""Embed and index every image already in a storefront bucket (a move from an older L2
collection `image_embeddings` to `image_embeddings_ip`, or any re-index after a model change).

The bucket is the source of truth, not the old collection: old vectors were unnormalised and may
come from another model. Work goes page by page in key order; each page is deduped and indexed
exactly as the upload trigger does (one code path), so a rerun skips what is indexed or recorded
and a killed run resumes from its last page (`--start-after`).

    python -m listing_vision.jewelry.backfill --website alya                     # in this process
    python -m listing_vision.jewelry.backfill --website alya --via-lambda dedupe  # through the function

`--via-lambda` invokes the dedupe function once per page (`{"operation": "backfill", ...}`): use it
against a deployed stack, or against `make run` (whose Milvus Lite belongs to that process).

A model change fills a new collection while the stage keeps serving from its own (one model's vectors
per collection, so the live API cannot search a collection of the new model):

    python -m listing_vision.jewelry.backfill --website alya --collection image_embeddings_v2 \
        --model build/clip/model.onnx

embeds in this process with that ONNX file (`--resize` its preprocessing) and writes vectors only to
`--collection`, made for that model if missing and refused if it holds another model's. Photos and
their records are read, not changed, so the live collection and the API are untouched; photos
uploaded meanwhile are caught by a rerun after the stage switches (README, Changing the model).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from listing_vision import aws
from listing_vision.config import Storefront, get_settings
from listing_vision.errors import InvalidRequest, VisionError
from listing_vision.jewelry.dedupe import DedupeService
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.jewelry.vector_index import VectorIndex

if TYPE_CHECKING:  # the ONNX modules load only when --model is given (onnxruntime is in no layer)
    from listing_vision.embeddings.clip_onnx import Resize

PAGE_SIZE = 64


class BackfillPage(BaseModel):
    """The event that indexes one page of a storefront bucket (`--via-lambda` sends one per page)."""

    operation: Literal["backfill"] = "backfill"
    website: Storefront
    start_after: str = Field("", max_length=1024)
    page_size: int = Field(PAGE_SIZE, ge=1, le=1000)
    prefix: str = Field("", max_length=1024)


def backfill_page(
    indexer: UploadIndexer, website: Storefront, start_after: str = "", page_size: int = PAGE_SIZE, prefix: str = ""
) -> dict[str, Any]:
    """Index one page of the bucket; returns counts per outcome and where the next page starts."""
    bucket = indexer.images.bucket_for(website)
    keys, truncated = indexer.images.list_page(bucket, prefix, start_after, page_size)
    outcomes = indexer.index_objects(bucket, keys) if keys else []
    return {
        "website": website,
        "processed": len(keys),
        "counts": dict(Counter(outcome.status for outcome in outcomes)),
        "next_start_after": keys[-1] if truncated and keys else None,
    }


def in_process_indexer(
    collection: str | None = None, model: str | None = None, resize: Resize | None = None
) -> UploadIndexer:
    """The upload trigger's indexer, built here (the CLI without --via-lambda): the stage's model and
    collection, or `model` (an ONNX file embedded in this process) writing into `collection`, which is
    made for that model if missing (`VectorIndex.ensure_collection` refuses one of another model's)."""
    from listing_vision.embeddings.factory import get_embedder

    if model is not None:
        from listing_vision.embeddings.onnx_local import OnnxEmbedder

        try:
            embedder: Any = OnnxEmbedder(model, resize=resize or get_settings().clip_resize)
        except Exception as error:  # noqa: BLE001 - onnxruntime raises plain Exception subclasses (NoSuchFile, InvalidProtobuf)
            raise InvalidRequest(
                f"--model {model}: not an ONNX model this process can load ({str(error)[:300]})",
                details={"model": str(model)},
            ) from None
    else:
        embedder = get_embedder()
    stores = CatalogueStores.from_settings()
    if collection is not None:
        vectors = VectorIndex(collection)
        vectors.ensure_collection(getattr(embedder, "dim", get_settings().embedding_dim), embedder.model_signature)
        stores = replace(stores, vectors=vectors)
    return UploadIndexer(DedupeService(embedder, stores))


def count_objects(website: Storefront, prefix: str = "", start_after: str = "") -> int:
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    bucket = get_settings().bucket_for(website)
    return sum(
        page.get("KeyCount", 0) for page in paginator.paginate(Bucket=bucket, Prefix=prefix, StartAfter=start_after)
    )


def pages(
    website: Storefront,
    start_after: str,
    page_size: int,
    prefix: str,
    via_lambda: str | None,
    indexer: UploadIndexer | None = None,
) -> Iterator[dict[str, Any]]:
    """The pages from `start_after` on, each run by `via_lambda` or in this process (by `indexer`,
    the stage's own when not given)."""
    cursor: str | None = start_after
    while cursor is not None:
        if via_lambda:
            response = aws.client("lambda", read_timeout_s=900).invoke(
                FunctionName=via_lambda,
                Payload=BackfillPage(website=website, start_after=cursor, page_size=page_size, prefix=prefix)
                .model_dump_json()
                .encode(),
            )
            page = json.loads(response["Payload"].read())
            if response.get("FunctionError"):
                raise RuntimeError(f"backfill page after {cursor!r} failed: {page}")
        else:
            indexer = indexer or in_process_indexer()
            page = backfill_page(indexer, website, cursor, page_size, prefix)
        yield page
        cursor = page["next_start_after"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m listing_vision.jewelry.backfill", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--website", choices=get_settings().storefront_names, required=True)
    parser.add_argument("--prefix", default="", help="only keys under this prefix")
    parser.add_argument("--start-after", default="", help="resume after this key (printed by a killed run)")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE, help="objects per page (one embedding batch)")
    parser.add_argument("--via-lambda", metavar="FUNCTION", help="run each page in this Lambda function")
    model_change = parser.add_argument_group("a model change (in this process only)")
    model_change.add_argument("--collection", help="write vectors to this Milvus collection, not the stage's")
    model_change.add_argument("--model", metavar="ONNX", help="embed with this ONNX file in this process")
    model_change.add_argument(
        "--resize", choices=["squash", "clip"], help="--model's preprocessing (default CLIP_RESIZE)"
    )
    args = parser.parse_args(argv)
    if args.via_lambda and (args.collection or args.model):
        parser.error("--collection and --model run in this process: the function embeds with the stage's endpoint")
    if args.model and not args.collection:
        parser.error("--model needs --collection: the stage's collection holds the stage's model's vectors")
    if args.resize and not args.model:
        parser.error("--resize applies to --model")
    indexer = None
    if args.collection:
        try:
            indexer = in_process_indexer(args.collection, args.model, args.resize)
        except VisionError as error:  # a collection of another model's vectors, or an unreadable model
            print(f"{error.code}: {error}", file=sys.stderr)
            return 2
    total = count_objects(args.website, args.prefix, args.start_after)
    try:
        from tqdm import tqdm

        bar: Any = tqdm(total=total, unit="img", desc=f"backfill {args.website}")
    except ImportError:  # the CLI works without tqdm, printing a line a page
        bar = None
    totals: Counter[str] = Counter()
    last = args.start_after
    try:
        for page in pages(args.website, args.start_after, args.page_size, args.prefix, args.via_lambda, indexer):
            totals.update(page["counts"])
            last = page["next_start_after"] or last
            if bar is not None:
                bar.update(page["processed"])
                bar.set_postfix(totals)
            else:
                print(f"{sum(totals.values())}/{total} {dict(totals)}", flush=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted; resume with --start-after {last!r}", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    into = {"collection": args.collection} if args.collection else {}
    print(json.dumps({"website": args.website, "objects": total, **into, **dict(totals)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
