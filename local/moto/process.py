"""The moto server's process: started, watched and stopped by the local stack (`MotoProcess`), or run in the
foreground (`python -m local.moto`).

Under a parent, the server ignores SIGINT and SIGTERM: a signal to the whole process group must not stop it
before the parent's own shutdown calls (`$disconnect` handlers) have reached it. The parent stops it over a pipe,
last; the pipe closing (the parent died) stops it too. Either way its final snapshot is written before it exits.
Everything moto-specific is imported in the child only, so the parent never pays for importing moto.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from local.moto.server import endpoint_url, require_loopback
from local.processes import calm_gc, name_process, sigint_ignored, spawn_context, stop_child, use_uvloop

logger = logging.getLogger(__name__)

_PROBE_PATH = "/moto-api/config"
_LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
_STOP = "stop"


def run_server(
    host: str,
    port: int,
    *,
    state_file: Path | None = None,
    snapshot_seconds: float = 1.0,
    on_bound: Callable[[int], None] | None = None,
    until: Callable[[Callable[[], None]], None],
) -> None:
    """Patch moto, restore its state, serve until `until(stop)` calls stop, take the final snapshot.

    Raises StateFileError for a state file that cannot be restored, RuntimeError when a correctness fix does not
    fit the installed moto, ValueError for a non-loopback host.
    """
    from local.moto import patches, server, snapshot

    require_loopback(host)
    speed = patches.install()
    snapshots = None
    if state_file is not None:
        snapshot.restore(state_file)
        snapshots = snapshot.Snapshots(state_file, snapshot_seconds)
    app = server.build_app(speed, snapshots.mark if snapshots else None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        until(lambda: loop.call_soon_threadsafe(stopping.set))
        if snapshots is not None:
            snapshots.start()
        await server.serve(app, host, port, stopping, on_bound)

    use_uvloop()
    calm_gc()
    try:
        asyncio.run(main())
    finally:
        if snapshots is not None:
            snapshots.stop()


def _child_main(host: str, port: int, state_file: Path | None, snapshot_seconds: float, pipe: Any) -> None:
    """Entry point of the spawned server process: reports its port (or why it could not start) over the pipe."""
    name_process("moto-server")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format=_LOG_FORMAT)

    def until(stop: Callable[[], None]) -> None:
        def listen() -> None:
            try:
                while pipe.recv() != _STOP:
                    pass
            except (OSError, EOFError):
                pass  # the parent is gone
            stop()

        threading.Thread(target=listen, name="moto-control", daemon=True).start()

    try:
        run_server(
            host,
            port,
            state_file=state_file,
            snapshot_seconds=snapshot_seconds,
            on_bound=lambda bound: pipe.send(("port", bound)),
            until=until,
        )
    except Exception as exc:  # noqa: BLE001 - the parent prints it as the reason it cannot start
        try:
            pipe.send(("error", str(exc)))
        except OSError:
            pass
        _exit_now(1)
    _exit_now(0)


def _exit_now(code: int) -> None:
    """Leave without joining the request pool: an SQS long poll in flight would hold the exit up for the rest of
    its WaitTimeSeconds (the answer could not be sent anyway)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class MotoProcess:
    """moto's server in a spawned child process; stop it last so other components' shutdown calls reach it.

    With `state_file`, the server restores moto's state from it at start and keeps it there (local/moto/snapshot.py).
    """

    def __init__(self, state_file: Path | None = None, snapshot_seconds: float = 1.0) -> None:
        self._state_file = state_file
        self._snapshot_seconds = snapshot_seconds
        self._process: Any = None
        self._pipe: Any = None
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        """The server's URL, e.g. http://127.0.0.1:PORT. Raises RuntimeError before start()."""
        if self._endpoint is None:
            raise RuntimeError("MotoProcess is not started")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return None if self._process is None else self._process.exitcode

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> str:
        """Spawn the server and wait until it answers HTTP; return its URL.

        Raises ValueError for a non-loopback host, RuntimeError if already started or if the child cannot start
        (its reason in the message: an unreadable state file, a moto that changed), TimeoutError if it does not
        answer within `timeout` seconds.
        """
        if self._process is not None:
            raise RuntimeError("MotoProcess is already started")
        require_loopback(host)
        context = spawn_context()
        parent_end, child_end = context.Pipe(duplex=True)
        # daemon: if the owner forgets stop(), multiprocessing terminates us at its exit instead of hanging.
        process = context.Process(
            target=_child_main,
            args=(host, port, self._state_file, self._snapshot_seconds, child_end),
            name="moto-server",
            daemon=True,
        )
        with sigint_ignored():
            process.start()
        child_end.close()  # only the child holds it now, so its death reads as EOF below
        self._process, self._pipe = process, parent_end
        deadline = time.monotonic() + timeout
        try:
            bound_port = _receive_port(parent_end, process, deadline)
            _wait_until_answering(host, bound_port, process, deadline)
        except BaseException:
            self.stop()
            raise
        self._endpoint = endpoint_url(host, bound_port)
        logger.info("moto server (pid %s) answering on %s", process.pid, self._endpoint)
        return self._endpoint

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the server to stop (it takes its final snapshot), then kill it after `timeout` seconds. Idempotent."""
        process, pipe = self._process, self._pipe
        self._process = self._pipe = self._endpoint = None
        if process is None:
            return
        stop_child(process, "the moto server", lambda: pipe.send(_STOP), timeout)
        pipe.close()
        process.close()

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _receive_port(pipe: Any, process: Any, deadline: float) -> int:
    if not pipe.poll(max(0.0, deadline - time.monotonic())):
        raise TimeoutError("moto server did not bind its port in time")
    try:
        kind, value = pipe.recv()
    except EOFError:
        process.join(1.0)
        raise RuntimeError(f"moto server exited before binding (exit code {process.exitcode})") from None
    if kind == "error":
        process.join(5.0)
        raise RuntimeError(f"moto server cannot start: {value}")
    return int(value)


def _wait_until_answering(host: str, port: int, process: Any, deadline: float) -> None:
    while True:
        try:
            _probe(host, port)
            return
        except (OSError, http.client.HTTPException):
            if not process.is_alive():
                raise RuntimeError(f"moto server exited (exit code {process.exitcode})") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"moto server did not answer on {host}:{port} in time") from None
            time.sleep(0.05)


def _probe(host: str, port: int) -> None:
    """Any HTTP answer will do: it proves the server accepts and handles requests."""
    connection = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        connection.request("GET", _PROBE_PATH)
        connection.getresponse().read()
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local moto server in the foreground.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port to bind, 0 for any free one (default 5000)")
    parser.add_argument("--state-file", type=Path, help="restore moto's state from this file and keep it there")
    parser.add_argument("--snapshot-seconds", type=float, default=1.0, help="the most time a hard kill loses")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)

    def until(stop: Callable[[], None]) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop())

    try:
        run_server(
            args.host, args.port, state_file=args.state_file, snapshot_seconds=args.snapshot_seconds, until=until
        )
    except (RuntimeError, ValueError) as exc:
        print(f"cannot start moto: {exc}", file=sys.stderr)
        return 1
    return 0
