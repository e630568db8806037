"""The waiting room against the running stack (`python -m local`, its ticker on the runtime's timer): a guarded
showtime with joiners before and after opening, selections without, with forged, other users' and spent
admissions, pausing and changing the rate mid-sale, and the order people are admitted in."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests

from tests.support.rooms import clients, new_room, run, url_for, wait_until

RATE = 60  # a minute: one admission a second


def call(stack, method: str, path: str, token: str, body: dict | None = None) -> requests.Response:
    return requests.request(
        method, stack.api(path), json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def place(stack, showtime_id: str, user: dict) -> dict:
    response = call(stack, "GET", f"showtimes/{showtime_id}/queue/", user["access"])
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def sale(stack):
    room = new_room(stack, rows=2, seats=10)
    staff = stack.staff_token()
    opening = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)

    def configure(**changes) -> dict:
        body = {"on_sale_at": opening.isoformat(), "guarded": True, "rate_per_minute": RATE, **changes}
        response = call(stack, "PUT", f"staff/showtimes/{room['showtime_id']}/sale/", staff, body)
        assert response.status_code == 200, response.text
        return response.json()

    return room, staff, opening, configure


def test_a_guarded_sale_from_the_draw_to_the_seat_map(stack, sale):
    room, staff, opening, configure = sale
    showtime_id = room["showtime_id"]
    board = configure()
    assert board["guarded"] and board["counts"]["joined"] == 0
    public = requests.get(stack.api(f"showtimes/{showtime_id}/sale/"), timeout=10).json()
    assert public["guarded"] and not public["opened"]

    early = [stack.register() for _ in range(6)]
    for user in early:
        joined = call(stack, "POST", f"showtimes/{showtime_id}/queue/", user["access"])
        assert joined.status_code == 200 and joined.json()["in_draw"] and joined.json()["position"] is None
    again = call(stack, "POST", f"showtimes/{showtime_id}/queue/", early[0]["access"]).json()
    assert again["in_draw"] and again["state"] == "waiting"  # one place per account

    first_seat = room["tickets"][0]

    async def before_opening():
        async with clients(url_for(stack, room, early[0])) as (ws,):
            refused = await ws.request({"action": "select", "ticket_id": first_seat})
            assert refused["type"] == "error" and refused["code"] == "not_on_sale"

    run(before_opening())
    time.sleep(max(0.0, (opening - dt.datetime.now(dt.UTC)).total_seconds()) + 0.5)
    late = [stack.register() for _ in range(2)]
    for user in late:
        joined = call(stack, "POST", f"showtimes/{showtime_id}/queue/", user["access"]).json()
        assert not joined["in_draw"]

    # The draw (1 s after opening here), then one admission a second in the draw's order, arrivals after. Each
    # place's admission says when it came (its expiry, admission time + 300 s): people admitted in one step share
    # it, and the order within a step is the service's (tests/integration/test_waitroom.py).
    admitted_at: dict[str, str] = {}
    everyone = early + late
    deadline = time.monotonic() + 40
    while len(admitted_at) < len(everyone) and time.monotonic() < deadline:
        for user in everyone:
            if user["id"] in admitted_at:
                continue
            state = place(stack, showtime_id, user)
            if state["state"] == "admitted":
                admitted_at[user["id"]] = state["admission"]["expires_at"]
        time.sleep(0.3)
    assert len(admitted_at) == len(everyone), admitted_at
    assert max(admitted_at[u["id"]] for u in early) <= min(admitted_at[u["id"]] for u in late)  # the draw first
    late_times = [admitted_at[u["id"]] for u in late]
    assert late_times == sorted(late_times)  # arrivals after opening, in arrival order
    positions = {u["id"]: place(stack, showtime_id, u) for u in everyone}

    mine = positions[early[0]["id"]]["admission"]["token"]
    theirs = positions[early[1]["id"]]["admission"]["token"]

    async def selecting():
        async with clients(url_for(stack, room, early[0])) as (ws,):
            without = await ws.request({"action": "select", "ticket_id": first_seat})
            assert without["code"] == "admission_required"
            other = await ws.request({"action": "select", "ticket_id": first_seat, "admission": theirs})
            assert other["code"] == "admission_invalid"
            forged = await ws.request({"action": "select", "ticket_id": first_seat, "admission": mine[:-6] + "AAAAAA"})
            assert forged["code"] == "admission_invalid"
            taken = await ws.request({"action": "select", "ticket_id": first_seat, "admission": mine})
            assert taken["type"] == "selected"
            left = call(stack, "DELETE", f"showtimes/{showtime_id}/queue/", early[0]["access"])
            assert left.status_code == 200 and left.json()["state"] == "left"
            spent = await ws.request({"action": "select", "ticket_id": room["tickets"][1], "admission": mine})
            assert spent["code"] == "admission_lapsed"
            # Unselecting needs no admission: a seat held stays the holder's to release.
            released = await ws.request({"action": "unselect", "ticket_id": first_seat})
            assert released["type"] == "unselected"

    run(selecting())
    board = call(stack, "GET", f"staff/showtimes/{showtime_id}/sale/", staff).json()
    assert board["drawn"] == 6
    assert board["counts"]["admitted"] == 8 and board["counts"]["left"] == 1
    assert board["wait_seconds"]["longest"] is not None


def test_pausing_and_changing_the_rate_mid_sale(stack, sale):
    room, staff, opening, configure = sale
    showtime_id = room["showtime_id"]
    configure(rate_per_minute=30)
    crowd = [stack.register() for _ in range(12)]
    for user in crowd:
        assert call(stack, "POST", f"showtimes/{showtime_id}/queue/", user["access"]).status_code == 200
    time.sleep(max(0.0, (opening - dt.datetime.now(dt.UTC)).total_seconds()))

    def admitted() -> int:
        return call(stack, "GET", f"staff/showtimes/{showtime_id}/sale/", staff).json()["counts"]["admitted"]

    wait_until(lambda: admitted() >= 1, timeout=20, what="the first admission")
    paused = call(stack, "PATCH", f"staff/showtimes/{showtime_id}/sale/", staff, {"paused": True}).json()
    assert paused["paused"]
    time.sleep(2.5)  # a step in flight may still finish
    held = admitted()
    time.sleep(5)
    assert admitted() == held  # nothing while paused
    waiting = next(u for u in crowd if place(stack, showtime_id, u)["state"] == "waiting")
    assert place(stack, showtime_id, waiting)["estimated_wait_seconds"] is None
    resumed = call(
        stack, "PATCH", f"staff/showtimes/{showtime_id}/sale/", staff, {"paused": False, "rate_per_minute": 600}
    )
    assert resumed.json()["rate_per_minute"] == 600 and not resumed.json()["paused"]
    wait_until(lambda: admitted() == 12, timeout=20, what="everyone admitted at the new rate")


def test_a_showtime_without_settings_has_no_queue_and_sells_as_before(stack):
    room = new_room(stack, rows=1, seats=4)
    user = stack.register()
    response = call(stack, "POST", f"showtimes/{room['showtime_id']}/queue/", user["access"])
    assert response.status_code == 404
    sale = requests.get(stack.api(f"showtimes/{room['showtime_id']}/sale/"), timeout=10).json()
    assert sale == {
        "showtime_id": room["showtime_id"],
        "on_sale_at": None,
        "guarded": False,
        "opened": True,
        "paused": False,
    }

    async def select():
        async with clients(url_for(stack, room, user)) as (ws,):
            assert (await ws.request({"action": "select", "ticket_id": room["tickets"][0]}))["type"] == "selected"

    run(select())


def test_staff_only_settings_and_bad_input(stack, sale):
    room, staff, opening, _ = sale
    buyer = stack.register()
    path = f"staff/showtimes/{room['showtime_id']}/sale/"
    body = {"on_sale_at": opening.isoformat(), "guarded": True}
    assert call(stack, "PUT", path, buyer["access"], body).status_code == 403
    assert call(stack, "GET", path, buyer["access"]).status_code == 403
    naive = call(stack, "PUT", path, staff, {**body, "on_sale_at": "2031-01-01T10:00:00"})
    assert naive.status_code == 400 and naive.json()["message"].startswith("on_sale_at")
    after_start = call(stack, "PUT", path, staff, {**body, "on_sale_at": "2040-01-01T10:00:00Z"})
    assert after_start.status_code == 400
    assert call(stack, "PUT", path, staff, {**body, "rate_per_minute": 0}).status_code == 400
    assert call(stack, "PATCH", "staff/showtimes/nope/sale/", staff, {"paused": True}).status_code == 404
