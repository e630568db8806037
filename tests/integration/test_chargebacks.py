"""Disputes and chargebacks (services/chargebacks.py) against moto and the PayPal emulator: the emulator opens,
resolves and reverses as PayPal would, the test delivers the event (the emulator sends no webhooks here), and the
handler acts on what it re-reads from PayPal."""

from __future__ import annotations

import json
import time

import pytest

from chalicelib import holds
from chalicelib.errors import BadRequest, NotRefundable, PaymentProviderUnavailable, TicketUnavailable
from tests.support.payflow import webhook_event

BUYER, OTHER = "dispute-buyer", "dispute-other"


def deliver(shop, event_type: str, resource: dict) -> str:
    return shop.refunds.webhook({}, json.dumps(webhook_event(event_type, resource)).encode())["status"]


def staff_list(shop, attention: str) -> list[str]:
    return [
        o["order_id"]
        for o in shop.container.chargebacks.needing_attention(attention, limit=100, cursor=None)["results"]
    ]


def paid_with_capture(shop, seats: list[str]) -> tuple[dict, str]:
    order = shop.paid(BUYER, seats)
    return order, shop.capture_id(order["paypal_order_id"])


def open_dispute(shop, capture_id: str) -> dict:
    dispute = shop.emulator.open_dispute(capture_id)
    assert deliver(shop, "CUSTOMER.DISPUTE.CREATED", {"dispute_id": dispute["dispute_id"]}) == "disputed"
    return dispute


def test_an_open_dispute_flags_the_order_for_staff_and_holds_refunds_while_the_seats_stay_sold(shop):
    order, capture_id = paid_with_capture(shop, shop.seats[:2])

    dispute = open_dispute(shop, capture_id)

    stored = shop.order(order["order_id"])
    assert (stored.status, stored.dispute_status, stored.dispute_id) == ("paid", "open", dispute["dispute_id"])
    assert order["order_id"] in staff_list(shop, "disputed")
    with pytest.raises(NotRefundable, match="disputed"):
        shop.refunds.request(BUYER, order["order_id"], None)
    assert {shop.ticket(t).status for t in shop.seats[:2]} == {holds.SOLD}
    # An update of the same dispute changes nothing and alerts nobody twice.
    shop.emulator.update_dispute(dispute["dispute_id"], "UNDER_REVIEW")
    assert deliver(shop, "CUSTOMER.DISPUTE.UPDATED", {"dispute_id": dispute["dispute_id"]}) == "disputed"


@pytest.mark.parametrize("outcome", ["RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER"])
def test_a_dispute_the_seller_keeps_clears_the_flag_and_refunds_work_again(shop, outcome):
    order, capture_id = paid_with_capture(shop, shop.seats[:1])
    dispute = open_dispute(shop, capture_id)

    shop.emulator.resolve_dispute(dispute["dispute_id"], outcome)
    assert deliver(shop, "CUSTOMER.DISPUTE.RESOLVED", {"dispute_id": dispute["dispute_id"]}) == "dispute_resolved"

    stored = shop.order(order["order_id"])
    assert (stored.status, stored.dispute_status, stored.dispute_outcome, stored.attention) == (
        "paid",
        "resolved",
        outcome,
        None,
    )
    assert order["order_id"] not in staff_list(shop, "disputed")
    assert shop.refunds.request(BUYER, order["order_id"], None)["status"] == "pending"


def test_a_dispute_the_buyer_wins_reverses_the_order_and_voids_its_tickets_for_good(shop):
    order, capture_id = paid_with_capture(shop, shop.seats[:2])
    dispute = open_dispute(shop, capture_id)

    shop.emulator.resolve_dispute(dispute["dispute_id"], "RESOLVED_BUYER_FAVOUR")
    assert deliver(shop, "CUSTOMER.DISPUTE.RESOLVED", {"dispute_id": dispute["dispute_id"]}) == "reversed"
    # PayPal also reports the reversal of the capture: the same outcome, once.
    assert deliver(shop, "PAYMENT.CAPTURE.REVERSED", {"id": capture_id}) == "reversed"

    stored = shop.order(order["order_id"])
    assert (stored.status, stored.attention, stored.dispute_status) == ("reversed", "reversed", "resolved")
    assert order["order_id"] in staff_list(shop, "reversed") and order["order_id"] not in staff_list(shop, "disputed")
    assert {shop.ticket(t).status for t in shop.seats[:2]} == {holds.VOID}
    with pytest.raises(NotRefundable):
        shop.refunds.request(BUYER, order["order_id"], None)
    with pytest.raises(TicketUnavailable):  # never back on sale by itself
        shop.container.seats.repo.select(OTHER, shop.showtime_id, shop.seats[0], time.time())
    # What buyers and viewers see: sold, and not the buyer's any more.
    view = {t["ticket_id"]: t for t in shop.container.catalog.showtime_tickets(shop.showtime_id, viewer=BUYER)}
    assert {(view[t]["status"], view[t]["mine"]) for t in shop.seats[:2]} == {("sold", False)}


def test_a_chargeback_of_a_partly_refunded_order_voids_only_the_seats_still_sold(app_module, shop):
    order, capture_id = paid_with_capture(shop, shop.seats[:2])
    shop.refunds.request(BUYER, order["order_id"], [shop.seats[0]])
    shop.refunds.process(order["order_id"], shop.order(order["order_id"]).refunds[0].refund_id)
    assert shop.order(order["order_id"]).status == "partially_refunded"

    shop.emulator.reverse(capture_id)
    assert deliver(shop, "PAYMENT.CAPTURE.REVERSED", {"id": capture_id}) == "reversed"

    assert shop.order(order["order_id"]).status == "reversed"
    assert (shop.ticket(shop.seats[0]).status, shop.ticket(shop.seats[1]).status) == (holds.AVAILABLE, holds.VOID)


def test_a_chargeback_while_our_refund_is_pending_fails_the_refund_and_the_worker_pays_nothing(shop):
    order, capture_id = paid_with_capture(shop, shop.seats[:1])
    refund = shop.refunds.request(BUYER, order["order_id"], None)

    shop.emulator.reverse(capture_id)
    assert deliver(shop, "PAYMENT.CAPTURE.REVERSED", {"id": capture_id}) == "reversed"
    assert shop.refunds.process(order["order_id"], refund["refund_id"]) == "failed"

    stored = shop.order(order["order_id"])
    assert stored.status == "reversed"
    assert [(r.status, r.reason) for r in stored.refunds] == [
        ("failed", "The payment was taken back through PayPal (chargeback or dispute).")
    ]
    assert shop.emulator.refunds_of(capture_id) == []


def test_a_reversal_paypal_does_not_confirm_changes_nothing(shop):
    order, capture_id = paid_with_capture(shop, shop.seats[:1])

    assert deliver(shop, "PAYMENT.CAPTURE.REVERSED", {"id": capture_id}) == "ignored"  # the capture is still ours

    assert shop.order(order["order_id"]).status == "paid"
    assert shop.ticket(shop.seats[0]).status == holds.SOLD


def test_a_reversal_of_an_order_still_being_settled_asks_paypal_to_come_back(shop):
    created = shop.captured(BUYER, shop.seats[:1])  # processing: the purchase worker has not run
    capture_id = shop.capture_id(created["paypal_order_id"])
    shop.emulator.reverse(capture_id)

    with pytest.raises(PaymentProviderUnavailable):
        deliver(shop, "PAYMENT.CAPTURE.REVERSED", {"id": capture_id})

    assert shop.order(created["order_id"]).status == "processing"


def test_disputes_about_captures_we_never_sold_are_ignored(shop):
    order, capture_id = paid_with_capture(shop, shop.seats[:1])
    assert deliver(shop, "CUSTOMER.DISPUTE.CREATED", {"dispute_id": "PP-D-00000"}) == "ignored"  # unknown to PayPal
    assert deliver(shop, "CUSTOMER.DISPUTE.CREATED", {"dispute_id": "../../v1/x"}) == "ignored"
    assert shop.order(order["order_id"]).attention is None


def test_the_staff_list_pages_and_refuses_an_unknown_kind(shop):
    made = []
    for seat in shop.seats[:3]:
        order = shop.paid(BUYER, [seat])
        open_dispute(shop, shop.capture_id(order["paypal_order_id"]))
        made.append(order["order_id"])
    service = shop.container.chargebacks

    first = service.needing_attention("disputed", limit=2, cursor=None)
    rest = service.needing_attention("disputed", limit=100, cursor=first["next"])
    listed = [o["order_id"] for o in first["results"] + rest["results"]]

    assert set(made) <= set(listed) and len(listed) == len(set(listed))
    assert all(o["dispute"]["status"] == "open" and o["user_id"] == BUYER for o in first["results"])
    with pytest.raises(BadRequest):
        service.needing_attention("paid", limit=10, cursor=None)


def test_a_reversal_reported_before_the_dispute_it_settles_still_records_the_outcome(shop):
    order, capture_id = paid_with_capture(shop, shop.seats[:1])
    dispute = open_dispute(shop, capture_id)
    shop.emulator.resolve_dispute(dispute["dispute_id"], "RESOLVED_BUYER_FAVOUR")

    # PayPal's deliveries race: the capture's reversal is handled first, then the resolution.
    assert deliver(shop, "PAYMENT.CAPTURE.REVERSED", {"id": capture_id}) == "reversed"
    assert deliver(shop, "CUSTOMER.DISPUTE.RESOLVED", {"dispute_id": dispute["dispute_id"]}) == "reversed"

    stored = shop.order(order["order_id"])
    assert (stored.status, stored.dispute_status, stored.dispute_outcome) == (
        "reversed",
        "resolved",
        "RESOLVED_BUYER_FAVOUR",
    )
