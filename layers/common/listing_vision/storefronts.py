"""The storefronts, declared once: the stage context's `storefronts` (cdk.json holds the example).

Each entry names a storefront, its S3 bucket (an existing one, or unset: created by the deploy, and
`<name>img` on the local stack) and, being its name, its partition of the one Milvus collection (the
vectors' `website` field). The first entry is the default storefront of a request that names none.
CDK reads the declaration from context (infra/config.py) and sets `STOREFRONTS` (name -> bucket, as
JSON) in every function's environment; the local stack sets the same variable from the same
declaration (local/stack.py). No code names a storefront.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Lower-case letters and digits: a storefront's name is a Milvus VARCHAR(32) value, part of a
# CloudFormation logical id, of an environment value and of S3 keys, unquoted everywhere.
NAME_PATTERN = r"^[a-z][a-z0-9]{1,31}$"
# What the catalogue table's other items start with (`<name>#...`: reviewers' verdicts, jewelry/verdicts.py).
# A storefront's records are `<website>#<sha256>`, read by a scan of `<website>#`: a storefront so named
# would read those items as its records (the reconciler's read fails on the first).
RESERVED_NAMES: tuple[str, ...] = ("verdict",)
# The repository's declaration (absent inside a deployed function, which gets STOREFRONTS from CDK).
# layers/common/listing_vision/ in a checkout; /opt/python/listing_vision/ in a function: no cdk.json there.
CDK_JSON = Path(__file__).resolve().parent.parent.parent.parent / "cdk.json"


class StorefrontSpec(BaseModel):
    """One entry of the stage context's `storefronts`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="The storefront, as requests name it (`website`).")
    bucket: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Existing S3 bucket of its photos; unset: the deploy creates one (locally `<name>img`).",
    )


def declared(cdk_json: Path = CDK_JSON) -> list[StorefrontSpec]:
    """The storefronts cdk.json's context declares (none when there is no cdk.json)."""
    if not cdk_json.is_file():
        return []
    entries: list[dict[str, Any]] = json.loads(cdk_json.read_text()).get("context", {}).get("storefronts", [])
    return [StorefrontSpec.model_validate(entry) for entry in entries]


def in_stage_file(path: Path) -> list[StorefrontSpec]:
    """The storefronts a stage context file (infra/stages/*.json) declares; cdk.json's when it declares none."""
    entries = json.loads(path.read_text()).get("storefronts")
    return [StorefrontSpec.model_validate(entry) for entry in entries] if entries else declared()


def check_names(names: Iterable[str]) -> list[str]:
    """The names, refused when there are none, one repeats or one is reserved."""
    listed = list(names)
    if not listed:
        raise ValueError("no storefront is declared (the stage context's `storefronts`)")
    if len(set(listed)) != len(listed):
        raise ValueError(f"a storefront is declared twice: {listed}")
    reserved = [name for name in listed if name in RESERVED_NAMES]
    if reserved:
        raise ValueError(
            f"a storefront may not be named {reserved[0]!r} (the stage context's `storefronts`): the catalogue "
            f"table keeps reviewers' verdicts under `{reserved[0]}#`"
        )
    return listed


def check_buckets(buckets: Iterable[str]) -> None:
    """Refuse one bucket named for two storefronts: a photo's bucket says whose it is (its access, its
    duplicates, its bucket's triggers)."""
    listed = list(buckets)
    shared = sorted({bucket for bucket in listed if listed.count(bucket) > 1})
    if shared:
        raise ValueError(f"a bucket is declared for two storefronts (the stage context's `storefronts`): {shared}")


def local_bucket(spec: StorefrontSpec) -> str:
    """The bucket a storefront has on the local stack: the declared one, else `<name>img`."""
    return spec.bucket or f"{spec.name}img"


def runtime_value(specs: Iterable[StorefrontSpec], bucket_of: Callable[[StorefrontSpec], str]) -> str:
    """The `STOREFRONTS` variable: JSON name -> bucket, in declaration order (the first is the default)."""
    return json.dumps({spec.name: bucket_of(spec) for spec in specs})


def bucket_setting(name: str) -> str:
    """The key of a storefront's bucket among the buckets (listing_vision.resources, infra, triggers)."""
    return f"{name}_bucket"
