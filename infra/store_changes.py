"""What a deploy would do to a stage's stores: kept, changed in place, added, replaced or removed.

Upgrading a stage whose stores hold data is safe when CloudFormation keeps every store: a renamed
construct (a new logical id), a new table key or a new bucket name makes it create a new, empty
store and delete (or, where the stage retains data, orphan) the old one, and the code then reads
the empty one. DynamoDB also refuses an update that adds or removes more than one global secondary
index of a table at once. This compares the deployed template with the one about to be deployed:

    aws cloudformation get-template --stack-name listing-vision-dev --query TemplateBody > deployed.json
    make synth CONTEXT=infra/stages/dev.json
    python -m infra.store_changes deployed.json cdk.out/listing-vision-dev.template.json

It prints one line per store and exits 1 when a store would be replaced or removed, or an update
would be refused; 2 when a file is not a template; 0 otherwise. `--stores TEMPLATE` prints the
stores of one template as JSON (the snapshot tests/infra/stores.json is made with it).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Resource types that hold data, and the properties whose change makes CloudFormation replace the
# resource (its docs' "Update requires: Replacement").
STORES: dict[str, tuple[str, ...]] = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::DynamoDB::Table": ("TableName", "KeySchema", "LocalSecondaryIndexes"),
    "AWS::SQS::Queue": ("QueueName", "FifoQueue"),
    "AWS::KMS::Key": (),  # removing one schedules its deletion, and what it encrypted becomes unreadable
    "AWS::Events::EventBus": ("Name",),
    "AWS::Cognito::UserPool": ("AliasAttributes", "UsernameAttributes", "UsernameConfiguration"),  # its people
}
UNSAFE = ("replaced", "removed", "refused")


@dataclass(frozen=True)
class StoreChange:
    logical_id: str
    kind: str
    change: str  # kept, changed, added, replaced, removed, refused
    why: str = ""

    def line(self) -> str:
        return f"{self.change:<9} {self.kind:<22} {self.logical_id}" + (f"  ({self.why})" if self.why else "")


def stores(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each store of a template: its type, the properties that would replace it, and its GSI names."""
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        if kind not in STORES:
            continue
        properties = resource.get("Properties", {})
        summary: dict[str, Any] = {"Type": kind}
        summary.update({name: properties[name] for name in STORES[kind] if name in properties})
        if kind == "AWS::DynamoDB::Table":
            summary["GlobalSecondaryIndexes"] = sorted(
                index["IndexName"] for index in properties.get("GlobalSecondaryIndexes", [])
            )
        found[logical_id] = summary
    return found


def compare(deployed: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[StoreChange]:
    changes = []
    for logical_id, before in sorted(deployed.items()):
        kind = before["Type"]
        after = new.get(logical_id)
        if after is None or after["Type"] != kind:
            changes.append(StoreChange(logical_id, kind, "removed", "no longer in the template: renamed or dropped"))
            continue
        moved = [name for name in STORES[kind] if before.get(name) != after.get(name)]
        if moved:
            changes.append(StoreChange(logical_id, kind, "replaced", ", ".join(moved) + " changed"))
            continue
        indexes_before, indexes_after = (
            set(before.get("GlobalSecondaryIndexes", [])),
            set(after.get("GlobalSecondaryIndexes", [])),
        )
        if len(indexes_before ^ indexes_after) > 1:
            why = "DynamoDB adds or removes one global secondary index per update: deploy them one at a time"
            changes.append(StoreChange(logical_id, kind, "refused", why))
        elif indexes_before != indexes_after:
            changes.append(StoreChange(logical_id, kind, "changed", "one global secondary index added or removed"))
        else:
            changes.append(StoreChange(logical_id, kind, "kept"))
    changes += [StoreChange(i, s["Type"], "added") for i, s in sorted(new.items()) if i not in deployed]
    return changes


class NotATemplate(Exception):
    pass


def _template(path: Path) -> dict[str, Any]:
    """A template's JSON; NotATemplate for a file that is none (a template without Resources would
    make every store of the other one look added, and the deploy safe)."""
    try:
        body = json.loads(path.read_text())
        body = json.loads(body) if isinstance(body, str) else body  # get-template may give the body as a string
    except (OSError, ValueError) as error:
        raise NotATemplate(f"{path}: not a JSON template ({error})") from None
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
        hint = " (get-template's whole answer: add --query TemplateBody)" if isinstance(body, dict) else ""
        raise NotATemplate(f"{path}: not a CloudFormation template, it has no Resources{hint}")
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deployed", type=Path, nargs="?", help="the deployed template (JSON)")
    parser.add_argument("new", type=Path, nargs="?", help="the template about to be deployed (cdk.out)")
    parser.add_argument("--stores", type=Path, metavar="TEMPLATE", help="print this template's stores as JSON")
    args = parser.parse_args(argv)
    try:
        if args.stores:
            print(json.dumps(stores(_template(args.stores)), indent=1, sort_keys=True))
            return 0
        if not (args.deployed and args.new):
            parser.error("give the deployed template and the new one, or --stores TEMPLATE")
        changes = compare(stores(_template(args.deployed)), stores(_template(args.new)))
    except NotATemplate as error:
        print(f"store_changes: {error}", file=sys.stderr)
        return 2
    for change in changes:
        print(change.line())
    unsafe = [change for change in changes if change.change in UNSAFE]
    verdict = f"{len(unsafe)} would lose data or fail the update" if unsafe else "safe"
    print(f"{len(changes)} stores: {verdict}")
    return 1 if unsafe else 0


if __name__ == "__main__":
    sys.exit(main())
