"""PayPal checkout over real HTTP and WebSockets against the running stack (`python -m local`): seats held
over the socket, the order created by REST, approved on the emulator's HTML page, executed, and finished by
the purchase worker, while another user watches the room.

Most tests run on the session stack, where the emulator posts its webhooks to the stack (so an approval
alone may already capture). Tests that need the buyer's own execute to be the only capture switch the
emulator's webhooks off for their duration.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from tests.support import payflow
from tests.support.payflow import Buyer, Emulator, approve_on_page, cancel_on_page, free_seats
from tests.support.stack import running_stack


def test_buyer_pays_through_the_approval_page_and_the_room_sees_the_seats_sold(stack, showtime, emulator):
    buyer, watcher = Buyer(stack), Buyer(stack)
    seats = free_seats(stack, showtime, 2)
    prices = payflow.tickets(stack, showtime)
    with watcher.room(showtime) as room:
        buyer.hold(showtime, seats)
        created = buyer.created(showtime)
        assert created["status"] == "created"
        assert created["amount"] == f"{sum(Decimal(prices[t]['price']) for t in seats):.2f}"
        assert sorted(t["ticket_id"] for t in created["tickets"]) == sorted(seats)

        redirect = approve_on_page(created["approval_url"])
        assert redirect.token == created["paypal_order_id"]
        assert redirect.location.startswith(f"{stack.base_url}/paypal/return?")
        executed = buyer.execute(redirect)
        assert executed.status_code == 200, executed.text
        assert executed.json() == {"order_id": created["order_id"], "status": executed.json()["status"]}
        assert executed.json()["status"] in ("processing", "paid")

        room.wait_for(seats, "sold")
    paid = buyer.wait_order(created["order_id"], "paid")
    assert paid["amount"] == created["amount"]
    assert len(emulator.captures_of(created["paypal_order_id"])) == 1
    assert buyer.execute(redirect).json()["status"] == "paid"  # repeating is safe and answers the status
    listed = buyer.call("GET", "orders/").json()["results"]
    assert listed[0]["order_id"] == created["order_id"]
    mine = payflow.tickets(stack, showtime, buyer.token)
    assert {(mine[t]["status"], mine[t]["mine"]) for t in seats} == {("sold", True)}


def test_cart_lists_the_callers_holds_and_their_total(stack, showtime):
    buyer = Buyer(stack)
    seats = free_seats(stack, showtime, 3)
    prices = payflow.tickets(stack, showtime)
    buyer.hold(showtime, seats)

    cart = buyer.call("GET", f"cart/?showtime_id={showtime.showtime_id}").json()

    assert sorted(t["ticket_id"] for t in cart["tickets"]) == sorted(seats)
    assert cart["total"] == f"{sum(Decimal(prices[t]['price']) for t in seats):.2f}"
    assert cart["currency"] == prices[seats[0]]["currency"]
    assert Buyer(stack).call("GET", f"cart/?showtime_id={showtime.showtime_id}").json()["tickets"] == []


def test_create_without_holds_is_409_no_holds(stack, showtime):
    response = Buyer(stack).create(showtime)

    assert response.status_code == 409
    assert response.json()["code"] == "no_holds"


def test_create_ignores_any_amount_the_client_sends(stack, showtime):
    buyer = Buyer(stack)
    seats = free_seats(stack, showtime, 1)
    buyer.hold(showtime, seats)

    response = buyer.call("POST", "payment/create/", json={"showtime_id": showtime.showtime_id, "amount": "0.01"})

    assert response.status_code == 400  # unknown fields are refused, never trusted
    assert buyer.created(showtime)["amount"] == payflow.tickets(stack, showtime)[seats[0]]["price"]


def test_another_user_cannot_execute_cancel_or_see_the_order(stack, showtime, quiet_paypal):
    buyer, intruder = Buyer(stack), Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    redirect = approve_on_page(created["approval_url"])

    assert intruder.execute(redirect).status_code == 403
    assert intruder.cancel(created["paypal_order_id"]).status_code == 403
    assert intruder.order(created["order_id"]).status_code == 404
    assert intruder.call("GET", "orders/").json()["results"] == []
    assert buyer.order(created["order_id"]).json()["status"] == "created"
    assert quiet_paypal.captures_of(created["paypal_order_id"]) == []


def test_cancel_on_paypal_gives_the_seats_back_as_holds_and_a_new_checkout_pays(stack, showtime, emulator):
    buyer, watcher = Buyer(stack), Buyer(stack)
    seats = free_seats(stack, showtime, 2)
    held = buyer.hold(showtime, seats)
    created = buyer.created(showtime)

    redirect = cancel_on_page(created["approval_url"])
    assert redirect.location.startswith(f"{stack.base_url}/paypal/cancel?")
    cancelled = buyer.cancel(redirect.token)
    assert cancelled.status_code == 200
    assert cancelled.json() == {"order_id": created["order_id"], "status": "cancelled"}

    cart = buyer.call("GET", f"cart/?showtime_id={showtime.showtime_id}").json()
    assert sorted(t["ticket_id"] for t in cart["tickets"]) == sorted(seats)
    assert cart["expires_at"] == min(held.values())  # the original holds, not the payment window
    seen = payflow.tickets(stack, showtime, watcher.token)
    assert {seen[t]["status"] for t in seats} == {"held"}

    again = buyer.created(showtime)
    assert again["order_id"] != created["order_id"]
    buyer.execute(approve_on_page(again["approval_url"]))
    buyer.wait_order(again["order_id"], "paid")
    assert emulator.captures_of(created["paypal_order_id"]) == []
    assert buyer.cancel(again["paypal_order_id"]).json()["code"] == "not_cancellable"


def test_execute_before_approval_is_409_and_a_later_approval_still_pays(stack, showtime, quiet_paypal):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    early = payflow.Redirect("", created["paypal_order_id"], None)

    response = buyer.execute(early)
    assert response.status_code == 409
    assert response.json()["code"] == "order_not_approved"

    assert buyer.execute(approve_on_page(created["approval_url"])).status_code == 200
    buyer.wait_order(created["order_id"], "paid")
    assert len(quiet_paypal.captures_of(created["paypal_order_id"])) == 1


def test_declined_payment_is_422_and_paying_again_after_a_new_approval_works(stack, showtime, quiet_paypal):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 2))
    created = buyer.created(showtime)
    quiet_paypal.fault("capture", "declined")

    declined = buyer.execute(approve_on_page(created["approval_url"]))
    assert declined.status_code == 422
    assert declined.json()["code"] == "payment_declined"
    assert buyer.order(created["order_id"]).json()["status"] == "created"

    assert buyer.execute(approve_on_page(created["approval_url"])).status_code == 200
    buyer.wait_order(created["order_id"], "paid")
    assert len(quiet_paypal.captures_of(created["paypal_order_id"])) == 1


def test_paypal_unreachable_on_execute_is_503_and_nothing_is_charged_twice(stack, showtime, quiet_paypal):
    buyer = Buyer(stack)
    buyer.hold(showtime, free_seats(stack, showtime, 1))
    created = buyer.created(showtime)
    redirect = approve_on_page(created["approval_url"])
    quiet_paypal.fault("capture", "error500", count=3)

    unavailable = buyer.execute(redirect)
    assert unavailable.status_code == 503
    assert unavailable.json()["code"] == "payment_provider_unavailable"

    assert buyer.execute(redirect).status_code == 200
    buyer.wait_order(created["order_id"], "paid")
    assert len(quiet_paypal.captures_of(created["paypal_order_id"])) == 1


# ---- a stack with short windows: the payment window passes and the seats are sold again ------------------


@pytest.fixture(scope="module")
def short_stack():
    env = {"SWEEP_INTERVAL_SECONDS": "1", "PAYMENT_WINDOW_SECONDS": "4", "HOLD_SECONDS": "60"}
    with running_stack(env=env) as running:
        # No webhooks: the approval must not capture on its own, as when PayPal's webhook is slow.
        Emulator(f"{running.base_url}/paypal").set_webhook_url(None)
        yield running


@pytest.mark.slow
def test_payment_after_the_window_expired_and_the_seats_were_resold_is_409_and_charges_nothing(short_stack):
    stack = short_stack
    showtime = random.choice(payflow.showtimes(stack))
    late, next_buyer, watcher = Buyer(stack), Buyer(stack), Buyer(stack)
    seats = free_seats(stack, showtime, 2)
    with watcher.room(showtime) as room:
        late.hold(showtime, seats)
        created = late.created(showtime)
        redirect = approve_on_page(created["approval_url"])
        room.wait_for(seats, "held")  # first the hold (updates arrive in stream order) ...
        room.wait_for(seats, "available")  # ... then the sweeper expired the order and released its seats
    assert late.order(created["order_id"]).json()["status"] == "expired"
    next_buyer.hold(showtime, seats)

    response = late.execute(redirect)

    assert response.status_code == 409
    assert response.json()["code"] == "order_expired"
    assert Emulator(f"{stack.base_url}/paypal").captures_of(created["paypal_order_id"]) == []
    cart = next_buyer.call("GET", f"cart/?showtime_id={showtime.showtime_id}").json()
    assert sorted(t["ticket_id"] for t in cart["tickets"]) == sorted(seats)
