"""The one Logger / Metrics / Tracer of the service (aws-lambda-powertools)."""

from __future__ import annotations

import threading

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "tickets"

logger = Logger(service=SERVICE)
# Tracer is a no-op unless X-Ray is available and enabled (POWERTOOLS_TRACE_DISABLED locally).
tracer = Tracer(service=SERVICE)


class _Metrics:
    """powertools Metrics made safe for concurrent handlers and flushed once per invocation.

    The local runtime runs many handlers in threads of one process, and powertools' metric set is a
    plain dict; on Lambda nothing would flush metrics without a per-invocation flush.
    """

    def __init__(self) -> None:
        self._metrics = Metrics(namespace="Tickets", service=SERVICE)
        self._lock = threading.Lock()

    def add_metric(self, *, name: str, unit: str, value: float) -> None:
        if is_metrics_disabled():
            return
        with self._lock:
            self._metrics.add_metric(name=name, unit=unit, value=value)

    def flush(self) -> None:
        with self._lock:
            if self._metrics.metric_set:
                self._metrics.flush_metrics()


metrics = _Metrics()
