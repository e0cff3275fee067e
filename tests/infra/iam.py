"""What each function's role allows in the synthesized template, in the local stack's names.

The template names resources through intrinsic functions (`Fn::GetAtt`, `Ref`, `Fn::Join`, pseudo
parameters) and stage-prefixed physical names; the local stack uses the settings' default names.
`RolePolicies` resolves each role's statements into plain ARN patterns in the local namespace, so
a call recorded locally (local/call_recorder.py) can be checked against what AWS would allow:
IAM's wildcard matching, case-insensitive actions, Allow statements (the stack writes no Deny).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from functions.specs import RELEASE_ALIAS
from infra.stack import ListingVisionStack
from listing_vision.config import Settings
from listing_vision.resources import MIGRATION_STATE_MACHINE
from listing_vision.storefronts import bucket_setting, local_bucket
from local.call_recorder import ACCOUNT_ID, REGION, Call

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::URLSuffix": "amazonaws.com",
}
# Boilerplate every function has, used by Lambda itself rather than by the function's code.
RUNTIME_ACTIONS = ("xray:", "logs:")


@dataclass(frozen=True)
class Grant:
    action: str  # a pattern (`s3:GetObject`, `dynamodb:*`)
    resource: str  # an ARN pattern in local names

    def allows(self, call: Call) -> bool:
        return fnmatchcase(call.action.lower(), self.action.lower()) and fnmatchcase(call.resource, self.resource)


class RolePolicies:
    def __init__(self, stack: ListingVisionStack, template: dict[str, Any], local_endpoint: str = "clip"):
        self.resources = template["Resources"]
        self.refs: dict[str, str] = {}  # logical id -> what Ref gives (a name)
        self.arns: dict[str, str] = {}  # logical id -> what Fn::GetAtt Arn gives
        defaults = {name: field.default for name, field in Settings.model_fields.items()}
        # each storefront's bucket by its local name (listing_vision.storefronts)
        defaults.update({bucket_setting(spec.name): local_bucket(spec) for spec in stack.config.storefronts})
        for setting, bucket in stack.storage.buckets.items():
            if bucket.node.default_child is not None:
                logical = self._logical(stack, bucket)
                self.refs[logical], self.arns[logical] = defaults[setting], f"arn:aws:s3:::{defaults[setting]}"
        for setting, table in stack.storage.tables.items():
            if table.node.default_child is not None:
                logical = self._logical(stack, table)
                self.refs[logical] = defaults[setting]
                self.arns[logical] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{defaults[setting]}"
        for setting, bus in stack.storage.buses.items():
            logical = self._logical(stack, bus)
            self.refs[logical] = defaults[setting]
            self.arns[logical] = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{defaults[setting]}"
        self.roles: dict[str, str] = {}  # function name -> role logical id
        for name, function in stack.functions.items():
            logical = self._logical(stack, function.function)
            self.refs[logical] = name
            self.arns[logical] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
            # Ref of an alias is its ARN (the function's, qualified by the alias name)
            self.refs[self._logical(stack, function.alias)] = f"{self.arns[logical]}:{RELEASE_ALIAS}"
            self.roles[name] = self._logical(stack, function.role)
            if function.failure_queue is not None:  # Lambda (not the function's code) sends to it
                queue = self._logical(stack, function.failure_queue)
                self.arns[queue] = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{function.spec.failure_queue}"
        # Physical names the stack gives (with its stage) -> the local stack's names
        self.names = {
            stack.config.name("clip"): local_endpoint,
            f"/{stack.config.name('webhooks')}": str(defaults["webhook_secrets_prefix"]),
            stack.config.name(MIGRATION_STATE_MACHINE): MIGRATION_STATE_MACHINE,
        }

    @staticmethod
    def _logical(stack: ListingVisionStack, construct: Any) -> str:
        return str(stack.resolve(stack.get_logical_id(construct.node.default_child)))

    def resolve(self, value: Any) -> str:
        if isinstance(value, str):
            for physical, local in self.names.items():
                value = value.replace(physical, local)
            return value
        if isinstance(value, dict) and len(value) == 1:
            (function, argument), *_ = value.items()
            if function == "Ref":
                return PSEUDO.get(argument) or self.refs[argument]
            if function == "Fn::GetAtt" and argument[1] == "Arn":
                return self.arns[argument[0]]
            if function == "Fn::Join":
                separator, parts = argument
                return str(separator).join(self.resolve(part) for part in parts)
        raise ValueError(f"cannot resolve {value!r}")

    def grants(self, function: str) -> list[Grant]:
        """Every (action, resource) pattern the function's role allows, its runtime boilerplate aside."""
        role = self.roles[function]
        found = []
        for resource in self.resources.values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            if {"Ref": role} not in resource["Properties"].get("Roles", []):
                continue
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                assert statement["Effect"] == "Allow"
                actions = [a for a in _as_list(statement["Action"]) if not a.startswith(RUNTIME_ACTIONS)]
                if actions:
                    targets = [self.resolve(target) for target in _as_list(statement["Resource"])]
                    found += [Grant(action, target) for action in actions for target in targets]
        return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def write_grants(path: Path, policies: RolePolicies) -> None:
    """Every function's grants, as RolePolicies resolved them, for a later process to read back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grants = {name: [asdict(grant) for grant in policies.grants(name)] for name in policies.roles}
    path.write_text(json.dumps(grants, indent=1))


def read_grants(path: Path) -> dict[str, list[Grant]]:
    return {name: [Grant(**grant) for grant in grants] for name, grants in json.loads(path.read_text()).items()}
