"""Checkout helpers shared by the payment tests: the emulator's approval page and control endpoints (any
layer), and, for the e2e suites, a buyer on the running stack (REST + WebSocket seat holds).

Nothing here asserts business outcomes; the tests do. Waits poll a condition with a generous deadline.
"""

from __future__ import annotations

import json
import random
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, TypeVar

import requests
from websockets.sync.client import connect as ws_connect

TIMEOUT = 10.0  # seconds for one HTTP call or one awaited WebSocket message (2 shared cores)
SLOW = 30.0  # SQS workers and webhooks: poll interval + visibility timeouts on a busy machine

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], *, timeout: float = SLOW, interval: float = 0.1, what: str = "") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or probe!r} (last: {last!r})")


# ---- the emulator's approval page -----------------------------------------------------------------------


class _Forms(HTMLParser):
    """Collects each <form>'s method, action and submit buttons (name, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"method": (values.get("method") or "get").lower(), "action": values.get("action"), "buttons": []}
            )
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append((values.get("name"), values.get("value")))


@dataclass(frozen=True)
class Redirect:
    location: str
    token: str
    payer_id: str | None


def _submit_approval_form(approval_url: str, action: str) -> Redirect:
    page = requests.get(approval_url, timeout=TIMEOUT)
    assert page.status_code == 200, f"approval page answered {page.status_code}: {page.text[:300]}"
    assert page.headers["Content-Type"].startswith("text/html")
    parser = _Forms()
    parser.feed(page.text)
    form = next(f for f in parser.forms if ("action", action) in f["buttons"])
    assert form["method"] == "post"
    target = urllib.parse.urljoin(approval_url, form["action"] or approval_url)
    answer = requests.post(target, data={"action": action}, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302, f"{action} answered {answer.status_code}: {answer.text[:300]}"
    location = answer.headers["Location"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    return Redirect(location, query["token"][0], (query.get("PayerID") or [None])[0])


def approve_on_page(approval_url: str) -> Redirect:
    """What a buyer does at PayPal: open the approval page and press Approve (the 302 is not followed)."""
    return _submit_approval_form(approval_url, "approve")


def cancel_on_page(approval_url: str) -> Redirect:
    return _submit_approval_form(approval_url, "cancel")


# ---- the emulator's control endpoints -------------------------------------------------------------------


class Emulator:
    """`<base>/_control/...` of the local PayPal emulator (base ends with the mount prefix, e.g. /paypal)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.base}/_control/{path}", json=body, timeout=TIMEOUT)
        assert response.status_code < 300, f"{method} _control/{path} -> {response.status_code}: {response.text}"
        return response.json()

    def fault(self, op: str, kind: str, count: int = 1, delay: float | None = None) -> None:
        spec: dict[str, Any] = {"op": op, "kind": kind, "count": count}
        if delay is not None:
            spec["delay"] = delay
        self._call("POST", "faults", spec)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def state(self) -> dict:
        return self._call("GET", "state")

    def order(self, paypal_order_id: str) -> dict:
        return self.state()["orders_by_id"][paypal_order_id]

    def captures_of(self, paypal_order_id: str) -> list[dict]:
        """Every capture PayPal holds for this order, with its id."""
        captures = self.state()["captures_by_id"]
        return [{"id": cid, **c} for cid, c in captures.items() if c["order_id"] == paypal_order_id]

    def capture_of(self, paypal_order_id: str) -> dict:
        captures = self.captures_of(paypal_order_id)
        assert len(captures) == 1, f"expected exactly one capture for {paypal_order_id}, found {captures}"
        return captures[0]

    def refunds_of(self, capture_id: str) -> list[dict]:
        refunds = self.state()["refunds_by_id"]
        return [{"id": rid, **r} for rid, r in refunds.items() if r["capture_id"] == capture_id]

    def webhooks(self) -> dict:
        return self._call("GET", "webhooks")

    def delivery(self, event_type: str, resource_id: str) -> dict:
        """The emulator's record of the one event of this type about this resource, with the headers and body it
        was (or would have been) sent with: what someone capturing the delivery could replay."""
        sent = [w for w in self.webhooks()["sent"] if (w["event_type"], w["resource_id"]) == (event_type, resource_id)]
        assert len(sent) == 1, f"expected one {event_type} for {resource_id}, found {sent}"
        return sent[0]

    def verifications(self) -> dict[str, int]:
        """verify-webhook-signature calls so far, by outcome (SUCCESS, FAILURE, INVALID)."""
        return self.state()["webhook_verifications"]

    def set_webhook_url(self, url: str | None) -> None:
        self._call("POST", "webhook_url", {"url": url})

    def approve(self, paypal_order_id: str) -> dict:
        return self._call("POST", "approve", {"order_id": paypal_order_id})

    def dashboard_refund(self, capture_id: str, amount: str | None = None) -> dict:
        body: dict[str, Any] = {"capture_id": capture_id}
        if amount is not None:
            body["amount"] = amount
        return self._call("POST", "refund", body)

    def complete_capture(self, capture_id: str) -> dict:
        return self._call("POST", "complete_capture", {"capture_id": capture_id})

    def deny_capture(self, capture_id: str) -> dict:
        return self._call("POST", "deny_capture", {"capture_id": capture_id})

    def open_dispute(self, capture_id: str, **extra: Any) -> dict:
        """The buyer opens a case against the capture (`extra`: `reason`, `stage`); returns the dispute view."""
        return self._call("POST", "dispute", {"capture_id": capture_id, **extra})

    def update_dispute(self, dispute_id: str, status: str) -> dict:
        return self._call("POST", "dispute_update", {"dispute_id": dispute_id, "status": status})

    def resolve_dispute(self, dispute_id: str, outcome: str) -> dict:
        """In the buyer's favour the capture is reversed too (RESOLVED, then REVERSED)."""
        return self._call("POST", "resolve_dispute", {"dispute_id": dispute_id, "outcome": outcome})

    def reverse(self, capture_id: str) -> dict:
        """A chargeback: returns the capture view, now REFUNDED with status_details.reason CHARGEBACK."""
        return self._call("POST", "reverse", {"capture_id": capture_id})


def webhook_event(event_type: str, resource: dict, event_id: str | None = None) -> dict:
    """A PayPal-shaped webhook envelope with whatever resource the caller claims (bodies are never trusted)."""
    return {
        "id": event_id or f"WH-TEST-{random.getrandbits(64):016X}",
        "event_version": "1.0",
        "create_time": "2030-01-01T00:00:00Z",
        "resource_type": "checkout-order" if event_type.startswith("CHECKOUT.") else "capture",
        "event_type": event_type,
        "summary": "test event",
        "resource": resource,
    }


# ---- e2e: a buyer on the running stack ------------------------------------------------------------------


@dataclass(frozen=True)
class Showtime:
    event_id: str
    showtime_id: str
    date: str
    theater: str


def showtimes(stack) -> list[Showtime]:
    found = []
    events = requests.get(stack.api("events/?limit=100"), timeout=TIMEOUT).json()["results"]
    for event in events:
        detail = requests.get(stack.api(f"events/{event['id']}/"), timeout=TIMEOUT).json()
        for s in detail["showtimes"]:
            found.append(Showtime(event["id"], s["showtime_id"], s["date"], s["theater"]))
    return found


def tickets(stack, showtime: Showtime, token: str | None = None) -> dict[str, dict]:
    """ticket_id -> the public listing entry (as the given user sees it)."""
    query = urllib.parse.urlencode({"date": showtime.date, "theater": showtime.theater})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    listing = requests.get(stack.api(f"events/{showtime.event_id}/tickets/?{query}"), headers=headers, timeout=TIMEOUT)
    assert listing.status_code == 200, listing.text
    return {t["ticket_id"]: t for t in listing.json()["results"]}


def free_seats(stack, showtime: Showtime, count: int, rng: random.Random | None = None) -> list[str]:
    """`count` seats that are available right now, picked at random so tests rarely meet."""
    available = [tid for tid, t in tickets(stack, showtime).items() if t["status"] == "available"]
    assert len(available) >= count, f"only {len(available)} free seats left in {showtime}"
    return (rng or random).sample(available, count)


class Room:
    """One WebSocket connection to a showtime room; remembers every ticket_status update it received."""

    def __init__(self, stack, token: str, showtime_id: str) -> None:
        query = urllib.parse.urlencode({"showtime_id": showtime_id, "token": token})
        self._ws = ws_connect(f"{stack.ws_url}?{query}", open_timeout=TIMEOUT, close_timeout=2)
        self.statuses: dict[str, str] = {}
        self.replies: list[dict] = []

    def __enter__(self) -> Room:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ws.close()

    def _next(self, deadline: float) -> dict | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            message = json.loads(self._ws.recv(timeout=remaining))
        except TimeoutError:
            return None
        if message.get("type") == "ticket_status":
            for update in message["updates"]:
                self.statuses[update["ticket_id"]] = update["status"]
        else:
            self.replies.append(message)
        return message

    def select(self, ticket_ids: Iterable[str]) -> dict[str, str]:
        """Hold each ticket; returns ticket_id -> expires_at. Fails on any error reply."""
        held: dict[str, str] = {}
        for ticket_id in ticket_ids:
            self._ws.send(json.dumps({"action": "select", "ticket_id": ticket_id}))
            deadline = time.monotonic() + TIMEOUT
            while ticket_id not in held:
                message = self._next(deadline)
                assert message is not None, f"no answer to select {ticket_id}"
                if message.get("ticket_id") != ticket_id or message.get("type") == "ticket_status":
                    continue
                assert message["type"] == "selected", f"select {ticket_id} refused: {message}"
                held[ticket_id] = message["expires_at"]
        return held

    def wait_for(self, ticket_ids: Iterable[str], status: str, timeout: float = SLOW) -> None:
        """Until the room has announced `status` as the latest state of every ticket."""
        wanted = set(ticket_ids)
        deadline = time.monotonic() + timeout
        while any(self.statuses.get(t) != status for t in wanted):
            if self._next(deadline) is None:
                seen = {t: self.statuses.get(t) for t in wanted}
                raise AssertionError(f"room did not announce {status} for all of {seen}")


class Buyer:
    """A registered user calling the REST API of the stack with their bearer token."""

    def __init__(self, stack, user: dict | None = None) -> None:
        self.stack = stack
        self.user = user or stack.register()
        self.token = self.user["access"]

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.stack.api(path), headers=headers, timeout=TIMEOUT, **kwargs)

    def room(self, showtime: Showtime) -> Room:
        return Room(self.stack, self.token, showtime.showtime_id)

    def hold(self, showtime: Showtime, ticket_ids: Iterable[str]) -> dict[str, str]:
        with self.room(showtime) as room:
            return room.select(ticket_ids)

    def create(self, showtime: Showtime) -> requests.Response:
        return self.call("POST", "payment/create/", json={"showtime_id": showtime.showtime_id})

    def created(self, showtime: Showtime) -> dict:
        response = self.create(showtime)
        assert response.status_code == 201, response.text
        return response.json()

    def execute(self, redirect: Redirect) -> requests.Response:
        query = urllib.parse.urlencode({"token": redirect.token, "PayerID": redirect.payer_id or ""})
        return self.call("GET", f"payment/execute/?{query}")

    def cancel(self, paypal_order_id: str) -> requests.Response:
        return self.call("GET", f"payment/cancel/?token={paypal_order_id}")

    def order(self, order_id: str) -> requests.Response:
        return self.call("GET", f"orders/{order_id}/")

    def refund(self, order_id: str, ticket_ids: list[str] | None = None) -> requests.Response:
        body: dict[str, Any] = {"order_id": order_id}
        if ticket_ids is not None:
            body["ticket_ids"] = ticket_ids
        return self.call("POST", "payment/refund/", json=body)

    def wait_order(self, order_id: str, *statuses: str, timeout: float = SLOW) -> dict:
        def probe() -> dict | None:
            order = self.order(order_id).json()
            return order if order.get("status") in statuses else None

        return wait_until(probe, timeout=timeout, what=f"order {order_id} in {statuses}")

    def buy(self, showtime: Showtime, ticket_ids: list[str]) -> dict:
        """Hold, create, approve on the page, execute, wait until paid; returns the paid order."""
        self.hold(showtime, ticket_ids)
        created = self.created(showtime)
        redirect = approve_on_page(created["approval_url"])
        executed = self.execute(redirect)
        assert executed.status_code == 200, executed.text
        return self.wait_order(created["order_id"], "paid")


# ---- integration: services over moto, PayPal through a standalone emulator ------------------------------


class LoopThread:
    """An asyncio loop on a daemon thread, so blocking clients can call the servers it runs."""

    def __init__(self) -> None:
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = TIMEOUT) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class standalone_emulator:  # noqa: N801 - used as a context manager, like open()
    """The PayPal emulator on its own loopback server, without a webhook URL unless given one."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = {"client_id": "local-client", "client_secret": "local-secret", **kwargs}

    def __enter__(self) -> Emulator:
        from local.paypal import start_standalone

        self._loop = LoopThread()
        self._runner, base = self._loop.run(start_standalone(**self._kwargs))
        return Emulator(base)

    def __exit__(self, *_exc: object) -> None:
        self._loop.run(self._runner.cleanup())
        self._loop.stop()


class PaymentLab:
    """One set of tables for a test module (moto is slow to create them), the emulator, and a demo event.

    `shop()` gives each test its own showtime on the module's container (building a Container builds new AWS
    clients, which costs seconds on a loaded machine); `shop(**env)` builds a Container whose settings
    override variables (PAYMENT_WINDOW_SECONDS, REFUND_CUTOFF_SECONDS, ...) on the same tables, with its own
    queues. Queues are shared otherwise: tests look only at their own order's messages.
    """

    def __init__(self, moto_endpoint: str, emulator: Emulator, *, visibility_seconds: int = 30) -> None:
        import uuid

        import boto3

        from chalicelib.storage.catalog import CatalogRepository
        from local.resources import ensure_sender, ensure_tables
        from tests.support.tables import make_settings

        self.endpoint = moto_endpoint
        self.emulator = emulator
        self.visibility_seconds = visibility_seconds
        self.table_prefix = f"pay-{uuid.uuid4().hex[:8]}-"
        settings = make_settings(moto_endpoint, TABLE_PREFIX=self.table_prefix)
        session = boto3.session.Session(region_name=settings.region)
        ensure_tables(session.client("dynamodb", endpoint_url=settings.dynamodb_endpoint), settings)
        self.sqs = session.client("sqs", endpoint_url=settings.sqs_endpoint)
        ensure_sender(session.client("ses", endpoint_url=moto_endpoint), settings)
        self._containers: dict[frozenset, Any] = {}
        self.default = self._containers[frozenset()] = self.container()  # binds the models to the lab's tables
        CatalogRepository().put_category("drama", "Drama")
        event = self.default.catalog.create_event(title="Pay", description="", category="drama", duration_minutes=90)
        self.event_id = event["id"]

    def container(self, **env: str):
        """A Container on the lab's tables with brand-new queues and settings overridden by `env`."""
        import uuid

        from chalicelib.wiring import Container
        from local.resources import ensure_queues
        from tests.support.tables import make_settings

        queue_prefix = f"q{uuid.uuid4().hex[:8]}-"
        bare = make_settings(self.endpoint, TABLE_PREFIX=self.table_prefix, QUEUE_PREFIX=queue_prefix)
        urls = ensure_queues(self.sqs, bare, visibility_seconds=self.visibility_seconds)
        queues = {}
        for logical in ("purchases", "refunds", "emails"):
            attributes = self.sqs.get_queue_attributes(QueueUrl=urls[logical], AttributeNames=["QueueArn"])
            queues[f"{logical.upper()}_QUEUE_URL"] = urls[logical]
            queues[f"{logical.upper()}_QUEUE_ARN"] = attributes["Attributes"]["QueueArn"]
        settings = make_settings(
            self.endpoint,
            TABLE_PREFIX=self.table_prefix,
            QUEUE_PREFIX=queue_prefix,
            PAYPAL_MODE="local",
            PAYPAL_API_BASE=self.emulator.base,
            PAYPAL_CLIENT_ID="local-client",
            PAYPAL_CLIENT_SECRET="local-secret",
            PAYMENT_RETURN_URL="http://shop.test/paypal/return",
            PAYMENT_CANCEL_URL="http://shop.test/paypal/cancel",
            **{**queues, **env},  # env may point a queue elsewhere (a test of an unreachable one)
        )
        return Container(settings)

    def shop(self, *, seats: int = 6, price: str = "10.00", starts_at: Any = None, **env: str) -> Shop:
        """A new showtime (on 2031-01-01 unless `starts_at`, a UTC datetime, says otherwise)."""
        # Every container of the lab binds the models to the same tables, so they can take turns freely.
        key = frozenset(env.items())
        if key not in self._containers:
            self._containers[key] = self.container(**env)
        return Shop(self, self._containers[key], seats=seats, price=price, starts_at=starts_at)


class Shop:
    """One showtime on fresh tables plus shortcuts through the real services (no HTTP layer)."""

    def __init__(self, lab: PaymentLab, container, *, seats: int, price: str, starts_at: Any = None) -> None:
        import datetime as dt
        import uuid
        from decimal import Decimal

        self.container = container
        self.emulator = lab.emulator
        self.sqs = lab.sqs
        start = starts_at or dt.datetime(2031, 1, 1, 19, 30, tzinfo=dt.UTC)
        created = container.catalog.create_showtime(
            lab.event_id,
            date=start.date(),
            theater=f"Hall {uuid.uuid4().hex[:8]}",
            starts_at=start.isoformat(),
            rows=1,
            seats_per_row=seats,
            price=Decimal(price),
            currency="USD",
        )
        self.showtime_id = created["showtime_id"]
        self.seats = [f"{self.showtime_id}-A{n}" for n in range(1, seats + 1)]

    @property
    def payments(self):
        return self.container.payments

    @property
    def refunds(self):
        return self.container.refunds

    def hold(self, user_id: str, ticket_ids: Iterable[str]) -> dict[str, int]:
        return {t: self.container.seats.repo.select(user_id, self.showtime_id, t, time.time()) for t in ticket_ids}

    def ticket(self, ticket_id: str):
        from chalicelib.storage.models import Ticket

        return Ticket.get(self.showtime_id, ticket_id, consistent_read=True)

    def order(self, order_id: str):
        return self.payments.orders.get(order_id)

    def checkout(self, user_id: str, ticket_ids: list[str]) -> dict:
        """Hold and create; returns the created order view."""
        self.hold(user_id, ticket_ids)
        return self.payments.create(user_id, self.showtime_id)

    def captured(self, user_id: str, ticket_ids: list[str]) -> dict:
        """Hold, create, approve on the emulator's page, execute; the order is `processing` (purchase queued)."""
        created = self.checkout(user_id, ticket_ids)
        approve_on_page(created["approval_url"])
        result = self.payments.execute(user_id, created["paypal_order_id"])
        assert result["status"] == "processing", result
        return created

    def paid(self, user_id: str, ticket_ids: list[str]) -> dict:
        """A paid order, finished by the purchase service as the worker would."""
        created = self.captured(user_id, ticket_ids)
        self.take("purchases", created["order_id"])
        status = self.payments.complete_purchase(created["order_id"], self.refunds.refund_lost_seats)
        assert status == "paid", status
        return created

    def queue_url(self, logical: str) -> str:
        return getattr(self.container.settings, f"{logical}_queue_url")

    def take(self, logical: str, order_id: str) -> list[dict]:
        """Remove every visible message from a queue; returns the bodies of those about `order_id`."""
        taken = []
        while messages := self.receive(logical):
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.queue_url(logical), ReceiptHandle=message["ReceiptHandle"])
                taken.append(json.loads(message["Body"]))
        return [body for body in taken if body.get("order_id") == order_id]

    def receive(self, logical: str) -> list[dict]:
        """Take the visible messages (they come back after the queue's visibility timeout unless deleted)."""
        return self.sqs.receive_message(
            QueueUrl=self.queue_url(logical), MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])

    def poller(self, logical: str, handler):
        """The local runtime's SQS poller for a queue, feeding `handler` (e.g. app.purchase_worker)."""
        from local.pollers import SqsPoller

        settings = self.container.settings
        return SqsPoller(
            self.sqs,
            self.queue_url(logical),
            getattr(settings, f"{logical}_queue_arn"),
            handler,
            region=settings.region,
            function_name=f"{logical}_worker",
            wait_seconds=1,
        )

    def sqs_event(self, logical: str, messages: list[dict]) -> dict:
        """The Lambda event for received messages, as the SQS event source mapping shapes it."""
        settings = self.container.settings
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody"),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": getattr(settings, f"{logical}_queue_arn"),
                    "awsRegion": settings.region,
                }
                for m in messages
            ]
        }

    def receive_for(self, logical: str, order_id: str) -> list[dict]:
        """Receive until this order's messages show up (others are left to their visibility timeout)."""

        def probe() -> list[dict]:
            return [m for m in self.receive(logical) if json.loads(m["Body"]).get("order_id") == order_id]

        return wait_until(probe, timeout=TIMEOUT, interval=0.2, what=f"a {logical} message for {order_id}")

    def capture_id(self, paypal_order_id: str) -> str:
        return self.emulator.capture_of(paypal_order_id)["id"]
