"""moto's server app served from aiohttp on a loopback port, behind the service locks.

werkzeug's development server (what moto's own server uses) spent about a fifth of moto's CPU per request: a
thread and a TCP connection per request, header parsing in Python. aiohttp parses HTTP in C and keeps
connections alive, so botocore's pooled connections are reused. Table requests run on the event loop's own
thread (they are CPU-only and serialized anyway: no thread hand-offs); everything else, SQS long polls included,
on a pool. Only the services the app calls are served with care: DynamoDB, DynamoDB Streams and SQS.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from multidict import CIMultiDict

from local.moto.serialize import TABLES_LOCK, SerializedApp, locks_for

logger = logging.getLogger(__name__)


def build_app(speed: bool, on_mutation: Callable[[], None] | None = None) -> SerializedApp:
    """moto's own server app (the one ThreadedMotoServer serves) behind the service locks; with the speed work,
    table requests skip Flask (local/moto/speed/shortcut.py)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app: Callable[..., Iterable[bytes]] = DomainDispatcherApplication(create_backend_app)
    if speed:
        from local.moto.speed.shortcut import JsonTargetShortcut

        app = JsonTargetShortcut(app)
    return SerializedApp(app, on_mutation)


class WsgiBridge:
    """Serves a WSGI app (moto's, behind SerializedApp) from aiohttp.

    werkzeug's development server spent about a fifth of moto's CPU per request (a thread and a TCP
    connection per request, header parsing in Python); aiohttp parses HTTP in C and keeps connections
    alive, so botocore's pooled connections are reused. Table requests run on the event loop's own thread
    (they are CPU-only and serialized anyway: no thread hand-offs); everything else (SQS long polls
    included) on a pool.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], host: str, port: int) -> None:
        self._app = app
        self._host, self._port = host, port
        self._others = ThreadPoolExecutor(max_workers=32, thread_name_prefix="moto-others")

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()  # whole, before any lock is taken
        environ = self.environ_for(request, body)
        if locks_for(environ) == (TABLES_LOCK,):
            # Table requests are CPU-only and serialized anyway: run them right here, on the loop's
            # thread, without two thread hand-offs per request.
            status, headers, payload = self._call(environ)
        else:
            status, headers, payload = await asyncio.get_running_loop().run_in_executor(
                self._others, self._call, environ
            )
        code, _, reason = status.partition(" ")
        # A HEAD answer has no body to measure: keep moto's Content-Length (the size of what GET returns).
        dropped = _HOP_BY_HOP - {"content-length"} if request.method == "HEAD" else _HOP_BY_HOP
        response_headers = CIMultiDict((k, v) for k, v in headers if k.lower() not in dropped)
        return web.Response(status=int(code), reason=reason or None, headers=response_headers, body=payload)

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            started[:] = [status, headers]
            return _no_write

        body = b"".join(self._app(environ, start_response))
        return started[0], started[1], body

    def environ_for(self, request: Any, body: bytes) -> dict[str, Any]:
        """The WSGI environ werkzeug's server would build (moto reads RAW_URI for the undecoded path)."""
        from urllib.parse import unquote_to_bytes

        raw_path, _, query = request.raw_path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": request.raw_path,
            "REQUEST_URI": request.raw_path,
            "SERVER_NAME": self._host,
            "SERVER_PORT": str(self._port),
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "REMOTE_ADDR": request.remote or "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers.items():
            if "_" in name:
                continue  # werkzeug drops these too (X_Foo would spoof X-Foo)
            key = name.upper().replace("-", "_")
            if key == "CONTENT_LENGTH":
                continue
            if key != "CONTENT_TYPE":
                key = f"HTTP_{key}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def shutdown(self) -> None:
        self._others.shutdown(wait=False, cancel_futures=True)


_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


def _no_write(data: bytes) -> None:
    raise NotImplementedError("moto never uses WSGI's write()")


async def serve(
    app: Callable[..., Iterable[bytes]],
    host: str,
    port: int,
    stopping: asyncio.Event,
    on_bound: Callable[[int], None] | None = None,
) -> None:
    """Serve `app` on host:port until `stopping` is set. Raises ValueError for a non-loopback host."""
    from aiohttp import web

    require_loopback(host)
    application = web.Application(client_max_size=64 * 1024 * 1024)
    bridge = WsgiBridge(app, host, port)
    application.router.add_route("*", "/{tail:.*}", bridge.handle)
    # shutdown_timeout: an SQS long poll in flight must not hold the stop up for its full wait.
    runner = web.AppRunner(application, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        bridge._port = bound_port
        if on_bound is not None:
            on_bound(bound_port)
        logger.info("moto listening on %s", endpoint_url(host, bound_port))
        await stopping.wait()
    finally:
        await runner.cleanup()
        bridge.shutdown()


def require_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    if not address.is_loopback:
        raise ValueError(f"moto must bind to a loopback address only, not {host!r}")


def endpoint_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
