"""SigV4-signed HTTP over a keep-alive connection pool: the transport of our lean AWS clients.

For the few calls on the hot path where a boto3 client's per-call CPU (event hooks, endpoint rules, shape
parsing) is most of the cost. Signing is chalicelib/sigv4.py (what botocore's SigV4Auth signs, from a signing key
derived once a day); failures to reach the endpoint are raised as the botocore exceptions a boto3 client raises,
so callers handle both alike.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from chalicelib.sigv4 import SigV4, amz_date


class SignedHttp:
    """Thread-safe: one pool, shared by every thread of the container."""

    def __init__(
        self,
        endpoint: str,
        signing_name: str,
        region: str,
        credentials: Any,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        self._signer = SigV4(signing_name, region)
        self._credentials = credentials  # botocore Credentials (refreshable ones refresh themselves)
        # One host: its pool directly (a PoolManager looked the pool up, under a lock, on every request).
        self._pool = urllib3.connection_from_url(
            endpoint,
            maxsize=max_connections,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        )

    def send(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One signed request to `url` (on the endpoint's host), its response read whole."""
        if self._credentials is None:
            raise NoCredentialsError()
        parts = urllib3.util.parse_url(url)
        signed = self._signer.sign(
            method,
            _host(parts),
            parts.path or "",
            body,
            self._credentials.get_frozen_credentials(),
            amz_date(),
            (headers or {}).items(),
            parts.query or "",
        )
        try:
            return self._pool.urlopen(
                method,
                parts.request_uri,  # the pool's own host; origin-form target
                body=body,
                headers=dict(signed),
                preload_content=True,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of ConnectTimeoutError: first
            raise EndpointConnectionError(endpoint_url=url, error=exc) from exc
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise ReadTimeoutError(endpoint_url=url, error=exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise EndpointConnectionError(endpoint_url=url, error=exc) from exc


def _host(parts: urllib3.util.Url) -> str:
    """The Host header botocore sends and signs: the host, with its port unless it is the scheme's default."""
    if parts.port is None or parts.port == {"http": 80, "https": 443}.get(parts.scheme or ""):
        return parts.host or ""
    return f"{parts.host}:{parts.port}"


def client_error(response: urllib3.BaseHTTPResponse, operation: str, default_code: str) -> ClientError:
    """The ClientError botocore raises for an AWS JSON error answer: the code from the x-amzn-ErrorType
    header, else from the body's `__type` (after any '#'), else `default_code`; the body's message."""
    try:
        parsed = json.loads(response.data or b"{}")
    except ValueError:
        parsed = None
    body = parsed if isinstance(parsed, dict) else {}
    code = (
        (response.headers.get("x-amzn-ErrorType") or "").split(":", 1)[0]
        or str(body.get("__type") or "").rpartition("#")[2]
        or default_code
    )
    return ClientError(
        {
            "Error": {"Code": code, "Message": str(body.get("message") or body.get("Message") or "")},
            "ResponseMetadata": {
                "HTTPStatusCode": response.status,
                "RequestId": response.headers.get("x-amzn-RequestId", ""),
            },
        },
        operation,
    )
