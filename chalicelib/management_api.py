"""A lean client for the API Gateway Management API: PostToConnection (the hot path) and DeleteConnection.

Every select posts a reply and every batch of ticket changes posts to each viewer, so this call dominates a
rush. boto3's `apigatewaymanagementapi` client spent about 1.2 ms of CPU per post (event hooks, endpoint
rules, response parsing); this sends the same request (the URL botocore renders, the SigV4 signature botocore
computes, from chalicelib.sigv4; a keep-alive connection pool: chalicelib.signed_http) and fails the way boto3 does: `ClientError` with
the service's error code for an HTTP error (410 -> `GoneException`), a `BotoCoreError` when the endpoint
cannot be reached, after boto3's standard retries for throttling, 5xx and connection failures.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import urllib3
from botocore.exceptions import (
    BotoCoreError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.utils import percent_encode

from chalicelib.signed_http import SignedHttp, client_error
from chalicelib.sigv4 import amz_date

SIGNING_NAME = "execute-api"
OPERATION = "PostToConnection"
_MAX_ATTEMPTS = 3  # boto3's "standard" retry mode
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# What API Gateway names its errors; used when a response carries no x-amzn-ErrorType header.
_ERROR_CODES = {
    400: "BadRequestException",
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
}


def standard_backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1, 2): boto3's standard mode, full jitter."""
    return random.random() * min(20.0, 2 ** (attempt - 1))  # noqa: S311 (jitter, not a secret)


class ManagementApi:
    """`post_to_connection(ConnectionId=..., Data=...)` (thread-safe, one connection pool) for single posts, and
    `post_many(...)` for a fan-out (chalicelib/async_http.py: every post of the call on one asyncio loop)."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Any,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_connections: int = 64,
        sleep=time.sleep,
        backoff: Callable[[int], float] = standard_backoff,
        ssl_context: Any = None,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._sleep = sleep
        self._backoff = backoff
        self._region = region
        self._credentials = credentials
        self._timeouts = (connect_timeout, read_timeout)
        self._max_connections = max_connections
        self._ssl_context = ssl_context  # post_many's TLS trust (None: boto3's CA bundle)
        self._async_http: Any = None  # chalicelib.async_http.AsyncSignedHttp, built by the first post_many
        self._http = SignedHttp(
            self._endpoint,
            SIGNING_NAME,
            region,
            credentials,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
        )

    def url_for(self, connection_id: str) -> str:
        return f"{self._endpoint}/@connections/{percent_encode(connection_id)}"

    def post_to_connection(self, *, ConnectionId: str, Data: bytes | str) -> None:  # noqa: N803 (boto3's names)
        body = Data.encode("utf-8") if isinstance(Data, str) else Data
        url = self.url_for(ConnectionId)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                response = self._send(url, body)
            except (ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError):
                if attempt == _MAX_ATTEMPTS:
                    raise
            else:
                if response.status < 300:
                    return
                if response.status not in _RETRY_STATUSES or attempt == _MAX_ATTEMPTS:
                    raise client_error(response, OPERATION, _ERROR_CODES.get(response.status, f"Http{response.status}"))
            self._sleep(self._backoff(attempt))

    def post_many(self, posts: Sequence[tuple[str, bytes]]) -> list[Exception | None]:
        """Post each (connection id, data), at most `max_connections` in flight. Returns one outcome per post, in
        order: None, or the ClientError / BotoCoreError `post_to_connection` would have raised for it (after the
        same retries). Raises NoCredentialsError before sending anything without credentials."""
        if not posts:
            return []
        if self._credentials is None:
            raise NoCredentialsError()
        import asyncio

        http = self._async()
        credentials = self._credentials.get_frozen_credentials()  # refreshable credentials refresh here
        outcomes: list[Exception | None] = [None] * len(posts)
        jobs = iter(enumerate(posts))

        async def worker() -> None:
            for index, (connection_id, data) in jobs:  # one iterator shared by the workers (one thread)
                outcomes[index] = await self._post_async(http, connection_id, data, credentials)

        async def main() -> None:
            # A task group: if one worker fails unexpectedly (a bug, not a failed post: those are outcomes), the
            # others are cancelled before the loop stops, so nothing of this call runs into the next one.
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self._max_connections, len(posts))):
                    group.create_task(worker())

        http.run(main)
        return outcomes

    async def _post_async(self, http: Any, connection_id: str, data: bytes, credentials: Any) -> Exception | None:
        import asyncio

        path = f"{http.path_prefix}/@connections/{percent_encode(connection_id)}"
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                response = await http.send("POST", path, data, credentials, amz_date())
            except (ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError, ConnectionClosedError) as exc:
                if attempt == _MAX_ATTEMPTS:
                    return exc
            except BotoCoreError as exc:  # not worth a retry (an untrusted certificate): this post's outcome
                return exc
            else:
                if response.status < 300:
                    return None
                if response.status not in _RETRY_STATUSES or attempt == _MAX_ATTEMPTS:
                    code = _ERROR_CODES.get(response.status, f"Http{response.status}")
                    return client_error(response, OPERATION, code)
            await asyncio.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # every last attempt returns above

    def _async(self) -> Any:
        if self._async_http is None:
            from chalicelib.async_http import AsyncSignedHttp

            connect_timeout, read_timeout = self._timeouts
            self._async_http = AsyncSignedHttp(
                self._endpoint,
                SIGNING_NAME,
                self._region,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                ssl_context=self._ssl_context,
            )
        return self._async_http

    def delete_connection(self, *, ConnectionId: str) -> None:  # noqa: N803 (boto3's names)
        """Close a connection (API Gateway's DeleteConnection). Raises ClientError (410 when already gone)."""
        url = self.url_for(ConnectionId)
        response = self._http.send("DELETE", url, b"")
        if response.status >= 300:
            raise client_error(
                response, "DeleteConnection", _ERROR_CODES.get(response.status, f"Http{response.status}")
            )

    def _send(self, url: str, body: bytes) -> urllib3.BaseHTTPResponse:
        return self._http.send("POST", url, body)  # boto3 sends no Content-Type here
