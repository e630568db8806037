"""The REST Lambdas in a process of their own, as on AWS, where API Gateway never waits for a Lambda's CPU.

Run inside the gateway's process, the REST handlers' threads (a checkout is dozens of botocore calls, each most
of a millisecond of CPU) held the one interpreter lock the gateway's event loop also needs, and under a rush its
WebSocket frames and Management API posts queued behind them: a post the gateway holds for 25 ms took p50
210-250 ms to answer (`bench --only rush`, docs/local-runtime.md). Here the gateway hands each REST request to
this child over a pipe; the child runs it on `concurrency` threads (the REST Lambdas' concurrency) through the
same chalice LocalGateway, and sends the API Gateway response back. WebSocket routes stay in the gateway: they
are short, and a select's ack should not pay the hop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.processes import sigint_ignored, spawn_context, start_handler_child, stop_child

log = logging.getLogger("local.rest_lambdas")


class RestLambdasGone(RuntimeError):
    """The child exited: the request in flight has no answer (the gateway answers 502, as API Gateway does when
    a Lambda dies)."""


def _child_main(config_args: dict, concurrency: int, log_level: str, pipe: Any) -> None:
    app_module = start_handler_child("rest-lambdas", log_level)  # the parent stops it by sending None
    from chalice.config import Config

    from local.gateway import call_rest, rest_gateway

    rest = rest_gateway(app_module, Config.create(**config_args))
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rest")
    sending = threading.Lock()

    def run(request_id: int, args: tuple) -> None:
        try:
            answer: tuple = (request_id, True, call_rest(rest, *args))
        except Exception as exc:  # noqa: BLE001 - LocalGateway answers handler errors itself; this is a bug
            log.exception("REST invocation failed")
            answer = (request_id, False, f"{type(exc).__name__}: {exc}")
        with sending:
            try:
                pipe.send(answer)
            except (OSError, EOFError):
                pass  # the parent is gone

    try:
        pipe.send("ready")
        while (request := pipe.recv()) is not None:  # None: the parent's stop
            pool.submit(run, *request)
    except (OSError, EOFError):
        pass  # the parent is gone
    pool.shutdown(wait=True, cancel_futures=True)
    logging.shutdown()
    os._exit(0)


class _Channel:
    """One child's pipe and the requests sent over it and not yet answered."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.sending = threading.Lock()
        self.pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}
        self.lock = threading.Lock()
        self.open = True

    def read(self) -> None:
        """Settle each answer as it comes; when the child is gone, fail whatever it had in flight."""
        while True:
            try:
                request_id, ok, value = self.pipe.recv()
            except (OSError, EOFError, TypeError):
                break
            with self.lock:
                waiting = self.pending.pop(request_id, None)
            if waiting is not None:
                loop, answer = waiting
                loop.call_soon_threadsafe(_settle, answer, ok, value if ok else RuntimeError(value))
        with self.lock:
            self.open = False
            gone, self.pending = self.pending, {}
        for loop, answer in gone.values():
            loop.call_soon_threadsafe(_settle, answer, False, RestLambdasGone("the REST Lambdas' process exited"))


class RestLambdasProcess:
    """The child seen from the gateway. Start it after the environment is prepared (the child inherits it)."""

    def __init__(self, config_args: dict, concurrency: int, log_level: str = "WARNING") -> None:
        self._config_args = config_args
        self._concurrency = concurrency
        self._log_level = log_level
        self._process: Any = None
        self._channel: _Channel | None = None
        self._ids = itertools.count()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode if self._process is not None else None

    def start(self, timeout: float = 60.0) -> None:
        context = spawn_context()
        parent_end, child_end = context.Pipe()
        with sigint_ignored():
            self._process = context.Process(
                target=_child_main,
                args=(self._config_args, self._concurrency, self._log_level, child_end),
                name="rest-lambdas",
                daemon=True,
            )
            self._process.start()
        child_end.close()
        if not parent_end.poll(timeout) or parent_end.recv() != "ready":
            self._process.kill()
            raise RuntimeError(f"the REST Lambdas' process did not start in {timeout:.0f} s")
        channel = _Channel(parent_end)
        threading.Thread(target=channel.read, name="rest-lambdas-answers", daemon=True).start()
        self._channel = channel

    async def invoke(self, method: str, target: str, headers: dict, body: bytes) -> dict:
        """The API Gateway response of one REST request. Raises RestLambdasGone if the child is gone."""
        channel = self._channel
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        request_id = next(self._ids)
        if channel is None:
            raise RestLambdasGone("the REST Lambdas' process is not running")
        with channel.lock:
            if not channel.open:
                raise RestLambdasGone("the REST Lambdas' process exited")
            channel.pending[request_id] = (loop, answer)
        try:
            with channel.sending:
                channel.pipe.send((request_id, (method, target, headers, body)))
        except (OSError, EOFError):
            with channel.lock:
                channel.pending.pop(request_id, None)
            raise RestLambdasGone("the REST Lambdas' process exited") from None
        return await answer

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the child to stop (it finishes what it runs, then exits); kill it after `timeout`. Idempotent."""
        process, channel, self._process, self._channel = self._process, self._channel, None, None
        if process is None:
            return

        def ask() -> None:
            if channel is not None:
                with channel.sending:
                    channel.pipe.send(None)

        stop_child(process, "the REST Lambdas' process", ask, timeout)
        if channel is not None:
            channel.pipe.close()


def _settle(answer: asyncio.Future, ok: bool, outcome: Any) -> None:
    if answer.done():
        return
    if ok:
        answer.set_result(outcome)
    else:
        answer.set_exception(outcome)
