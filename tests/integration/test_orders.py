"""Checkout against moto and the PayPal emulator over loopback HTTP: create, execute, cancel, expiry, and the
webhooks that converge an order, with PayPal faults injected through the emulator's control endpoint.

The emulator runs without a webhook URL here, so nothing captures behind a test's back; tests that need a
webhook build the envelope themselves (the handler re-reads the resource from PayPal anyway).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from chalicelib import holds
from chalicelib.errors import (
    BadRequest,
    Forbidden,
    NoHolds,
    NotCancellable,
    NotFound,
    OrderCancelled,
    OrderExpired,
    OrderNotApproved,
    PaymentDeclined,
    PaymentProviderUnavailable,
    WebhooksDisabled,
)
from chalicelib.services.payments import CAPTURE_GRACE_SECONDS, PaymentService
from chalicelib.storage.catalog import encode_cursor
from chalicelib.wiring import Container
from tests.support.payflow import PaymentLab, Shop, approve_on_page, standalone_emulator, wait_until, webhook_event

BUYER, OTHER = "buyer-1", "buyer-2"


@pytest.fixture(scope="module")
def lab(moto_endpoint):
    with standalone_emulator() as emulator:
        yield PaymentLab(moto_endpoint, emulator)


@pytest.fixture
def make_shop(lab):
    lab.emulator.clear_faults()
    yield lab.shop
    lab.emulator.clear_faults()


@pytest.fixture
def shop(make_shop) -> Shop:
    return make_shop()


def sweep_until_expired(shop: Shop, order_id: str) -> None:
    """Run the sweeper (as the schedule does) until the window has passed and it expired this order."""

    def expired() -> bool:
        shop.payments.expire_orders()
        return shop.order(order_id).status == "expired"

    wait_until(expired, timeout=15, interval=0.5, what=f"the sweeper to expire {order_id}")


def sweeper_at(shop: Shop, moment: float) -> PaymentService:
    """The payment service of the shop's settings with its clock at `moment` (the sweeper's `now`)."""
    return Container(shop.container.settings, clock=lambda: moment).payments


def deliver(shop: Shop, event_type: str, resource: dict, event_id: str | None = None) -> dict:
    body = json.dumps(webhook_event(event_type, resource, event_id)).encode()
    return shop.refunds.webhook({}, body)


# ---- create ----------------------------------------------------------------------------------------------


def test_create_without_holds_is_refused_with_no_holds(shop):
    with pytest.raises(NoHolds):
        shop.payments.create(BUYER, shop.showtime_id)


def test_create_prices_the_order_on_the_server_and_moves_the_holds_into_checkout(shop):
    seats = shop.seats[:2]
    shop.hold(BUYER, seats)

    created = shop.payments.create(BUYER, shop.showtime_id)

    assert created["status"] == "created"
    assert (created["amount"], created["currency"]) == ("20.00", "USD")
    assert sorted(t["ticket_id"] for t in created["tickets"]) == sorted(seats)
    assert shop.emulator.order(created["paypal_order_id"])["amount"] == "20.00"
    for ticket_id in seats:
        stored = shop.ticket(ticket_id)
        assert (stored.status, stored.order_id, stored.holder) == (holds.CHECKOUT, created["order_id"], BUYER)
    seen_by_others = {
        t["ticket_id"]: t["status"] for t in shop.container.catalog.showtime_tickets(shop.showtime_id, OTHER)
    }
    assert [seen_by_others[t] for t in seats] == ["held", "held"]
    assert shop.payments.cart(BUYER, shop.showtime_id)["total"] == "20.00"


def test_second_create_with_the_same_holds_returns_the_same_order(shop):
    first = shop.checkout(BUYER, shop.seats[:2])

    again = shop.payments.create(BUYER, shop.showtime_id)

    assert (again["order_id"], again["paypal_order_id"]) == (first["order_id"], first["paypal_order_id"])
    orders_at_paypal = shop.emulator.state()["orders_by_id"].values()
    assert [o["custom_id"] for o in orders_at_paypal].count(first["order_id"]) == 1


def test_create_with_different_holds_cancels_the_open_order_and_starts_anew(shop):
    first = shop.checkout(BUYER, shop.seats[:2])
    shop.hold(BUYER, shop.seats[2:3])

    second = shop.payments.create(BUYER, shop.showtime_id)

    assert second["order_id"] != first["order_id"]
    assert sorted(t["ticket_id"] for t in second["tickets"]) == sorted(shop.seats[:3])
    assert second["amount"] == "30.00"
    assert shop.order(first["order_id"]).status == "cancelled"
    assert {shop.ticket(t).order_id for t in shop.seats[:3]} == {second["order_id"]}


# ---- execute ---------------------------------------------------------------------------------------------


def test_execute_before_approval_is_not_approved_and_does_not_block_a_later_capture(shop):
    created = shop.checkout(BUYER, shop.seats[:1])

    with pytest.raises(OrderNotApproved):
        shop.payments.execute(BUYER, created["paypal_order_id"])
    assert shop.order(created["order_id"]).status == "created"

    approve_on_page(created["approval_url"])
    assert shop.payments.execute(BUYER, created["paypal_order_id"])["status"] == "processing"
    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1


def test_declined_payment_is_refused_and_the_buyer_can_approve_again_and_pay(shop):
    created = shop.checkout(BUYER, shop.seats[:2])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("capture", "declined")

    with pytest.raises(PaymentDeclined):
        shop.payments.execute(BUYER, created["paypal_order_id"])
    assert shop.order(created["order_id"]).status == "created"
    assert shop.ticket(shop.seats[0]).status == holds.CHECKOUT
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []

    approve_on_page(created["approval_url"])
    assert shop.payments.execute(BUYER, created["paypal_order_id"])["status"] == "processing"
    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1
    assert shop.emulator.order(created["paypal_order_id"])["declined_attempts"] == 1


def test_one_paypal_500_on_capture_is_retried_with_the_same_key_and_charges_once(shop):
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("capture", "error500", count=1)

    assert shop.payments.execute(BUYER, created["paypal_order_id"])["status"] == "processing"
    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1


def test_paypal_failing_every_attempt_answers_unavailable_and_a_later_execute_pays_once(shop):
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("capture", "error500", count=3)

    with pytest.raises(PaymentProviderUnavailable):
        shop.payments.execute(BUYER, created["paypal_order_id"])
    assert shop.order(created["order_id"]).status == "created"
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []

    assert shop.payments.execute(BUYER, created["paypal_order_id"])["status"] == "processing"
    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1


def test_lost_capture_response_is_read_back_from_paypal_and_never_charged_twice(shop):
    created = shop.checkout(BUYER, shop.seats[:2])
    approve_on_page(created["approval_url"])
    # Every attempt of the client loses its answer: the first one captured, the retries replay it.
    shop.emulator.fault("capture", "lost_response", count=3)

    assert shop.payments.execute(BUYER, created["paypal_order_id"])["status"] == "processing"
    assert shop.payments.execute(BUYER, created["paypal_order_id"])["status"] == "processing"

    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1
    order = shop.order(created["order_id"])
    assert order.capture_id == shop.capture_id(created["paypal_order_id"])
    assert len(shop.take("purchases", created["order_id"])) == 1


def test_repeated_execute_captures_once_and_queues_one_purchase(shop):
    created = shop.checkout(BUYER, shop.seats[:2])
    approve_on_page(created["approval_url"])

    answers = [shop.payments.execute(BUYER, created["paypal_order_id"])["status"] for _ in range(3)]

    assert answers == ["processing"] * 3
    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1
    assert len(shop.take("purchases", created["order_id"])) == 1


def test_concurrent_executes_capture_once(shop):
    created = shop.checkout(BUYER, shop.seats[:2])
    approve_on_page(created["approval_url"])
    start = threading.Barrier(6)
    answers: list[object] = []

    def execute() -> None:
        start.wait()
        try:
            answers.append(shop.payments.execute(BUYER, created["paypal_order_id"])["status"])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            answers.append(exc)

    threads = [threading.Thread(target=execute) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert answers == ["processing"] * 6
    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1
    assert len(shop.take("purchases", created["order_id"])) == 1


# ---- cancel and ownership --------------------------------------------------------------------------------


def test_cancel_returns_the_seats_to_plain_holds_until_their_original_expiry_and_a_new_create_pays(shop):
    seats = shop.seats[:2]
    expiries = shop.hold(BUYER, seats)
    created = shop.payments.create(BUYER, shop.showtime_id)

    assert shop.payments.cancel(BUYER, created["paypal_order_id"]) == {
        "order_id": created["order_id"],
        "status": "cancelled",
    }
    assert shop.payments.cancel(BUYER, created["paypal_order_id"])["status"] == "cancelled"
    for ticket_id in seats:
        stored = shop.ticket(ticket_id)
        assert (stored.status, stored.holder, int(stored.hold_expires_at)) == (holds.HELD, BUYER, expiries[ticket_id])
        assert stored.order_id is None
    cart = shop.payments.cart(BUYER, shop.showtime_id)
    assert sorted(t["ticket_id"] for t in cart["tickets"]) == sorted(seats)
    assert cart["expires_at"] == holds.iso(min(expiries.values()))

    again = shop.payments.create(BUYER, shop.showtime_id)
    assert again["order_id"] != created["order_id"]
    approve_on_page(again["approval_url"])
    assert shop.payments.execute(BUYER, again["paypal_order_id"])["status"] == "processing"


def test_execute_of_a_cancelled_order_is_refused_even_if_paypal_approved_it(shop):
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])
    shop.payments.cancel(BUYER, created["paypal_order_id"])

    with pytest.raises(OrderCancelled):
        shop.payments.execute(BUYER, created["paypal_order_id"])
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []


def test_cancel_is_refused_once_the_payment_is_processing(shop):
    created = shop.captured(BUYER, shop.seats[:1])

    with pytest.raises(NotCancellable):
        shop.payments.cancel(BUYER, created["paypal_order_id"])


def test_another_user_cannot_execute_cancel_or_read_the_order(shop):
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])

    with pytest.raises(Forbidden):
        shop.payments.execute(OTHER, created["paypal_order_id"])
    with pytest.raises(Forbidden):
        shop.payments.cancel(OTHER, created["paypal_order_id"])
    with pytest.raises(NotFound):
        shop.payments.order(OTHER, created["order_id"])
    assert shop.order(created["order_id"]).status == "created"
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []


# ---- the payment window --------------------------------------------------------------------------------


def test_approved_order_past_its_window_is_expired_resold_and_never_captured(make_shop):
    shop = make_shop(PAYMENT_WINDOW_SECONDS="2")
    seats = shop.seats[:2]
    created = shop.checkout(BUYER, seats)
    approve_on_page(created["approval_url"])

    sweep_until_expired(shop, created["order_id"])
    assert shop.order(created["order_id"]).status == "expired"
    assert {shop.ticket(t).status for t in seats} == {holds.AVAILABLE}
    shop.hold(OTHER, seats)

    with pytest.raises(OrderExpired):
        shop.payments.execute(BUYER, created["paypal_order_id"])
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []
    assert {(shop.ticket(t).status, shop.ticket(t).holder) for t in seats} == {(holds.HELD, OTHER)}


def test_capture_that_lands_after_the_order_expired_is_refunded(make_shop):
    shop = make_shop(PAYMENT_WINDOW_SECONDS="2")
    created = shop.checkout(BUYER, shop.seats[:2])
    approve_on_page(created["approval_url"])
    sweep_until_expired(shop, created["order_id"])
    # A capture whose request was in flight when the window closed lands at PayPal after all.
    shop.container.paypal().capture_order(created["paypal_order_id"], request_id="late-capture")
    capture_id = shop.capture_id(created["paypal_order_id"])

    outcome = deliver(shop, "PAYMENT.CAPTURE.COMPLETED", {"id": capture_id})
    deliver(shop, "PAYMENT.CAPTURE.COMPLETED", {"id": capture_id})  # PayPal redelivers: still one refund

    assert outcome["status"] == "refunded"
    assert [r["amount"] for r in shop.emulator.refunds_of(capture_id)] == ["20.00"]
    order = shop.order(created["order_id"])
    assert order.status == "expired"
    assert [(r.status, r.amount, r.source) for r in order.refunds] == [("completed", "20.00", "system")]
    assert {shop.ticket(t).status for t in shop.seats[:2]} == {holds.AVAILABLE}


def test_a_capture_attempt_that_died_midway_is_expired_once_no_attempt_can_still_be_running(shop):
    seats = shop.seats[:2]
    created = shop.checkout(BUYER, seats)
    approve_on_page(created["approval_url"])
    # The Lambda that began the capture died before calling PayPal: the order is `processing`, uncaptured.
    shop.payments.orders.begin_capture(shop.order(created["order_id"]), time.time())
    window_end = shop.order(created["order_id"]).expires_at

    sweeper_at(shop, window_end + 1).expire_orders()  # an attempt could still be in flight: hands off
    assert shop.order(created["order_id"]).status == "processing"

    sweeper_at(shop, window_end + CAPTURE_GRACE_SECONDS + 1).expire_orders()
    assert shop.order(created["order_id"]).status == "expired"
    assert {shop.ticket(t).status for t in seats} == {holds.AVAILABLE}
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []


def test_a_capture_attempt_that_died_after_paypal_captured_is_settled_not_expired(shop):
    created = shop.checkout(BUYER, shop.seats[:2])
    approve_on_page(created["approval_url"])
    attempt = shop.payments.orders.begin_capture(shop.order(created["order_id"]), time.time())
    # PayPal captured, and the Lambda died before it heard the answer.
    shop.container.paypal().capture_order(
        created["paypal_order_id"], request_id=f"capture-{created['order_id']}-{attempt}"
    )
    window_end = shop.order(created["order_id"]).expires_at

    sweeper_at(shop, window_end + CAPTURE_GRACE_SECONDS + 1).expire_orders()

    order = shop.order(created["order_id"])
    assert (order.status, order.capture_id) == ("processing", shop.capture_id(created["paypal_order_id"]))
    assert len(shop.take("purchases", created["order_id"])) == 1
    assert shop.payments.complete_purchase(created["order_id"], shop.refunds.refund_lost_seats) == "paid"


def test_a_captured_order_whose_purchase_message_was_lost_is_finished_by_the_sweeper(shop):
    created = shop.captured(BUYER, shop.seats[:2])
    assert len(shop.take("purchases", created["order_id"])) == 1  # the message is lost
    window_end = shop.order(created["order_id"]).expires_at

    sweeper_at(shop, window_end + 1).expire_orders()  # the worker may still be on it: hands off
    assert shop.take("purchases", created["order_id"]) == []

    sweeper_at(shop, window_end + CAPTURE_GRACE_SECONDS + 1).expire_orders()
    assert len(shop.take("purchases", created["order_id"])) == 1
    assert shop.payments.complete_purchase(created["order_id"], shop.refunds.refund_lost_seats) == "paid"
    assert {shop.ticket(t).status for t in shop.seats[:2]} == {holds.SOLD}

    sweeper_at(shop, window_end + CAPTURE_GRACE_SECONDS + 120).expire_orders()  # paid: out of the index
    assert shop.take("purchases", created["order_id"]) == []
    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1


def test_a_pending_capture_is_not_handed_to_the_purchase_worker_by_the_sweeper(shop):
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("capture", "pending")
    assert shop.payments.execute(BUYER, created["paypal_order_id"])["status"] == "processing"
    window_end = shop.order(created["order_id"]).expires_at

    sweeper_at(shop, window_end + CAPTURE_GRACE_SECONDS + 1).expire_orders()

    assert shop.take("purchases", created["order_id"]) == []
    assert shop.order(created["order_id"]).status == "processing"
    assert shop.ticket(shop.seats[0]).status == holds.CHECKOUT


# ---- webhooks that converge an order ---------------------------------------------------------------------


def test_pending_capture_waits_for_the_completed_webhook_before_the_purchase(shop):
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("capture", "pending")

    assert shop.payments.execute(BUYER, created["paypal_order_id"])["status"] == "processing"
    assert len(shop.take("purchases", created["order_id"])) == 0
    assert shop.payments.expire_orders() == 0

    capture_id = shop.capture_id(created["paypal_order_id"])
    shop.emulator.complete_capture(capture_id)
    assert deliver(shop, "PAYMENT.CAPTURE.COMPLETED", {"id": capture_id})["status"] == "settled"

    assert len(shop.take("purchases", created["order_id"])) == 1
    assert shop.payments.complete_purchase(created["order_id"], shop.refunds.refund_lost_seats) == "paid"


def test_denied_capture_fails_the_order_and_frees_its_seats(shop):
    created = shop.checkout(BUYER, shop.seats[:2])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("capture", "pending")
    shop.payments.execute(BUYER, created["paypal_order_id"])
    capture_id = shop.capture_id(created["paypal_order_id"])

    shop.emulator.deny_capture(capture_id)
    deliver(shop, "PAYMENT.CAPTURE.DENIED", {"id": capture_id, "status": "COMPLETED"})

    assert shop.order(created["order_id"]).status == "failed"
    assert {shop.ticket(t).status for t in shop.seats[:2]} == {holds.AVAILABLE}
    assert len(shop.take("purchases", created["order_id"])) == 0


def test_completed_webhook_claiming_a_pending_capture_completed_changes_nothing(shop):
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("capture", "pending")
    shop.payments.execute(BUYER, created["paypal_order_id"])
    capture_id = shop.capture_id(created["paypal_order_id"])

    # The body says COMPLETED; PayPal still says PENDING.
    deliver(shop, "PAYMENT.CAPTURE.COMPLETED", {"id": capture_id, "status": "COMPLETED"})

    assert len(shop.take("purchases", created["order_id"])) == 0
    assert shop.order(created["order_id"]).status == "processing"


def test_webhook_answers_unavailable_while_paypal_cannot_be_reached_and_works_on_redelivery(shop):
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])
    shop.emulator.fault("get_order", "error500", count=3)
    event_id = "WH-UNREACHABLE-1"

    with pytest.raises(PaymentProviderUnavailable):
        deliver(shop, "CHECKOUT.ORDER.APPROVED", {"id": created["paypal_order_id"]}, event_id)
    assert shop.order(created["order_id"]).status == "created"

    # Not remembered as handled: PayPal's redelivery of the same event does the work.
    assert (
        deliver(shop, "CHECKOUT.ORDER.APPROVED", {"id": created["paypal_order_id"]}, event_id)["status"] == "captured"
    )
    assert len(shop.emulator.captures_of(created["paypal_order_id"])) == 1


def test_a_new_checkout_opened_while_the_last_one_is_processing_survives_its_purchase(shop):
    first = shop.captured(BUYER, shop.seats[:1])
    shop.hold(BUYER, shop.seats[1:2])
    second = shop.payments.create(BUYER, shop.showtime_id)

    assert shop.payments.complete_purchase(first["order_id"], shop.refunds.refund_lost_seats) == "paid"

    again = shop.payments.create(BUYER, shop.showtime_id)
    assert again["order_id"] == second["order_id"]
    assert [t["ticket_id"] for t in again["tickets"]] == shop.seats[1:2]


def test_with_a_webhook_id_configured_an_unsigned_webhook_is_refused_before_anything_is_read(make_shop):
    shop = make_shop(PAYPAL_WEBHOOK_ID="WH-LOCAL-ID")
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])

    with pytest.raises(BadRequest):
        deliver(shop, "CHECKOUT.ORDER.APPROVED", {"id": created["paypal_order_id"]})

    assert shop.order(created["order_id"]).status == "created"
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []


def test_with_webhooks_off_every_delivery_is_503_and_changes_nothing(make_shop):
    shop = make_shop(PAYPAL_WEBHOOKS="off")
    created = shop.checkout(BUYER, shop.seats[:1])
    approve_on_page(created["approval_url"])

    with pytest.raises(WebhooksDisabled):
        deliver(shop, "CHECKOUT.ORDER.APPROVED", {"id": created["paypal_order_id"]}, "WH-OFF-1")

    assert shop.order(created["order_id"]).status == "created"
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []


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
def test_events_about_resources_paypal_does_not_know_are_ignored(shop, event_type, resource):
    # Unverified here (local mode, no webhook id): what a genuine-looking event about nothing we sold does.
    assert deliver(shop, event_type, resource) == {"status": "ignored"}


def test_an_approval_event_for_an_order_paypal_says_is_not_approved_captures_nothing(shop):
    created = shop.checkout(BUYER, shop.seats[:1])

    outcome = deliver(shop, "CHECKOUT.ORDER.APPROVED", {"id": created["paypal_order_id"], "status": "APPROVED"})

    assert outcome == {"status": "ignored"}
    assert shop.emulator.captures_of(created["paypal_order_id"]) == []
    assert shop.order(created["order_id"]).status == "created"


# ---- a buyer's orders, page by page ---------------------------------------------------------------------------


def test_orders_page_through_the_buyers_own_orders_newest_first(shop):
    buyer = f"pager-{uuid.uuid4().hex[:6]}"
    made = [shop.paid(buyer, [seat])["order_id"] for seat in shop.seats[:3]]
    shop.paid(OTHER, [shop.seats[3]])

    first = shop.payments.list_orders(buyer, limit=2, cursor=None)
    second = shop.payments.list_orders(buyer, limit=2, cursor=first["next"])

    assert [o["order_id"] for o in first["results"] + second["results"]] == list(reversed(made))
    assert first["next"] and second["next"] is None
    # Another buyer's cursor pages through that buyer's own orders only.
    assert shop.payments.list_orders(OTHER, limit=2, cursor=first["next"])["results"] == []


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!",
        encode_cursor({"order_id": "x", "user_id": "y", "created_at": "z"}),
        encode_cursor({"order_id": "x"}),
        "eyJvcmRlcl9pZCI6IHsiUyI6ICJ4In19",  # {"order_id": {"S": "x"}}: a raw DynamoDB key
    ],
)
def test_a_crafted_orders_cursor_is_a_bad_request(shop, cursor):
    with pytest.raises(BadRequest, match="cursor"):
        shop.payments.list_orders(BUYER, limit=2, cursor=cursor)


# ---- what was bought, on the order and at PayPal (issue 16) ----------------------------------------------------


def test_an_order_names_the_event_showtime_theater_and_seats_as_they_were_at_checkout(shop):
    created = shop.checkout(BUYER, shop.seats[:2])
    showtime = shop.container.catalog.showtime(shop.showtime_id)
    event = shop.container.catalog.event(showtime.event_id)

    for view in (created, shop.payments.order(BUYER, created["order_id"])):
        assert (view["event_id"], view["event_title"]) == (event.id, event.title)
        assert (view["starts_at"], view["theater"]) == ("2031-01-01T19:30:00Z", showtime.theater)
        assert [(t["seat"], t["label"], t["row"], t["number"], t["price"]) for t in view["tickets"]] == [
            ("A1", "Row A, seat 1", "A", 1, "10.00"),
            ("A2", "Row A, seat 2", "A", 2, "10.00"),
        ]
    listing = shop.payments.list_orders(BUYER, limit=100, cursor=None)["results"]
    [listed] = [o for o in listing if o["order_id"] == created["order_id"]]
    assert listed["event_title"] == event.title


def test_the_paypal_order_carries_one_readable_item_per_seat_and_no_internal_ids(shop):
    created = shop.checkout(BUYER, shop.seats[:2])
    theater = shop.container.catalog.showtime(shop.showtime_id).theater
    title = shop.container.catalog.event(shop.container.catalog.showtime(shop.showtime_id).event_id).title

    unit = shop.container.paypal().get_order(created["paypal_order_id"])["purchase_units"][0]

    assert unit["description"] == f"{title}, Wed 1 Jan 2031, 19:30 UTC, {theater}, 2 seats"
    assert [(i["name"], i["description"], i["quantity"], i["unit_amount"]["value"]) for i in unit["items"]] == [
        (f"{title}: Row A, seat 1", f"Wed 1 Jan 2031, 19:30 UTC, {theater}", "1", "10.00"),
        (f"{title}: Row A, seat 2", f"Wed 1 Jan 2031, 19:30 UTC, {theater}", "1", "10.00"),
    ]
    assert unit["amount"]["breakdown"]["item_total"] == {"currency_code": "USD", "value": "20.00"}
    assert shop.showtime_id not in json.dumps(unit)


def test_a_cancelled_order_says_why_it_ended(shop):
    replaced = shop.checkout(BUYER, shop.seats[:1])
    shop.hold(BUYER, shop.seats[1:2])
    cancelled_by_buyer = shop.payments.create(BUYER, shop.showtime_id)
    shop.payments.cancel(BUYER, cancelled_by_buyer["paypal_order_id"])

    assert shop.payments.order(BUYER, replaced["order_id"])["cancel_reason"] == "replaced"
    assert shop.payments.order(BUYER, cancelled_by_buyer["order_id"])["cancel_reason"] == "buyer"
    assert "cancel_reason" not in shop.payments.create(BUYER, shop.showtime_id)


def test_an_order_from_before_its_purchase_details_were_kept_still_reads(shop):
    from chalicelib.storage.models import Order

    old_id = uuid.uuid4().hex
    Order(
        order_id=old_id,
        user_id=BUYER,
        showtime_id=shop.showtime_id,
        event_id=None,
        status="cancelled",
        amount="10.00",
        currency="USD",
        tickets=[{"ticket_id": shop.seats[0], "seat": "A1", "price": "10.00"}],
        created_at="2020-01-01T00:00:00.000000Z",
        expires_at=1,
        capture_attempt=0,
        refunds={},
    ).save()

    view = shop.payments.order(BUYER, old_id)

    assert (view["event_title"], view["starts_at"], view["theater"]) == (None, None, None)
    assert view["tickets"] == [{"ticket_id": shop.seats[0], "seat": "A1", "label": "Seat A1", "price": "10.00"}]
    assert "cancel_reason" not in view
