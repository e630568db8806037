"""A lean client for the API Gateway Management API: PostToConnection (the hot path) and DeleteConnection.

Every select posts a reply and every batch of ticket changes posts to each viewer, so this call dominates a
rush. boto3's `apigatewaymanagementapi` client spent about 1.2 ms of CPU per post (event hooks, endpoint
rules, response parsing); this sends the same request (the URL botocore renders, SigV4 by botocore's own
signer for `execute-api`, a keep-alive connection pool: chalicelib.signed_http) and fails the way boto3 does: `ClientError` with
the service's error code for an HTTP error (410 -> `GoneException`), a `BotoCoreError` when the endpoint
cannot be reached, after boto3's standard retries for throttling, 5xx and connection failures.
"""

from __future__ import annotations

import random
import time
from typing import Any

import urllib3
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.utils import percent_encode

from chalicelib.signed_http import SignedHttp, client_error

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


class ManagementApi:
    """`post_to_connection(ConnectionId=..., Data=...)`, thread-safe (one pool shared by the fan-out threads)."""

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
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._sleep = sleep
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
            self._sleep(random.random() * min(20.0, 2 ** (attempt - 1)))  # noqa: S311 (boto3's standard backoff)

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
