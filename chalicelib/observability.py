"""The one Logger / Metrics / Tracer of the service (aws-lambda-powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "tickets"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Tickets", service=SERVICE)
# Tracer is a no-op unless X-Ray is available and enabled (POWERTOOLS_TRACE_DISABLED locally).
tracer = Tracer(service=SERVICE)
