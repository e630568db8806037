"""The event source mappings of the local stack in a process of their own, as Lambda runs them apart.

The DynamoDB Streams poller (broadcasts), the SQS pollers (purchase and refund workers) and the sweep timer
invoke the handlers of app.py here, with this process's own container (caches, clients), exactly as separate
Lambda functions would. They reach the gateway only over HTTP (the Management API), so a rush of fan-out
posts no longer competes for one interpreter lock with the WebSocket handlers.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("local.event_sources")


def build_pollers(app_module: Any, sweep_interval: float) -> list:
    """The stream poller (primed at the stream's current end), the sweep timer and one poller per queue."""
    import boto3

    from local.pollers import RecordsReader, SqsPoller, StreamPoller, Timer

    region = os.environ["AWS_REGION"]
    session = boto3.session.Session()
    streams = session.client("dynamodbstreams")
    stream = StreamPoller(
        streams,
        os.environ["TICKETS_STREAM_ARN"],
        app_module.tickets_changed,
        region=region,
        get_records=RecordsReader(streams.meta.endpoint_url, region, session.get_credentials()),
    )
    stream.prime()
    pollers: list = [
        stream,
        Timer(app_module.sweep_expired, interval=sweep_interval, name="sweep_expired", region=region),
    ]
    for logical, handler in (("purchases", app_module.purchase_worker), ("refunds", app_module.refund_worker)):
        pollers.append(
            SqsPoller(
                session.client("sqs"),
                os.environ[f"{logical.upper()}_QUEUE_URL"],
                os.environ[f"{logical.upper()}_QUEUE_ARN"],
                handler,
                region=region,
                function_name=f"{logical}_worker",
            )
        )
    return pollers


def name_process(name: str) -> None:
    """Set the OS-level name (/proc/PID/comm, what top and ps -o comm show) of this process, on Linux."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


_STOP_CHECK_SECONDS = 0.2  # how often the main thread looks for a stop request
_terminated = False  # set by SIGTERM


def _on_sigterm(signum: int, frame: Any) -> None:
    # Only a flag: the handler runs on the main thread between two bytecodes, possibly while that thread
    # holds the lock of an Event it is waiting on (setting that Event here deadlocked the process).
    global _terminated
    _terminated = True


def _child_main(sweep_interval: float, log_level: str, primed: Any) -> None:
    name_process("event-sources")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop (SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(ROOT))
    app_module = importlib.import_module("app")
    from chalicelib.storage.models import warm_clients
    from chalicelib.wiring import container

    warm_clients()
    container().broadcaster.client  # noqa: B018 - built once here, not by each first concurrent post
    pollers = build_pollers(app_module, sweep_interval)
    for poller in pollers:
        poller.start()
    primed.set()
    orphaned = threading.Event()
    _watch_parent(orphaned)
    while not _terminated and not orphaned.wait(_STOP_CHECK_SECONDS):
        pass
    for poller in pollers:
        poller.stop()
    for poller in pollers:
        poller.join(timeout=5)
    logging.shutdown()
    os._exit(0)  # an SQS long poll in flight need not be waited for


def _watch_parent(orphaned: threading.Event) -> None:
    """Sets `orphaned` when the parent process is gone (killed without stopping us)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        while parent.is_alive() and os.getppid() == parent.pid:
            parent.join(timeout=1.0)
        orphaned.set()

    threading.Thread(target=watch, name="event-sources-parent-watch", daemon=True).start()


class EventSourcesProcess:
    """Start after the resources exist and the environment is prepared (the child inherits it)."""

    def __init__(self, sweep_interval: float, log_level: str = "WARNING") -> None:
        self._sweep_interval = sweep_interval
        self._log_level = log_level
        self._process: Any = None

    def start(self, timeout: float = 60.0) -> None:
        """Returns once the stream poller is primed: every change from now on is delivered."""
        from local.moto_server import _sigint_ignored

        context = multiprocessing.get_context("spawn")
        primed = context.Event()
        self._process = context.Process(
            target=_child_main,
            args=(self._sweep_interval, self._log_level, primed),
            name="event-sources",
            daemon=True,
        )
        with _sigint_ignored():
            self._process.start()
        deadline = time.monotonic() + timeout
        while not primed.wait(_STOP_CHECK_SECONDS):
            if not self._process.is_alive() or time.monotonic() > deadline:
                # E.g. a SIGTERM to the whole process group during start-up: fail now, not after the timeout.
                self.stop()
                raise RuntimeError("the event source process did not start")

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # A signal, not a shared Event: setting one blocks on its cross-process lock, which a child
        # killed (or stopped) at the wrong moment may hold for good.
        process.terminate()
        process.join(timeout)
        if process.is_alive():
            log.warning("event source process (pid %s) did not stop in %.1f s: killing it", process.pid, timeout)
            process.kill()
            process.join()
        process.close()
