"""EventBridge rules whose target is a Lambda function, on the local stack.

moto's EventBridge matches events against rules and delivers to SQS, logs and other buses, but not
to Lambda. `EventRules.install(router)` patches its rule delivery so that a target naming a
function (its `live` alias, as functions/triggers.py's rules declare and local/provision.py puts
them) is invoked asynchronously through the local Lambda runtime, as EventBridge invokes a function
on AWS, with the event in EventBridge's shape (`time` an ISO timestamp); other targets are left to
moto.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from local.lambda_runtime import LambdaRouter


def _aws_shape(event: dict[str, Any]) -> dict[str, Any]:
    shaped = {key: value for key, value in event.items() if key != "ingestion-time"}
    moment = event.get("time")
    if isinstance(moment, int | float):
        shaped["time"] = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(moment, datetime):
        shaped["time"] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return shaped


class _OtherTargets:
    """A rule as moto's own delivery sees it, without its Lambda targets."""

    def __init__(self, rule: Any, targets: list[dict[str, Any]]) -> None:
        self._rule = rule
        self.targets = targets

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rule, name)


class EventRules:
    def __init__(self) -> None:
        self._original: Any = None

    def install(self, router: LambdaRouter) -> None:
        from moto.events.models import Rule

        original = Rule.send_to_targets
        self._original = original

        def send_to_targets(rule: Any, event: dict[str, Any], transform_input: bool = True) -> None:
            functions = [t for t in rule.targets if ":lambda:" in str(t.get("Arn", ""))]
            others = [t for t in rule.targets if t not in functions]
            if others:
                original(_OtherTargets(rule, others), event, transform_input)  # type: ignore[arg-type]
            if not functions or not rule.event_pattern.matches_event(event):
                return
            payload = json.dumps(_aws_shape(event), default=str)
            for target in functions:
                router.invoke(str(target["Arn"]), payload, asynchronous=True)

        Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        from moto.events.models import Rule

        if self._original is not None:
            Rule.send_to_targets = self._original  # type: ignore[method-assign]
            self._original = None
