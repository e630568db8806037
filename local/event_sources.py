"""The event source mappings of the local stack in a process of their own, as Lambda runs them apart.

The DynamoDB Streams poller (broadcasts), the SQS pollers (purchase, refund, email and fan-out workers) and the sweep timer
invoke the handlers of app.py here, with this process's own container (caches, clients), exactly as separate
Lambda functions would. They reach the gateway only over HTTP (the Management API), so a rush of fan-out
posts no longer competes for one interpreter lock with the WebSocket handlers.

The process holds no state of its own: the parent restarts it when it dies (local/supervisor.py), and the new
one resumes the stream after the positions the old one last reported, so no change goes unbroadcast (a few may
be sent twice, which viewers apply idempotently, as after a Lambda retry). It talks to its parent over one pipe:
status reports up (every poller's health and the stream positions, once a second), a stop request down. It
ignores SIGINT and SIGTERM: a signal to the whole process group (Ctrl-C, a supervisor's stop) must not make it
exit before the parent has stopped what depends on it; the parent stops it, in order, over the pipe. When the
parent dies, the pipe closes and the process exits.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from local.processes import sigint_ignored, spawn_context, start_handler_child, stop_child, use_uvloop

log = logging.getLogger("local.event_sources")

STATUS_SECONDS = 1.0  # how often the child reports; the parent calls a report older than 3 of these stale
_STOP = "stop"
FANOUT_POLLERS = 4


def build_pollers(app_module: Any, sweep_interval: float) -> list:
    """The stream poller (not yet primed), the sweep timer and one poller per queue."""
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
    pollers: list = [
        stream,
        Timer(app_module.sweep_expired, interval=sweep_interval, name="sweep_expired", region=region),
        # The waiting rooms' step (on AWS a once-a-minute invocation that loops; here one step per call).
        Timer(
            app_module.waitroom_tick,
            interval=float(os.environ.get("WAITROOM_TICK_SECONDS", "2")),
            name="waitroom_tick",
            region=region,
        ),
    ]
    workers = [
        ("purchases", app_module.purchase_worker, 10),
        ("refunds", app_module.refund_worker, 10),
        ("emails", app_module.email_worker, 10),
    ]
    # A big room's slices are posted by parallel invocations on AWS (one per FIFO group in flight): several
    # pollers here, moto keeping each group's messages in order.
    workers += [(f"fanout#{n}", app_module.fanout_worker, 1) for n in range(1, FANOUT_POLLERS + 1)]
    for name, handler, batch_size in workers:
        logical, _, number = name.partition("#")
        pollers.append(
            SqsPoller(
                session.client("sqs"),
                os.environ[f"{logical.upper()}_QUEUE_URL"],
                os.environ[f"{logical.upper()}_QUEUE_ARN"],
                handler,
                region=region,
                function_name=f"{logical}_worker" + (f"_{number}" if number else ""),
                batch_size=batch_size,
            )
        )
    return pollers


def _report(pollers: list) -> dict:
    stream = pollers[0]
    return {
        "at": time.time(),
        "pollers": {poller.name: poller.status() for poller in pollers},
        "positions": stream.positions(),
    }


def _child_main(sweep_interval: float, log_level: str, positions: dict | None, pipe: Any) -> None:
    use_uvloop()  # the fan-out's posts run on an event loop per poller thread (chalicelib/async_http.py)
    app_module = start_handler_child("event-sources", log_level)
    pollers = build_pollers(app_module, sweep_interval)
    stream = pollers[0]
    if positions is None:
        stream.prime()  # a fresh stack: LATEST, every change from now on
    else:
        stream.resume(positions)  # a restart: after what the previous process last reported
    for poller in pollers:
        poller.start()
    stop = threading.Event()
    threading.Thread(target=_listen, args=(pipe, stop), name="event-sources-control", daemon=True).start()
    try:
        pipe.send(_report(pollers))  # the first report tells the parent we are primed
        while not stop.wait(STATUS_SECONDS):
            pipe.send(_report(pollers))
    except (OSError, EOFError):
        pass  # the parent is gone
    for poller in pollers:
        poller.stop()
    for poller in pollers:
        poller.join(timeout=5)
    logging.shutdown()
    os._exit(0)  # an SQS long poll in flight need not be waited for


def _listen(pipe: Any, stop: threading.Event) -> None:
    """Sets `stop` on the parent's stop request, or when the parent is gone (the pipe closes)."""
    try:
        while pipe.recv() != _STOP:
            pass
    except (OSError, EOFError):
        pass
    stop.set()


class EventSourcesProcess:
    """The child process, seen from the parent. Start it after the resources exist and the environment is
    prepared (the child inherits it)."""

    def __init__(self, sweep_interval: float, log_level: str = "WARNING") -> None:
        self._sweep_interval = sweep_interval
        self._log_level = log_level
        self._process: Any = None
        self._pipe: Any = None
        self._last: dict | None = None  # the latest report of the running child
        self._positions: dict | None = None  # the latest reported stream positions, kept across restarts
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return None if self._process is None else self._process.exitcode

    def positions(self) -> dict | None:
        """The stream positions the child last reported (None before any report)."""
        with self._lock:
            return None if self._positions is None else dict(self._positions)

    def start(self, positions: dict | None = None, timeout: float = 60.0) -> None:
        """Returns once the stream poller is primed (or resumed): every change from now on is delivered.

        Raises RuntimeError when the child dies or does not report within `timeout` seconds.
        """
        with self._lock:
            self._last = None  # the previous process's report says nothing about this one
        context = spawn_context()
        parent_end, child_end = context.Pipe(duplex=True)
        self._process = context.Process(
            target=_child_main,
            args=(self._sweep_interval, self._log_level, positions, child_end),
            name="event-sources",
            daemon=True,
        )
        with sigint_ignored():
            self._process.start()
        child_end.close()  # only the child holds it now: its death reads as EOF here
        self._pipe = parent_end
        deadline = time.monotonic() + timeout
        while not parent_end.poll(0.2):
            if not self._process.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the event source process did not start")
        self._receive(parent_end)
        threading.Thread(
            target=self._read_reports, args=(parent_end,), name="event-sources-reports", daemon=True
        ).start()

    def _receive(self, pipe: Any) -> None:
        report = pipe.recv()
        with self._lock:
            self._last = report
            self._positions = report["positions"]

    def _read_reports(self, pipe: Any) -> None:
        try:
            while True:
                self._receive(pipe)
        except (OSError, EOFError, TypeError):
            pass  # the child is gone, or stop() closed the pipe: the supervisor looks at the process itself

    def status(self) -> dict:
        """This part's health: the process, and each poller as the child last reported it."""
        if not self.alive:
            return {"status": "down", "pid": self.pid, "exitcode": self.exitcode}
        with self._lock:
            last = self._last
        if last is None:
            return {"status": "starting", "pid": self.pid}
        age = time.time() - last["at"]
        pollers = last["pollers"]
        healthy = all(p["status"] in ("ok", "starting") for p in pollers.values())
        status = "ok" if healthy else "failing"
        if age > 3 * STATUS_SECONDS:
            status = "unresponsive"
        return {"status": status, "pid": self.pid, "report_age_seconds": round(age, 1), "pollers": pollers}

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the child to stop, then kill it if it has not exited within `timeout` seconds. Idempotent."""
        process, pipe = self._process, self._pipe
        self._process = self._pipe = None
        if process is None:
            return

        def ask() -> None:
            if pipe is not None:
                pipe.send(_STOP)

        stop_child(process, "the event source process", ask, timeout)
        if pipe is not None:
            pipe.close()
        process.close()
