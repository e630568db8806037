"""The one Logger / Metrics / Tracer of the service (aws-lambda-powertools)."""

from __future__ import annotations

import threading

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "tickets"
METRICS_NAMESPACE = "Tickets"

logger = Logger(service=SERVICE)
# No Tracer object: nothing is traced yet, and creating one imports aws-xray-sdk on every cold start
# (about 0.3 s measured by bench/coldstart.py). Add it here when a handler wants segments.


class _Metrics:
    """powertools Metrics made safe for concurrent handlers and flushed once per invocation.

    The local runtime runs many handlers in threads of one process, and powertools' metric set is a
    plain dict; on Lambda nothing would flush metrics without a per-invocation flush.
    """

    def __init__(self) -> None:
        self._metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)
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
