"""Whether this deployment can serve: the tables answer.

One eventually consistent GetItem of a key that never exists (half a read unit), remembered for a few seconds
per container: a flood of health checks costs at most one read per container per interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from chalicelib.observability import logger

CACHE_SECONDS = 5.0


class HealthCheck:
    """`check()` -> {"status": "ok" | "unavailable", "checks": {"tables": "ok" | "unreachable"}}; never raises."""

    def __init__(
        self,
        probe: Callable[[], object],
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._probe = probe
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._last: tuple[float, dict] | None = None

    def check(self) -> dict:
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last[0] < self._cache_seconds:
                return self._last[1]
        report = self._run()
        with self._lock:
            self._last = (now, report)
        return report

    def _run(self) -> dict:
        try:
            self._probe()
        except Exception as exc:  # noqa: BLE001 - any failure to read means we cannot serve
            logger.warning("health probe failed", extra={"error": type(exc).__name__})
            return {"status": "unavailable", "checks": {"tables": "unreachable"}}
        return {"status": "ok", "checks": {"tables": "ok"}}
