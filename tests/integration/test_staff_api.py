"""The staff endpoints through app.py's routes (chalice.test.Client) over moto and the PayPal emulator: editing
events and showtimes, a showtime's occupancy and revenue, finding orders by buyer or id, refunding for a buyer."""

from __future__ import annotations

import json
import uuid

import pytest
from chalice.test import Client

from chalicelib import holds

PASSWORD = "staff-api-password"


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture
def api(app_module):
    with Client(app_module.app) as client:
        yield client


@pytest.fixture
def accounts(shop):
    return shop.container.accounts


@pytest.fixture
def staff_token(accounts) -> str:
    email = _email("manager")
    accounts.ensure_staff_account(email, PASSWORD)
    return accounts.login(email, PASSWORD)["access"]


@pytest.fixture
def buyer(accounts):
    email = _email("Buyer")
    user = accounts.register(email.lower(), PASSWORD)
    return user, accounts.login(email.lower(), PASSWORD)["access"]


def call(api, method: str, path: str, token: str | None = None, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    response = getattr(api.http, method.lower())(
        path, headers=headers, body=json.dumps(body) if body is not None else None
    )
    return response.status_code, json.loads(response.body) if response.body else None


STAFF_ROUTES = [
    ("PATCH", "/api/events/{event}", {"title": "New"}),
    ("PATCH", "/api/events/{event}/showtimes/{showtime}", {"starts_at": "20:00"}),
    ("GET", "/api/staff/showtimes/{showtime}", None),
    ("GET", "/api/staff/orders?email=someone@example.com", None),
    ("POST", "/api/staff/orders/{order}/refund", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), STAFF_ROUTES, ids=[f"{m} {p}" for m, p, _ in STAFF_ROUTES])
def test_staff_routes_refuse_anonymous_callers_with_401_and_customers_with_403(api, shop, buyer, method, path, body):
    url = path.format(
        event=shop.container.catalog.showtime(shop.showtime_id).event_id,
        showtime=shop.showtime_id,
        order="0123456789abcdef",
    )
    assert call(api, method, url, None, body)[0] == 401
    status, answer = call(api, method, url, buyer[1], body)
    assert (status, answer["code"]) == (403, "forbidden")


def test_staff_edit_an_event_and_only_the_fields_sent_change(api, shop, staff_token):
    created = shop.container.catalog.create_event(
        title="Draft", description="Kept", category="drama", duration_minutes=90
    )
    status, event = call(
        api, "PATCH", f"/api/events/{created['id']}", staff_token, {"title": "Final", "duration_minutes": 95}
    )
    assert status == 200
    assert (event["title"], event["description"], event["duration_minutes"]) == ("Final", "Kept", 95)
    assert shop.container.catalog.event_detail(created["id"])["title"] == "Final"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"category": "no-such-category"}, "category"),
        ({"title": ""}, "title"),
        ({"title": "a\u202eb"}, "title"),
        ({"duration_minutes": "90"}, "duration_minutes"),
        ({"nickname": "x"}, "nickname"),
    ],
)
def test_staff_event_edit_refuses_bad_fields_with_400_naming_them(api, shop, staff_token, body, field):
    event_id = shop.container.catalog.showtime(shop.showtime_id).event_id
    status, answer = call(api, "PATCH", f"/api/events/{event_id}", staff_token, body)
    assert status == 400 and answer["message"].startswith(f"{field}"), answer


def test_staff_edit_of_an_unknown_event_is_404(api, staff_token):
    assert call(api, "PATCH", "/api/events/nosuchevent", staff_token, {"title": "x"})[0] == 404


def test_staff_move_a_showtime_start_within_its_date(api, shop, staff_token):
    showtime = shop.container.catalog.showtime(shop.showtime_id)
    path = f"/api/events/{showtime.event_id}/showtimes/{showtime.id}"

    status, moved = call(api, "PATCH", path, staff_token, {"starts_at": "21:15"})

    assert status == 200 and moved["starts_at"] == f"{showtime.date}T21:15:00Z"
    assert shop.container.catalog.showtime(showtime.id).starts_at == f"{showtime.date}T21:15:00Z"
    status, answer = call(api, "PATCH", path, staff_token, {"starts_at": "2031-01-02T10:00:00Z"})
    assert status == 400 and answer["message"].startswith("starts_at: falls on")
    assert (
        call(api, "PATCH", f"/api/events/otherevent/showtimes/{showtime.id}", staff_token, {"starts_at": "20:00"})[0]
        == 404
    )


def test_a_showtime_with_a_sold_seat_keeps_its_start(api, shop, staff_token):
    showtime = shop.container.catalog.showtime(shop.showtime_id)
    shop.paid("start-buyer", shop.seats[:1])

    status, answer = call(
        api, "PATCH", f"/api/events/{showtime.event_id}/showtimes/{showtime.id}", staff_token, {"starts_at": "22:00"}
    )

    assert (status, answer["code"]) == (409, "showtime_has_sales")
    assert shop.container.catalog.showtime(showtime.id).starts_at == showtime.starts_at


def test_staff_showtime_report_counts_seats_by_status_and_sums_the_revenue_of_those_sold(api, shop, staff_token):
    shop.paid("report-buyer", shop.seats[:2])  # 2 x 10.00
    shop.hold("report-holder", shop.seats[2:3])

    status, report = call(api, "GET", f"/api/staff/showtimes/{shop.showtime_id}", staff_token)

    assert status == 200
    counts = {k: report[k] for k in ("available", "held", "sold", "void", "tickets")}
    assert counts == {"available": 3, "held": 1, "sold": 2, "void": 0, "tickets": 6}
    assert (report["revenue"], report["currency"], report["showtime_id"]) == ("20.00", "USD", shop.showtime_id)
    assert report["event_title"]
    assert call(api, "GET", "/api/staff/showtimes/nosuchshowtime", staff_token)[0] == 404


def test_staff_find_a_buyers_orders_by_email_in_any_case_and_one_order_by_id(api, shop, staff_token, buyer):
    user, _token = buyer
    order = shop.paid(user.id, shop.seats[:1])

    status, by_email = call(api, "GET", f"/api/staff/orders?email={user.email.upper()}", staff_token)
    assert status == 200
    assert [(o["order_id"], o["email"], o["user_id"]) for o in by_email["results"]] == [
        (order["order_id"], user.email, user.id)
    ]
    status, by_id = call(api, "GET", f"/api/staff/orders?order_id={order['order_id']}", staff_token)
    assert status == 200 and [o["order_id"] for o in by_id["results"]] == [order["order_id"]]
    assert by_id["results"][0]["status"] == "paid" and by_id["results"][0]["email"] == user.email
    assert call(api, "GET", "/api/staff/orders?email=nobody-here@example.com", staff_token)[1]["results"] == []
    assert call(api, "GET", "/api/staff/orders?order_id=unknownorder", staff_token)[1]["results"] == []


@pytest.mark.parametrize(
    "query", ["", "?email=a@example.com&order_id=abc", "?attention=disputed&email=a@example.com", "?order_id=bad%20id"]
)
def test_staff_order_search_takes_exactly_one_valid_criterion(api, staff_token, query):
    status, answer = call(api, "GET", f"/api/staff/orders{query}", staff_token)
    assert status == 400 and answer["code"] == "bad_request"


def test_staff_refund_computes_the_amount_on_the_server_and_runs_the_buyers_refund_path(api, shop, staff_token):
    order = shop.paid("refunded-by-staff", shop.seats[:2])
    path = f"/api/staff/orders/{order['order_id']}/refund"

    status, refund = call(api, "POST", path, staff_token, {"ticket_ids": [shop.seats[0]]})

    assert status == 202
    assert (refund["status"], refund["amount"], refund["currency"]) == ("pending", "10.00", "USD")
    [message] = shop.take("refunds", order["order_id"])
    assert shop.refunds.process(message["order_id"], message["refund_id"]) == "completed"
    assert shop.order(order["order_id"]).status == "partially_refunded"
    assert shop.ticket(shop.seats[0]).status == holds.AVAILABLE
    again = call(api, "POST", path, staff_token, {"ticket_ids": [shop.seats[0]]})
    assert (again[0], again[1]["code"]) == (409, "not_refundable")
    assert call(api, "POST", path, staff_token, {"amount": "1.00"})[0] == 400  # the amount is never the client's
    assert call(api, "POST", "/api/staff/orders/nosuchorder/refund", staff_token, {})[0] == 404
