"""One HTTP + WebSocket origin that stands in for API Gateway (REST and WebSocket APIs).

- /api/...          REST, converted to API Gateway proxy events by chalice's LocalGateway
- /ws               WebSocket API: $connect / $default / $disconnect events into app.py's handlers
- /@connections/id  the Management API (POST / GET / DELETE; 410 for gone connections)
- /config.json      the web app's configuration; everything else: static files from web/
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import WSCloseCode, WSMsgType, web
from chalice.local import LambdaContext, LambdaEventConverter, LocalGateway, LocalGatewayException

from infra.csp import content_security_policy
from local.rest_lambdas import RestLambdasGone, RestLambdasProcess

log = logging.getLogger("local.gateway")

MAX_FRAME_BYTES = 32 * 1024  # API Gateway's WebSocket frame limit
MAX_BODY_BYTES = 64 * 1024
_CHALICE_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
_NOT_PAGES = ("/api", "/@connections", "/%40connections", "/ws")
_LOCAL_ONLY = ("/paypal", "/@connections", "/%40connections")
_PAGE_POLICY = content_security_policy(())  # same origin: 'self' covers the API and ws:// of this host
_PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_API_ID = "localapi"
_STAGE = "local"
# REST invocations at once. On AWS every request may get a container of its own; 16 threads let slow PayPal
# calls and fast reads overlap as they would there, without more threads than two cores can use.
REST_CONCURRENCY = 16
_HEALTH_PATH = "/api/health"


class _PerThread:
    """A data descriptor giving each thread its own value of an attribute (None until set in that thread)."""

    def __init__(self) -> None:
        self._values = threading.local()

    def __get__(self, instance: object, owner: type | None = None) -> object:
        return getattr(self._values, "value", None)

    def __set__(self, instance: object, value: object) -> None:
        self._values.value = value


class _SourceAwareConverter(LambdaEventConverter):
    """chalice's converter puts 127.0.0.1 in every event's `identity.sourceIp`; API Gateway puts the client's
    address there. The gateway appends the client's address to X-Forwarded-For (as API Gateway does), and the
    last entry, which no client can forge, becomes the event's source."""

    def create_lambda_event(self, method: str, path: str, headers: dict, body: bytes | None = None) -> dict:
        event = super().create_lambda_event(method, path, headers, body)
        forwarded = {k.lower(): v for k, v in headers.items()}.get("x-forwarded-for", "")
        source = forwarded.rsplit(",", 1)[-1].strip()
        if source:
            event["requestContext"]["identity"]["sourceIp"] = source
        return event


def rest_gateway(app_module: Any, chalice_config: Any) -> LocalGateway:
    """chalice's LocalGateway for the app, serving many threads at once and seeing the client's address."""
    concurrent_rest(app_module.app)
    rest = LocalGateway(app_module.app, chalice_config)
    rest.event_converter = _SourceAwareConverter(rest.event_converter._route_matcher, app_module.app.api.binary_types)
    return rest


def call_rest(rest: LocalGateway, method: str, target: str, headers: dict, body: bytes) -> dict:
    """One REST request through LocalGateway: the API Gateway proxy response (statusCode, headers, body)."""
    try:
        return rest.handle_request(method=method, path=target, headers=headers, body=body or None)
    except LocalGatewayException as exc:
        # Unknown routes come out of LocalGateway as API Gateway's 403 "Missing Authentication Token".
        status = 404 if exc.CODE == 403 else exc.CODE
        code = _CHALICE_CODES.get(status, "error")
        message = "No such resource." if status == 404 else "The request was refused."
        return {"statusCode": status, "headers": {}, "body": json.dumps({"code": code, "message": message})}


def concurrent_rest(app: object) -> None:
    """Let one Chalice app serve REST requests from many threads at once.

    Chalice keeps the request being handled in `app.current_request` (and its Lambda context in
    `app.lambda_context`): one per app object, which is right in Lambda, where a container handles one request
    at a time. Here the app's class is swapped for a subclass holding both per thread; nothing else in a REST
    invocation is shared (LocalGateway builds each event and context afresh).
    """
    if getattr(type(app), "_per_thread_requests", False):
        return
    app.__class__ = type(
        f"Concurrent{type(app).__name__}",
        (type(app),),
        {"current_request": _PerThread(), "lambda_context": _PerThread(), "_per_thread_requests": True},
    )


def lambda_context(function_name: str, timeout_seconds: int = 60) -> LambdaContext:
    return LambdaContext(function_name=function_name, memory_size=512, max_runtime_ms=timeout_seconds * 1000)


# On AWS every frame is its own Lambda invocation, scaled out far past what one client can send: one chatty
# client never makes another wait in a queue behind its frames. Here the handlers share a pool of threads, so a
# socket may have only this many frames being handled at once; its next frames are not even read until one is done
# (they wait in TCP, and the flooding client's sends slow down). Without this, one flooding socket queued tens of
# thousands of frames ahead of everybody else's and delayed their acks by seconds (bench: flood_select_ack_ms).
FRAMES_IN_FLIGHT_PER_SOCKET = 4
# DeleteConnection drops the connection: the close frame is sent, and what the client still sends is not read
# (aiohttp's close() would read every frame already buffered before the client's close reply).
CLOSE_GRACE_SECONDS = 0.2


@dataclass(frozen=True)
class ConnectionLimits:
    """API Gateway's WebSocket connection quotas, so code that forgets them fails locally, not only deployed.

    The defaults are AWS's documented values; 0 turns a limit off (tests set small values to see them act).
    """

    idle_seconds: float = 600.0  # no frame from the client for this long: closed, 1001 "Going away"
    max_age_seconds: float = 7200.0  # a connection lives at most this long, busy or not
    connect_rate: float = 500.0  # new connections a second (the same burst); over it a handshake is 429

    def close_at(self, connected_at: float, last_frame_at: float) -> float | None:
        """When a connection opened at `connected_at` whose client last sent a frame at `last_frame_at` is
        closed (None: never); the same clock for all three."""
        deadlines = []
        if self.idle_seconds > 0:
            deadlines.append(last_frame_at + self.idle_seconds)
        if self.max_age_seconds > 0:
            deadlines.append(connected_at + self.max_age_seconds)
        return min(deadlines, default=None)


class TokenBucket:
    """`rate` tokens a second, at most `burst` kept: a handshake takes one or is refused (never queued)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class _Socket:
    connection_id: str
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ws: web.WebSocketResponse | None = None
    connected_at: float = field(default_factory=time.time)
    source_ip: str = "127.0.0.1"
    transport: asyncio.BaseTransport | None = None
    # The event loop's clock (monotonic) at the handshake and at the client's last data frame: the idle timeout
    # and the maximum age are measured on it.
    opened_at: float = field(default_factory=time.monotonic)
    last_frame_at: float = field(default_factory=time.monotonic)
    going_away: bool = False  # the gateway is closing it (idle timeout, maximum age)
    # How many more of this socket's frames may be handled at once (see FRAMES_IN_FLIGHT_PER_SOCKET).
    inflight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(FRAMES_IN_FLIGHT_PER_SOCKET))


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


class Gateway:
    """Invokes the very handlers of app.py with Lambda-shaped events."""

    def __init__(
        self,
        app_module,
        chalice_config,
        *,
        web_root: Path,
        public_origin: str,
        parts_health: Callable[[], dict] | None = None,
        limits: ConnectionLimits | None = None,
        rest_lambdas: RestLambdasProcess | None = None,
    ) -> None:
        self._module = app_module
        self._post_delay = float(os.environ.get("LOCAL_WS_POST_DELAY_MS") or 0) / 1000
        # REST requests run in `rest_lambdas`' process when given (local/rest_lambdas.py), else on threads here.
        self._rest_lambdas = rest_lambdas
        self._rest = rest_gateway(app_module, chalice_config) if rest_lambdas is None else None
        self._rest_pool = ThreadPoolExecutor(max_workers=REST_CONCURRENCY, thread_name_prefix="rest")
        self._parts_health = parts_health
        self._disconnect_handlers = True
        self._draining = False
        self._rest_in_flight = 0  # touched on the event loop only
        port = public_origin.rsplit(":", 1)[-1].rstrip("/")
        self._hosts = {public_origin.split("://", 1)[-1].rstrip("/").lower()} | {
            f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")
        }
        self._ws_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ws")
        self._sockets: dict[str, _Socket] = {}
        self._limits = limits or ConnectionLimits()
        self._watchdogs: set[asyncio.Task] = set()
        rate = self._limits.connect_rate
        self._new_connections = TokenBucket(rate, max(1.0, rate), time.monotonic()) if rate > 0 else None
        self._web_root = web_root
        self.public_origin = public_origin.rstrip("/")

    # --- application --------------------------------------------------------------------
    def build(self, extra_subapps: dict[str, web.Application] | None = None) -> web.Application:
        application = web.Application(
            client_max_size=1024 * 1024, middlewares=[self._errors, self._local_only, self._page_headers]
        )
        application.router.add_get("/ws", self.websocket)
        application.router.add_route("*", "/@connections/{connection_id}", self.connections)
        application.router.add_route("*", "/%40connections/{connection_id}", self.connections)
        application.router.add_get("/config.json", self.config)
        application.router.add_route("*", "/api", self.rest)
        application.router.add_route("*", r"/api/{tail:[\s\S]*}", self.rest)
        for path in ("/paypal/return", "/paypal/cancel", "/"):
            application.router.add_get(path, self.index)
        for prefix, sub in (extra_subapps or {}).items():
            application.add_subapp(prefix, sub)
        if self._web_root.is_dir():
            application.router.add_static("/", self._web_root, show_index=False)
        return application

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _CHALICE_CODES.get(exc.status, "error")
            return _json_error(exc.status, code, exc.reason or "error")

    @web.middleware
    async def _local_only(self, request: web.Request, handler):
        """The local stack answers only itself. A Host header naming another site is refused (a DNS-rebinding page
        would otherwise read it as its own origin), and so is a cross-site request that changes anything on the
        emulators (a page the developer visits could inject PayPal faults, approve orders, redirect webhooks or
        post to sockets with a plain form, no preflight needed). The REST API keeps its CORS: it takes bearer
        tokens, never cookies."""
        if request.host.lower() not in self._hosts:
            return _json_error(421, "misdirected_request", "This server answers only its own address.")
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.path.startswith(_LOCAL_ONLY):
            if not self._same_origin(request):
                return _json_error(403, "forbidden", "Cross-site requests to the local emulators are refused.")
        return await handler(request)

    def _same_origin(self, request: web.Request) -> bool:
        """A browser says where a request comes from in Sec-Fetch-Site (the emulator's own approval form is
        `same-origin`; its Origin is "null" under the pages' no-referrer policy). Without it (not a browser, or an
        old one), an Origin, when sent, must be this stack's."""
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None:
            return fetch_site in ("same-origin", "none")
        origin = request.headers.get("Origin")
        return origin is None or origin == self.public_origin

    @web.middleware
    async def _page_headers(self, request: web.Request, handler):
        """The web app's pages get the headers CloudFront adds deployed (infra/web.py): the same strict CSP, so
        `make run` refuses what the deployed site would."""
        response = await handler(request)
        if not request.path.startswith(_NOT_PAGES):
            response.headers.setdefault("Content-Security-Policy", _PAGE_POLICY)
            for name, value in _PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    async def config(self, request: web.Request) -> web.Response:
        ws_origin = self.public_origin.replace("http://", "ws://").replace("https://", "wss://")
        return web.json_response({"apiBase": f"{self.public_origin}/api", "wsUrl": f"{ws_origin}/ws"})

    async def index(self, request: web.Request) -> web.StreamResponse:
        index = self._web_root / "index.html"
        if not index.is_file():
            return web.Response(text="The tickets API is running under /api/.", content_type="text/plain")
        return web.FileResponse(index)

    # --- REST ---------------------------------------------------------------------------
    async def rest(self, request: web.Request) -> web.Response:
        body = await request.read()
        if len(body) > MAX_BODY_BYTES:
            return _json_error(413, "payload_too_large", "The request body is larger than 64 KB.")
        path = request.rel_url.path
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        # LocalGateway parses the target with urlparse: hand it the path re-quoted, as API Gateway
        # sees it on the wire, so a decoded ';' or '?' inside an id cannot cut the path short.
        path = quote(path, safe="/:@!$&'()*+,=-._~")
        target = path + (f"?{request.rel_url.query_string}" if request.rel_url.query_string else "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        forwarded = headers.get("x-forwarded-for")
        remote = request.remote or "127.0.0.1"
        headers["x-forwarded-for"] = f"{forwarded}, {remote}" if forwarded else remote
        if self._draining:
            return _json_error(503, "service_unavailable", "The local stack is stopping.")
        loop = asyncio.get_running_loop()
        self._rest_in_flight += 1
        try:
            if self._rest_lambdas is not None:
                response = await self._rest_lambdas.invoke(request.method, target, headers, body)
            else:
                response = await loop.run_in_executor(
                    self._rest_pool, call_rest, self._rest, request.method, target, headers, body
                )
        except RestLambdasGone:
            # What API Gateway answers when the Lambda behind it fails to answer.
            return _json_error(502, "bad_gateway", "The request could not be handled; try again.")
        finally:
            self._rest_in_flight -= 1
        if path == _HEALTH_PATH and request.method == "GET" and self._parts_health is not None:
            response = with_parts(response, self._parts_health())
        return self._to_aiohttp(response)

    @staticmethod
    def _to_aiohttp(response: dict) -> web.Response:
        status = int(response.get("statusCode", 200))
        headers = {k: v for k, v in (response.get("headers") or {}).items()}
        raw = response.get("body") or ""
        if response.get("isBase64Encoded"):
            payload = base64.b64decode(raw)
        else:
            payload = raw.encode("utf-8") if isinstance(raw, str) else raw
        if status >= 400:
            payload = _normalise_error(status, payload)
            headers["Content-Type"] = "application/json"
        headers.pop("Content-Length", None)
        return web.Response(status=status, body=payload, headers=headers)

    # --- WebSocket API ------------------------------------------------------------------
    def _ws_event(self, route: str, event_type: str, sock: _Socket, request: web.Request | None, body=None) -> dict:
        context = {
            "routeKey": route,
            "eventType": event_type,
            "connectionId": sock.connection_id,
            "domainName": request.host if request is not None else "127.0.0.1",
            "stage": _STAGE,
            "apiId": _API_ID,
            "requestId": _unique_id(),
            "messageId": _unique_id() if event_type == "MESSAGE" else None,
            "connectedAt": int(sock.connected_at * 1000),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": sock.source_ip},
        }
        event: dict = {"requestContext": context, "isBase64Encoded": False}
        if request is not None and event_type == "CONNECT":
            event["headers"] = dict(request.headers)
            event["queryStringParameters"] = dict(request.query) or None
        if body is not None:
            event["body"] = body
        return event

    async def _invoke(self, handler, event: dict, name: str) -> dict:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._ws_pool, handler, event, lambda_context(name))

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if self._new_connections is not None and not self._new_connections.take(time.monotonic()):
            # API Gateway throttles new connections before invoking anything: no $connect, no row.
            log.info("handshake refused: over %s new connections a second", self._limits.connect_rate)
            return _json_error(429, "rate_limited", "Too many new connections; retry shortly.")
        sock = _Socket(connection_id=secrets.token_urlsafe(12), source_ip=request.remote or "127.0.0.1")
        self._sockets[sock.connection_id] = sock
        try:
            result = await self._invoke(
                self._module.ws_connect, self._ws_event("$connect", "CONNECT", sock, request), "ws_connect"
            )
        except Exception:  # noqa: BLE001 - a crashed handler is a 500, as API Gateway answers
            log.exception("$connect handler failed")
            result = {"statusCode": 500}
        status = int((result or {}).get("statusCode", 200))
        if status != 200:
            self._sockets.pop(sock.connection_id, None)
            code = _CHALICE_CODES.get(status, "error")
            return _json_error(status, code, "The WebSocket handshake was refused.")
        # Oversized messages make aiohttp close the socket with 1009 (message too big), as API Gateway does.
        # No permessage-deflate: API Gateway does not negotiate it either (and compressing costs CPU).
        # aiohttp refuses a frame whose length is >= max_msg_size: + 1 lets exactly 32 KB through.
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES + 1, heartbeat=None, compress=False)
        tasks: set[asyncio.Task] = set()
        watchdog: asyncio.Task | None = None
        try:
            # Inside the try: a client that vanishes during the upgrade still gets its $disconnect,
            # else its row would linger until the TTL and its id would stay in _sockets for good.
            await ws.prepare(request)
            sock.ws = ws
            sock.transport = request.transport
            sock.ready.set()
            watchdog = asyncio.create_task(self._watch(sock))
            self._watchdogs.add(watchdog)  # held here: it may outlive this handler while it closes the socket
            watchdog.add_done_callback(self._watchdogs.discard)
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    # Only data frames count as activity: API Gateway does not take protocol pings as such
                    # (they are answered here all the same), and a browser cannot send them anyway.
                    sock.last_frame_at = time.monotonic()
                    await sock.inflight.acquire()  # released when the frame is handled
                    if ws.closed:
                        sock.inflight.release()
                        break
                    # API Gateway hands binary frames to $default too, base64-encoded: so does this gateway.
                    task = asyncio.create_task(self._message(sock, message.data))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            if watchdog is not None and not sock.going_away:
                watchdog.cancel()  # not while it closes the socket: the client would miss the close code
            self._sockets.pop(sock.connection_id, None)
            sock.ready.set()  # wake posts held for this socket: they now answer 410
            await self._disconnect(sock)
        return ws

    async def _watch(self, sock: _Socket) -> None:
        """Close the socket at the idle timeout or at its maximum age, whichever comes first, as API Gateway
        does. Frames only move a timestamp; this task wakes at the deadline and looks again."""
        while True:
            deadline = self._limits.close_at(sock.opened_at, sock.last_frame_at)
            if deadline is None:
                return
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        idle = time.monotonic() - sock.last_frame_at
        reason = "idle timeout" if 0 < self._limits.idle_seconds <= idle else "maximum connection age"
        log.info("closing connection %s: %s", sock.connection_id, reason)
        await self._going_away(sock)

    async def _going_away(self, sock: _Socket) -> None:
        """API Gateway's own close: 1001 "Going away"; the handler's loop ends and `$disconnect` runs."""
        ws = sock.ws
        if ws is None or ws.closed:
            return
        sock.going_away = True
        if sock.transport is not None:
            # As for DeleteConnection: what the client still sends after the close frame is not read.
            asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, sock.transport.close)
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Going away")

    async def _message(self, sock: _Socket, data: str | bytes) -> None:
        try:
            if sock.ws is None or sock.ws.closed:
                return  # the socket was closed meanwhile (a flooder closed by the backend): nobody to answer
            event = self._ws_event("$default", "MESSAGE", sock, None, body=data)
            if isinstance(data, bytes):
                event.update(body=base64.b64encode(data).decode("ascii"), isBase64Encoded=True)
            await self._invoke(self._module.ws_message, event, "ws_message")
        except Exception:  # noqa: BLE001 - API Gateway swallows handler crashes too
            log.exception("$default handler failed")
        finally:
            sock.inflight.release()

    def skip_disconnect_handlers(self) -> None:
        """Close sockets from now on without invoking $disconnect (the tables they would update are gone)."""
        self._disconnect_handlers = False

    async def _disconnect(self, sock: _Socket) -> None:
        if not self._disconnect_handlers:
            return
        try:
            await self._invoke(
                self._module.ws_disconnect, self._ws_event("$disconnect", "DISCONNECT", sock, None), "ws_disconnect"
            )
        except Exception:  # noqa: BLE001
            log.exception("$disconnect handler failed")

    # --- Management API -----------------------------------------------------------------
    async def connections(self, request: web.Request) -> web.StreamResponse:
        if self._post_delay > 0:
            # What a Management API call costs on AWS is network, not CPU: waiting here (without blocking the loop)
            # makes a fan-out feel it as a Lambda would (LOCAL_WS_POST_DELAY_MS; docs/broadcasts.md).
            await asyncio.sleep(self._post_delay)
        sock = await self._open_socket(unquote(request.match_info["connection_id"]))
        if sock is None or sock.ws is None:
            return _gone()
        ws = sock.ws
        if request.method == "POST":
            data = await request.read()
            try:
                await ws.send_str(data.decode("utf-8"))
            except (ConnectionResetError, RuntimeError):
                return _gone()
            return web.Response(status=200)
        if request.method == "GET":
            return web.json_response(
                {
                    "connectedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sock.connected_at)),
                    "identity": {"sourceIp": sock.source_ip},
                    "lastActiveAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
        if request.method == "DELETE":
            if sock.transport is not None:
                asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, sock.transport.close)
            await ws.close()
            return web.Response(status=204)
        return _json_error(405, "method_not_allowed", "Use POST, GET or DELETE.")

    async def _open_socket(self, connection_id: str) -> _Socket | None:
        """The open socket of this id, or None (gone). A post racing the connection's own $connect is held until
        the socket is open."""
        sock = self._sockets.get(connection_id)
        if sock is None:
            return None
        if not sock.ready.is_set():
            try:
                await asyncio.wait_for(sock.ready.wait(), timeout=10)
            except TimeoutError:
                return None
        return sock if sock.ws is not None and not sock.ws.closed else None

    def open_connections(self) -> int:
        return len(self._sockets)

    async def drain(self, timeout: float) -> None:
        """Take no new REST request (503 from now on) and wait up to `timeout` s for those in flight: their
        handlers may still need this server (the PayPal emulator, the Management API), so it closes only after."""
        self._draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._rest_in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)

    async def close_all(self) -> None:
        for sock in list(self._sockets.values()):
            if sock.ws is not None and not sock.ws.closed:
                await sock.ws.close()

    def shutdown(self) -> None:
        self._rest_pool.shutdown(wait=True, cancel_futures=True)
        self._ws_pool.shutdown(wait=True, cancel_futures=True)


def with_parts(response: dict, parts: dict) -> dict:
    """The app's health answer with the local runtime's parts added: 503 when any part is not healthy."""
    try:
        body = json.loads(response.get("body") or "{}")
    except ValueError:
        return response
    if not isinstance(body, dict):
        return response
    unhealthy = sorted(name for name, part in parts.items() if part.get("status") != "ok")
    body["parts"] = parts
    status = int(response.get("statusCode", 200))
    if unhealthy and status == 200:
        status = 503
        body.update(
            status="degraded",
            code="service_unavailable",
            message=f"Part of the local stack is not healthy: {', '.join(unhealthy)}.",
        )
    return {**response, "statusCode": status, "body": json.dumps(body)}


def _unique_id() -> str:
    """A request or message id: unique, not secret (uuid4 costs a syscall per id, two per message)."""
    return f"{random.getrandbits(128):032x}"


def _gone() -> web.Response:
    """API Gateway's answer for a connection that is not (or no longer) open."""
    return web.json_response({"message": "Gone"}, status=410, headers={"x-amzn-ErrorType": "GoneException"})


def _normalise_error(status: int, payload: bytes) -> bytes:
    """Chalice's own errors are {"Code","Message"}; the contract wants {"code","message"}."""
    try:
        data = json.loads(payload or b"{}")
    except ValueError:
        data = {}
    if isinstance(data, dict) and {"code", "message"} <= set(data):
        return payload
    code = _CHALICE_CODES.get(status, "internal_error" if status >= 500 else "error")
    message = (
        "Something went wrong on our side; please retry."
        if status >= 500
        else str((data.get("Message") if isinstance(data, dict) else None) or "The request was refused.")
    )
    return json.dumps({"code": code, "message": message}).encode("utf-8")
