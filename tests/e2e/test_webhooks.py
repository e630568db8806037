"""PayPal webhooks on the running stack: the emulator posts them to `/api/payment/webhook` as PayPal would,
and tests post forged or replayed ones. The backend re-reads every resource from PayPal before acting."""

from __future__ import annotations

import pytest
import requests

from tests.support.payflow import TIMEOUT, Buyer, Emulator, approve_on_page, free_seats, wait_until, webhook_event


def post_webhook(stack, event: dict) -> requests.Response:
    return requests.post(stack.api("payment/webhook/"), json=event, timeout=TIMEOUT)


def delivered(emulator: Emulator, event_type: str, resource_id: str) -> dict | None:
    sent = emulator.webhooks()["sent"]
    return next((w for w in sent if (w["event_type"], w["resource_id"]) == (event_type, resource_id)), None)


def test_an_approved_order_whose_buyer_never_returns_is_captured_by_the_webhook(stack, showtime, emulator):
    buyer, watcher = Buyer(stack), Buyer(stack)
    seats = free_seats(stack, showtime, 2)
    with watcher.room(showtime) as room:
        buyer.hold(showtime, seats)
        created = buyer.created(showtime)
        approve_on_page(created["approval_url"])  # ... and the browser never comes back

        room.wait_for(seats, "sold")
    buyer.wait_order(created["order_id"], "paid")
    webhook = delivered(emulator, "CHECKOUT.ORDER.APPROVED", created["paypal_order_id"])
    assert webhook is not None and webhook["delivered"] and webhook["last_status"] == 200
    assert len(emulator.captures_of(created["paypal_order_id"])) == 1


def test_a_dashboard_refund_arrives_by_webhook_and_frees_the_seat(stack, showtime, emulator):
    buyer, watcher = Buyer(stack), Buyer(stack)
    seats = free_seats(stack, showtime, 2)
    order = buyer.buy(showtime, seats)
    capture = emulator.capture_of(order["paypal_order_id"])
    price = order["tickets"][0]["price"]

    with watcher.room(showtime) as room:
        refund = emulator.dashboard_refund(capture["id"], price)  # the merchant refunds one seat at PayPal
        room.wait_for([order["tickets"][0]["ticket_id"]], "available")

    recorded = buyer.wait_order(order["order_id"], "partially_refunded")
    assert [(r["amount"], r["status"], r.get("reason")) for r in recorded["refunds"]] == [
        (price, "completed", "Refunded in PayPal.")
    ]
    assert recorded["refunded_ticket_ids"] == [order["tickets"][0]["ticket_id"]]
    assert delivered(emulator, "PAYMENT.CAPTURE.REFUNDED", refund["id"])["last_status"] == 200
    assert [r["id"] for r in emulator.refunds_of(capture["id"])] == [refund["id"]]


@pytest.mark.parametrize(
    "event_type, resource",
    [
        ("CHECKOUT.ORDER.APPROVED", {"id": "NOSUCHORDER00001", "status": "APPROVED"}),
        ("PAYMENT.CAPTURE.COMPLETED", {"id": "NOSUCHCAPTURE001", "status": "COMPLETED"}),
        ("PAYMENT.CAPTURE.DENIED", {"id": "NOSUCHCAPTURE002", "status": "DECLINED"}),
        ("PAYMENT.CAPTURE.REFUNDED", {"id": "NOSUCHREFUND0001", "status": "COMPLETED"}),
        ("PAYMENT.CAPTURE.REFUNDED", {"id": "../../v2/payments/captures/X/refund"}),
        ("PAYMENT.CAPTURE.COMPLETED", {"id": {"nested": "object"}}),
        ("SOMETHING.ELSE", {"id": "ANYTHING"}),
    ],
)
def test_forged_webhooks_about_unknown_resources_are_ignored(stack, event_type, resource):
    response = post_webhook(stack, webhook_event(event_type, resource))

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ignored"}


def test_malformed_webhooks_are_400(stack):
    too_long = webhook_event("CHECKOUT.ORDER.APPROVED", {"id": "X"}, event_id="W" * 5000)
    assert post_webhook(stack, too_long).status_code == 400
    assert post_webhook(stack, {"id": "WH-1", "event_type": "CHECKOUT.ORDER.APPROVED"}).status_code == 400
    raw = requests.post(
        stack.api("payment/webhook/"), data=b"{not json", headers={"Content-Type": "application/json"}, timeout=TIMEOUT
    )
    assert raw.status_code == 400


def test_an_approval_webhook_for_an_order_paypal_says_is_not_approved_captures_nothing(stack, showtime, emulator):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    forged = webhook_event("CHECKOUT.ORDER.APPROVED", {"id": created["paypal_order_id"], "status": "APPROVED"})

    response = post_webhook(stack, forged)

    assert response.json() == {"status": "ignored"}
    assert emulator.captures_of(created["paypal_order_id"]) == []
    assert buyer.order(created["order_id"]).json()["status"] == "created"


def test_a_replayed_webhook_is_handled_once(stack, showtime, quiet_paypal):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    approve_on_page(created["approval_url"])
    event = webhook_event("CHECKOUT.ORDER.APPROVED", {"id": created["paypal_order_id"]})

    first = post_webhook(stack, event)
    replay = post_webhook(stack, event)

    assert first.json() == {"status": "captured"}
    assert replay.json() == {"status": "duplicate"}
    buyer.wait_order(created["order_id"], "paid")
    assert len(quiet_paypal.captures_of(created["paypal_order_id"])) == 1


def test_webhook_is_503_while_paypal_is_unreachable_so_paypal_redelivers(stack, showtime, quiet_paypal):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    approve_on_page(created["approval_url"])
    event = webhook_event("CHECKOUT.ORDER.APPROVED", {"id": created["paypal_order_id"]})
    quiet_paypal.fault("get_order", "error500", count=3)

    unavailable = post_webhook(stack, event)
    assert unavailable.status_code == 503
    assert unavailable.json()["code"] == "payment_provider_unavailable"
    assert buyer.order(created["order_id"]).json()["status"] == "created"

    redelivered = post_webhook(stack, event)
    assert redelivered.json() == {"status": "captured"}
    wait_until(lambda: buyer.order(created["order_id"]).json()["status"] == "paid", what="the order to be paid")
