"""PayPalClient against a scripted fake HTTP session: no sockets, no clock, no sleeping."""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from chalicelib.paypal import (
    LIVE_BASE_URL,
    SANDBOX_BASE_URL,
    Item,
    PayPalClient,
    PayPalError,
    PayPalUnavailable,
    approval_url,
    base_url_for,
    first_capture,
    format_amount,
)
from tests.support.paypal_schema import validate_request

BASE = "https://api-m.example.test"
CLIENT_ID = "client-id-123"
SECRET = "s3cr3t-DO-NOT-LOG"
ORDER_ID = "5O190127TN364715T"
CAPTURE_ID = "3C679366HH908993F"


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    auth: Any
    data: Any
    timeout: Any


def make_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    response.headers.update(headers or {})
    return response


class FakeSession:
    """Answers each (method, path) from a script; the last scripted outcome repeats."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.script: dict[tuple[str, str], deque[Any]] = defaultdict(deque)
        self.tokens_issued = 0
        self.token_lifetime = 32400
        self.on("POST", "/v1/oauth2/token", self._issue_token)

    def on(self, method: str, path: str, *outcomes: Any) -> None:
        self.script[(method, path)].extend(outcomes)

    def _issue_token(self, _call: Call) -> tuple[int, dict[str, Any]]:
        self.tokens_issued += 1
        token = f"token-{self.tokens_issued}"
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        call = Call(
            method,
            urlsplit(url).path,
            dict(kw.get("headers") or {}),
            kw.get("json"),
            kw.get("auth"),
            kw.get("data"),
            kw.get("timeout"),
        )
        self.calls.append(call)
        queue = self.script[(method, call.path)]
        if not queue:
            raise AssertionError(f"unscripted call {method} {call.path}")
        outcome = queue.popleft() if len(queue) > 1 else queue[0]
        if isinstance(outcome, Exception):
            raise outcome
        if callable(outcome):
            outcome = outcome(call)
        return make_response(*outcome)

    def post(self, url: str, **kw: Any) -> requests.Response:
        return self.request("POST", url, **kw)

    def api_calls(self, path: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.path != "/v1/oauth2/token" and (path is None or c.path == path)]

    def token_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/v1/oauth2/token"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(session: FakeSession, sleeps: list[float], clock: FakeClock) -> PayPalClient:
    return PayPalClient(
        BASE, CLIENT_ID, SECRET, session=session, max_attempts=3, backoff=0.2, sleep=sleeps.append, clock=clock
    )


def order_body(status: str = "COMPLETED") -> dict[str, Any]:
    return {"id": ORDER_ID, "status": status, "links": []}


def error_body(status_name: str, issue: str | None = None, debug_id: str = "dbg-1") -> dict[str, Any]:
    body: dict[str, Any] = {"name": status_name, "message": "Some human text that may change.", "debug_id": debug_id}
    if issue:
        body["details"] = [{"issue": issue, "description": "whatever PayPal says today"}]
    return body


ORDER_PATH = f"/v2/checkout/orders/{ORDER_ID}"
CAPTURE_PATH = f"{ORDER_PATH}/capture"


# ---- token ---------------------------------------------------------------------------------------------


def test_token_is_fetched_once_with_client_credentials_and_reused(client: PayPalClient, session: FakeSession) -> None:
    session.on("GET", ORDER_PATH, (200, order_body()))

    client.get_order(ORDER_ID)
    client.get_order(ORDER_ID)

    [token_call] = session.token_calls()
    assert token_call.auth == (CLIENT_ID, SECRET)
    assert token_call.data == {"grant_type": "client_credentials"}
    assert [c.headers["Authorization"] for c in session.api_calls()] == ["Bearer token-1", "Bearer token-1"]


def test_token_is_renewed_a_minute_before_it_expires(
    client: PayPalClient, session: FakeSession, clock: FakeClock
) -> None:
    session.token_lifetime = 300
    session.on("GET", ORDER_PATH, (200, order_body()))

    client.get_order(ORDER_ID)
    clock.now += 239
    client.get_order(ORDER_ID)
    clock.now += 2  # now 241 s after issue: inside the 60 s safety margin
    client.get_order(ORDER_ID)

    assert len(session.token_calls()) == 2
    assert session.api_calls()[-1].headers["Authorization"] == "Bearer token-2"


def test_401_on_api_call_refreshes_token_once_and_retries(client: PayPalClient, session: FakeSession) -> None:
    session.on("GET", ORDER_PATH, (401, error_body("AUTHENTICATION_FAILURE")), (200, order_body()))

    assert client.get_order(ORDER_ID)["id"] == ORDER_ID

    assert len(session.token_calls()) == 2
    assert [c.headers["Authorization"] for c in session.api_calls()] == ["Bearer token-1", "Bearer token-2"]


def test_second_401_after_refresh_is_raised_not_looped(client: PayPalClient, session: FakeSession) -> None:
    session.on("GET", ORDER_PATH, (401, error_body("AUTHENTICATION_FAILURE")))

    with pytest.raises(PayPalError) as caught:
        client.get_order(ORDER_ID)

    assert caught.value.status == 401
    assert caught.value.issue == "AUTHENTICATION_FAILURE"
    assert len(session.api_calls()) == 2


def test_capture_after_401_refresh_keeps_the_same_request_id(client: PayPalClient, session: FakeSession) -> None:
    session.on("POST", CAPTURE_PATH, (401, error_body("AUTHENTICATION_FAILURE")), (201, order_body()))

    client.capture_order(ORDER_ID, request_id="capture-key-1")

    assert [c.headers["PayPal-Request-Id"] for c in session.api_calls()] == ["capture-key-1", "capture-key-1"]


def test_rejected_client_credentials_raise_without_retry(client: PayPalClient, session: FakeSession) -> None:
    session.script[("POST", "/v1/oauth2/token")] = deque(
        [(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})]
    )

    with pytest.raises(PayPalError) as caught:
        client.get_order(ORDER_ID)

    assert not isinstance(caught.value, PayPalUnavailable)
    assert (caught.value.status, caught.value.name, caught.value.issue) == (401, "invalid_client", "invalid_client")
    assert len(session.token_calls()) == 1
    assert session.api_calls() == []


def test_token_endpoint_5xx_is_retried(client: PayPalClient, session: FakeSession, sleeps: list[float]) -> None:
    session.script[("POST", "/v1/oauth2/token")].appendleft((503, error_body("SERVICE_UNAVAILABLE")))
    session.on("GET", ORDER_PATH, (200, order_body()))

    client.get_order(ORDER_ID)

    assert len(session.token_calls()) == 2
    assert len(sleeps) == 1


# ---- retries and idempotency keys ----------------------------------------------------------------------


def test_capture_retries_500_with_the_same_request_id(
    client: PayPalClient, session: FakeSession, sleeps: list[float]
) -> None:
    session.on(
        "POST",
        CAPTURE_PATH,
        (500, error_body("INTERNAL_SERVER_ERROR")),
        (502, b"<html>bad gateway</html>"),
        (201, order_body()),
    )

    assert client.capture_order(ORDER_ID, request_id="capture-key-7")["status"] == "COMPLETED"

    calls = session.api_calls(CAPTURE_PATH)
    assert [c.headers["PayPal-Request-Id"] for c in calls] == ["capture-key-7"] * 3
    assert all(c.json == {} for c in calls)
    # exponential backoff with jitter: attempt n waits within [b*2^(n-1)/2, b*2^(n-1)]
    assert len(sleeps) == 2
    assert 0.1 <= sleeps[0] <= 0.2
    assert 0.2 <= sleeps[1] <= 0.4


@pytest.mark.parametrize(
    "transport_error",
    [requests.ReadTimeout("read timed out"), requests.ConnectTimeout("connect"), requests.ConnectionError("reset")],
)
def test_refund_retries_timeouts_and_connection_errors_with_the_same_request_id(
    client: PayPalClient, session: FakeSession, transport_error: Exception
) -> None:
    path = f"/v2/payments/captures/{CAPTURE_ID}/refund"
    session.on("POST", path, transport_error, (201, {"id": "1JU08902781691411", "status": "COMPLETED"}))

    refund = client.refund_capture(CAPTURE_ID, request_id="refund-key-1", amount=None, currency=None)

    assert refund["status"] == "COMPLETED"
    assert [c.headers["PayPal-Request-Id"] for c in session.api_calls(path)] == ["refund-key-1"] * 2


def test_exhausted_connection_errors_raise_unavailable(client: PayPalClient, session: FakeSession) -> None:
    session.on("POST", CAPTURE_PATH, requests.ConnectionError("refused"))

    with pytest.raises(PayPalUnavailable) as caught:
        client.capture_order(ORDER_ID, request_id="k")

    assert caught.value.status is None
    assert len(session.api_calls(CAPTURE_PATH)) == 3


def test_exhausted_5xx_raise_unavailable_with_paypal_debug_id(client: PayPalClient, session: FakeSession) -> None:
    session.on("GET", ORDER_PATH, (503, error_body("SERVICE_UNAVAILABLE", debug_id="f00dbabe")))

    with pytest.raises(PayPalUnavailable) as caught:
        client.get_order(ORDER_ID)

    assert (caught.value.status, caught.value.name, caught.value.debug_id) == (503, "SERVICE_UNAVAILABLE", "f00dbabe")
    assert len(session.api_calls()) == 3


def test_422_is_not_retried_and_maps_details_issue(
    client: PayPalClient, session: FakeSession, sleeps: list[float]
) -> None:
    session.on("POST", CAPTURE_PATH, (422, error_body("UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED", "abc123")))

    with pytest.raises(PayPalError) as caught:
        client.capture_order(ORDER_ID, request_id="k")

    error = caught.value
    assert not isinstance(error, PayPalUnavailable)
    assert (error.status, error.name, error.issue, error.debug_id) == (
        422,
        "UNPROCESSABLE_ENTITY",
        "INSTRUMENT_DECLINED",
        "abc123",
    )
    assert error.details[0]["issue"] == "INSTRUMENT_DECLINED"
    assert len(session.api_calls()) == 1
    assert sleeps == []


def test_error_issue_comes_from_details_code_never_from_message(client: PayPalClient, session: FakeSession) -> None:
    body = error_body("UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED")
    body["message"] = "ORDER_NOT_APPROVED is mentioned here only as text"
    session.on("POST", CAPTURE_PATH, (422, body))

    with pytest.raises(PayPalError) as caught:
        client.capture_order(ORDER_ID, request_id="k")

    assert caught.value.issue == "ORDER_ALREADY_CAPTURED"


def test_error_without_details_uses_name_as_issue(client: PayPalClient, session: FakeSession) -> None:
    session.on("GET", ORDER_PATH, (404, error_body("RESOURCE_NOT_FOUND")))

    with pytest.raises(PayPalError) as caught:
        client.get_order(ORDER_ID)

    assert (caught.value.status, caught.value.issue) == (404, "RESOURCE_NOT_FOUND")


def test_non_json_error_body_still_maps_to_status(client: PayPalClient, session: FakeSession) -> None:
    session.on("GET", ORDER_PATH, (403, b"<html>forbidden</html>", {"PayPal-Debug-Id": "hdr-dbg"}))

    with pytest.raises(PayPalError) as caught:
        client.get_order(ORDER_ID)

    assert (caught.value.name, caught.value.issue, caught.value.debug_id) == ("HTTP_403", "HTTP_403", "hdr-dbg")


def test_gets_carry_no_request_id_and_posts_require_one(client: PayPalClient, session: FakeSession) -> None:
    session.on("GET", ORDER_PATH, (200, order_body()))
    client.get_order(ORDER_ID)
    assert "PayPal-Request-Id" not in session.api_calls()[0].headers

    with pytest.raises(ValueError):
        client.capture_order(ORDER_ID, request_id="")


def test_ids_that_would_change_the_url_are_refused(client: PayPalClient) -> None:
    with pytest.raises(ValueError):
        client.get_order("../v1/oauth2/token")


def test_timeouts_are_passed_to_every_request(session: FakeSession) -> None:
    client = PayPalClient(BASE, CLIENT_ID, SECRET, session=session, timeout=(1.5, 4.0))
    session.on("GET", ORDER_PATH, (200, order_body()))

    client.get_order(ORDER_ID)

    assert {c.timeout for c in session.calls} == {(1.5, 4.0)}


# ---- request bodies --------------------------------------------------------------------------------------


def test_create_order_body_matches_paypal_contract(client: PayPalClient, session: FakeSession) -> None:
    session.on("POST", "/v2/checkout/orders", (201, order_body("PAYER_ACTION_REQUIRED")))

    client.create_order(
        request_id="create-b1",
        reference_id="b1",
        custom_id="b1",
        invoice_id="inv-b1",
        description="2 seats, Showtime X",
        currency="USD",
        items=[("Seat C7", Decimal(12)), ("Seat C8", Decimal("12.50"))],
        return_url="https://tickets.example/paypal/return",
        cancel_url="https://tickets.example/paypal/cancel",
    )

    [call] = session.api_calls()
    assert call.headers["PayPal-Request-Id"] == "create-b1"
    assert call.headers["Prefer"] == "return=representation"
    body = call.json
    validate_request("POST", "/v2/checkout/orders", body)
    unit = body["purchase_units"][0]
    assert body["intent"] == "CAPTURE"
    assert unit["amount"] == {
        "currency_code": "USD",
        "value": "24.50",
        "breakdown": {"item_total": {"currency_code": "USD", "value": "24.50"}},
    }
    assert unit["items"][0] == {
        "name": "Seat C7",
        "quantity": "1",
        "unit_amount": {"currency_code": "USD", "value": "12.00"},
    }
    assert (unit["reference_id"], unit["custom_id"], unit["invoice_id"]) == ("b1", "b1", "inv-b1")
    assert body["payment_source"]["paypal"]["experience_context"] == {
        "brand_name": "Tickets",
        "return_url": "https://tickets.example/paypal/return",
        "cancel_url": "https://tickets.example/paypal/cancel",
        "user_action": "PAY_NOW",
        "shipping_preference": "NO_SHIPPING",
    }
    assert "application_context" not in body


def test_create_order_items_carry_a_readable_description_within_paypals_limits(
    client: PayPalClient, session: FakeSession
) -> None:
    session.on("POST", "/v2/checkout/orders", (201, order_body("PAYER_ACTION_REQUIRED")))

    client.create_order(
        request_id="create-b2",
        reference_id="b2",
        custom_id="b2",
        invoice_id="b2",
        description="Inception, Wed 1 Jan 2031, 19:30 UTC, Hall 2, 2 seats",
        currency="USD",
        items=[
            Item("Inception: Row D, seat 5", Decimal("12.00"), "Wed 1 Jan 2031, 19:30 UTC, Hall 2"),
            Item("n" * 200, Decimal("9.50"), "d" * 200),
        ],
        return_url="https://tickets.example/paypal/return",
        cancel_url="https://tickets.example/paypal/cancel",
    )

    [call] = session.api_calls()
    validate_request("POST", "/v2/checkout/orders", call.json)
    first, long = call.json["purchase_units"][0]["items"]
    assert first == {
        "name": "Inception: Row D, seat 5",
        "quantity": "1",
        "unit_amount": {"currency_code": "USD", "value": "12.00"},
        "description": "Wed 1 Jan 2031, 19:30 UTC, Hall 2",
    }
    assert (len(long["name"]), len(long["description"])) == (127, 127)


def test_full_refund_sends_empty_body_and_partial_sends_amount(client: PayPalClient, session: FakeSession) -> None:
    path = f"/v2/payments/captures/{CAPTURE_ID}/refund"
    session.on("POST", path, (201, {"id": "R1", "status": "COMPLETED"}))

    client.refund_capture(CAPTURE_ID, request_id="r-full", amount=None, currency=None)
    client.refund_capture(
        CAPTURE_ID,
        request_id="r-part",
        amount=Decimal("7.5"),
        currency="EUR",
        invoice_id="ref-1",
        note_to_payer="Sorry",
    )

    full, partial = session.api_calls(path)
    assert full.json == {}
    assert partial.json == {
        "amount": {"currency_code": "EUR", "value": "7.50"},
        "invoice_id": "ref-1",
        "note_to_payer": "Sorry",
    }
    for call in (full, partial):
        validate_request("POST", path, call.json)


def test_partial_refund_without_currency_is_a_programming_error(client: PayPalClient) -> None:
    with pytest.raises(ValueError):
        client.refund_capture(CAPTURE_ID, request_id="r", amount=Decimal("1.00"), currency=None)


@pytest.mark.parametrize(
    ("amount", "text"), [(Decimal(12), "12.00"), (Decimal("0.5"), "0.50"), (Decimal("3.10"), "3.10")]
)
def test_amounts_are_sent_with_two_decimals(amount: Decimal, text: str) -> None:
    assert format_amount(amount) == text


@pytest.mark.parametrize("amount", [Decimal("1.005"), Decimal("NaN"), 12.0])
def test_amounts_that_would_need_rounding_are_refused(amount: Any) -> None:
    with pytest.raises(ValueError):
        format_amount(amount)


# ---- webhooks ---------------------------------------------------------------------------------------------

WEBHOOK_HEADERS = {
    "paypal-auth-algo": "SHA256withRSA",
    "paypal-cert-url": "https://api-m.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42",
    "paypal-transmission-id": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
    "paypal-transmission-sig": "lmI95Jx3Y9nhR5SJWlHVIWpg4AgFk7n9bCHSRxbrd8A9zrhdu2rMyFrmz",
    "paypal-transmission-time": "2016-02-18T20:01:35Z",
}
EVENT = {"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {"id": CAPTURE_ID}}
VERIFY_PATH = "/v1/notifications/verify-webhook-signature"


@pytest.mark.parametrize(("status", "expected"), [("SUCCESS", True), ("FAILURE", False)])
def test_verify_webhook_signature_posts_headers_and_event(
    client: PayPalClient, session: FakeSession, status: str, expected: bool
) -> None:
    session.on("POST", VERIFY_PATH, (200, {"verification_status": status}))
    mixed_case = {key.upper(): value for key, value in WEBHOOK_HEADERS.items()}

    assert (
        client.verify_webhook_signature(headers=mixed_case, webhook_id="8PT597110X687430LKGECATA", event=EVENT)
        is expected
    )

    [call] = session.api_calls()
    validate_request("POST", VERIFY_PATH, call.json)
    assert call.json["webhook_event"] == EVENT
    assert call.json["transmission_id"] == WEBHOOK_HEADERS["paypal-transmission-id"]
    assert call.json["webhook_id"] == "8PT597110X687430LKGECATA"
    assert call.headers["PayPal-Request-Id"]


def test_webhook_without_signature_headers_is_not_genuine_and_paypal_is_not_asked(
    client: PayPalClient, session: FakeSession
) -> None:
    headers = dict(WEBHOOK_HEADERS)
    del headers["paypal-transmission-sig"]

    assert client.verify_webhook_signature(headers=headers, webhook_id="WH", event=EVENT) is False
    assert session.calls == []


def test_webhook_input_rejected_by_paypal_is_not_genuine(client: PayPalClient, session: FakeSession) -> None:
    session.on("POST", VERIFY_PATH, (400, {"name": "VALIDATION_ERROR", "message": "Invalid", "debug_id": "d"}))

    assert client.verify_webhook_signature(headers=WEBHOOK_HEADERS, webhook_id="WH", event=EVENT) is False


def test_webhook_verification_while_paypal_is_down_raises_unavailable(
    client: PayPalClient, session: FakeSession
) -> None:
    session.on("POST", VERIFY_PATH, (503, error_body("SERVICE_UNAVAILABLE")))

    with pytest.raises(PayPalUnavailable):
        client.verify_webhook_signature(headers=WEBHOOK_HEADERS, webhook_id="WH", event=EVENT)


# ---- helpers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", ["approve", "payer-action"])
def test_approval_url_accepts_both_link_relations(rel: str) -> None:
    order = {
        "links": [{"href": "https://x/self", "rel": "self"}, {"href": "https://x/checkoutnow?token=1", "rel": rel}]
    }
    assert approval_url(order) == "https://x/checkoutnow?token=1"


def test_approval_url_is_none_without_an_approval_link() -> None:
    assert approval_url({"links": [{"href": "https://x/self", "rel": "self"}]}) is None
    assert approval_url({}) is None


def test_first_capture_reads_the_first_purchase_unit() -> None:
    capture = {"id": CAPTURE_ID, "status": "COMPLETED"}
    assert first_capture({"purchase_units": [{"payments": {"captures": [capture]}}]}) == capture
    assert first_capture({"purchase_units": [{}]}) is None
    assert first_capture({}) is None


def test_base_url_for_modes() -> None:
    assert base_url_for("sandbox", None) == SANDBOX_BASE_URL == "https://api-m.sandbox.paypal.com"
    assert base_url_for("live", None) == LIVE_BASE_URL == "https://api-m.paypal.com"
    assert base_url_for("local", "http://127.0.0.1:8000/paypal/") == "http://127.0.0.1:8000/paypal"
    assert base_url_for("sandbox", "http://mock:4010") == "http://mock:4010"
    with pytest.raises(ValueError):
        base_url_for("local", None)
    with pytest.raises(ValueError):
        base_url_for("production", None)


# ---- no secrets in logs --------------------------------------------------------------------------------------


def test_failures_are_logged_with_debug_id_but_never_secrets_or_tokens(
    client: PayPalClient, session: FakeSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session.on("GET", ORDER_PATH, (401, error_body("AUTHENTICATION_FAILURE")), (200, order_body()))
    session.on(
        "POST",
        CAPTURE_PATH,
        (500, error_body("INTERNAL_SERVER_ERROR", debug_id="dbg-500")),
        (422, error_body("UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED", "dbg-422")),
    )

    client.get_order(ORDER_ID)
    with pytest.raises(PayPalError) as caught:
        client.capture_order(ORDER_ID, request_id="k-1")

    everything = caplog.text + "".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    everything += repr(client) + str(caught.value)
    for secret in (SECRET, "token-1", "token-2", "Bearer", "Basic"):
        assert secret not in everything
    logged = {(getattr(r, "issue", None), getattr(r, "debug_id", None)) for r in caplog.records}
    assert ("INSTRUMENT_DECLINED", "dbg-422") in logged
    assert ("INTERNAL_SERVER_ERROR", "dbg-500") in logged
