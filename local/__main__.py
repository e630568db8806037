"""`make run`: the whole stack on one origin, against an embedded moto server (or AWS_ENDPOINT_URL).

Stops cleanly on SIGINT or SIGTERM (to this process or its whole group), and with one line and exit code 1 when
a part that holds state is lost (local/supervisor.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys


async def main() -> int:
    from local.stack import ROOT, LocalStack, StartupError, env
    from local.state import StateInUse

    logging.basicConfig(level=env("LOCAL_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(ROOT))
    # One process runs the event loop (WebSocket frames, Management API posts) and the handler threads;
    # a shorter GIL switch interval lets the loop in sooner behind busy handlers (Lambda has no such
    # sharing). Measured: K=50 select->ack p99 down about a tenth, throughput up slightly.
    sys.setswitchinterval(0.001)
    _raise_open_files_limit()
    stack = LocalStack()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stack.serve(stopping)
        await stopping.wait()
    except StateInUse as exc:
        print(f"cannot start: {exc}; stop that stack, or set LOCAL_STATE_DIR to another folder", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # Typically the port is taken: say so in one line instead of a traceback.
        print(f"cannot serve on {stack.host}:{stack.port}: {exc.strerror or exc} (set PORT to move)", file=sys.stderr)
        return 1
    finally:
        await stack.stop()
        print("stopped", flush=True)
    return 1 if stack.fatal else 0


def _raise_open_files_limit(wanted: int = 65536) -> None:
    """Every viewer is a socket in the gateway, and a fan-out keeps up to FANOUT_CONCURRENCY connections to it per
    poller thread (each thread has its own event loop: chalicelib/async_http.py): the common default of 1,024
    open files is too few for a few thousand viewers. The children (moto, the event sources) inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run() -> int:
    from local.processes import calm_gc, use_uvloop

    use_uvloop()
    calm_gc()
    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        # Ctrl-C before the stack's own handlers were in place: whatever had started is stopped by then
        # (main's `finally`), so a traceback would only alarm.
        return 130


if __name__ == "__main__":
    sys.exit(run())
