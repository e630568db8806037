"""AWS requests per select / unselect, counted (not estimated) at the transport.

The seat service runs in this process, built by `chalicelib.wiring.Container` against the stack's moto
endpoint, and answers a real connection of the stack's gateway, so the reply post is a real Management API
request too. While a measurement runs, every HTTP request this process sends through either transport the
product uses is counted and named from the request itself:
- botocore's (`URLLib3Session.send`: every boto3 and pynamodb client), named by its `X-Amz-Target` header
  (`DynamoDB_20120810.TransactWriteItems` -> `dynamodb.TransactWriteItems`) or its SQS `Action`;
- `chalicelib.signed_http.SignedHttp.send` (the Management API client and the stream reader), named by its
  target header or, for `/@connections/...`, `apigatewaymanagementapi.PostToConnection`.
Each HTTP attempt is one send, so retries count. Nothing in `chalicelib/` exists for this: the bench wraps the
two transports in its own process for the length of a measurement.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.httpsession import URLLib3Session

from chalicelib.signed_http import SignedHttp

_SERVICES = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "AmazonSQS": "sqs",
}


def operation_of(url: str, headers: Any, body: Any = None) -> str:
    """`service.Operation` of one AWS request, read from the request as it goes on the wire."""
    target = _header(headers, "X-Amz-Target")
    if target:
        prefix, _, operation = target.partition(".")
        return f"{_SERVICES.get(prefix, prefix)}.{operation}"
    if "/@connections/" in urlsplit(url).path or "/%40connections/" in urlsplit(url).path:
        return "apigatewaymanagementapi.PostToConnection"
    form = body.decode("utf-8", "replace") if isinstance(body, bytes) else body if isinstance(body, str) else ""
    action = parse_qs(form).get("Action", [""])[0]
    return f"sqs.{action}" if action else f"unknown.{urlsplit(url).path}"


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return value.decode() if isinstance(value, bytes) else value


class RequestCounter:
    """Counts the AWS requests this process sends while `watching()`, by operation."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, operation: str) -> None:
        with self._lock:
            self.by_operation[operation] += 1

    def reset(self) -> None:
        with self._lock:
            self.by_operation.clear()

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    @contextmanager
    def watching(self):
        """Wrap both transports for the duration (in this process only), then put them back."""
        counter = self
        botocore_send, signed_send = URLLib3Session.send, SignedHttp.send

        def counting_botocore(session: Any, request: Any) -> Any:
            counter.count(operation_of(request.url, request.headers, request.body))
            return botocore_send(session, request)

        def counting_signed(http: Any, method: str, url: str, body: bytes, headers: Any = None) -> Any:
            counter.count(operation_of(url, headers or {}, body))
            return signed_send(http, method, url, body, headers)

        URLLib3Session.send = counting_botocore  # type: ignore[method-assign]
        SignedHttp.send = counting_signed  # type: ignore[method-assign]
        try:
            yield
        finally:
            URLLib3Session.send = botocore_send  # type: ignore[method-assign]
            SignedHttp.send = signed_send  # type: ignore[method-assign]


def measure(counter: RequestCounter, call) -> dict:
    """Run call() and return what it cost: total requests and by operation."""
    counter.reset()
    with counter.watching():
        call()
    return {"requests": counter.total, "by_operation": dict(sorted(counter.by_operation.items()))}


def _settings(endpoint: str, management_endpoint: str):
    from chalicelib.config import load_settings

    return load_settings(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "TABLE_PREFIX": "tickets-local-",
            "QUEUE_PREFIX": "tickets-local-",
            "JWT_SECRET": "bench-not-used-bench-not-used-bench",
            "WS_MANAGEMENT_ENDPOINT": management_endpoint,
        }
    )


class InProcessSeats:
    """The seat service of a fresh container (cold caches), its requests counted."""

    def __init__(self, settings, connection_id: str) -> None:
        from chalicelib.wiring import Container

        self.container = Container(settings)
        self.counter = RequestCounter()
        self.connection_id = connection_id

    def cost(self, action: str, ticket_id: str) -> dict:
        body = json.dumps({"action": action, "ticket_id": ticket_id})
        return measure(self.counter, lambda: self.container.seats.handle_message(self.connection_id, body))


def mean_cost(costs: list[dict]) -> dict:
    """Average requests per call over several measured calls, by operation too."""
    total: Counter[str] = Counter()
    for cost in costs:
        total.update(cost["by_operation"])
    calls = len(costs) or 1
    return {
        "requests": round(sum(c["requests"] for c in costs) / calls, 2),
        "by_operation": {op: round(n / calls, 2) for op, n in sorted(total.items())},
        "calls": len(costs),
    }
