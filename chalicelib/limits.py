"""Rate limits that every Lambda container sees: fixed windows counted in DynamoDB (storage/limits.py).

A check counts one hit on each of its limits in one write and refuses (RateLimited, with the seconds until the
window ends) when any went over. A refusal is also remembered in this container until its window ends, so a
client flooding past a limit costs no more writes, only a dictionary lookup. Limits are configuration
(chalicelib/config.py names every one); `count` 0 turns a limit off.

The counters' item keys spread over users, connections and sources (`<scope>#<subject>#<window>`), so none is a
hot key: a DynamoDB partition takes 1,000 writes per second, and one subject's limits are far below that.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.errors import RateLimited
from chalicelib.observability import logger, metrics
from chalicelib.storage.limits import LimitRepository

_REMEMBERED_MAX = 10_000


@dataclass(frozen=True)
class Limit:
    """At most `count` hits per `window` seconds (0: no limit)."""

    count: int
    window: int


class RateLimiter:
    """Raises RateLimited (retry_after = seconds until the window ends). Fails open, with a warning, when the
    counters cannot be written: limits protect capacity, and an outage of the table stops the request anyway."""

    def __init__(self, repo: LimitRepository, clock: Callable[[], float] = time.time) -> None:
        self._repo = repo
        self._clock = clock
        self._refused: dict[str, float] = {}  # item key -> window end, for refusals this container has seen
        self._lock = threading.Lock()

    def check(self, scope: str, subject: str, limits: dict[str, Limit], message: str = "Too many requests.") -> None:
        """Count one hit of `subject` against each of `limits` (counter name -> limit; one window for all)."""
        active = {name: limit for name, limit in limits.items() if limit.count > 0}
        if not active:
            return
        window = next(iter(active.values())).window
        now = self._clock()
        start = int(now // window) * window
        key = f"{scope}#{subject}#{start}"
        end = start + window
        if self._remembered(key, now):
            raise RateLimited(message, retry_after=math.ceil(end - now))
        try:
            counts = self._repo.add(key, tuple(active), expires_at=end + 60)
        except Exception:  # noqa: BLE001 - see the class docstring: fail open, loudly
            logger.warning("rate limit not counted", extra={"scope": scope})
            return
        if any(counts.get(name, 0) > limit.count for name, limit in active.items()):
            self._remember(key, end)
            metrics.add_metric(name="RateLimited", unit="Count", value=1)
            logger.info("rate limited", extra={"scope": scope})
            raise RateLimited(message, retry_after=max(1, math.ceil(end - now)))

    def blocked(self, scope: str, subject: str, limit: Limit, counter: str) -> int | None:
        """Seconds until `subject` may try again when its `counter` already reached `limit` in this window (a read,
        nothing counted), else None."""
        if limit.count <= 0:
            return None
        now = self._clock()
        start = int(now // limit.window) * limit.window
        key, end = f"{scope}#{subject}#{start}", start + limit.window
        if self._remembered(key, now):
            return max(1, math.ceil(end - now))
        try:
            count = self._repo.read(key, counter)
        except Exception:  # noqa: BLE001 - fail open, as check() does
            logger.warning("rate limit not read", extra={"scope": scope})
            return None
        if count >= limit.count:
            self._remember(key, end)
            return max(1, math.ceil(end - now))
        return None

    def block(self, scope: str, subject: str, window: int) -> None:
        """Refuse `subject` in `scope` until the current window ends, in every container: `blocked(scope, subject,
        Limit(1, window), "hits")` answers the wait from then on."""
        now = self._clock()
        start = int(now // window) * window
        key, end = f"{scope}#{subject}#{start}", start + window
        try:
            self._repo.add(key, ("hits",), expires_at=end + 60)
        except Exception:  # noqa: BLE001 - fail open, as check() does
            logger.warning("block not recorded", extra={"scope": scope})
        self._remember(key, end)

    def _remembered(self, key: str, now: float) -> bool:
        with self._lock:
            until = self._refused.get(key)
            if until is None:
                return False
            if until <= now:
                del self._refused[key]
                return False
            return True

    def _remember(self, key: str, until: float) -> None:
        with self._lock:
            if len(self._refused) >= _REMEMBERED_MAX:
                now = self._clock()
                self._refused = {k: v for k, v in self._refused.items() if v > now}
            self._refused[key] = until

    # --- caps on things open at once (sockets per user per room) ---------------------------------------
    def claim(self, key: str, member: str, cap: int, expires_at: int) -> bool:
        """Add `member` to the set at `key` unless it holds `cap` already. Fails open (True) with a warning."""
        try:
            return self._repo.claim(key, member, cap, expires_at)
        except Exception:  # noqa: BLE001
            logger.warning("cap not counted", extra={"key": key.partition("#")[0]})
            return True

    def release(self, key: str, member: str) -> None:
        try:
            self._repo.release(key, member)
        except Exception:  # noqa: BLE001 - a claim left behind expires with its item, or is pruned
            logger.warning("cap not released", extra={"key": key.partition("#")[0]})

    def prune(self, key: str, alive: Callable[[str], bool]) -> None:
        """Release the members of `key` that `alive` says are gone."""
        try:
            members = self._repo.members(key)
        except Exception:  # noqa: BLE001
            return
        for member in members:
            if not alive(member):
                self.release(key, member)


class FloodGuard:
    """What to do with a frame refused for rate: per container, per connection and window. API Gateway's WebSocket
    throttling is per API, never per client, so only the backend can stop one chatty client: the first refusal
    is answered (the client learns when to retry), the next ones cost no reply post, and a connection refused
    `close_after` times in one window is closed."""

    ANSWER, DROP, CLOSE = "answer", "drop", "close"
    _MAX_TRACKED = 50_000

    def __init__(self, window: int, close_after: int, clock: Callable[[], float] = time.time) -> None:
        self._window = max(1, window)
        self._close_after = max(2, close_after)
        self._clock = clock
        self._refusals: dict[str, tuple[int, int]] = {}  # connection -> (window start, refusals in it)
        self._lock = threading.Lock()

    def refused(self, connection_id: str) -> str:
        start = int(self._clock() // self._window) * self._window
        with self._lock:
            if len(self._refusals) >= self._MAX_TRACKED:
                self._refusals = {c: v for c, v in self._refusals.items() if v[0] == start}
            seen_start, count = self._refusals.get(connection_id, (start, 0))
            count = count + 1 if seen_start == start else 1
            self._refusals[connection_id] = (start, count)
        if count == 1:
            return self.ANSWER
        return self.CLOSE if count == self._close_after else self.DROP

    def forget(self, connection_id: str) -> None:
        with self._lock:
            self._refusals.pop(connection_id, None)
