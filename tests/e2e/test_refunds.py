"""Refunds over real HTTP against the running stack: the buyer refunds one ticket, then the rest, while
another user watches the seats come back; and the refusals of the contract."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import requests

from tests.support import payflow
from tests.support.payflow import TIMEOUT, Buyer, free_seats


def test_refunding_one_ticket_then_the_rest_frees_the_seats_for_everyone(stack, showtime, emulator):
    buyer, watcher = Buyer(stack), Buyer(stack)
    seats = free_seats(stack, showtime, 2)
    price = Decimal(payflow.tickets(stack, showtime)[seats[0]]["price"])
    order = buyer.buy(showtime, seats)
    capture_id = emulator.capture_of(order["paypal_order_id"])["id"]

    with watcher.room(showtime) as room:
        first = buyer.refund(order["order_id"], [seats[0]])
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "pending"
        assert (first.json()["amount"], first.json()["currency"]) == (f"{price:.2f}", order["currency"])
        room.wait_for([seats[0]], "available")
        partial = buyer.wait_order(order["order_id"], "partially_refunded")
        assert partial["refunds"] == [
            {
                "refund_id": first.json()["refund_id"],
                "status": "completed",
                "amount": f"{price:.2f}",
                "ticket_ids": [seats[0]],
            }
        ]
        assert room.statuses.get(seats[1]) != "available"  # the kept seat stays sold

        rest = buyer.refund(order["order_id"])
        assert rest.status_code == 202, rest.text
        assert rest.json()["amount"] == f"{price:.2f}"
        room.wait_for(seats, "available")
        buyer.wait_order(order["order_id"], "refunded")

    assert [r["amount"] for r in emulator.refunds_of(capture_id)] == [f"{price:.2f}"] * 2
    assert emulator.capture_of(order["paypal_order_id"])["status"] == "REFUNDED"
    listing = payflow.tickets(stack, showtime, buyer.token)
    assert {(listing[t]["status"], listing[t]["mine"]) for t in seats} == {("available", False)}


def test_refunding_again_when_nothing_is_left_is_409(stack, showtime):
    buyer = Buyer(stack)
    order = buyer.buy(showtime, free_seats(stack, showtime, 1))
    assert buyer.refund(order["order_id"]).status_code == 202
    buyer.wait_order(order["order_id"], "refunded")

    again = buyer.refund(order["order_id"])

    assert again.status_code == 409
    assert again.json()["code"] == "not_refundable"


def test_refunding_someone_elses_order_is_404(stack, showtime):
    buyer, intruder = Buyer(stack), Buyer(stack)
    order = buyer.buy(showtime, free_seats(stack, showtime, 1))

    response = intruder.refund(order["order_id"])

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert buyer.order(order["order_id"]).json()["status"] == "paid"


def test_refunding_an_unpaid_order_is_409(stack, showtime):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)

    response = buyer.refund(created["order_id"])

    assert response.status_code == 409
    assert response.json()["code"] == "not_refundable"


def test_refund_is_409_once_the_showtime_starts_within_the_cutoff(stack):
    staff = {"Authorization": f"Bearer {stack.staff_token()}"}
    event = requests.post(
        stack.api("events/"),
        json={
            "title": f"Late show {uuid.uuid4().hex[:6]}",
            "description": "",
            "category": "drama",
            "duration_minutes": 90,
        },
        headers=staff,
        timeout=TIMEOUT,
    )
    assert event.status_code == 201, event.text
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)  # the stack's cutoff is 1 hour
    created = requests.post(
        stack.api(f"events/{event.json()['id']}/showtimes/"),
        json={
            "date": soon.date().isoformat(),
            "theater": "Late Hall",
            "starts_at": soon.isoformat(),
            "rows": 1,
            "seats_per_row": 4,
            "price": "8.00",
            "currency": "USD",
        },
        headers=staff,
        timeout=TIMEOUT,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    showtime = payflow.Showtime(event.json()["id"], body["showtime_id"], body["date"], body["theater"])
    buyer = Buyer(stack)
    order = buyer.buy(showtime, [f"{showtime.showtime_id}-A1"])

    response = buyer.refund(order["order_id"])

    assert response.status_code == 409
    assert response.json()["code"] == "not_refundable"
    assert buyer.order(order["order_id"]).json()["status"] == "paid"
