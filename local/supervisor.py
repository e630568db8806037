"""Watches the stack's child processes: restarts the ones that hold no state, stops the stack when one that
holds state is lost, and tells the health check about each.

- event-sources (pollers and timer) holds no state: a new one resumes the stream after the positions the old
  one last reported, and SQS redelivers what it had in flight once the visibility timeout passes. It is
  restarted, and the log says so; if it keeps dying (more than MAX_RESTARTS in RESTART_WINDOW_SECONDS), the
  stack stops rather than thrash.
- rest-lambdas (the REST handlers, local/rest_lambdas.py) holds no state either: the requests it had in flight
  were answered 502, and a new one takes the next. Restarted the same way.
- moto holds every table and queue: nothing can go on without it. Its loss stops the stack with one line
  saying what happened and what was kept (the last snapshot in the data folder).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("local.supervisor")

CHECK_SECONDS = 0.2
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "exited"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class Supervisor:
    """A thread watching `moto` (may be None: an outside endpoint) and `event_sources`.

    `on_fatal(message)` is called once, from the watching thread, when the stack must stop.
    """

    def __init__(
        self,
        moto: Any,
        event_sources: Any,
        on_fatal: Callable[[str], None],
        state_note: str,
        rest_lambdas: Any = None,
    ) -> None:
        self._moto = moto
        self._event_sources = event_sources
        self._rest_lambdas = rest_lambdas
        self._on_fatal = on_fatal
        self._state_note = state_note
        self._restarts: deque[float] = deque()  # of every part: MAX_RESTARTS in the window stops the stack
        self.restarts = {"event-sources": 0, "rest-lambdas": 0}  # per part, for the health check
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the stack is stopping its parts on purpose)."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_SECONDS):
            if self._moto is not None and not self._moto.alive:
                self._fatal(
                    f"moto-server (pid {self._moto.pid}) {describe_exit(self._moto.exitcode)}: the stack's tables "
                    f"and queues lived there, so the stack stops. {self._state_note}"
                )
                return
            if not self._event_sources.alive and not self._stopping.is_set():
                if not self._restart_event_sources():
                    return
            if self._rest_lambdas is not None and not self._rest_lambdas.alive and not self._stopping.is_set():
                if not self._restart_rest_lambdas():
                    return

    def _may_restart(self, name: str, process: Any) -> bool:
        """False (and the stack stopped) when the parts died more than MAX_RESTARTS times in the window."""
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW_SECONDS:
            self._restarts.popleft()
        if len(self._restarts) >= MAX_RESTARTS:
            self._fatal(
                f"{name} died {MAX_RESTARTS + 1} times within {RESTART_WINDOW_SECONDS:.0f} s "
                f"(last: pid {process.pid} {describe_exit(process.exitcode)}): stopping the stack"
            )
            return False
        self._restarts.append(now)
        self.restarts[name] += 1
        return True

    def _restart_rest_lambdas(self) -> bool:
        process = self._rest_lambdas
        if not self._may_restart("rest-lambdas", process):
            return False
        _say(f"rest-lambdas (pid {process.pid}) {describe_exit(process.exitcode)}: restarting it")
        process.stop(timeout=1.0)
        try:
            process.start()
        except Exception as exc:  # noqa: BLE001 - a failed restart is retried on the next check
            log.warning("rest-lambdas did not start again: %s", exc)
            return True
        _say(f"rest-lambdas restarted (pid {process.pid})")
        return True

    def _restart_event_sources(self) -> bool:
        process = self._event_sources
        if not self._may_restart("event-sources", process):
            return False
        positions = process.positions()
        _say(
            f"event-sources (pid {process.pid}) {describe_exit(process.exitcode)}: restarting it "
            f"(restart {self.restarts['event-sources']}); it resumes the stream where the old one left off"
        )
        process.stop(timeout=1.0)
        try:
            process.start(positions=positions)
        except Exception as exc:  # noqa: BLE001 - a failed restart is retried on the next check
            log.warning("event-sources did not start again: %s", exc)
            return True
        _say(f"event-sources restarted (pid {process.pid})")
        return True

    def _fatal(self, message: str) -> None:
        self._stopping.set()
        _say(message)
        self._on_fatal(message)

    def health(self) -> dict:
        """The local parts' health, for `GET /api/health/` (merged by the gateway)."""
        parts: dict[str, Any] = {"gateway": {"status": "ok"}, "paypal_emulator": {"status": "ok"}}
        if self._moto is not None:
            parts["moto"] = (
                {"status": "ok", "pid": self._moto.pid}
                if self._moto.alive
                else {"status": "down", "pid": self._moto.pid, "exitcode": self._moto.exitcode}
            )
        if self._rest_lambdas is not None:
            alive = self._rest_lambdas.alive
            parts["rest_lambdas"] = {
                "status": "ok" if alive else "down",
                "pid": self._rest_lambdas.pid,
                "restarts": self.restarts["rest-lambdas"],
            }
        sources = self._event_sources.status()
        sources["restarts"] = self.restarts["event-sources"]
        parts["event_sources"] = sources
        return parts


def _say(line: str) -> None:
    """One line on stderr: what the developer running `make run` must see, whatever the log level."""
    print(line, file=sys.stderr, flush=True)
