"""Delivers each finished generation run to the storefront's webhooks: the target of an EventBridge
rule on the jobs bus (functions/triggers.py); signing, retries and records in
listing_vision.jewelry.webhook_delivery."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.jewelry.webhook_delivery import WebhookDelivery
from listing_vision.observability import logger, metrics

delivery = aws.per_container(WebhookDelivery)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = delivery().deliver_event(event, context.get_remaining_time_in_millis() / 1000)
    return {"deliveries": [{"delivery_id": r["delivery_id"], "status": r["status"]} for r in records]}
