"""AWS requests per select / unselect, counted (not estimated) with botocore `before-send` hooks.

The seat service runs in this process, built by `chalicelib.wiring.Container` against the stack's moto
endpoint, and answers a real connection of the stack's gateway, so the reply post is a real
Management API request too. Every botocore client the seat path uses gets a counting handler:
- pynamodb's client of the Connection, Cart and Ticket models (`Model._get_connection().connection.client`;
  each model class has its own client, and creating one costs a service-model load, so only these),
- the connection pynamodb transactions go through (`transact_write()._connection.client`),
- the Broadcaster's Management API client (`chalicelib.management_api.ManagementApi`, which fires the same
  `before-send` event per HTTP attempt as a botocore client).
`before-send` fires once per HTTP attempt, so retries count. As a completeness check, every HTTP send
of botocore's HTTP session and of the Management API client is counted as well while a measurement runs:
a difference means the service used a client this module does not know about (the figure then reports it
as `unhooked_requests`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from contextlib import contextmanager

from botocore.httpsession import URLLib3Session

from chalicelib.management_api import ManagementApi


class RequestCounter:
    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()
        self.http_sends = 0
        self._lock = threading.Lock()
        self._hooked: set[int] = set()

    def __call__(self, event_name: str = "", **_: object) -> None:
        # before-send.<service>.<Operation>; returning None lets the request go out.
        _, service, operation = (event_name.split(".") + ["?", "?"])[:3]
        with self._lock:
            self.by_operation[f"{service}.{operation}"] += 1

    def hook(self, client) -> None:
        if id(client) in self._hooked:
            return
        if isinstance(client, ManagementApi):
            client.register_before_send(self)
        else:
            client.meta.events.register("before-send", self)
        self._hooked.add(id(client))

    def reset(self) -> None:
        with self._lock:
            self.by_operation.clear()
            self.http_sends = 0

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    @contextmanager
    def watching_http(self):
        """Count every HTTP send botocore makes in this process (the completeness check)."""
        originals = [(URLLib3Session, URLLib3Session.send), (ManagementApi, ManagementApi._send)]
        counter = self

        def counting(original):
            def send(owner, *args, **kwargs):
                with counter._lock:
                    counter.http_sends += 1
                return original(owner, *args, **kwargs)

            return send

        for owner, original in originals:
            setattr(owner, original.__name__, counting(original))
        try:
            yield
        finally:
            for owner, original in originals:
                setattr(owner, original.__name__, original)


def hook_container(container, counter: RequestCounter) -> None:
    """Create (without any request) and hook every botocore client the seat path uses."""
    from chalicelib.storage.models import Cart, Connection, Ticket, transact_write

    for model in (Connection, Cart, Ticket):
        counter.hook(model._get_connection().connection.client)
    counter.hook(transact_write()._connection.client)
    counter.hook(container.broadcaster.client)


def measure(counter: RequestCounter, call) -> dict:
    """Run call() and return what it cost: total requests, by operation, unhooked sends."""
    counter.reset()
    with counter.watching_http():
        call()
    return {
        "requests": counter.total,
        "by_operation": dict(sorted(counter.by_operation.items())),
        "unhooked_requests": max(0, counter.http_sends - counter.total),
    }


def _settings(endpoint: str, management_endpoint: str):
    from chalicelib.config import load_settings

    return load_settings(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "TABLE_PREFIX": "tickets-local-",
            "QUEUE_PREFIX": "tickets-local-",
            "JWT_SECRET": "bench-not-used",
            "WS_MANAGEMENT_ENDPOINT": management_endpoint,
        }
    )


class InProcessSeats:
    """The seat service of a fresh container (cold caches), its clients hooked to one counter."""

    def __init__(self, settings, connection_id: str) -> None:
        from chalicelib.wiring import Container

        self.container = Container(settings)
        self.counter = RequestCounter()
        self.connection_id = connection_id
        hook_container(self.container, self.counter)

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
        "unhooked_requests": sum(c["unhooked_requests"] for c in costs),
        "calls": len(costs),
    }
