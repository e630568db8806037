"""Pure payment rules: which tickets a refund covers, how a PayPal-side refund maps onto seats, what a
webhook body must carry before anything is looked up, and what an order shows its buyer."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from chalicelib.errors import BadRequest, NotRefundable
from chalicelib.paypal import Item
from chalicelib.services.payments import order_view, paypal_description, paypal_items, showing_time
from chalicelib.services.refunds import (
    capture_id_of,
    completes_capture,
    parse_event,
    refund_invoice,
    refundable_tickets,
    tickets_for_amount,
)
from chalicelib.storage.orders import OrderRecord, OrderTicket, RefundEntry


def order(*, prices=("12.00", "12.00", "9.50"), refunded=(), status="paid", **extra) -> OrderRecord:
    tickets = tuple(OrderTicket(ticket_id=f"S-A{n}", seat=f"A{n}", price=p) for n, p in enumerate(prices, 1))
    return OrderRecord(
        order_id="o1",
        user_id="u1",
        showtime_id="S",
        event_id="e1",
        status=status,
        amount=f"{sum(Decimal(p) for p in prices):.2f}",
        currency="USD",
        tickets=tickets,
        created_at="2030-01-01T00:00:00.000000Z",
        expires_at=1_900_000_900,
        refunded_ticket_ids=tuple(refunded),
        **extra,
    )


# ---- buyer refunds ---------------------------------------------------------------------------------------


def test_a_refund_without_ticket_ids_covers_every_ticket_not_yet_refunded():
    assert refundable_tickets(order(refunded=["S-A1"]), None) == {"S-A2", "S-A3"}


def test_a_refund_of_named_tickets_covers_exactly_those():
    assert refundable_tickets(order(), ["S-A3"]) == {"S-A3"}


def test_refunding_a_ticket_twice_is_not_refundable():
    with pytest.raises(NotRefundable):
        refundable_tickets(order(refunded=["S-A1"]), ["S-A1", "S-A2"])


def test_nothing_left_to_refund_is_not_refundable():
    with pytest.raises(NotRefundable):
        refundable_tickets(order(refunded=["S-A1", "S-A2", "S-A3"]), None)


@pytest.mark.parametrize("ticket_ids", [["S-A1", "S-A1"], ["S-A9"], ["other-show-A1"]])
def test_duplicate_or_foreign_ticket_ids_are_a_bad_request(ticket_ids):
    with pytest.raises(BadRequest):
        refundable_tickets(order(), ticket_ids)


def test_our_refund_invoice_id_names_the_order_and_the_refund_within_paypals_limit():
    assert refund_invoice("o1", "r1") == "o1-r1"
    assert len(refund_invoice("o" * 64, "r" * 64)) == 127


# ---- refunds made at PayPal --------------------------------------------------------------------------------


def test_a_refund_that_completes_the_capture_covers_every_remaining_seat():
    assert tickets_for_amount(order(refunded=["S-A2"]), Decimal("1.00"), completes=True) == ["S-A1", "S-A3"]


def test_a_partial_refund_covers_the_seats_its_amount_pays_for_in_order():
    assert tickets_for_amount(order(), Decimal("24.00"), completes=False) == ["S-A1", "S-A2"]
    assert tickets_for_amount(order(), Decimal("23.99"), completes=False) == ["S-A1"]
    assert tickets_for_amount(order(), Decimal("4.00"), completes=False) == []


def test_whether_a_refund_completed_the_capture_is_read_from_the_refunds_own_running_total():
    capture = {"amount": {"value": "24.00"}, "status": "REFUNDED"}  # as it is now, after later refunds
    earlier = {"seller_payable_breakdown": {"total_refunded_amount": {"value": "12.00"}}}
    last = {"seller_payable_breakdown": {"total_refunded_amount": {"value": "24.00"}}}

    assert completes_capture(earlier, capture) is False
    assert completes_capture(last, capture) is True
    assert completes_capture({}, capture) is True  # no running total: fall back to the capture's status


def test_the_capture_of_a_refund_is_its_up_link():
    refund = {
        "links": [
            {"rel": "self", "href": "https://x/v2/payments/refunds/R1"},
            {"rel": "up", "href": "https://x/v2/payments/captures/C1"},
        ]
    }
    assert capture_id_of(refund) == "C1"
    assert capture_id_of({"links": []}) is None


# ---- webhook bodies ----------------------------------------------------------------------------------------


def body(**fields) -> bytes:
    return json.dumps(
        {"id": "WH-1", "event_type": "CHECKOUT.ORDER.APPROVED", "resource": {"id": "X"}, **fields}
    ).encode()


def test_a_webhook_body_with_id_type_and_resource_is_accepted():
    assert parse_event(body())["id"] == "WH-1"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        json.dumps({"event_type": "X", "resource": {}}).encode(),
        json.dumps({"id": "WH-1", "event_type": "X"}).encode(),
        json.dumps({"id": 7, "event_type": "X", "resource": {}}).encode(),
        body(id="W" * 129),
        body(id=""),
    ],
)
def test_a_webhook_body_missing_or_overlong_fields_is_a_bad_request(raw):
    with pytest.raises(BadRequest):
        parse_event(raw)


# ---- what the buyer sees -----------------------------------------------------------------------------------


def test_an_open_order_shows_where_to_approve_and_a_paid_one_does_not():
    open_order = order(status="created", approval_url="https://paypal/approve?token=P1")
    assert order_view(open_order)["approval_url"] == "https://paypal/approve?token=P1"
    assert "approval_url" not in order_view(order(status="paid", approval_url="https://paypal/approve?token=P1"))


def test_a_failed_refund_shows_its_reason():
    failed = RefundEntry(
        refund_id="r1",
        status="failed",
        amount="12.00",
        ticket_ids=("S-A1",),
        previous_status="paid",
        reason="The refund window for this payment has passed.",
    )
    view = order_view(order(refunds=(failed,)))
    assert view["refunds"] == [
        {
            "refund_id": "r1",
            "status": "failed",
            "amount": "12.00",
            "ticket_ids": ["S-A1"],
            "reason": "The refund window for this payment has passed.",
        }
    ]


def bought(**extra) -> OrderRecord:
    """An order placed since issue 16: it keeps the event, the showing and each seat's row and number."""
    seats = (
        OrderTicket("S-D5", "D5", "12.00", row="D", number=5),
        OrderTicket("S-D6", "D6", "9.50", row="D", number=6),
    )
    details = {"event_title": "Inception", "starts_at": "2031-01-01T19:30:00Z", "theater": "Hall 2"}
    return order(**{**details, **extra})._replace(tickets=seats, amount="21.50")


def test_an_order_shows_what_was_bought_and_each_seat_as_a_buyer_reads_it():
    view = order_view(bought())
    assert (view["event_title"], view["starts_at"], view["theater"]) == ("Inception", "2031-01-01T19:30:00Z", "Hall 2")
    assert view["tickets"][0] == {
        "ticket_id": "S-D5",
        "seat": "D5",
        "label": "Row D, seat 5",
        "row": "D",
        "number": 5,
        "price": "12.00",
    }


def test_an_order_from_before_the_details_were_kept_reads_with_nulls_and_short_labels():
    view = order_view(order())
    assert (view["event_title"], view["starts_at"], view["theater"]) == (None, None, None)
    assert view["tickets"][0] == {"ticket_id": "S-A1", "seat": "A1", "label": "Seat A1", "price": "12.00"}


def test_only_a_cancelled_order_says_why_it_was_cancelled():
    assert order_view(order(status="cancelled", cancel_reason="replaced"))["cancel_reason"] == "replaced"
    assert "cancel_reason" not in order_view(order(status="cancelled"))
    assert "cancel_reason" not in order_view(order(status="created", cancel_reason="replaced"))


def test_paypal_sees_the_event_the_showing_and_one_item_per_seat():
    assert showing_time("2031-01-01T19:30:00Z") == "Wed 1 Jan 2031, 19:30 UTC"
    assert paypal_description(bought()) == "Inception, Wed 1 Jan 2031, 19:30 UTC, Hall 2, 2 seats"
    assert paypal_items(bought()) == [
        Item("Inception: Row D, seat 5", Decimal("12.00"), "Wed 1 Jan 2031, 19:30 UTC, Hall 2"),
        Item("Inception: Row D, seat 6", Decimal("9.50"), "Wed 1 Jan 2031, 19:30 UTC, Hall 2"),
    ]


def test_a_long_event_title_is_shortened_before_the_seat_so_the_item_stays_within_paypals_limit():
    [first, _] = paypal_items(bought(event_title="x" * 300))
    assert len(first.name) <= 127
    assert first.name.endswith(": Row D, seat 5")


def test_without_the_details_paypal_still_gets_seat_names_and_a_count():
    assert paypal_description(order(prices=("12.00",))) == "1 seat"
    assert [i.name for i in paypal_items(order(prices=("12.00",)))] == ["Seat A1"]
    assert paypal_items(order(prices=("12.00",)))[0].description is None
