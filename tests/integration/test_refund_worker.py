"""Refund requests and the refund worker (app.refund_worker, real SQS batches) against moto and the PayPal
emulator: statuses and amounts, the refusals of the contract, PayPal failing, lost answers, and refusals
coming from PayPal itself. The emulator sends no webhooks here, so only the worker moves refunds.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from chalicelib import holds
from chalicelib.errors import BadRequest, NotFound, NotRefundable, PaymentProviderUnavailable
from chalicelib.queues import QueuePublisher
from chalicelib.services.refunds import RefundService
from chalicelib.storage.models import Ticket
from chalicelib.storage.orders import RefundEntry, StaleState
from local.gateway import lambda_context
from tests.support.payflow import webhook_event

BUYER, OTHER = "refund-buyer", "refund-other"


def invoke(app_module, shop, messages: list[dict]) -> dict:
    return app_module.refund_worker(shop.sqs_event("refunds", messages), lambda_context("refunds_worker"))


def run_until(poller, done, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the refund worker did not finish in time"
        poller.poll_once()


def refunds_at_paypal(shop, order: dict) -> list[str]:
    return [r["amount"] for r in shop.emulator.refunds_of(shop.capture_id(order["paypal_order_id"]))]


def test_partial_then_full_refund_move_the_order_and_free_exactly_those_seats(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    poller = shop.poller("refunds", app_module.refund_worker)

    first = shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    assert (first["status"], first["amount"], first["currency"]) == ("pending", "10.00", "USD")
    assert shop.order(order["order_id"]).status == "refund_pending"
    run_until(poller, lambda: shop.order(order["order_id"]).status == "partially_refunded")

    assert refunds_at_paypal(shop, order) == ["10.00"]
    assert (shop.ticket(seats[0]).status, shop.ticket(seats[0]).holder) == (holds.AVAILABLE, None)
    assert shop.ticket(seats[1]).status == holds.SOLD
    view = shop.payments.order(BUYER, order["order_id"])
    assert [(r["refund_id"], r["status"], r["amount"]) for r in view["refunds"]] == [
        (first["refund_id"], "completed", "10.00")
    ]

    rest = shop.refunds.request(BUYER, order["order_id"], None)
    assert rest["amount"] == "10.00"
    run_until(poller, lambda: shop.order(order["order_id"]).status == "refunded")
    assert refunds_at_paypal(shop, order) == ["10.00", "10.00"]
    assert shop.ticket(seats[1]).status == holds.AVAILABLE
    assert shop.emulator.capture_of(order["paypal_order_id"])["status"] == "REFUNDED"


def test_refund_while_one_is_pending_or_when_nothing_is_left_is_not_refundable(shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    shop.refunds.request(BUYER, order["order_id"], [seats[0]])

    with pytest.raises(NotRefundable):
        shop.refunds.request(BUYER, order["order_id"], [seats[1]])
    with pytest.raises(NotRefundable):
        shop.refunds.request(BUYER, order["order_id"], None)


def test_refunding_refunded_tickets_again_is_not_refundable(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    run_until(
        shop.poller("refunds", app_module.refund_worker),
        lambda: shop.order(order["order_id"]).status == "partially_refunded",
    )

    with pytest.raises(NotRefundable):
        shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    with pytest.raises(BadRequest):
        shop.refunds.request(BUYER, order["order_id"], [shop.seats[5]])  # not a ticket of this order
    assert shop.order(order["order_id"]).status == "partially_refunded"


def test_a_refund_computed_from_a_read_taken_before_another_refund_completed_is_refused(app_module, shop):
    seats = shop.seats[:3]
    order = shop.paid(BUYER, seats)
    poller = shop.poller("refunds", app_module.refund_worker)
    shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    run_until(poller, lambda: shop.order(order["order_id"]).status == "partially_refunded")
    stale = shop.order(order["order_id"])  # partially refunded: seats[0] only
    shop.refunds.request(BUYER, order["order_id"], [seats[1]])
    run_until(poller, lambda: len(shop.order(order["order_id"]).refunded_ticket_ids) == 2)
    # The order reads "partially_refunded" again, as in the stale read, but seats[1] was paid back in
    # between: a refund of it computed from the stale read must be refused by the write's condition.
    again = RefundEntry(
        refund_id="from-a-stale-read",
        status="pending",
        amount="10.00",
        ticket_ids=(seats[1],),
        previous_status="partially_refunded",
    )
    with pytest.raises(StaleState):
        shop.refunds._orders.request_refund(stale, again, "2030-01-01T00:00:00Z")
    assert shop.order(order["order_id"]).status == "partially_refunded"
    assert refunds_at_paypal(shop, order) == ["10.00", "10.00"]


def refunds_at(shop, moment: float) -> RefundService:
    """The refund service of the shop's container with its clock at `moment` (the sweeper's `now`)."""
    container = shop.container
    return RefundService(
        orders=container.payments.orders,
        payments=container.payments,
        catalog=container.catalog,
        paypal=container.paypal,
        refunds=QueuePublisher(container.sqs_client, container.settings.refunds_queue_url, "refunds"),
        cutoff_seconds=container.settings.refund_cutoff_seconds,
        chargebacks=container.chargebacks,
        webhook_id=None,
        clock=lambda: moment,
    )


def test_a_refund_whose_message_was_lost_is_re_sent_by_the_sweeper_and_refunds_once(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    requested_at = time.time()
    shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    assert len(shop.take("refunds", order["order_id"])) == 1  # the message is lost

    assert refunds_at(shop, requested_at + 10).resend_stalled(grace_seconds=300) == 0  # too early to tell
    # The sweeper's index lists orders past their (payment window) expiry: a later sweep sees it.
    later = max(requested_at + 301, shop.order(order["order_id"]).expires_at + 1)
    assert refunds_at(shop, later).resend_stalled(grace_seconds=300) == 1
    run_until(
        shop.poller("refunds", app_module.refund_worker),
        lambda: shop.order(order["order_id"]).status == "partially_refunded",
    )
    assert refunds_at_paypal(shop, order) == ["10.00"]
    assert refunds_at(shop, later + 600).resend_stalled(grace_seconds=300) == 0  # settled


def test_refunding_someone_elses_order_is_not_found(shop):
    order = shop.paid(BUYER, shop.seats[:1])

    with pytest.raises(NotFound):
        shop.refunds.request(OTHER, order["order_id"], None)
    assert shop.order(order["order_id"]).status == "paid"


def test_an_unpaid_order_is_not_refundable(shop):
    created = shop.checkout(BUYER, shop.seats[:1])

    with pytest.raises(NotRefundable):
        shop.refunds.request(BUYER, created["order_id"], None)


def test_refund_within_the_cutoff_before_the_showtime_is_not_refundable(lab):
    lab.emulator.clear_faults()
    # The default cutoff is an hour; this showtime starts in twenty minutes.
    shop = lab.shop(starts_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20))
    order = shop.paid(BUYER, shop.seats[:1])

    with pytest.raises(NotRefundable):
        shop.refunds.request(BUYER, order["order_id"], None)
    assert shop.order(order["order_id"]).status == "paid"


def test_paypal_failing_is_retried_through_sqs_and_refunds_once(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    shop.emulator.fault("refund", "error500", count=3)  # every attempt of the first delivery
    shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    messages = shop.receive_for("refunds", order["order_id"])

    with pytest.raises(BatchProcessingError):
        invoke(app_module, shop, messages)
    assert shop.order(order["order_id"]).status == "refund_pending"
    assert refunds_at_paypal(shop, order) == []

    run_until(
        shop.poller("refunds", app_module.refund_worker),
        lambda: shop.order(order["order_id"]).status == "partially_refunded",
    )
    assert refunds_at_paypal(shop, order) == ["10.00"]


def test_a_worker_that_dies_after_paypal_refunded_never_refunds_twice(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    # PayPal refunds on the first attempt, but no attempt of this delivery ever hears the answer.
    shop.emulator.fault("refund", "lost_response", count=3)
    shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    messages = shop.receive_for("refunds", order["order_id"])

    with pytest.raises(BatchProcessingError):
        invoke(app_module, shop, messages)
    assert refunds_at_paypal(shop, order) == ["10.00"]
    assert shop.order(order["order_id"]).status == "refund_pending"

    run_until(
        shop.poller("refunds", app_module.refund_worker),
        lambda: shop.order(order["order_id"]).status == "partially_refunded",
    )
    assert invoke(app_module, shop, messages) == {"batchItemFailures": []}  # a late duplicate: no effect
    assert refunds_at_paypal(shop, order) == ["10.00"]
    assert shop.order(order["order_id"]).status == "partially_refunded"


def test_a_refund_paypal_refuses_fails_with_a_reason_and_the_order_returns_to_paid(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    capture_id = shop.capture_id(order["paypal_order_id"])
    shop.emulator.dashboard_refund(capture_id, "15.00")  # only 5.00 is left at PayPal
    request = shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    messages = shop.receive_for("refunds", order["order_id"])

    assert invoke(app_module, shop, messages) == {"batchItemFailures": []}

    view = shop.payments.order(BUYER, order["order_id"])
    assert view["status"] == "paid"
    refund = next(r for r in view["refunds"] if r["refund_id"] == request["refund_id"])
    assert refund["status"] == "failed"
    assert refund["reason"] == "The refund is larger than what is left of the payment."
    assert shop.ticket(seats[0]).status == holds.SOLD
    assert [r["amount"] for r in shop.emulator.refunds_of(capture_id)] == ["15.00"]


def test_a_refund_past_paypals_refund_window_fails_with_a_reason_the_buyer_can_read(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    shop.refunds.request(BUYER, order["order_id"], None)
    shop.emulator.fault("refund", "refund_time_limit")
    messages = shop.receive_for("refunds", order["order_id"])

    assert invoke(app_module, shop, messages) == {"batchItemFailures": []}

    view = shop.payments.order(BUYER, order["order_id"])
    assert view["status"] == "paid"
    assert [(r["status"], r["reason"]) for r in view["refunds"]] == [
        ("failed", "The refund window for this payment has passed.")
    ]
    assert [shop.ticket(seat).status for seat in seats] == [holds.SOLD, holds.SOLD]
    assert shop.emulator.refunds_of(shop.capture_id(order["paypal_order_id"])) == []


def test_a_refund_of_a_capture_already_fully_refunded_at_paypal_completes(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    capture_id = shop.capture_id(order["paypal_order_id"])
    shop.emulator.dashboard_refund(capture_id)  # its webhook never reached us
    shop.refunds.request(BUYER, order["order_id"], None)
    messages = shop.receive_for("refunds", order["order_id"])

    assert invoke(app_module, shop, messages) == {"batchItemFailures": []}

    assert shop.order(order["order_id"]).status == "refunded"
    assert {shop.ticket(t).status for t in seats} == {holds.AVAILABLE}
    assert [r["amount"] for r in shop.emulator.refunds_of(capture_id)] == ["20.00"]


# ---- refunds made in PayPal's dashboard, reported by webhook ----------------------------------------------


def deliver_refund_webhook(shop, paypal_refund_id: str, event_id: str | None = None) -> dict:
    body = json.dumps(webhook_event("PAYMENT.CAPTURE.REFUNDED", {"id": paypal_refund_id}, event_id)).encode()
    return shop.refunds.webhook({}, body)


def test_a_dashboard_refund_during_a_pending_refund_is_deferred_then_recorded(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    capture_id = shop.capture_id(order["paypal_order_id"])
    shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    dashboard = shop.emulator.dashboard_refund(capture_id, "10.00")

    # Ours is still pending: the webhook asks PayPal to come back rather than guess which seat it paid for.
    with pytest.raises(PaymentProviderUnavailable):
        deliver_refund_webhook(shop, dashboard["id"], "WH-DASHBOARD-1")
    run_until(
        shop.poller("refunds", app_module.refund_worker),
        lambda: shop.order(order["order_id"]).status == "partially_refunded",
    )

    assert deliver_refund_webhook(shop, dashboard["id"], "WH-DASHBOARD-1") == {"status": "recorded"}
    view = shop.payments.order(BUYER, order["order_id"])
    assert view["status"] == "refunded"
    assert sorted(r["amount"] for r in view["refunds"]) == ["10.00", "10.00"]
    assert {shop.ticket(t).status for t in seats} == {holds.AVAILABLE}


def test_the_webhook_of_our_own_refund_is_recognised_while_it_is_pending(shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    request = shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    # The worker's PayPal call went through; its webhook overtakes the worker's own bookkeeping.
    refund = shop.container.paypal().refund_capture(
        shop.capture_id(order["paypal_order_id"]),
        request_id=f"refund-{request['refund_id']}",
        amount=Decimal("10.00"),
        currency="USD",
        invoice_id=f"{order['order_id']}-{request['refund_id']}",
    )

    assert deliver_refund_webhook(shop, refund["id"]) == {"status": "known"}
    assert shop.order(order["order_id"]).status == "refund_pending"
    assert shop.refunds.process(order["order_id"], request["refund_id"]) == "completed"
    assert shop.order(order["order_id"]).status == "partially_refunded"
    assert [r["amount"] for r in shop.emulator.refunds_of(shop.capture_id(order["paypal_order_id"]))] == ["10.00"]


def test_a_dashboard_refund_of_an_odd_amount_is_recorded_as_paypal_moved_it(shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    dashboard = shop.emulator.dashboard_refund(shop.capture_id(order["paypal_order_id"]), "4.00")

    assert deliver_refund_webhook(shop, dashboard["id"]) == {"status": "recorded"}

    view = shop.payments.order(BUYER, order["order_id"])
    assert view["status"] == "partially_refunded"
    assert [(r["amount"], r["ticket_ids"]) for r in view["refunds"]] == [("4.00", [])]
    assert {shop.ticket(t).status for t in seats} == {holds.SOLD}  # 4.00 pays for no whole seat


def test_a_refund_paypal_made_but_we_cannot_record_is_retried_not_dropped(app_module, shop):
    seats = shop.seats[:2]
    order = shop.paid(BUYER, seats)
    shop.refunds.request(BUYER, order["order_id"], [seats[0]])
    # The seat is no longer sold to this order (a bug elsewhere): the refund's transaction cannot apply.
    Ticket(shop.showtime_id, seats[0]).update(actions=[Ticket.status.set(holds.AVAILABLE)])
    messages = shop.receive_for("refunds", order["order_id"])

    with pytest.raises(BatchProcessingError):  # not acknowledged: retried, then dead-lettered for a human
        invoke(app_module, shop, messages)

    assert shop.order(order["order_id"]).status == "refund_pending"
    assert refunds_at_paypal(shop, order) == ["10.00"]
    with pytest.raises(BatchProcessingError):
        invoke(app_module, shop, messages)
    assert refunds_at_paypal(shop, order) == ["10.00"]  # the retry replays PayPal's answer, never refunds again
