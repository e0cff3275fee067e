"""Powertools Logger, Tracer and Metrics, created once per process.

Service name comes from POWERTOOLS_SERVICE_NAME (CDK sets one per function); logs are JSON.
Import these objects; never create another Logger/Tracer/Metrics.
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

from listing_vision.config import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=get_settings().metrics_namespace)

# A request that emits no metric is normal (a validation error, say); Powertools warns on each.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
