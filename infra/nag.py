"""cdk-nag (v3): the AWS Solutions checks run on every synth, and a finding fails it unless it is
acknowledged on the very resource it concerns, with a true reason, where that resource is made.

`acknowledge(construct, finding, reason)` scopes an acknowledgement to one construct (a role, a
queue, a function), never to the stack; each one stays in that construct's metadata, where
`acknowledgements(app)` reads them back so the infrastructure test can prove that every
acknowledgement matches a finding that really fires. IAM findings are reported
one by one (`AwsSolutions-IAM5[Resource::<arn>]`); `nag_resource` renders an ARN the way cdk-nag
names it in those findings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PLUGIN = "AwsSolutions"


@dataclass(frozen=True)
class Acknowledged:
    path: str  # the construct path it is scoped to
    finding: str  # e.g. AwsSolutions-IAM5[Resource::*]
    reason: str


def add_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    """Accept one cdk-nag finding on this construct (and what it contains), for this reason."""
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{PLUGIN}::{finding}", reason=reason))


def acknowledgements(scope: IConstruct) -> list[Acknowledged]:
    """Every acknowledgement made on this construct and those below it (an app, a stack), read from
    the constructs' own metadata: so two apps built in one process never see each other's."""
    return [
        Acknowledged(construct.node.path, key.split("::", 1)[1], reason)
        for construct in scope.node.find_all()
        for entry in construct.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for key, reason in entry.data.items()
        if key.startswith(f"{PLUGIN}::")
    ]


def acknowledged(construct: IConstruct, finding: str) -> bool:
    """Whether this finding is already acknowledged on this very construct."""
    return any(a.finding == finding and a.path == construct.node.path for a in acknowledgements(construct))


def nag_resource(scope: IConstruct, arn: str) -> str:
    """An ARN (tokens and all) as cdk-nag names it: `<Logical.Arn>`, `<AWS::Region>`, joins flattened."""
    return _render(Stack.of(scope).resolve(arn))


def nag_json(scope: IConstruct, value: str) -> str:
    """A token as the compact JSON cdk-nag embeds where it cannot render it (inside Fn::Select, say)."""
    return json.dumps(Stack.of(scope).resolve(value), separators=(",", ":"))


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), *_ = value.items()
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_render(part) for part in parts)
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
    raise ValueError(f"cannot render {value!r} as cdk-nag does")
