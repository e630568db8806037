"""The catalog over real HTTP against the running stack: browsing, pagination, seats, staff creation."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest
import requests
import websockets

TIMEOUT = 30
WS_TIMEOUT = 10.0
DEMO_EVENTS = {"demo-dune", "demo-arrival", "demo-whiplash", "demo-grand-budapest"}


def _get(stack, path: str, token: str | None = None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(stack.api(path), params=params, headers=headers, timeout=TIMEOUT)


def _post(stack, path: str, body: dict, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(stack.api(path), json=body, headers=headers, timeout=TIMEOUT)


def _error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code
    return body["message"]


def _new_event(stack, title: str = "Catalog e2e", category: str = "comedy") -> dict:
    response = _post(
        stack,
        "events/",
        {"title": title, "description": "made by the catalog suite", "category": category, "duration_minutes": 95},
        stack.staff_token(),
    )
    assert response.status_code == 201, response.text
    return response.json()


def _showtime_body(**overrides) -> dict:
    body = {
        "date": "2031-07-01",
        "theater": f"Studio {uuid.uuid4().hex[:6]}",
        "starts_at": "18:45",
        "rows": 2,
        "seats_per_row": 4,
        "price": "11.50",
        "currency": "USD",
    }
    body.update(overrides)
    return body


def _walk(stack, limit: int, **params) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = _get(stack, "events/", **query)
        assert response.status_code == 200, response.text
        pages.append(response.json()["results"])
        cursor = response.json()["next"]
        if cursor is None:
            return pages
        assert len(pages) < 500


# --- health and categories ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["health/", "health"])
def test_health_is_ok(stack, path):
    response = _get(stack, path)
    body = response.json()
    assert (response.status_code, body["status"], body["checks"]) == (200, "ok", {"tables": "ok"})
    # Locally, each part of the stack and its pollers, all healthy.
    assert set(body["parts"]) == {"gateway", "moto", "event_sources", "rest_lambdas", "paypal_emulator"}
    assert {part["status"] for part in body["parts"].values()} == {"ok"}
    pollers = body["parts"]["event_sources"]["pollers"]
    assert set(pollers) == {
        "stream-poller",
        "timer-sweep_expired",
        "timer-waitroom_tick",
        "sqs-poller-purchases_worker",
        "sqs-poller-refunds_worker",
        "sqs-poller-emails_worker",
        *(f"sqs-poller-fanout_worker_{n}" for n in range(1, 5)),
    }
    assert {p["status"] for p in pollers.values()} <= {"ok", "starting"}


@pytest.mark.parametrize("path", ["categories/", "categories"])
def test_categories_list_slug_and_name(stack, path):
    results = _get(stack, path).json()["results"]
    assert {"slug": "drama", "name": "Drama"} in results
    assert {"sci-fi", "comedy"} <= {c["slug"] for c in results}
    assert all(set(c) == {"slug", "name"} for c in results)


# --- events ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["events/", "events"])
def test_events_list_has_the_contract_shape(stack, path):
    body = _get(stack, path).json()
    assert set(body) == {"results", "next"}
    event = body["results"][0]
    assert set(event) == {"id", "title", "description", "category", "duration_minutes"}
    assert set(event["category"]) == {"slug", "name"}


@pytest.mark.parametrize("param", ["category", "category_name"])
def test_events_filter_by_category_under_either_parameter_name(stack, param):
    events = [e for page in _walk(stack, 100, **{param: "sci-fi"}) for e in page]
    assert {"demo-dune", "demo-arrival"} <= {e["id"] for e in events}
    assert {e["category"]["slug"] for e in events} == {"sci-fi"}


@pytest.mark.parametrize("limit", [1, 3])
def test_walking_every_page_lists_each_event_once(stack, limit):
    mine = {_new_event(stack, f"Paged {i}")["id"] for i in range(3)}
    pages = _walk(stack, limit)
    ids = [e["id"] for page in pages for e in page]
    assert len(ids) == len(set(ids)), "an event appeared twice"
    assert DEMO_EVENTS | mine <= set(ids), "an event was skipped"
    assert all(0 < len(page) <= limit for page in pages)


def test_walking_a_category_lists_each_of_its_events_once(stack):
    ids = [e["id"] for page in _walk(stack, 1, category="sci-fi") for e in page]
    assert len(ids) == len(set(ids)) and {"demo-dune", "demo-arrival"} <= set(ids)


def test_default_page_size_is_20(stack):
    for i in range(21 - len(_walk(stack, 100)[0])):
        _new_event(stack, f"Filler {i}")
    body = _get(stack, "events/").json()
    assert len(body["results"]) == 20 and body["next"]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "2.5", ""])
def test_limit_outside_1_to_100_or_not_a_number_is_400_naming_limit(stack, limit):
    assert _error(_get(stack, "events/", limit=limit), 400, "bad_request").startswith("limit: ")


@pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJpZCI6eyJOIjoiMSJ9fQ", "e30", "%%%"])
def test_malformed_cursor_is_400_naming_cursor(stack, cursor):
    assert _error(_get(stack, "events/", cursor=cursor), 400, "bad_request").startswith("cursor: ")


def test_cursor_from_another_listing_is_400(stack):
    next_page = _get(stack, "events/", limit=1).json()["next"]
    assert _error(_get(stack, "events/", cursor=next_page, category="drama"), 400, "bad_request").startswith("cursor: ")


@pytest.mark.parametrize("path", ["events/demo-dune/", "events/demo-dune"])
def test_event_detail_has_showtimes_with_availability(stack, path):
    body = _get(stack, path).json()
    assert body["id"] == "demo-dune" and body["category"] == {"slug": "sci-fi", "name": "Science Fiction"}
    showtimes = body["showtimes"]
    assert {s["theater"] for s in showtimes} >= {"Hall 1", "Hall 2"}  # the e2e stack seeds one day
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert min(s["date"] for s in showtimes) >= tomorrow
    for showtime in showtimes:
        assert set(showtime) == {"showtime_id", "date", "theater", "starts_at", "available"}
        assert 0 <= showtime["available"] <= 80


@pytest.mark.parametrize("event_id", ["no-such-event", "x" * 64])
def test_unknown_event_is_404(stack, event_id):
    _error(_get(stack, f"events/{event_id}/"), 404, "not_found")
    _error(_get(stack, f"events/{event_id}/tickets/"), 404, "not_found")


# --- seats ----------------------------------------------------------------------------------


def test_seat_listing_of_a_demo_showtime_has_80_priced_seats(stack):
    showtime = _get(stack, "events/demo-whiplash/").json()["showtimes"][0]
    seats = _get(stack, "events/demo-whiplash/tickets/", date=showtime["date"], theater=showtime["theater"]).json()
    seats = seats["results"]
    assert len(seats) == 80 and {s["showtime_id"] for s in seats} == {showtime["showtime_id"]}
    first = seats[0]
    assert set(first) >= {"ticket_id", "showtime_id", "seat", "row", "number", "price", "currency", "status", "mine"}
    assert first["ticket_id"] == f"{showtime['showtime_id']}-A1"
    assert first["price"] == {"Hall 1": "12.00", "Hall 2": "9.50"}[showtime["theater"]]
    assert all(s["mine"] is False for s in seats)


@pytest.mark.parametrize("path", ["events/demo-dune/tickets/", "events/demo-dune/tickets"])
def test_seat_listing_answers_with_or_without_slash(stack, path):
    date = _get(stack, "events/demo-dune/").json()["showtimes"][0]["date"]
    response = _get(stack, path, date=date, theater="Hall 1")
    assert response.status_code == 200 and len(response.json()["results"]) == 80


def test_theater_filter_is_case_insensitive(stack):
    showtime = _get(stack, "events/demo-arrival/").json()["showtimes"][0]
    exact = _get(stack, "events/demo-arrival/tickets/", date=showtime["date"], theater=showtime["theater"]).json()
    shouted = _get(
        stack, "events/demo-arrival/tickets/", date=showtime["date"], theater=showtime["theater"].upper()
    ).json()
    assert [s["ticket_id"] for s in exact["results"]] == [s["ticket_id"] for s in shouted["results"]]
    assert len(exact["results"]) == 80


def test_date_filter_keeps_only_that_days_showtimes(stack):
    showtime = _get(stack, "events/demo-arrival/").json()["showtimes"][0]
    seats = _get(stack, "events/demo-arrival/tickets/", date=showtime["date"]).json()["results"]
    assert len(seats) == 160  # Hall 1 and Hall 2 that day


@pytest.mark.parametrize("date", ["tomorrow", "2031-02-30", "2031-1-1", "1700000000"])
def test_invalid_date_is_400_naming_date(stack, date):
    assert _error(_get(stack, "events/demo-dune/tickets/", date=date), 400, "bad_request").startswith("date: ")


def test_seat_listing_with_a_bad_token_is_401(stack):
    _error(_get(stack, "events/demo-dune/tickets/", token="not-a-jwt"), 401, "unauthorized")


async def _hold(stack, showtime_id: str, ticket_id: str, token: str) -> dict:
    url = f"{stack.ws_url}?showtime_id={showtime_id}&token={token}"
    async with websockets.connect(url, open_timeout=WS_TIMEOUT) as ws:
        await ws.send(json.dumps({"action": "select", "ticket_id": ticket_id}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), WS_TIMEOUT))
            if message.get("type") in ("selected", "error"):
                return message


def test_seat_held_over_the_websocket_is_mine_only_for_its_holder(stack):
    event = _new_event(stack, "Mine e2e")
    body = _showtime_body()
    showtime = _post(stack, f"events/{event['id']}/showtimes/", body, stack.staff_token()).json()
    ticket_id = f"{showtime['showtime_id']}-B2"
    holder, other = stack.register(), stack.register()
    reply = asyncio.run(_hold(stack, showtime["showtime_id"], ticket_id, holder["access"]))
    assert reply["type"] == "selected", reply

    def seat(token):
        seats = _get(stack, f"events/{event['id']}/tickets/", token=token).json()["results"]
        return next(s for s in seats if s["ticket_id"] == ticket_id)

    assert (seat(holder["access"])["status"], seat(holder["access"])["mine"]) == ("held", True)
    assert (seat(other["access"])["status"], seat(other["access"])["mine"]) == ("held", False)
    assert seat(None)["mine"] is False
    detail = _get(stack, f"events/{event['id']}/").json()
    assert detail["showtimes"][0]["available"] == 7


# --- staff creation -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["events/", "events"])
def test_staff_creates_an_event(stack, path):
    response = _post(
        stack,
        path,
        {"title": "Staff made", "description": "d", "category": "drama", "duration_minutes": 120},
        stack.staff_token(),
    )
    assert response.status_code == 201
    event = response.json()
    assert event["category"] == {"slug": "drama", "name": "Drama"} and event["duration_minutes"] == 120
    assert _get(stack, f"events/{event['id']}/").json()["title"] == "Staff made"


def test_event_creation_is_403_for_a_regular_user_and_401_anonymous(stack):
    body = {"title": "Nope", "description": "", "category": "drama", "duration_minutes": 90}
    _error(_post(stack, "events/", body, stack.register()["access"]), 403, "forbidden")
    _error(_post(stack, "events/", body, None), 401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "", "category": "drama", "duration_minutes": 90}, "title"),
        ({"title": "T", "category": "westerns", "duration_minutes": 90}, "category"),
        ({"title": "T", "category": "drama", "duration_minutes": 0}, "duration_minutes"),
        ({"title": "T", "category": "drama"}, "duration_minutes"),
    ],
)
def test_invalid_event_is_400_naming_the_field(stack, body, field):
    assert _error(_post(stack, "events/", body, stack.staff_token()), 400, "bad_request").startswith(f"{field}: ")


@pytest.mark.parametrize("suffix", ["showtimes/", "showtimes"])
def test_staff_creates_a_showtime_whose_seats_are_listed(stack, suffix):
    event = _new_event(stack)
    body = _showtime_body(rows=3, seats_per_row=5, price="7.5")
    response = _post(stack, f"events/{event['id']}/{suffix}", body, stack.staff_token())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["tickets"] == 15 and created["available"] == 15
    assert (created["date"], created["theater"], created["price"]) == ("2031-07-01", body["theater"], "7.50")
    seats = _get(stack, f"events/{event['id']}/tickets/", date="2031-07-01", theater=body["theater"]).json()
    assert len(seats["results"]) == 15 and {s["status"] for s in seats["results"]} == {"available"}
    assert [s["showtime_id"] for s in _get(stack, f"events/{event['id']}/").json()["showtimes"]] == [
        created["showtime_id"]
    ]


def test_duplicate_showtime_in_any_case_is_409(stack):
    event = _new_event(stack)
    body = _showtime_body()
    assert _post(stack, f"events/{event['id']}/showtimes/", body, stack.staff_token()).status_code == 201
    again = _showtime_body(theater=body["theater"].upper(), rows=1, seats_per_row=1)
    _error(_post(stack, f"events/{event['id']}/showtimes/", again, stack.staff_token()), 409, "already_exists")


def test_showtime_creation_is_403_for_a_regular_user_and_401_anonymous(stack):
    event = _new_event(stack)
    _error(
        _post(stack, f"events/{event['id']}/showtimes/", _showtime_body(), stack.register()["access"]), 403, "forbidden"
    )
    _error(_post(stack, f"events/{event['id']}/showtimes/", _showtime_body(), None), 401, "unauthorized")


def test_showtime_for_an_unknown_event_is_404(stack):
    _error(_post(stack, "events/no-such-event/showtimes/", _showtime_body(), stack.staff_token()), 404, "not_found")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"date": "2031-02-30"}, "date"),
        ({"rows": 0}, "rows"),
        ({"seats_per_row": 61}, "seats_per_row"),
        ({"price": "-1"}, "price"),
        ({"price": "1.005"}, "price"),
        ({"currency": "usd"}, "currency"),
        ({"starts_at": "late"}, "starts_at"),
        ({"theater": "   "}, "theater"),
    ],
)
def test_invalid_showtime_is_400_naming_the_field(stack, overrides, field):
    event = _new_event(stack)
    response = _post(stack, f"events/{event['id']}/showtimes/", _showtime_body(**overrides), stack.staff_token())
    assert _error(response, 400, "bad_request").startswith(f"{field}: ")
