"""The real PayPalClient against the local PayPal emulator over loopback HTTP.

Every emulator answer to a spec'd PayPal path (orders, captures, refunds, verify-webhook-signature, errors
included) and every JSON request the client sends is validated against PayPal's OpenAPI specs by a
`requests` response hook; webhook events are validated against the Webhooks spec's `event` schema.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from jsonschema import Draft7Validator, ValidationError

from chalicelib.paypal import PayPalClient, PayPalError, PayPalUnavailable, approval_url, first_capture
from local.paypal import start_standalone
from tests.support.payflow import LoopThread, standalone_emulator
from tests.support.paypal_schema import (
    ORDERS,
    PAYMENTS,
    WEBHOOKS,
    validate_component,
    validate_exchange,
    validate_response,
)

CLIENT_ID = "it-client"
CLIENT_SECRET = "it-secret"
RETURN_URL = "https://tickets.example/paypal/return?lang=en"
CANCEL_URL = "https://tickets.example/paypal/cancel"


# ---- infrastructure: event loop thread, emulator, webhook receiver ------------------------------------------


class WebhookReceiver:
    """A tiny HTTP listener recording every webhook (headers + parsed JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.changed:
                    receiver.received.append((dict(self.headers.items()), json.loads(body)))
                    receiver.changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/payment/webhook/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(
        self, event_type: str, resource_id: str, timeout: float = 5.0
    ) -> tuple[dict[str, str], dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for headers, event in self.received:
                    resource = event["resource"]
                    # Disputes (a v1 API) name their id `dispute_id`.
                    if (
                        event["event_type"] == event_type
                        and resource.get("id", resource.get("dispute_id")) == resource_id
                    ):
                        return headers, event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {event_type} webhook for {resource_id}")
                self.changed.wait(remaining)


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    loop_thread = LoopThread()
    yield loop_thread
    loop_thread.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(scope="module")
def emulator(loop_thread: LoopThread, receiver: WebhookReceiver) -> Iterator[str]:
    runner, base = loop_thread.run(
        start_standalone(webhook_url=receiver.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    )
    yield base
    loop_thread.run(runner.cleanup())


class ValidatingSession(requests.Session):
    """A requests session that validates every spec'd PayPal exchange it makes and remembers each request."""

    def __init__(self) -> None:
        super().__init__()
        self.validated: list[tuple[str, int]] = []
        # Off only where a test sends invalid requests on purpose; answers are always validated.
        self.check_requests = True
        self.sent: list[requests.PreparedRequest] = []
        self.hooks["response"].append(self._check)

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        self.sent.append(request)
        return super().send(request, **kw)

    def _check(self, response: requests.Response, *_args: Any, **_kw: Any) -> requests.Response:
        template = validate_exchange(response, strip_prefix="/paypal", check_request=self.check_requests)
        if template is not None:
            self.validated.append((template, response.status_code))
        return response

    def request_ids(self, path_suffix: str) -> list[str | None]:
        return [r.headers.get("PayPal-Request-Id") for r in self.sent if urlsplit(r.url).path.endswith(path_suffix)]


@pytest.fixture
def session(emulator: str) -> Iterator[ValidatingSession]:
    session = ValidatingSession()
    yield session
    session.delete(f"{emulator}/_control/faults")
    session.close()


@pytest.fixture
def make_client(emulator: str, session: ValidatingSession) -> Callable[..., PayPalClient]:
    def make(**kw: Any) -> PayPalClient:
        options: dict[str, Any] = {"timeout": (1.0, 2.0), "backoff": 0.01, "sleep": lambda _s: None}
        options.update(kw)
        return PayPalClient(emulator, CLIENT_ID, CLIENT_SECRET, session=session, **options)

    return make


@pytest.fixture
def client(make_client: Callable[..., PayPalClient]) -> PayPalClient:
    return make_client()


def control(session: requests.Session, base: str, name: str, body: Any = None, method: str = "POST") -> Any:
    response = session.request(method, f"{base}/_control/{name}", json=body)
    assert response.status_code < 300, response.text
    return response.json()


def new_order(client: PayPalClient, *, request_id: str | None = None, invoice_id: str | None = None) -> dict[str, Any]:
    booking = uuid.uuid4().hex[:12]
    return client.create_order(
        request_id=request_id or f"create-{booking}",
        reference_id=booking,
        custom_id=booking,
        invoice_id=invoice_id or f"inv-{booking}",
        description="2 seats, Showtime X",
        currency="USD",
        items=[("Seat C7", Decimal("12.00")), ("Seat C8", Decimal("12.50"))],
        return_url=RETURN_URL,
        cancel_url=CANCEL_URL,
    )


def approved_order(client: PayPalClient, session: requests.Session, base: str) -> dict[str, Any]:
    order = new_order(client)
    control(session, base, "approve", {"order_id": order["id"]})
    return order


class FormParser(HTMLParser):
    """Collects forms with their submit buttons from the approval page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._button: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"method": attributes.get("method"), "action": attributes.get("action"), "buttons": []})
        elif tag == "button" and self.forms:
            self._button = {"name": attributes.get("name"), "value": attributes.get("value"), "text": ""}
            self.forms[-1]["buttons"].append(self._button)

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None


def approval_forms(session: requests.Session, url: str) -> dict[str, dict[str, Any]]:
    page = session.get(url)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "24.50" in page.text
    parser = FormParser()
    parser.feed(page.text)
    forms = {}
    for form in parser.forms:
        [button] = form["buttons"]
        forms[button["text"].strip()] = {**form, "field": (button["name"], button["value"])}
    return forms


def submit(session: requests.Session, form: dict[str, Any]) -> requests.Response:
    assert form["method"].lower() == "post"
    name, value = form["field"]
    return session.post(form["action"], data={name: value}, allow_redirects=False)


def captures_of(session: requests.Session, base: str, order_id: str) -> int:
    return control(session, base, "state", method="GET")["captures_per_order"][order_id]


# ---- the happy path, driven like a browser -----------------------------------------------------------------


def test_create_approve_in_page_capture_and_refund_in_two_steps(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    order = new_order(client)
    assert order["status"] == "PAYER_ACTION_REQUIRED"
    url = approval_url(order)
    assert url == f"{emulator}/checkoutnow?token={order['id']}"

    with pytest.raises(PayPalError) as not_yet:
        client.capture_order(order["id"], request_id=f"cap-{order['id']}")
    assert (not_yet.value.status, not_yet.value.issue) == (422, "ORDER_NOT_APPROVED")

    forms = approval_forms(session, url)
    assert set(forms) == {"Approve", "Cancel"}
    assert forms["Approve"]["field"] == ("action", "approve")
    assert forms["Cancel"]["field"] == ("action", "cancel")
    assert forms["Approve"]["action"] == forms["Cancel"]["action"] == url
    redirect = submit(session, forms["Approve"])
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL.split("?")[0]
    assert query["token"] == [order["id"]]
    assert query["PayerID"][0]
    assert query["lang"] == ["en"]
    assert client.get_order(order["id"])["status"] == "APPROVED"

    captured = client.capture_order(order["id"], request_id=f"cap-{order['id']}")
    assert captured["status"] == "COMPLETED"
    capture = first_capture(captured)
    assert capture is not None
    assert capture["status"] == "COMPLETED"
    assert capture["amount"] == {"currency_code": "USD", "value": "24.50"}
    assert capture["final_capture"] is True
    assert capture["custom_id"] == order["purchase_units"][0]["custom_id"]
    assert capture["invoice_id"] == order["purchase_units"][0]["invoice_id"]
    assert capture["supplementary_data"]["related_ids"]["order_id"] == order["id"]
    assert capture["seller_receivable_breakdown"]["gross_amount"]["value"] == "24.50"
    assert {link["rel"] for link in capture["links"]} == {"self", "refund", "up"}

    partial = client.refund_capture(capture["id"], request_id=f"ref1-{order['id']}", amount=Decimal(10), currency="USD")
    assert partial["status"] == "COMPLETED"
    assert partial["amount"]["value"] == "10.00"
    assert [link["href"] for link in partial["links"] if link["rel"] == "up"] == [
        f"{emulator}/v2/payments/captures/{capture['id']}"
    ]
    assert client.get_capture(capture["id"])["status"] == "PARTIALLY_REFUNDED"

    with pytest.raises(PayPalError) as too_much:
        client.refund_capture(capture["id"], request_id=f"ref2-{order['id']}", amount=Decimal("14.51"), currency="USD")
    assert too_much.value.issue == "REFUND_AMOUNT_EXCEEDED"

    rest = client.refund_capture(capture["id"], request_id=f"ref3-{order['id']}", amount=None, currency=None)
    assert rest["amount"]["value"] == "14.50"
    assert rest["seller_payable_breakdown"]["total_refunded_amount"]["value"] == "24.50"
    assert client.get_refund(rest["id"]) == rest
    assert client.get_capture(capture["id"])["status"] == "REFUNDED"

    with pytest.raises(PayPalError) as done:
        client.refund_capture(capture["id"], request_id=f"ref4-{order['id']}", amount=None, currency=None)
    assert (done.value.status, done.value.issue) == (422, "CAPTURE_FULLY_REFUNDED")

    with pytest.raises(PayPalError) as again:
        client.capture_order(order["id"], request_id=f"cap2-{order['id']}")
    assert again.value.issue == "ORDER_ALREADY_CAPTURED"

    refreshed = client.get_order(order["id"])
    assert len(refreshed["purchase_units"][0]["payments"]["refunds"]) == 2

    validated = {template for template, _status in session.validated}
    assert validated >= {
        "/v2/checkout/orders",
        "/v2/checkout/orders/{id}",
        "/v2/checkout/orders/{id}/capture",
        "/v2/payments/captures/{capture_id}",
        "/v2/payments/captures/{capture_id}/refund",
        "/v2/payments/refunds/{refund_id}",
    }
    assert ("/v2/payments/captures/{capture_id}/refund", 422) in session.validated


def test_cancel_button_redirects_to_cancel_url_with_token(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    order = new_order(client)

    redirect = submit(session, approval_forms(session, approval_url(order) or "")["Cancel"])

    assert redirect.status_code == 302
    assert redirect.headers["Location"] == f"{CANCEL_URL}?token={order['id']}"
    assert client.get_order(order["id"])["status"] == "PAYER_ACTION_REQUIRED"


# ---- failures the backend must survive -----------------------------------------------------------------------


def test_declined_instrument_needs_reapproval_then_capture_works(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    order = approved_order(client, session, emulator)
    control(session, emulator, "faults", {"op": "capture", "kind": "declined"})
    key = f"cap-{order['id']}"

    with pytest.raises(PayPalError) as declined:
        client.capture_order(order["id"], request_id=key)
    assert (declined.value.status, declined.value.issue) == (422, "INSTRUMENT_DECLINED")

    back = client.get_order(order["id"])
    assert back["status"] == "PAYER_ACTION_REQUIRED"
    assert approval_url(back) == approval_url(order)
    with pytest.raises(PayPalError) as not_approved:
        client.capture_order(order["id"], request_id=key)
    assert not_approved.value.issue == "ORDER_NOT_APPROVED"

    assert submit(session, approval_forms(session, approval_url(back) or "")["Approve"]).status_code == 302
    # The failed attempts were not stored, so the same key now really captures.
    captured = client.capture_order(order["id"], request_id=key)
    assert first_capture(captured)["status"] == "COMPLETED"  # type: ignore[index]
    state = control(session, emulator, "state", method="GET")
    assert state["captures_per_order"][order["id"]] == 1
    assert state["orders_by_id"][order["id"]]["declined_attempts"] == 1


def test_500_then_success_reuses_the_request_id_and_captures_once(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    order = approved_order(client, session, emulator)
    control(session, emulator, "faults", {"op": "capture", "kind": "error500", "count": 1})

    captured = client.capture_order(order["id"], request_id=f"cap-{order['id']}")

    assert captured["status"] == "COMPLETED"
    assert session.request_ids(f"/{order['id']}/capture") == [f"cap-{order['id']}"] * 2
    assert ("/v2/checkout/orders/{id}/capture", 500) in session.validated
    assert captures_of(session, emulator, order["id"]) == 1


def test_lost_capture_response_is_replayed_for_the_same_request_id(
    make_client: Callable[..., PayPalClient], session: ValidatingSession, emulator: str
) -> None:
    impatient = make_client(max_attempts=1)
    order = approved_order(impatient, session, emulator)
    control(session, emulator, "faults", {"op": "capture", "kind": "lost_response"})
    key = f"cap-{order['id']}"

    with pytest.raises(PayPalUnavailable):
        impatient.capture_order(order["id"], request_id=key)
    # PayPal did act: the money moved although the answer was lost.
    assert captures_of(session, emulator, order["id"]) == 1

    replay = impatient.capture_order(order["id"], request_id=key)
    again = impatient.capture_order(order["id"], request_id=key)

    capture_id = first_capture(impatient.get_order(order["id"]))["id"]  # type: ignore[index]
    assert first_capture(replay)["id"] == first_capture(again)["id"] == capture_id  # type: ignore[index]
    assert captures_of(session, emulator, order["id"]) == 1


def test_client_retry_after_lost_capture_response_gets_the_one_capture(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    order = approved_order(client, session, emulator)
    control(session, emulator, "faults", {"op": "capture", "kind": "lost_response"})

    captured = client.capture_order(order["id"], request_id=f"cap-{order['id']}")

    assert first_capture(captured)["status"] == "COMPLETED"  # type: ignore[index]
    assert session.request_ids(f"/{order['id']}/capture") == [f"cap-{order['id']}"] * 2
    assert captures_of(session, emulator, order["id"]) == 1


def test_slow_capture_that_times_out_is_not_charged_twice(
    make_client: Callable[..., PayPalClient], session: ValidatingSession, emulator: str
) -> None:
    hasty = make_client(timeout=(1.0, 0.3))
    order = approved_order(hasty, session, emulator)
    control(session, emulator, "faults", {"op": "capture", "kind": "slow", "delay": 0.6})

    captured = hasty.capture_order(order["id"], request_id=f"cap-{order['id']}")

    time.sleep(0.5)  # let the slow first attempt finish: it must replay, not capture again
    assert first_capture(captured)["status"] == "COMPLETED"  # type: ignore[index]
    assert session.request_ids(f"/{order['id']}/capture") == [f"cap-{order['id']}"] * 2
    assert captures_of(session, emulator, order["id"]) == 1


def test_create_is_idempotent_per_request_id(client: PayPalClient, session: ValidatingSession, emulator: str) -> None:
    before = control(session, emulator, "state", method="GET")["orders"]
    key = f"create-{uuid.uuid4().hex}"

    first = new_order(client, request_id=key)
    second = new_order(client, request_id=key)
    other = new_order(client)

    assert second == first
    assert other["id"] != first["id"]
    assert control(session, emulator, "state", method="GET")["orders"] == before + 2


def test_second_order_with_same_invoice_cannot_be_captured(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    invoice = f"inv-{uuid.uuid4().hex}"
    first, second = new_order(client, invoice_id=invoice), new_order(client, invoice_id=invoice)
    for order in (first, second):
        control(session, emulator, "approve", {"order_id": order["id"]})
    client.capture_order(first["id"], request_id=f"cap-{first['id']}")

    with pytest.raises(PayPalError) as duplicate:
        client.capture_order(second["id"], request_id=f"cap-{second['id']}")

    assert duplicate.value.issue == "DUPLICATE_INVOICE_ID"


def test_pending_capture_cannot_be_refunded_until_it_completes(
    client: PayPalClient, session: ValidatingSession, emulator: str, receiver: WebhookReceiver
) -> None:
    order = approved_order(client, session, emulator)
    control(session, emulator, "faults", {"op": "capture", "kind": "pending"})

    capture = first_capture(client.capture_order(order["id"], request_id=f"cap-{order['id']}"))
    assert capture is not None
    assert capture["status"] == "PENDING"
    assert capture["status_details"] == {"reason": "ECHECK"}
    receiver.wait_for("PAYMENT.CAPTURE.PENDING", capture["id"])
    with pytest.raises(PayPalError) as pending:
        client.refund_capture(capture["id"], request_id=f"ref-{capture['id']}", amount=None, currency=None)
    assert pending.value.issue == "PENDING_CAPTURE"

    control(session, emulator, "complete_capture", {"capture_id": capture["id"]})

    _headers, event = receiver.wait_for("PAYMENT.CAPTURE.COMPLETED", capture["id"])
    assert event["resource"]["status"] == "COMPLETED"
    assert client.get_capture(capture["id"])["status"] == "COMPLETED"


def test_calls_without_valid_token_or_credentials_are_rejected(
    make_client: Callable[..., PayPalClient], session: ValidatingSession, emulator: str
) -> None:
    anonymous = session.get(f"{emulator}/v2/checkout/orders/5O190127TN364715T")
    assert anonymous.status_code == 401
    assert anonymous.json()["name"] == "AUTHENTICATION_FAILURE"
    assert ("/v2/checkout/orders/{id}", 401) in session.validated

    wrong = PayPalClient(emulator, CLIENT_ID, "not-the-secret", session=session)
    with pytest.raises(PayPalError) as caught:
        wrong.get_order("5O190127TN364715T")
    assert (caught.value.status, caught.value.issue) == (401, "invalid_client")


def test_expired_token_is_refreshed_transparently(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    order = new_order(client)
    control(session, emulator, "expire_tokens")

    assert client.get_order(order["id"])["id"] == order["id"]
    assert len(session.request_ids("/v1/oauth2/token")) == 2
    assert ("/v2/checkout/orders/{id}", 401) in session.validated


def test_unknown_resources_are_404_in_paypal_shape(client: PayPalClient, session: ValidatingSession) -> None:
    for call in (
        lambda: client.get_order("NOSUCHORDER00001"),
        lambda: client.get_capture("NOSUCHCAPTURE001"),
        lambda: client.get_refund("NOSUCHREFUND0001"),
        lambda: client.capture_order("NOSUCHORDER00001", request_id="k-404"),
    ):
        with pytest.raises(PayPalError) as caught:
            call()
        assert (caught.value.status, caught.value.name, caught.value.issue) == (
            404,
            "RESOURCE_NOT_FOUND",
            "INVALID_RESOURCE_ID",
        )
    assert {status for _template, status in session.validated} == {404}


# ---- webhooks ------------------------------------------------------------------------------------------------


def _validate_event(event: dict[str, Any], spec: str, schema: str) -> None:
    validate_component(WEBHOOKS, "event", event)
    validate_component(spec, schema, event["resource"])


def test_webhooks_are_delivered_and_only_genuine_ones_verify(
    client: PayPalClient, session: ValidatingSession, emulator: str, receiver: WebhookReceiver
) -> None:
    order = new_order(client)
    control(session, emulator, "approve", {"order_id": order["id"]})
    capture = first_capture(client.capture_order(order["id"], request_id=f"cap-{order['id']}"))
    assert capture is not None
    refund = client.refund_capture(capture["id"], request_id=f"ref-{order['id']}", amount=Decimal(5), currency="USD")

    _, approved = receiver.wait_for("CHECKOUT.ORDER.APPROVED", order["id"])
    _, completed = receiver.wait_for("PAYMENT.CAPTURE.COMPLETED", capture["id"])
    headers, refunded = receiver.wait_for("PAYMENT.CAPTURE.REFUNDED", refund["id"])
    _validate_event(approved, ORDERS, "order")
    _validate_event(completed, PAYMENTS, "capture-2")
    _validate_event(refunded, PAYMENTS, "refund")
    assert approved["resource"]["status"] == "APPROVED"
    assert completed["resource"]["supplementary_data"]["related_ids"]["order_id"] == order["id"]
    up = [link["href"] for link in refunded["resource"]["links"] if link["rel"] == "up"]
    assert up == [f"{emulator}/v2/payments/captures/{capture['id']}"]

    assert client.verify_webhook_signature(headers=headers, webhook_id="WEBHOOK1", event=refunded) is True

    tampered = json.loads(json.dumps(refunded))
    tampered["resource"]["amount"]["value"] = "500.00"
    assert client.verify_webhook_signature(headers=headers, webhook_id="WEBHOOK1", event=tampered) is False
    forged_headers = {**headers, "PAYPAL-TRANSMISSION-ID": str(uuid.uuid4()), "PAYPAL-TRANSMISSION-SIG": "Zm9yZ2Vk"}
    assert client.verify_webhook_signature(headers=forged_headers, webhook_id="WEBHOOK1", event=refunded) is False
    assert [s for t, s in session.validated if t == "/v1/notifications/verify-webhook-signature"] == [200, 200, 200]


def test_dashboard_refund_sends_a_refund_webhook(
    client: PayPalClient, session: ValidatingSession, emulator: str, receiver: WebhookReceiver
) -> None:
    order = approved_order(client, session, emulator)
    capture = first_capture(client.capture_order(order["id"], request_id=f"cap-{order['id']}"))
    assert capture is not None

    refund = control(session, emulator, "refund", {"capture_id": capture["id"], "amount": "4.50"})

    validate_response("GET", f"/v2/payments/refunds/{refund['id']}", 200, refund)
    _, event = receiver.wait_for("PAYMENT.CAPTURE.REFUNDED", refund["id"])
    assert event["resource"]["amount"] == {"currency_code": "USD", "value": "4.50"}
    assert client.get_capture(capture["id"])["status"] == "PARTIALLY_REFUNDED"


# ---- the contract check itself -----------------------------------------------------------------------------------


def test_schema_validation_is_not_vacuous(client: PayPalClient) -> None:
    order = new_order(client)
    validate_response("GET", f"/v2/checkout/orders/{order['id']}", 200, order)

    broken = {**order, "status": "PAID"}
    with pytest.raises(ValidationError):
        validate_response("GET", f"/v2/checkout/orders/{order['id']}", 200, broken)
    with pytest.raises(ValidationError):
        validate_response(
            "POST",
            f"/v2/checkout/orders/{order['id']}/capture",
            422,
            {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "ORDER_NOT_APPROVED", "description": "reworded"}]},
        )


def test_links_follow_public_base_when_configured(loop_thread: LoopThread) -> None:
    public = "https://pay.example.test/paypal"
    runner, base = loop_thread.run(start_standalone(public_base=public))
    try:
        plain = requests.Session()
        client = PayPalClient(base, "local-client", "local-secret", session=plain, timeout=(1.0, 2.0))
        order = new_order(client)
        assert approval_url(order) == f"{public}/checkoutnow?token={order['id']}"
        assert all(link["href"].startswith(public) for link in order["links"])
    finally:
        loop_thread.run(runner.cleanup())


# ---- input validation and the remaining control hooks ------------------------------------------------------------


def bearer(session: requests.Session, base: str) -> dict[str, str]:
    token = session.post(
        f"{base}/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET), data={"grant_type": "client_credentials"}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _unit(**changes: Any) -> dict[str, Any]:
    unit = {
        "amount": {
            "currency_code": "USD",
            "value": "24.00",
            "breakdown": {"item_total": {"currency_code": "USD", "value": "24.00"}},
        },
        "items": [{"name": "Seat", "quantity": "2", "unit_amount": {"currency_code": "USD", "value": "12.00"}}],
    }
    unit.update(changes)
    return unit


@pytest.mark.parametrize(
    ("body", "status", "issue"),
    [
        (b"{not json", 400, "MALFORMED_REQUEST_JSON"),
        ({"purchase_units": [_unit()]}, 400, "MISSING_REQUIRED_PARAMETER"),
        ({"intent": "CAPTURE"}, 400, "MISSING_REQUIRED_PARAMETER"),
        (
            {"intent": "CAPTURE", "purchase_units": [_unit(amount={"currency_code": "USD", "value": "24.00"})]},
            422,
            "ITEM_TOTAL_REQUIRED",
        ),
        (
            {
                "intent": "CAPTURE",
                "purchase_units": [
                    _unit(
                        items=[
                            {"name": "Seat", "quantity": "1", "unit_amount": {"currency_code": "USD", "value": "12.00"}}
                        ]
                    )
                ],
            },
            422,
            "ITEM_TOTAL_MISMATCH",
        ),
        (
            {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.005"}}]},
            422,
            "DECIMAL_PRECISION",
        ),
        (
            {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "0"}}]},
            422,
            "CANNOT_BE_ZERO_OR_NEGATIVE",
        ),
        (
            {
                "intent": "CAPTURE",
                "purchase_units": [
                    {
                        "amount": {
                            "currency_code": "USD",
                            "value": "5.00",
                            "breakdown": {"item_total": {"currency_code": "USD", "value": "4.00"}},
                        }
                    }
                ],
            },
            422,
            "AMOUNT_MISMATCH",
        ),
    ],
)
def test_invalid_orders_are_refused_like_paypal(
    session: ValidatingSession, emulator: str, body: Any, status: int, issue: str
) -> None:
    headers = {**bearer(session, emulator), "Content-Type": "application/json"}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    session.check_requests = False

    response = session.post(f"{emulator}/v2/checkout/orders", data=data, headers=headers)

    assert response.status_code == status
    assert response.json()["details"][0]["issue"] == issue
    assert ("/v2/checkout/orders", status) in session.validated


def test_denied_pending_capture_sends_denied_webhook(
    client: PayPalClient, session: ValidatingSession, emulator: str, receiver: WebhookReceiver
) -> None:
    order = approved_order(client, session, emulator)
    control(session, emulator, "faults", {"op": "capture", "kind": "pending"})
    capture = first_capture(client.capture_order(order["id"], request_id=f"cap-{order['id']}"))
    assert capture is not None

    control(session, emulator, "deny_capture", {"capture_id": capture["id"]})

    _, event = receiver.wait_for("PAYMENT.CAPTURE.DENIED", capture["id"])
    _validate_event(event, PAYMENTS, "capture-2")
    assert client.get_capture(capture["id"])["status"] == "DECLINED"
    sent = control(session, emulator, "webhooks", method="GET")["sent"]
    assert any(w["event_type"] == "PAYMENT.CAPTURE.DENIED" and w["delivered"] for w in sent)


def test_token_endpoint_faults_are_retried_by_the_client(
    make_client: Callable[..., PayPalClient], session: ValidatingSession, emulator: str
) -> None:
    control(
        session, emulator, "faults", [{"op": "token", "kind": "error500"}, {"op": "token", "kind": "lost_response"}]
    )

    fresh = make_client()
    order = new_order(fresh)

    assert order["status"] == "PAYER_ACTION_REQUIRED"
    assert len(session.request_ids("/v1/oauth2/token")) == 3


def test_bad_fault_specs_are_refused(session: ValidatingSession, emulator: str) -> None:
    for spec in (
        {"op": "refund", "kind": "declined"},
        {"op": "capture", "kind": "explode"},
        {"op": "x", "kind": "slow"},
    ):
        assert session.post(f"{emulator}/_control/faults", json=spec).status_code == 400
    assert control(session, emulator, "state", method="GET")["faults"] == {}


def test_concurrent_captures_of_one_order_charge_once(
    make_client: Callable[..., PayPalClient], session: ValidatingSession, emulator: str
) -> None:
    order = approved_order(make_client(), session, emulator)
    keys = [f"cap-{order['id']}"] * 4 + [f"other-{n}-{order['id']}" for n in range(4)]

    def capture(key: str) -> str:
        try:
            return first_capture(make_client().capture_order(order["id"], request_id=key))["id"]  # type: ignore[index]
        except PayPalError as exc:
            return exc.issue

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        outcomes = list(pool.map(capture, keys))

    capture_ids = {o for o in outcomes if o != "ORDER_ALREADY_CAPTURED"}
    assert len(capture_ids) == 1
    assert captures_of(session, emulator, order["id"]) == 1


# ---- disputes and chargebacks (no PayPal spec covers the Disputes API: its v1 shape is pinned here) ----------

_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
_MONEY = {
    "type": "object",
    "required": ["currency_code", "value"],
    "properties": {"currency_code": {"pattern": "^[A-Z]{3}$"}, "value": {"pattern": r"^\d+\.\d{2}$"}},
}
# From PayPal's public Disputes API v1 reference (dispute details); "dispute_outcome" only once RESOLVED.
DISPUTE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "dispute_id",
        "create_time",
        "update_time",
        "disputed_transactions",
        "reason",
        "status",
        "dispute_amount",
        "dispute_life_cycle_stage",
        "links",
    ],
    "properties": {
        "dispute_id": {"type": "string", "pattern": "^PP-D-[0-9]{5,}$"},
        "create_time": _TIME,
        "update_time": _TIME,
        "disputed_transactions": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["seller_transaction_id"]},
        },
        "reason": {
            "enum": [
                "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
                "MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED",
                "UNAUTHORISED",
                "CREDIT_NOT_PROCESSED",
                "DUPLICATE_TRANSACTION",
                "INCORRECT_AMOUNT",
                "PAYMENT_BY_OTHER_MEANS",
                "CANCELED_RECURRING_BILLING",
                "PROBLEM_WITH_REMITTANCE",
                "OTHER",
            ]
        },
        "status": {"enum": ["OPEN", "WAITING_FOR_SELLER_RESPONSE", "UNDER_REVIEW", "RESOLVED"]},
        "dispute_amount": _MONEY,
        "dispute_life_cycle_stage": {"enum": ["INQUIRY", "CHARGEBACK", "PRE_ARBITRATION", "ARBITRATION"]},
        "dispute_channel": {"enum": ["INTERNAL", "EXTERNAL"]},
        "dispute_outcome": {
            "type": "object",
            "required": ["outcome_code"],
            "properties": {
                "outcome_code": {"enum": ["RESOLVED_BUYER_FAVOUR", "RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER"]},
                "amount_refunded": _MONEY,
            },
        },
        "links": {
            "type": "array",
            "items": {"type": "object", "required": ["href", "rel", "method"]},
        },
    },
    "if": {"properties": {"status": {"const": "RESOLVED"}}},
    "then": {"required": ["dispute_outcome"]},
    "else": {"not": {"required": ["dispute_outcome"]}},
}


def validate_dispute(view: dict[str, Any]) -> None:
    Draft7Validator(DISPUTE_SCHEMA).validate(view)


def paid_capture(client: PayPalClient, session: requests.Session, base: str) -> dict[str, Any]:
    order = approved_order(client, session, base)
    capture = first_capture(client.capture_order(order["id"], request_id=f"cap-{order['id']}"))
    assert capture is not None
    return capture


def get_dispute(session: requests.Session, base: str, dispute_id: str) -> requests.Response:
    return session.get(f"{base}/v1/customer/disputes/{dispute_id}", headers=bearer(session, base))


def refused(session: requests.Session, base: str, name: str, body: Any) -> tuple[int, str]:
    response = session.post(f"{base}/_control/{name}", json=body)
    return response.status_code, response.json().get("error", "")


def sent_about(session: requests.Session, base: str, *resource_ids: str) -> list[str]:
    """The event types the emulator emitted about these resources, in the order it emitted them."""
    sent = control(session, base, "webhooks", method="GET")["sent"]
    return [w["event_type"] for w in sent if w["resource_id"] in resource_ids]


def test_a_dispute_is_opened_served_and_announced_like_paypal(
    client: PayPalClient, session: ValidatingSession, emulator: str, receiver: WebhookReceiver
) -> None:
    capture = paid_capture(client, session, emulator)
    client.refund_capture(capture["id"], request_id=f"ref-{capture['id']}", amount=Decimal("4.50"), currency="USD")

    opened = control(session, emulator, "dispute", {"capture_id": capture["id"]})

    validate_dispute(opened)
    assert opened["status"] == "OPEN"
    assert opened["reason"] == "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"
    assert opened["dispute_life_cycle_stage"] == "INQUIRY"
    assert opened["dispute_amount"] == {"currency_code": "USD", "value": "20.00"}  # 24.50 minus the refund
    assert opened["disputed_transactions"] == [{"seller_transaction_id": capture["id"]}]
    self_link = f"{emulator}/v1/customer/disputes/{opened['dispute_id']}"
    assert opened["links"] == [{"href": self_link, "rel": "self", "method": "GET"}]
    served = get_dispute(session, emulator, opened["dispute_id"])
    assert served.status_code == 200
    assert served.json() == opened

    _, event = receiver.wait_for("CUSTOMER.DISPUTE.CREATED", opened["dispute_id"])
    validate_component(WEBHOOKS, "event", event)
    assert (event["resource_type"], event["resource_version"]) == ("dispute", "1.0")
    assert event["resource"] == opened
    assert opened["dispute_id"] in event["summary"]
    state = control(session, emulator, "state", method="GET")
    assert state["disputes_by_id"][opened["dispute_id"]] == {
        "capture_id": capture["id"],
        "status": "OPEN",
        "outcome": None,
    }


def test_a_dispute_takes_the_reason_and_stage_it_is_given(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    capture = paid_capture(client, session, emulator)

    opened = control(
        session, emulator, "dispute", {"capture_id": capture["id"], "reason": "UNAUTHORISED", "stage": "CHARGEBACK"}
    )

    validate_dispute(opened)
    assert (opened["reason"], opened["dispute_life_cycle_stage"]) == ("UNAUTHORISED", "CHARGEBACK")
    assert opened["dispute_amount"] == capture["amount"]


def test_a_disputed_capture_cannot_be_refunded_until_the_case_closes(
    client: PayPalClient, session: ValidatingSession, emulator: str, receiver: WebhookReceiver
) -> None:
    capture = paid_capture(client, session, emulator)
    dispute = control(session, emulator, "dispute", {"capture_id": capture["id"]})

    with pytest.raises(PayPalError) as disputed:
        client.refund_capture(capture["id"], request_id=f"ref-{capture['id']}", amount=None, currency=None)
    dashboard = session.post(f"{emulator}/_control/refund", json={"capture_id": capture["id"], "amount": "1.00"})

    assert (disputed.value.status, disputed.value.issue) == (422, "TRANSACTION_DISPUTED")
    assert ("/v2/payments/captures/{capture_id}/refund", 422) in session.validated
    assert dashboard.status_code == 422
    assert dashboard.json()["details"][0]["issue"] == "TRANSACTION_DISPUTED"
    assert client.get_capture(capture["id"])["status"] == "COMPLETED"

    updated = control(
        session, emulator, "dispute_update", {"dispute_id": dispute["dispute_id"], "status": "UNDER_REVIEW"}
    )
    validate_dispute(updated)
    assert updated["status"] == "UNDER_REVIEW"
    _, update_event = receiver.wait_for("CUSTOMER.DISPUTE.UPDATED", dispute["dispute_id"])
    assert update_event["resource"] == updated

    won = control(
        session, emulator, "resolve_dispute", {"dispute_id": dispute["dispute_id"], "outcome": "RESOLVED_SELLER_FAVOUR"}
    )

    validate_dispute(won)
    assert (won["status"], won["dispute_outcome"]) == ("RESOLVED", {"outcome_code": "RESOLVED_SELLER_FAVOUR"})
    _, resolved = receiver.wait_for("CUSTOMER.DISPUTE.RESOLVED", dispute["dispute_id"])
    validate_component(WEBHOOKS, "event", resolved)
    assert resolved["resource"] == won == get_dispute(session, emulator, dispute["dispute_id"]).json()
    assert sent_about(session, emulator, dispute["dispute_id"], capture["id"]) == [
        "PAYMENT.CAPTURE.COMPLETED",
        "CUSTOMER.DISPUTE.CREATED",
        "CUSTOMER.DISPUTE.UPDATED",
        "CUSTOMER.DISPUTE.RESOLVED",
    ]
    refund = client.refund_capture(capture["id"], request_id=f"ref2-{capture['id']}", amount=None, currency=None)
    assert refund["amount"] == capture["amount"]


def test_a_case_the_buyer_wins_is_resolved_then_the_capture_reversed(
    client: PayPalClient, session: ValidatingSession, emulator: str, receiver: WebhookReceiver
) -> None:
    capture = paid_capture(client, session, emulator)
    dispute = control(session, emulator, "dispute", {"capture_id": capture["id"]})

    lost = control(
        session, emulator, "resolve_dispute", {"dispute_id": dispute["dispute_id"], "outcome": "RESOLVED_BUYER_FAVOUR"}
    )

    validate_dispute(lost)
    assert lost["dispute_outcome"]["outcome_code"] == "RESOLVED_BUYER_FAVOUR"
    _, reversed_event = receiver.wait_for("PAYMENT.CAPTURE.REVERSED", capture["id"])
    _validate_event(reversed_event, PAYMENTS, "capture-2")
    assert reversed_event["resource_type"] == "capture"
    assert sent_about(session, emulator, dispute["dispute_id"], capture["id"])[-2:] == [
        "CUSTOMER.DISPUTE.RESOLVED",
        "PAYMENT.CAPTURE.REVERSED",
    ]
    reversed_capture = client.get_capture(capture["id"])  # validated against the Payments spec by the session
    assert reversed_capture == reversed_event["resource"]
    assert (reversed_capture["status"], reversed_capture["status_details"]) == ("REFUNDED", {"reason": "CHARGEBACK"})
    with pytest.raises(PayPalError) as gone:
        client.refund_capture(capture["id"], request_id=f"ref-{capture['id']}", amount=None, currency=None)
    assert (gone.value.status, gone.value.issue) == (422, "CAPTURE_FULLY_REFUNDED")
    assert control(session, emulator, "state", method="GET")["captures_by_id"][capture["id"]]["refunded"] == "24.50"


def test_a_chargeback_without_a_dispute_reverses_the_whole_capture_once(
    client: PayPalClient, session: ValidatingSession, emulator: str, receiver: WebhookReceiver
) -> None:
    capture = paid_capture(client, session, emulator)
    client.refund_capture(capture["id"], request_id=f"ref-{capture['id']}", amount=Decimal(10), currency="USD")

    charged_back = control(session, emulator, "reverse", {"capture_id": capture["id"]})

    validate_response("GET", f"/v2/payments/captures/{capture['id']}", 200, charged_back)
    assert (charged_back["status"], charged_back["status_details"]) == ("REFUNDED", {"reason": "CHARGEBACK"})
    _, event = receiver.wait_for("PAYMENT.CAPTURE.REVERSED", capture["id"])
    _validate_event(event, PAYMENTS, "capture-2")
    assert event["resource"] == charged_back
    assert capture["amount"]["value"] in event["summary"]
    assert control(session, emulator, "state", method="GET")["captures_by_id"][capture["id"]]["refunded"] == "24.50"
    assert refused(session, emulator, "reverse", {"capture_id": capture["id"]})[0] == 409
    assert refused(session, emulator, "dispute", {"capture_id": capture["id"]})[0] == 409
    assert sent_about(session, emulator, capture["id"]).count("PAYMENT.CAPTURE.REVERSED") == 1


def test_a_chargeback_during_a_case_the_buyer_then_wins_moves_the_money_once(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    capture = paid_capture(client, session, emulator)
    dispute = control(session, emulator, "dispute", {"capture_id": capture["id"], "stage": "CHARGEBACK"})
    control(session, emulator, "reverse", {"capture_id": capture["id"]})

    control(
        session, emulator, "resolve_dispute", {"dispute_id": dispute["dispute_id"], "outcome": "RESOLVED_BUYER_FAVOUR"}
    )

    assert sent_about(session, emulator, dispute["dispute_id"], capture["id"]) == [
        "PAYMENT.CAPTURE.COMPLETED",
        "CUSTOMER.DISPUTE.CREATED",
        "PAYMENT.CAPTURE.REVERSED",
        "CUSTOMER.DISPUTE.RESOLVED",
    ]


def test_bad_dispute_and_chargeback_requests_are_refused(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    capture = paid_capture(client, session, emulator)
    dispute = control(session, emulator, "dispute", {"capture_id": capture["id"]})
    dispute_id = dispute["dispute_id"]
    control(session, emulator, "faults", {"op": "capture", "kind": "pending"})
    pending = paid_capture(client, session, emulator)
    assert pending["status"] == "PENDING"

    cases = [
        ("dispute", {}, 400),
        ("dispute", {"capture_id": capture["id"], "reason": "BORED"}, 400),
        ("dispute", {"capture_id": capture["id"], "stage": "APPEAL"}, 400),
        ("dispute", ["not", "an", "object"], 400),
        ("dispute", {"capture_id": "NOSUCHCAPTURE001"}, 404),
        ("dispute", {"capture_id": capture["id"]}, 409),  # it already has an unresolved one
        ("dispute", {"capture_id": pending["id"]}, 409),
        ("dispute_update", {"dispute_id": dispute_id}, 400),
        ("dispute_update", {"dispute_id": dispute_id, "status": "RESOLVED"}, 400),
        ("dispute_update", {"status": "UNDER_REVIEW"}, 400),
        ("dispute_update", {"dispute_id": "PP-D-00000", "status": "UNDER_REVIEW"}, 404),
        ("resolve_dispute", {"dispute_id": dispute_id}, 400),
        ("resolve_dispute", {"dispute_id": dispute_id, "outcome": "RESOLVED_WITH_PAYOUT"}, 400),
        ("resolve_dispute", {"dispute_id": "PP-D-00000", "outcome": "CANCELED_BY_BUYER"}, 404),
        ("reverse", {}, 400),
        ("reverse", {"capture_id": "NOSUCHCAPTURE001"}, 404),
        ("reverse", {"capture_id": pending["id"]}, 409),
    ]
    for name, body, status in cases:
        assert refused(session, emulator, name, body)[0] == status, (name, body)

    control(session, emulator, "resolve_dispute", {"dispute_id": dispute_id, "outcome": "CANCELED_BY_BUYER"})
    assert refused(session, emulator, "dispute_update", {"dispute_id": dispute_id, "status": "OPEN"})[0] == 409
    assert (
        refused(session, emulator, "resolve_dispute", {"dispute_id": dispute_id, "outcome": "CANCELED_BY_BUYER"})[0]
        == 409
    )
    again = control(session, emulator, "dispute", {"capture_id": capture["id"]})  # a new case after the last closed
    assert again["dispute_id"] != dispute_id
    state = control(session, emulator, "state", method="GET")
    assert state["disputes_by_id"][dispute_id]["outcome"] == "CANCELED_BY_BUYER"
    assert state["captures_by_id"][pending["id"]]["status"] == "PENDING"


def test_unknown_or_unauthenticated_dispute_reads_are_refused_in_paypal_shape(
    session: ValidatingSession, emulator: str
) -> None:
    unknown = get_dispute(session, emulator, "PP-D-00000")
    anonymous = session.get(f"{emulator}/v1/customer/disputes/PP-D-00000")

    assert unknown.status_code == 404
    validate_component(PAYMENTS, "error_404", unknown.json())
    assert unknown.json()["details"][0]["issue"] == "INVALID_RESOURCE_ID"
    assert unknown.json()["links"][0]["href"].startswith("https://developer.paypal.com/docs/api/customer-disputes/v1/")
    assert anonymous.status_code == 401
    validate_component(PAYMENTS, "error_401", anonymous.json())


def test_dispute_reads_take_the_transport_faults(
    client: PayPalClient, session: ValidatingSession, emulator: str
) -> None:
    capture = paid_capture(client, session, emulator)
    dispute_id = control(session, emulator, "dispute", {"capture_id": capture["id"]})["dispute_id"]
    control(
        session,
        emulator,
        "faults",
        [{"op": "get_dispute", "kind": "error500"}, {"op": "get_dispute", "kind": "lost_response"}],
    )

    failed = get_dispute(session, emulator, dispute_id)
    with pytest.raises(requests.ConnectionError):
        get_dispute(session, emulator, dispute_id)
    served = get_dispute(session, emulator, dispute_id)

    assert failed.status_code == 500
    validate_component(PAYMENTS, "error_500", failed.json())
    assert served.status_code == 200
    assert served.json()["dispute_id"] == dispute_id


def test_disputes_and_chargebacks_survive_a_restart_and_old_state_files_still_load(tmp_path: Path) -> None:
    state = tmp_path / "paypal.json"
    with standalone_emulator(state_path=state, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as paypal:
        client = PayPalClient(paypal.base, CLIENT_ID, CLIENT_SECRET, timeout=(1.0, 2.0))
        disputed, charged_back = (paid_capture(client, requests.Session(), paypal.base) for _ in range(2))
        dispute = paypal.open_dispute(disputed["id"], reason="INCORRECT_AMOUNT")
        dispute = paypal.update_dispute(dispute["dispute_id"], "WAITING_FOR_SELLER_RESPONSE")
        paypal.reverse(charged_back["id"])

    with standalone_emulator(state_path=state, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as paypal:
        session = requests.Session()
        served = get_dispute(session, paypal.base, dispute["dispute_id"]).json()
        assert {**served, "links": None} == {**dispute, "links": None}  # links follow the new port
        assert paypal.state()["disputes_by_id"] == {
            dispute["dispute_id"]: {
                "capture_id": disputed["id"],
                "status": "WAITING_FOR_SELLER_RESPONSE",
                "outcome": None,
            }
        }
        client = PayPalClient(paypal.base, CLIENT_ID, CLIENT_SECRET, timeout=(1.0, 2.0))
        with pytest.raises(PayPalError) as still_disputed:
            client.refund_capture(disputed["id"], request_id="after-restart", amount=None, currency=None)
        assert still_disputed.value.issue == "TRANSACTION_DISPUTED"
        assert client.get_capture(charged_back["id"])["status_details"] == {"reason": "CHARGEBACK"}
        resolved = paypal.resolve_dispute(dispute["dispute_id"], "RESOLVED_BUYER_FAVOUR")
        assert resolved["status"] == "RESOLVED"

    old = json.loads(state.read_text())
    del old["disputes"]
    state.write_text(json.dumps(old))
    with standalone_emulator(state_path=state, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as paypal:
        assert paypal.state()["disputes_by_id"] == {}
        assert paypal.state()["captures_by_id"][charged_back["id"]]["status"] == "REFUNDED"


def test_dispute_schema_is_not_vacuous(client: PayPalClient, session: ValidatingSession, emulator: str) -> None:
    opened = control(session, emulator, "dispute", {"capture_id": paid_capture(client, session, emulator)["id"]})
    validate_dispute(opened)

    for broken in (
        {**opened, "status": "CLOSED"},
        {**opened, "dispute_id": "D-1"},
        {**opened, "dispute_outcome": {"outcome_code": "RESOLVED_SELLER_FAVOUR"}},  # an outcome while open
        {**opened, "status": "RESOLVED"},  # resolved without an outcome
        {key: value for key, value in opened.items() if key != "dispute_amount"},
    ):
        with pytest.raises(ValidationError):
            validate_dispute(broken)
