"""What every process of the local stack needs: spawning, a name in `top`, Ctrl-C left to the parent, a fast
event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("local.processes")


def spawn_context() -> Any:
    """Children are spawned, never forked: the parent runs threads (an event loop, handler pools)."""
    return multiprocessing.get_context("spawn")


def name_process(name: str) -> None:
    """Set the OS-level name (/proc/PID/comm, what top and ps -o comm show) of this process, on Linux."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while spawning, so the child inherits SIG_IGN from its very first instruction.

    Python keeps an inherited SIG_IGN instead of installing its KeyboardInterrupt handler, which closes the
    window before the child's own main runs (a Ctrl-C reaches the whole foreground process group).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may touch handlers; children still ignore SIGINT early on
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def use_uvloop() -> bool:
    """Make the event loops this process creates from now on uvloop's (libuv), where it is installed (not on
    Windows). The gateway, moto's server and the fan-out's posts each spend most of their time in the event loop
    itself (timers, transports, tasks); under the premiere rush uvloop took the last viewer's lag p99 from 1.4-1.9 s
    to 1.15-1.5 s (bench/README.md, "Fourth pass"). Lambda's own runtime has no uvloop: nothing in chalicelib needs
    it, and the code runs the same on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def stop_child(process: Any, name: str, ask: Callable[[], None], timeout: float) -> None:
    """Ask a child to stop (`ask` sends its stop message; a child already gone is fine), wait up to `timeout`
    seconds for it to exit, then kill it."""
    try:
        ask()
    except (OSError, EOFError, ValueError):
        pass  # already gone
    process.join(timeout)
    if process.is_alive():
        log.warning("%s (pid %s) did not stop in %.1f s: killing it", name, process.pid, timeout)
        process.kill()
        process.join()


def calm_gc() -> None:
    """Collect cyclic garbage far less often in this process (Python's default: a young-generation pass every 700
    allocations, a full pass whenever the old generation has grown by a tenth). moto holds every item as a graph
    of objects and copies items on every request; the gateway and the clients hold thousands of sockets. Their
    collections were pauses DynamoDB and API Gateway do not have: under the premiere rush the slowest stream
    batches (p99 0.76-1.0 s) fell to 0.64-0.70 s with this, for 20-30 MiB more memory (bench/README.md, "Fourth
    pass"). What exists now is frozen out of every later collection."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


def start_handler_child(name: str, log_level: str) -> Any:
    """What a child running app.py's handlers does first: its name in `top`, the calm collector, SIGINT and SIGTERM
    left to the parent (which stops it over its pipe, in order with the rest of the stack), logging, the app
    imported from the checkout and its AWS clients built once. Returns the app module."""
    import importlib
    import sys

    name_process(name)
    calm_gc()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    app_module = importlib.import_module("app")
    from chalicelib.storage import warm_clients
    from chalicelib.wiring import container

    warm_clients()
    container().broadcaster.client  # noqa: B018 - built once here, not by each first concurrent post
    return app_module
