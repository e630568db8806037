"""The purchase worker (app.purchase_worker, fed real SQS batches) against moto and the PayPal emulator:
exactly-once completion under redelivery, no partial state, and a refund when the seats were lost.

The Lambda handler is the one in app.py; the test binds the module's Container as the process container
(the composition root a Lambda container would build from its environment).
"""

from __future__ import annotations

import time

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from chalicelib import holds
from chalicelib.storage.models import Cart, Ticket
from chalicelib.storage.orders import StaleState
from local.gateway import lambda_context

BUYER, OTHER = "purchase-buyer", "purchase-other"


def invoke(app_module, shop, messages: list[dict]) -> dict:
    return app_module.purchase_worker(shop.sqs_event("purchases", messages), lambda_context("purchases_worker"))


def snapshot(shop, order_id: str) -> tuple:
    """Everything the purchase touches: the order, its tickets, the buyer's cart."""
    order = shop.order(order_id)
    tickets = tuple(sorted(Ticket.get(shop.showtime_id, t).attribute_values.items()) for t in order.ticket_ids)
    cart = Cart.get(order.user_id, shop.showtime_id, consistent_read=True).attribute_values
    return order, tickets, sorted((k, str(v)) for k, v in cart.items())


def steal(shop, ticket_id: str) -> None:
    """Someone else ends up owning a seat of the order (the lost-seat case the worker must survive)."""
    Ticket(shop.showtime_id, ticket_id).update(
        actions=[Ticket.status.set(holds.SOLD), Ticket.holder.set(OTHER), Ticket.order_id.set("someone-elses-order")]
    )


def run_until(poller, done, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the worker did not finish in time"
        poller.poll_once()


def test_worker_sells_the_tickets_and_marks_the_order_paid(app_module, shop):
    seats = shop.seats[:2]
    created = shop.captured(BUYER, seats)
    poller = shop.poller("purchases", app_module.purchase_worker)

    run_until(poller, lambda: shop.order(created["order_id"]).status == "paid")

    for ticket_id in seats:
        stored = shop.ticket(ticket_id)
        assert (stored.status, stored.holder, stored.order_id) == (holds.SOLD, BUYER, created["order_id"])
        assert stored.hold_expires_at is None
    cart = Cart.get(BUYER, shop.showtime_id, consistent_read=True)
    assert not set(seats) & set(cart.holds.as_dict())


def test_redelivered_purchase_changes_nothing_once_the_order_is_paid(app_module, shop):
    created = shop.captured(BUYER, shop.seats[:2])
    messages = shop.receive_for("purchases", created["order_id"])

    assert invoke(app_module, shop, messages) == {"batchItemFailures": []}
    after_first = snapshot(shop, created["order_id"])
    assert invoke(app_module, shop, messages) == {"batchItemFailures": []}

    assert snapshot(shop, created["order_id"]) == after_first
    assert after_first[0].status == "paid"
    capture_id = shop.capture_id(created["paypal_order_id"])
    assert shop.emulator.refunds_of(capture_id) == []


def test_a_failed_purchase_transaction_leaves_no_ticket_sold(shop):
    seats = shop.seats[:3]
    created = shop.captured(BUYER, seats)
    steal(shop, seats[2])
    order = shop.order(created["order_id"])

    with pytest.raises(StaleState):
        shop.payments.orders.complete_purchase(order)

    assert shop.order(created["order_id"]).status == "processing"
    for ticket_id in seats[:2]:
        stored = shop.ticket(ticket_id)
        assert (stored.status, stored.order_id) == (holds.CHECKOUT, created["order_id"])


def test_lost_seats_after_capture_are_refunded_once_and_the_order_fails(app_module, shop):
    seats = shop.seats[:3]
    created = shop.captured(BUYER, seats)
    steal(shop, seats[2])
    messages = shop.receive_for("purchases", created["order_id"])

    assert invoke(app_module, shop, messages) == {"batchItemFailures": []}
    assert invoke(app_module, shop, messages) == {"batchItemFailures": []}  # redelivered: nothing more

    capture_id = shop.capture_id(created["paypal_order_id"])
    assert [r["amount"] for r in shop.emulator.refunds_of(capture_id)] == ["30.00"]
    view = shop.payments.order(BUYER, created["order_id"])
    assert view["status"] == "failed"
    assert [(r["status"], r["amount"]) for r in view["refunds"]] == [("completed", "30.00")]
    assert view["refunds"][0]["reason"]
    # No double sale: the other buyer keeps the lost seat; the seats still ours go back on sale.
    assert (shop.ticket(seats[2]).status, shop.ticket(seats[2]).holder) == (holds.SOLD, OTHER)
    assert {shop.ticket(t).status for t in seats[:2]} == {holds.AVAILABLE}


def test_a_worker_that_fails_midway_is_redelivered_and_finishes_exactly_once(app_module, shop):
    seats = shop.seats[:2]
    created = shop.captured(BUYER, seats)
    steal(shop, seats[1])
    capture_id = shop.capture_id(created["paypal_order_id"])
    shop.emulator.fault("refund", "error500", count=3)  # every attempt of the automatic refund fails
    poller = shop.poller("purchases", app_module.purchase_worker)
    messages = shop.receive_for("purchases", created["order_id"])

    with pytest.raises(BatchProcessingError):  # every record failed: the invocation fails, as Lambda sees it
        invoke(app_module, shop, messages)
    assert shop.order(created["order_id"]).status == "processing"
    assert shop.emulator.refunds_of(capture_id) == []

    # The message was not deleted: the poller gets it again once it is visible, and this time PayPal answers.
    run_until(poller, lambda: shop.order(created["order_id"]).status == "failed")
    assert [r["amount"] for r in shop.emulator.refunds_of(capture_id)] == ["20.00"]
    assert shop.ticket(seats[0]).status == holds.AVAILABLE


def test_a_batch_reports_only_its_failing_record(app_module, shop):
    good = shop.captured(BUYER, shop.seats[:1])
    bad = shop.captured(OTHER, shop.seats[1:3])
    steal(shop, shop.seats[2])
    shop.emulator.fault("refund", "error500", count=3)
    messages = shop.receive_for("purchases", good["order_id"]) + shop.receive_for("purchases", bad["order_id"])

    result = invoke(app_module, shop, messages)

    bad_message = next(m for m in messages if bad["order_id"] in m["Body"])
    assert result == {"batchItemFailures": [{"itemIdentifier": bad_message["MessageId"]}]}
    assert shop.order(good["order_id"]).status == "paid"
    assert shop.order(bad["order_id"]).status == "processing"


def test_purchase_for_an_unknown_order_is_dropped_not_retried(app_module, shop):
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": '{"order_id": "no-such-order"}'}

    assert invoke(app_module, shop, [message]) == {"batchItemFailures": []}
