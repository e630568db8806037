"""A clock a test moves by hand (`clock.now += 60`), for services that take `clock=`."""

from __future__ import annotations

import time


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now
