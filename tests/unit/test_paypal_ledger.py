"""The emulator's order / capture / refund state machine on its own: plain calls, no HTTP, no event loop."""

from __future__ import annotations

from decimal import Decimal

import pytest

from local.paypal.ledger import PayPalEmulator
from local.paypal.model import ApiError, ControlError

BASE = "http://paypal.test/paypal"


def emulator(**kwargs) -> tuple[PayPalEmulator, list[str]]:
    paypal = PayPalEmulator(webhook_url=None, client_id="c", client_secret="s", public_base=None, **kwargs)
    sent: list[str] = []
    paypal.webhook_url = "http://receiver.test/"
    paypal.deliver = lambda transmission_id, transmission, body: sent.append(transmission.event["event_type"])
    return paypal, sent


def order_body(total: str = "24.00") -> dict:
    return {
        "intent": "CAPTURE",
        "purchase_units": [{"custom_id": "ours", "amount": {"currency_code": "USD", "value": total}}],
        "payment_source": {"paypal": {"experience_context": {"return_url": "https://r", "cancel_url": "https://c"}}},
    }


def test_an_order_is_created_approved_captured_and_refunded_with_its_webhooks():
    paypal, sent = emulator()
    status, created = paypal.create_order(order_body(), BASE, "return=representation")
    assert (status, created["status"]) == (201, "PAYER_ACTION_REQUIRED")
    paypal.approve(created["id"], BASE)
    _, captured = paypal.capture_order(created["id"], None, BASE)
    capture = captured["purchase_units"][0]["payments"]["captures"][0]
    assert (captured["status"], capture["status"]) == ("COMPLETED", "COMPLETED")
    _, partial = paypal.refund_capture(capture["id"], {"amount": {"currency_code": "USD", "value": "4.00"}}, BASE)
    _, rest = paypal.refund_capture(capture["id"], None, BASE)
    assert (partial["amount"]["value"], rest["amount"]["value"]) == ("4.00", "20.00")
    assert paypal.captures[capture["id"]].status == "REFUNDED"
    assert sent == [
        "CHECKOUT.ORDER.APPROVED",
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.REFUNDED",
        "PAYMENT.CAPTURE.REFUNDED",
    ]


def test_capture_before_approval_and_a_second_capture_are_refused_with_paypals_issues():
    paypal, _ = emulator()
    _, created = paypal.create_order(order_body(), BASE, "")
    with pytest.raises(ApiError) as early:
        paypal.capture_order(created["id"], None, BASE)
    paypal.approve(created["id"], BASE)
    paypal.capture_order(created["id"], None, BASE)
    with pytest.raises(ApiError) as again:
        paypal.capture_order(created["id"], None, BASE)
    assert (early.value.issue, again.value.issue) == ("ORDER_NOT_APPROVED", "ORDER_ALREADY_CAPTURED")


def test_a_declined_capture_sends_the_buyer_back_and_a_later_one_succeeds():
    paypal, _ = emulator()
    _, created = paypal.create_order(order_body(), BASE, "")
    paypal.approve(created["id"], BASE)
    paypal.add_fault({"op": "capture", "kind": "declined"})
    with pytest.raises(ApiError) as declined:
        paypal.capture_order(created["id"], None, BASE)
    assert declined.value.issue == "INSTRUMENT_DECLINED"
    assert paypal.orders[created["id"]].status == "PAYER_ACTION_REQUIRED"
    paypal.approve(created["id"], BASE)
    assert paypal.capture_order(created["id"], None, BASE)[1]["status"] == "COMPLETED"


def test_a_reused_request_id_replays_the_first_success_and_failures_are_not_stored():
    paypal, _ = emulator()
    calls = []

    def perform():
        calls.append(1)
        if len(calls) == 1:
            raise ApiError(500)
        return 201, {"n": len(calls)}

    with pytest.raises(ApiError):
        paypal.idempotent("create", "key-1", perform)
    assert paypal.idempotent("create", "key-1", perform) == (201, {"n": 2})
    assert paypal.idempotent("create", "key-1", perform) == (201, {"n": 2})
    assert len(calls) == 2


def test_a_refund_beyond_what_is_left_is_refused():
    paypal, _ = emulator()
    _, created = paypal.create_order(order_body("10.00"), BASE, "")
    paypal.approve(created["id"], BASE)
    _, captured = paypal.capture_order(created["id"], None, BASE)
    capture_id = captured["purchase_units"][0]["payments"]["captures"][0]["id"]
    with pytest.raises(ApiError) as refused:
        paypal.refund_capture(capture_id, {"amount": {"currency_code": "USD", "value": "10.01"}}, BASE)
    assert refused.value.issue == "REFUND_AMOUNT_EXCEEDED"
    assert paypal.captures[capture_id].refunded == Decimal(0)


def test_tokens_expire_on_the_injected_clock():
    now = [1000.0]
    paypal, _ = emulator(clock=lambda: now[0])
    import base64

    basic = "Basic " + base64.b64encode(b"c:s").decode()
    _, issued = paypal.issue_token(basic, "client_credentials")
    paypal.authenticate(f"Bearer {issued['access_token']}")
    now[0] += issued["expires_in"]
    with pytest.raises(ApiError) as expired:
        paypal.authenticate(f"Bearer {issued['access_token']}")
    assert expired.value.status == 401


def test_an_unknown_order_cannot_be_approved():
    paypal, _ = emulator()
    with pytest.raises(ControlError) as unknown:
        paypal.approve("NOPE", BASE)
    assert unknown.value.status == 404


def captured(paypal: PayPalEmulator, total: str = "24.00") -> str:
    _, created = paypal.create_order(order_body(total), BASE, "")
    paypal.approve(created["id"], BASE)
    _, order = paypal.capture_order(created["id"], None, BASE)
    return order["purchase_units"][0]["payments"]["captures"][0]["id"]


def test_a_dispute_covers_what_was_not_refunded_and_blocks_refunds_while_open():
    paypal, sent = emulator()
    capture_id = captured(paypal)
    paypal.refund_capture(capture_id, {"amount": {"currency_code": "USD", "value": "4.00"}}, BASE)
    dispute = paypal.open_dispute(capture_id, BASE)
    assert paypal.dispute_view(dispute, BASE)["dispute_amount"] == {"currency_code": "USD", "value": "20.00"}
    with pytest.raises(ApiError) as disputed:
        paypal.refund_capture(capture_id, None, BASE)
    assert (disputed.value.status, disputed.value.issue) == (422, "TRANSACTION_DISPUTED")
    paypal.resolve_dispute(dispute.id, "CANCELED_BY_BUYER", BASE)
    paypal.refund_capture(capture_id, None, BASE)
    assert paypal.captures[capture_id].status == "REFUNDED"
    assert sent[-3:] == ["CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.RESOLVED", "PAYMENT.CAPTURE.REFUNDED"]


def test_a_case_the_buyer_wins_is_resolved_before_the_money_is_reversed():
    paypal, sent = emulator()
    capture_id = captured(paypal)
    dispute = paypal.open_dispute(capture_id, BASE, reason="UNAUTHORISED", stage="CHARGEBACK")
    paypal.update_dispute(dispute.id, "WAITING_FOR_SELLER_RESPONSE", BASE)
    paypal.resolve_dispute(dispute.id, "RESOLVED_BUYER_FAVOUR", BASE)
    capture = paypal.captures[capture_id]
    assert (capture.status, capture.status_reason, capture.remaining) == ("REFUNDED", "CHARGEBACK", Decimal(0))
    assert sent[-4:] == [
        "CUSTOMER.DISPUTE.CREATED",
        "CUSTOMER.DISPUTE.UPDATED",
        "CUSTOMER.DISPUTE.RESOLVED",
        "PAYMENT.CAPTURE.REVERSED",
    ]
    with pytest.raises(ApiError) as gone:
        paypal.refund_capture(capture_id, None, BASE)
    assert gone.value.issue == "CAPTURE_FULLY_REFUNDED"


def test_a_chargeback_cannot_take_the_money_twice_and_a_closed_case_cannot_change():
    paypal, sent = emulator()
    capture_id = captured(paypal)
    dispute = paypal.open_dispute(capture_id, BASE)
    paypal.reverse_capture(capture_id, BASE)
    paypal.resolve_dispute(dispute.id, "RESOLVED_BUYER_FAVOUR", BASE)
    assert sent.count("PAYMENT.CAPTURE.REVERSED") == 1
    with pytest.raises(ControlError) as twice:
        paypal.reverse_capture(capture_id, BASE)
    with pytest.raises(ControlError) as closed:
        paypal.update_dispute(dispute.id, "OPEN", BASE)
    assert (twice.value.status, closed.value.status) == (409, 409)


def test_an_unknown_dispute_is_a_paypal_404():
    paypal, _ = emulator()
    with pytest.raises(ApiError) as unknown:
        paypal.get_dispute("PP-D-00000")
    assert (unknown.value.status, unknown.value.issue) == (404, "INVALID_RESOURCE_ID")


def with_items(*items: dict, total: str = "24.00") -> dict:
    body = order_body(total)
    unit = body["purchase_units"][0]
    unit["amount"]["breakdown"] = {"item_total": {"currency_code": "USD", "value": total}}
    unit["items"] = list(items)
    return body


def item(name: str = "Inception: Row D, seat 5", value: str = "12.00", **extra) -> dict:
    return {"name": name, "quantity": "1", "unit_amount": {"currency_code": "USD", "value": value}, **extra}


def test_an_order_keeps_its_items_and_shows_them_on_the_approval_page():
    from local.paypal.approval import _approval_content

    paypal, _ = emulator()
    body = with_items(item(description="Wed 1 Jan 2031, 19:30 UTC, Hall 2"), item("Inception: Row D, seat 6"))
    _, created = paypal.create_order(body, BASE, "return=representation")
    assert created["purchase_units"][0]["items"] == body["purchase_units"][0]["items"]
    page = _approval_content(paypal.orders[created["id"]], "http://paypal.test/approve")
    assert "Inception: Row D, seat 5: 12.00 USD<br><small>Wed 1 Jan 2031, 19:30 UTC, Hall 2</small>" in page
    assert "Inception: Row D, seat 6: 12.00 USD" in page


@pytest.mark.parametrize(
    "bad, field",
    [
        (item(name="n" * 128), "/purchase_units/0/items/0/name"),
        (item(description="d" * 128), "/purchase_units/0/items/0/description"),
        (item(sku="s" * 128), "/purchase_units/0/items/0/sku"),
        (item(category="TICKETS"), "/purchase_units/0/items/0/category"),
    ],
)
def test_item_fields_outside_paypals_limits_are_refused_as_paypal_does(bad, field):
    paypal, _ = emulator()
    with pytest.raises(ApiError) as refused:
        paypal.create_order(with_items(bad, item()), BASE, "")
    assert refused.value.status == 400
    assert refused.value.field == field
