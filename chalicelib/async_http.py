"""SigV4-signed HTTP/1.1 on asyncio: many requests in flight from one thread, for a room's fan-out.

A fan-out posts one message to each viewer of a room. With a thread per post in flight (chalicelib/signed_http.py:
urllib3 and botocore's signer under a thread pool) a post cost about 0.55 ms of CPU, most of it in the threads'
hand-offs, http.client's header parsing and botocore's request objects: one vCPU posted about 1,800 messages a
second. Here the posts of a batch share one event loop (one per thread, kept with its connections between
invocations) and as many kept-alive connections as it has posts in flight, and each request is signed from the day's
SigV4 signing key (chalicelib/sigv4.py), derived once a day instead of for every request: about 0.11 ms of CPU per post, the
Broadcaster's own work included (`python -m bench.postrate`).

What goes over the wire is what botocore signs for a request with no headers of its own (host, x-amz-date, and
x-amz-security-token with temporary credentials): tests/unit/test_sigv4.py compares the signatures, and
tests/integration/test_management_api.py verifies them as received. Failures are raised as the botocore
exceptions a boto3 client raises (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
ConnectionClosedError), so callers handle both transports alike.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import SSLError as BotocoreSSLError

from chalicelib.sigv4 import SigV4

T = TypeVar("T")

_MAX_HEAD_BYTES = 64 * 1024  # a response's status line and headers (the stream reader's limit)
_MAX_BODY_BYTES = 1024 * 1024  # the Management API answers a few hundred bytes at most


class Headers(dict):
    """Response headers by lower-cased name; `get` takes any case, as urllib3's do."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


class Response(NamedTuple):
    status: int
    headers: Headers
    data: bytes


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """A kept-alive connection was closed by the server before it answered (it idled out): try a new one."""


class AsyncSignedHttp:
    """`run(main)` runs a coroutine on this thread's loop; inside it, `send(...)` makes one signed request.

    Each thread that calls `run` gets a loop of its own and keeps it, with its idle connections, for the next
    call: a warm Lambda container reuses both. A thread opens as many connections as it has requests in flight
    at once (ManagementApi.post_many: at most FANOUT_CONCURRENCY), and keeps them for its next call."""

    def __init__(
        self,
        endpoint: str,
        signing_name: str,
        region: str,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        self._https = parts.scheme == "https"
        self._hostname = parts.hostname
        default_port = 443 if self._https else 80
        self._port = parts.port or default_port
        self._host = self._hostname if self._port == default_port else f"{self._hostname}:{self._port}"
        self._origin = f"{parts.scheme}://{self._host}"
        self.path_prefix = parts.path.rstrip("/")
        self._signer = SigV4(signing_name, region)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ssl = ssl_context  # None: the CA bundle boto3's clients trust, built on first use
        self._local = threading.local()

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        local = self._local
        if getattr(local, "loop", None) is None:
            local.loop = asyncio.new_event_loop()
            local.idle = []
        return local.loop.run_until_complete(main())

    async def send(self, method: str, path: str, body: bytes, credentials: Any, amz_date: str) -> Response:
        """One request to `path` (percent-encoded, from the root) with its body, read whole. Raises botocore's
        EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError or ConnectionClosedError."""
        signed = self._signer.sign(method, self._host, path, body, credentials, amz_date)
        head = "".join(f"{name}: {value}\r\n" for name, value in signed)
        request = f"{method} {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        idle: list[_Connection] = self._local.idle
        if idle:
            try:
                return await self._exchange(idle.pop(), request, path, reused=True)
            except _Stale:
                pass  # the server closed it while it idled: the request went nowhere, send it on a new one
        return await self._exchange(await self._connect(), request, path, reused=False)

    async def _exchange(self, connection: _Connection, request: bytes, path: str, *, reused: bool) -> Response:
        """Send on `connection` and read the answer; the connection goes back to the idle ones if it can carry
        another request, else it is closed (always closed on a failure or a cancellation)."""
        kept = False
        try:
            connection.writer.write(request)
            async with asyncio.timeout(self._read_timeout):
                response, keep_alive = await _read_response(connection.reader)
            kept = keep_alive
        except TimeoutError as exc:
            raise ReadTimeoutError(endpoint_url=self._origin + path, error=exc) from exc
        except asyncio.IncompleteReadError as exc:
            if reused and not exc.partial:
                raise _Stale() from exc
            raise ConnectionClosedError(endpoint_url=self._origin + path) from exc
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            if reused and isinstance(exc, OSError):  # reset, broken pipe, a TLS close without notify
                raise _Stale() from exc
            raise ConnectionClosedError(endpoint_url=self._origin + path) from exc
        finally:
            if kept:
                self._local.idle.append(connection)
            else:
                connection.close()
        return response

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self._hostname,
                    self._port,
                    ssl=self._ssl_context() if self._https else None,
                    limit=_MAX_HEAD_BYTES,
                )
        except TimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=self._origin, error=exc) from exc
        except ssl.SSLError as exc:  # an untrusted certificate, a failed handshake: as botocore raises it
            raise BotocoreSSLError(endpoint_url=self._origin, error=exc) from exc
        except OSError as exc:
            raise EndpointConnectionError(endpoint_url=self._origin, error=exc) from exc
        return _Connection(reader, writer)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            from botocore.httpsession import get_cert_path

            self._ssl = ssl.create_default_context(cafile=get_cert_path(True))  # what boto3's clients trust
        return self._ssl


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """One HTTP/1.1 response: (response, whether the connection can carry another request)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        status = int(rest[:3])
        if not 100 <= status < 200:
            break  # a 1xx (we send no Expect) is followed by the real answer
    headers = Headers()
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if status in (204, 304):
        data = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        data = await _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= _MAX_BODY_BYTES:
            raise ValueError(f"response body of {length} bytes")
        data = await reader.readexactly(length)
    else:
        data = await reader.read(_MAX_BODY_BYTES)  # delimited by the connection's end
        keep_alive = False
    return Response(status, headers, data), keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        total += size
        if total > _MAX_BODY_BYTES:
            raise ValueError(f"response body of more than {_MAX_BODY_BYTES} bytes")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
