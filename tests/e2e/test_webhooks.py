"""PayPal webhooks on the running stack: the emulator signs and posts them to `/api/payment/webhook` as PayPal
would, and tests post forged or replayed ones. The stack verifies every delivery by postback to PayPal (the
emulator), as production does, and re-reads every resource from PayPal before acting. What the handler does with a
genuine event about an unknown or unapproved resource is covered in tests/integration/test_orders.py."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support import payflow
from tests.support.payflow import TIMEOUT, Buyer, Emulator, approve_on_page, free_seats, wait_until, webhook_event


def post_webhook(stack, event: dict, headers: dict | None = None) -> requests.Response:
    return requests.post(stack.api("payment/webhook/"), json=event, headers=headers, timeout=TIMEOUT)


def replay(stack, captured: dict) -> requests.Response:
    """Post a captured delivery again, byte for byte, with its signature headers."""
    return requests.post(
        stack.api("payment/webhook/"), data=captured["body"], headers=captured["headers"], timeout=TIMEOUT
    )


def paypal_headers(stack, **overrides: str) -> dict:
    headers = {
        "PAYPAL-TRANSMISSION-ID": "8d5c4f2a-0000-4000-8000-000000000000",
        "PAYPAL-TRANSMISSION-TIME": "2030-01-01T00:00:00Z",
        "PAYPAL-TRANSMISSION-SIG": "c2lnbmF0dXJl",
        "PAYPAL-CERT-URL": "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }
    return {**headers, **overrides}


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


FORGERIES = [
    ("CHECKOUT.ORDER.APPROVED", {"id": "NOSUCHORDER00001", "status": "APPROVED"}),
    ("PAYMENT.CAPTURE.COMPLETED", {"id": "NOSUCHCAPTURE001", "status": "COMPLETED"}),
    ("PAYMENT.CAPTURE.REVERSED", {"id": "NOSUCHCAPTURE002", "status": "REFUNDED"}),
    ("CUSTOMER.DISPUTE.CREATED", {"dispute_id": "PP-D-1"}),
    ("SOMETHING.ELSE", {"id": "ANYTHING"}),
]


@pytest.mark.parametrize("event_type, resource", FORGERIES)
def test_unsigned_webhooks_are_400_without_a_call_to_paypal(stack, emulator, event_type, resource):
    before = emulator.verifications()
    response = post_webhook(stack, webhook_event(event_type, resource))

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    assert emulator.verifications() == before


@pytest.mark.parametrize(
    "headers",
    [
        {"PAYPAL-CERT-URL": "https://attacker.example/cert.pem"},
        {"PAYPAL-CERT-URL": "http://api.paypal.com/v1/notifications/certs/CERT-1"},  # not https
        {"PAYPAL-CERT-URL": "https://api.paypal.com.attacker.example/cert"},
        {"PAYPAL-AUTH-ALGO": "none"},
        {"PAYPAL-TRANSMISSION-SIG": "x" * 5000},
    ],
)
def test_webhooks_whose_headers_cannot_be_paypals_are_400_without_a_call_to_paypal(stack, emulator, headers):
    before = emulator.verifications()
    event = webhook_event("PAYMENT.CAPTURE.COMPLETED", {"id": "NOSUCHCAPTURE003"})
    assert post_webhook(stack, event, paypal_headers(stack, **headers)).status_code == 400
    assert emulator.verifications() == before


def test_a_forged_signature_is_refused_by_paypal_and_leaves_no_dedupe_row(stack, showtime, quiet_paypal):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    approve_on_page(created["approval_url"])
    genuine = quiet_paypal.delivery("CHECKOUT.ORDER.APPROVED", created["paypal_order_id"])
    # The attacker reuses the genuine event's id with a body of their own and a signature that looks like PayPal's.
    forged = {**json.loads(genuine["body"]), "summary": "forged"}
    before = quiet_paypal.verifications()

    response = post_webhook(stack, forged, paypal_headers(stack))

    assert response.status_code == 400
    assert quiet_paypal.verifications()["FAILURE"] == before["FAILURE"] + 1
    assert quiet_paypal.captures_of(created["paypal_order_id"]) == []
    # No row was stored under the genuine event's id: its real delivery is still acted on.
    assert replay(stack, genuine).json() == {"status": "captured"}
    buyer.wait_order(created["order_id"], "paid")


def test_malformed_webhooks_are_400(stack):
    too_long = webhook_event("CHECKOUT.ORDER.APPROVED", {"id": "X"}, event_id="W" * 5000)
    assert post_webhook(stack, too_long).status_code == 400
    assert post_webhook(stack, {"id": "WH-1", "event_type": "CHECKOUT.ORDER.APPROVED"}).status_code == 400
    raw = requests.post(
        stack.api("payment/webhook/"), data=b"{not json", headers={"Content-Type": "application/json"}, timeout=TIMEOUT
    )
    assert raw.status_code == 400


def test_a_replayed_webhook_is_handled_once(stack, showtime, quiet_paypal):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    approve_on_page(created["approval_url"])
    captured = quiet_paypal.delivery("CHECKOUT.ORDER.APPROVED", created["paypal_order_id"])
    checked = quiet_paypal.verifications()["SUCCESS"]

    first = replay(stack, captured)
    again = replay(stack, captured)

    assert first.json() == {"status": "captured"}
    assert again.json() == {"status": "duplicate"}
    assert quiet_paypal.verifications()["SUCCESS"] == checked + 1  # the replay cost no PayPal call
    buyer.wait_order(created["order_id"], "paid")
    assert len(quiet_paypal.captures_of(created["paypal_order_id"])) == 1


def test_webhook_is_503_while_paypal_is_unreachable_so_paypal_redelivers(stack, showtime, quiet_paypal):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    approve_on_page(created["approval_url"])
    delivery = quiet_paypal.delivery("CHECKOUT.ORDER.APPROVED", created["paypal_order_id"])
    quiet_paypal.fault("get_order", "error500", count=3)

    unavailable = replay(stack, delivery)
    assert unavailable.status_code == 503
    assert unavailable.json()["code"] == "payment_provider_unavailable"
    assert buyer.order(created["order_id"]).json()["status"] == "created"

    redelivered = replay(stack, delivery)
    assert redelivered.json() == {"status": "captured"}
    wait_until(lambda: buyer.order(created["order_id"]).json()["status"] == "paid", what="the order to be paid")


def test_a_decline_the_approval_webhook_met_first_is_reported_to_the_buyer_as_declined(stack, showtime, emulator):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    emulator.fault("capture", "declined")

    redirect = approve_on_page(created["approval_url"])  # the webhook's capture is declined before the buyer is back
    wait_until(
        lambda: (delivered(emulator, "CHECKOUT.ORDER.APPROVED", created["paypal_order_id"]) or {}).get("delivered"),
        what="the approval webhook to be handled",
    )
    assert emulator.order(created["paypal_order_id"])["declined_attempts"] == 1

    answer = buyer.execute(redirect)

    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "payment_declined"
    assert buyer.order(created["order_id"]).json()["status"] == "created"
    assert buyer.execute(approve_on_page(created["approval_url"])).status_code == 200  # a new approval still pays
    buyer.wait_order(created["order_id"], "paid")


def staff_orders(stack, attention: str, token: str | None = None) -> requests.Response:
    token = token or stack.staff_token()
    return requests.get(
        stack.api("staff/orders/"),
        params={"attention": attention},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )


def test_a_dispute_and_then_a_chargeback_arrive_signed_and_end_with_void_tickets_staff_can_see(
    stack, showtime, emulator
):
    buyer = Buyer(stack)
    seats = free_seats(stack, showtime, 2)
    order = buyer.buy(showtime, seats)
    capture = emulator.capture_of(order["paypal_order_id"])

    dispute = emulator.open_dispute(capture["id"])
    wait_until(
        lambda: order["order_id"] in [o["order_id"] for o in staff_orders(stack, "disputed").json()["results"]],
        what="the disputed order on the staff list",
    )
    refused = buyer.refund(order["order_id"])
    assert (refused.status_code, refused.json()["code"]) == (409, "not_refundable")

    emulator.resolve_dispute(dispute["dispute_id"], "RESOLVED_BUYER_FAVOUR")
    reversed_order = buyer.wait_order(order["order_id"], "reversed")

    assert reversed_order["status"] == "reversed"
    listed = {o["order_id"]: o for o in staff_orders(stack, "reversed").json()["results"]}
    assert listed[order["order_id"]]["dispute"] == {
        "dispute_id": dispute["dispute_id"],
        "status": "resolved",
        "outcome": "RESOLVED_BUYER_FAVOUR",
    }
    seen = payflow.tickets(stack, showtime, token=buyer.token)
    assert {(seen[t]["status"], seen[t]["mine"]) for t in seats} == {("sold", False)}
    for kind in ("CUSTOMER.DISPUTE.RESOLVED", "PAYMENT.CAPTURE.REVERSED"):
        sent = [w for w in emulator.webhooks()["sent"] if w["event_type"] == kind and w["last_status"] == 200]
        assert sent, f"{kind} was not delivered"


def test_the_staff_order_list_is_for_staff_only(stack):
    assert staff_orders(stack, "reversed", token="not-a-token").status_code == 401
    someone = Buyer(stack)
    forbidden = staff_orders(stack, "reversed", token=someone.token)
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")
    assert staff_orders(stack, "everything").status_code == 400
