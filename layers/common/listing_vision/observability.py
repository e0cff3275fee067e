"""Powertools Logger, Tracer and Metrics, created once per process.

Service name comes from POWERTOOLS_SERVICE_NAME (CDK sets one per function); logs are JSON, and
every line passes through `redaction.redact` (exception tracebacks included), so a secret that
reaches a message cannot reach the logs. Records of other loggers (botocore, the SDKs, Powertools'
own tracer, which logs exceptions with their tracebacks) reach Lambda's root handler instead, so
every record is redacted where it is made too (`_redacting_records`). Import these objects; never
create another.

`count_per_version` counts what a release is judged by per function version (dimensions `service`
and `ExecutedVersion`, as Lambda's own per-version metrics): the alarms CodeDeploy rolls a release
back on watch the new version's counts only (infra/constructs/monitoring.py).
"""

from __future__ import annotations

import logging
import os
import traceback
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import LogRecord
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from listing_vision.config import get_settings
from listing_vision.redaction import redact


class RedactingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: LogRecord) -> str:
        return redact(super().serialize(log))


def _redacting_records() -> None:
    """Make every log record of the process with its message and traceback text already redacted
    (handlers format `exc_text` when it is set). Installed once per process."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "redacts", False):
        return

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), ()
            if record.exc_info and not record.exc_text:
                record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is left to logging's own handling
            pass
        return record

    redacted_record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacted_record)


_redacting_records()


logger = Logger(logger_formatter=RedactingFormatter())
tracer = Tracer()
metrics = Metrics(namespace=get_settings().metrics_namespace)

# A request that emits no metric is normal (a validation error, say); Powertools warns on each.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def count_per_version(name: str) -> None:
    """Count one `name` for this function's running version, written at once (its own EMF record:
    the shared `metrics` keep the dimension `service` alone). Lambda sets AWS_LAMBDA_FUNCTION_VERSION
    to the version executing (`7`, the one the alias routed to); run unpublished, `$LATEST`."""
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION") or "$LATEST"
    dimensions = {"service": metrics.service or "service_undefined", "ExecutedVersion": version}
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace, default_dimensions=dimensions
    ):
        pass
