"""Live seat selection through the local gateway, with real WebSocket clients (the `websockets` library).

Every test works in a showtime of its own, created by staff over REST, so tests (and other suites sharing the
session stack) never see each other's seats.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid

import pytest
import requests
import websockets
from websockets.exceptions import InvalidStatus

from tests.support.rooms import (
    CONNECTIONS_TABLE,
    LIMIT,
    TICKETS_TABLE,
    TIMEOUT,
    clients,
    connection_ids_of,
    connection_row_exists,
    dynamodb,
    iso,
    new_room,
    run,
    url_for,
    wait_until,
    ws_url,
)
from tests.support.stack import running_stack


@pytest.fixture
def room(stack) -> dict:
    return new_room(stack)


@pytest.fixture
def users(stack):
    def make(count: int) -> list[dict]:
        return [stack.register() for _ in range(count)]

    return make


# --- seeing each other ------------------------------------------------------------------------------


def test_users_see_each_others_selections_and_unselections(stack, room, users):
    alice, bob, carol = users(3)
    first, second = room["tickets"][:2]

    async def scenario():
        async with clients(*(url_for(stack, room, u) for u in (alice, bob, carol))) as (a, b, viewer):
            selected = await a.request({"action": "select", "ticket_id": first})
            assert selected["type"] == "selected"
            expires = iso(selected["expires_at"])
            assert dt.timedelta(seconds=570) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=601)
            for client in (a, b, viewer):  # the sender too
                update = await client.seen(first, "held")
                assert update["expires_at"] == selected["expires_at"]

            assert (await b.request({"action": "select", "ticket_id": second}))["type"] == "selected"
            for client in (a, viewer):
                assert "expires_at" in await client.seen(second, "held")

            assert (await a.request({"action": "unselect", "ticket_id": first})) == {
                "type": "unselected",
                "ticket_id": first,
            }
            for client in (b, viewer):
                update = await client.seen(first, "available")
                assert "expires_at" not in update

            for client in (a, b, viewer):
                for raw in client.raw_status:
                    assert alice["id"] not in raw and bob["id"] not in raw and alice["email"] not in raw

    run(scenario())


def test_second_user_is_refused_a_held_seat(stack, room, users):
    alice, bob = users(2)
    seat = room["tickets"][0]

    async def scenario():
        async with clients(url_for(stack, room, alice), url_for(stack, room, bob)) as (a, b):
            assert (await a.request({"action": "select", "ticket_id": seat}))["type"] == "selected"
            refused = await b.request({"action": "select", "ticket_id": seat})
            assert refused["type"] == "error" and refused["code"] == "ticket_unavailable"
            assert refused["ticket_id"] == seat and refused["message"]
            not_holder = await b.request({"action": "unselect", "ticket_id": seat})
            assert (not_holder["code"], not_holder["ticket_id"]) == ("not_holder", seat)

    run(scenario())


def test_reselect_acknowledges_the_same_expiry(stack, room, users):
    [alice] = users(1)
    seat = room["tickets"][0]

    async def scenario():
        async with clients(url_for(stack, room, alice)) as (a,):
            first = await a.request({"action": "select", "ticket_id": seat})
            await asyncio.sleep(1.1)  # let the clock move on: a renewed hold would show a later expiry
            again = await a.request({"action": "select", "ticket_id": seat})
            assert again == first

    run(scenario())


def test_a_change_made_outside_the_websocket_path_reaches_the_room(stack, room, users):
    [viewer_user] = users(1)
    seat = room["tickets"][3]

    async def scenario():
        async with clients(url_for(stack, room, viewer_user)) as (viewer,):
            # As a staff tool or another service would: a plain UpdateItem on the table.
            await asyncio.to_thread(
                dynamodb(stack).update_item,
                TableName=TICKETS_TABLE,
                Key={"showtime_id": {"S": room["showtime_id"]}, "ticket_id": {"S": seat}},
                UpdateExpression="SET #s = :sold",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":sold": {"S": "sold"}},
            )
            update = await viewer.seen(seat, "sold")
            assert "expires_at" not in update
            refused = await viewer.request({"action": "select", "ticket_id": seat})
            assert refused["code"] == "ticket_unavailable"

    run(scenario())


# --- handshake ----------------------------------------------------------------------------------------


def handshake_status(url: str) -> int:
    async def attempt() -> int:
        try:
            async with websockets.connect(url, open_timeout=TIMEOUT):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return run(attempt())


def test_handshake_is_refused_401_400_404_in_that_order(stack, room, users):
    [alice] = users(1)
    token = alice["access"]
    good = room["showtime_id"]
    event = room["event_id"]
    cases = [
        ({"showtime_id": good}, 401),
        ({"showtime_id": good, "token": "not-a-jwt"}, 401),
        ({"showtime_id": good, "token": token + "x"}, 401),
        ({"showtime_id": "bad id!"}, 401),  # no token and bad parameters: 401 first
        ({}, 401),
        ({"token": token}, 400),
        ({"token": token, "showtime_id": "bad id!"}, 400),
        ({"token": token, "event_id": event, "date": room["date"]}, 400),
        ({"token": token, "event_id": event, "date": "01-06-2031", "theater": room["theater"]}, 400),
        ({"token": token, "event_id": event, "date": "2031-02-30", "theater": room["theater"]}, 400),
        ({"token": token, "showtime_id": "0123456789abcdef0000"}, 404),
        ({"token": token, "event_id": event, "date": "2031-06-02", "theater": room["theater"]}, 404),
        ({"token": token, "event_id": "no-such-event", "date": room["date"], "theater": room["theater"]}, 404),
    ]
    observed = [(query, handshake_status(ws_url(stack, **query))) for query, _ in cases]
    assert observed == [(query, status) for query, status in cases]


def test_room_named_by_event_date_and_theater_any_case_is_the_showtime(stack, room, users):
    alice, bob = users(2)
    seat = room["tickets"][0]
    by_name = ws_url(
        stack, event_id=room["event_id"], date=room["date"], theater=room["theater"].upper(), token=alice["access"]
    )

    async def scenario():
        async with clients(by_name, url_for(stack, room, bob)) as (a, b):
            assert (await a.request({"action": "select", "ticket_id": seat}))["type"] == "selected"
            await b.seen(seat, "held")

    run(scenario())


# --- frames -------------------------------------------------------------------------------------------


def test_actionless_frame_toggles_the_seat(stack, room, users):
    alice, bob = users(2)
    seat = room["tickets"][0]

    async def scenario():
        async with clients(url_for(stack, room, alice), url_for(stack, room, bob)) as (a, b):
            assert (await a.request({"ticket_id": seat}))["type"] == "selected"
            await b.seen(seat, "held")
            assert (await a.request({"ticket_id": seat}))["type"] == "unselected"
            await b.seen(seat, "available")
            assert (await a.request({"ticket_id": seat}))["type"] == "selected"

    run(scenario())


def test_snapshot_lists_the_room_and_marks_mine(stack, room, users):
    alice, bob = users(2)
    mine, theirs, *_ = room["tickets"]

    async def scenario():
        async with clients(url_for(stack, room, alice), url_for(stack, room, bob)) as (a, b):
            await a.request({"action": "select", "ticket_id": mine})
            await b.request({"action": "select", "ticket_id": theirs})
            await a.send({"action": "snapshot"})
            snapshot = await a.reply(type_="snapshot")
            by_id = {t["ticket_id"]: t for t in snapshot["tickets"]}
            assert list(by_id) == room["tickets"]
            assert (by_id[mine]["status"], by_id[mine]["mine"]) == ("held", True)
            assert (by_id[theirs]["status"], by_id[theirs]["mine"]) == ("held", False)
            assert {t["status"] for t in snapshot["tickets"][2:]} == {"available"}
            assert {"seat", "row", "number", "price", "currency", "showtime_id"} <= set(by_id[mine])

    run(scenario())


@pytest.mark.parametrize(
    "frame",
    [
        "this is not json",
        "[]",
        json.dumps({"action": "teleport", "ticket_id": "x"}),
        json.dumps({"action": "select"}),
        json.dumps({"action": "unselect", "ticket_id": None}),
    ],
    ids=["not-json", "not-an-object", "unknown-action", "missing-ticket", "null-ticket"],
)
def test_bad_frame_gets_bad_request_and_the_connection_stays_usable(stack, room, users, frame):
    [alice] = users(1)
    seat = room["tickets"][0]

    async def scenario():
        async with clients(url_for(stack, room, alice)) as (a,):
            await a.send(frame)
            error = await a.reply(type_="error")
            assert (error["code"], error["ticket_id"]) == ("bad_request", None)
            assert error["message"]
            assert (await a.request({"action": "select", "ticket_id": seat}))["type"] == "selected"

    run(scenario())


def test_not_found_for_a_ticket_of_another_room(stack, room, users):
    [alice] = users(1)
    elsewhere = new_room(stack, rows=1, seats=1)["tickets"][0]

    async def scenario():
        async with clients(url_for(stack, room, alice)) as (a,):
            error = await a.request({"action": "select", "ticket_id": elsewhere})
            assert (error["code"], error["ticket_id"]) == ("not_found", elsewhere)

    run(scenario())


# --- the limit and the race ---------------------------------------------------------------------------


def test_fifth_select_is_limit_reached_until_a_seat_is_released(stack, room, users):
    [alice] = users(1)
    tickets = room["tickets"]

    async def scenario():
        async with clients(url_for(stack, room, alice)) as (a,):
            for seat in tickets[:LIMIT]:
                assert (await a.request({"action": "select", "ticket_id": seat}))["type"] == "selected"
            refused = await a.request({"action": "select", "ticket_id": tickets[LIMIT]})
            assert (refused["code"], refused["ticket_id"]) == ("limit_reached", tickets[LIMIT])
            await a.request({"action": "unselect", "ticket_id": tickets[0]})
            assert (await a.request({"action": "select", "ticket_id": tickets[LIMIT]}))["type"] == "selected"

    run(scenario())


def test_concurrent_selects_from_three_connections_of_one_user_stay_within_the_limit(stack, room, users):
    [alice] = users(1)
    tickets = room["tickets"][:12]
    url = url_for(stack, room, alice)

    async def scenario():
        async with clients(url, url, url) as connections:
            plan = [(connections[i % 3], seat) for i, seat in enumerate(tickets)]
            await asyncio.gather(*(c.send({"action": "select", "ticket_id": seat}) for c, seat in plan))
            replies = [await c.reply(seat) for c, seat in plan]
            outcomes = [r["type"] if r["type"] != "error" else r["code"] for r in replies]
            selected = {seat for (_, seat), outcome in zip(plan, outcomes, strict=True) if outcome == "selected"}
            assert set(outcomes) <= {"selected", "limit_reached", "busy"}
            assert len(selected) <= LIMIT
            if "busy" not in outcomes:
                assert len(selected) == LIMIT
            await connections[0].send({"action": "snapshot"})
            snapshot = await connections[0].reply(type_="snapshot")
            assert {t["ticket_id"] for t in snapshot["tickets"] if t["mine"]} == selected

    run(scenario())


def test_many_users_racing_for_the_same_three_seats_get_exactly_one_holder_each(stack, room, users):
    racers = users(12)
    seats = room["tickets"][:3]

    async def scenario():
        async with clients(*(url_for(stack, room, u) for u in racers)) as connections:
            await asyncio.gather(
                *(c.send({"action": "select", "ticket_id": seat}) for c in connections for seat in seats)
            )
            winners: dict[str, list[int]] = {seat: [] for seat in seats}
            for index, client in enumerate(connections):
                for seat in seats:
                    reply = await client.reply(seat)
                    if reply["type"] == "selected":
                        winners[seat].append(index)
                    else:
                        assert reply["code"] in ("ticket_unavailable", "busy"), reply
            assert {seat: len(w) for seat, w in winners.items()} == {seat: 1 for seat in seats}
            return winners

    winners = run(scenario())
    for seat, [index] in winners.items():
        listing = requests.get(
            stack.api(f"events/{room['event_id']}/tickets/"),
            params={"date": room["date"], "theater": room["theater"]},
            headers={"Authorization": f"Bearer {racers[index]['access']}"},
            timeout=30,
        ).json()["results"]
        [ticket] = [t for t in listing if t["ticket_id"] == seat]
        assert (ticket["status"], ticket["mine"]) == ("held", True)


# --- connections that go away -------------------------------------------------------------------------


def test_a_socket_killed_without_a_close_is_gone_and_its_row_removed(stack, room, users):
    victim, other = users(2)

    async def scenario() -> str:
        async with clients(url_for(stack, room, victim), url_for(stack, room, other)) as (doomed, alive):
            [connection_id] = await asyncio.to_thread(connection_ids_of, stack, victim["id"])
            doomed.ws.transport.abort()  # no close frame: the TCP connection just dies
            await alive.request({"action": "select", "ticket_id": room["tickets"][0]})
            await alive.seen(room["tickets"][0], "held")  # a broadcast to the room has happened
            return connection_id

    connection_id = run(scenario())
    wait_until(
        lambda: requests.get(f"{stack.base_url}/@connections/{connection_id}", timeout=10).status_code == 410,
        what="the Management API to call the connection gone",
    )
    wait_until(lambda: not connection_row_exists(stack, connection_id), what="the connection row to go")


def test_a_gone_connection_met_by_a_broadcast_is_pruned(stack, room, users):
    [viewer_user] = users(1)
    phantom = f"phantom-{uuid.uuid4().hex[:10]}"
    now = int(time.time())
    # A row whose socket is long gone and whose $disconnect never ran (a crashed gateway, a lost event).
    dynamodb(stack).put_item(
        TableName=CONNECTIONS_TABLE,
        Item={
            "connection_id": {"S": phantom},
            "room": {"S": room["showtime_id"]},
            "user_id": {"S": "ghost"},
            "connected_at": {"N": str(now - 600)},
            "expires_at": {"N": str(now + 3600)},
        },
    )
    assert requests.get(f"{stack.base_url}/@connections/{phantom}", timeout=10).status_code == 410

    async def scenario():
        async with clients(url_for(stack, room, viewer_user)) as (viewer,):
            await viewer.request({"action": "select", "ticket_id": room["tickets"][0]})
            await viewer.seen(room["tickets"][0], "held")

    run(scenario())
    wait_until(lambda: not connection_row_exists(stack, phantom), what="the gone connection's row to be pruned")


# --- expiry (a stack of its own with 2-second holds) ---------------------------------------------------


@pytest.fixture(scope="module")
def short_hold_stack():
    with running_stack(env={"HOLD_SECONDS": "2", "SWEEP_INTERVAL_SECONDS": "1"}) as running:
        yield running


def test_expired_hold_is_selectable_by_another_user_and_stops_counting_for_its_holder(short_hold_stack):
    stack = short_hold_stack
    room = new_room(stack)
    alice, bob, carol = (stack.register() for _ in range(3))
    tickets = room["tickets"]
    held, extra = tickets[:LIMIT], tickets[LIMIT]

    async def scenario():
        urls = (url_for(stack, room, u) for u in (alice, bob, carol))
        async with clients(*urls) as (a, b, viewer):
            replies = await asyncio.gather(*(a.request({"action": "select", "ticket_id": s}) for s in held))
            assert [r["type"] for r in replies] == ["selected"] * LIMIT
            expiry = max(iso(r["expires_at"]) for r in replies)
            for seat in held:
                await viewer.seen(seat, "held")
            refused = await a.request({"action": "select", "ticket_id": extra})
            if refused["type"] == "error":  # the holds may already be over on a slow machine
                assert refused["code"] == "limit_reached"
            else:
                assert refused["type"] == "selected"
                await a.request({"action": "unselect", "ticket_id": extra})

            # The sweep releases the expired holds and the room is told.
            for seat in held:
                await viewer.seen(seat, "available", timeout=TIMEOUT + 5)
            assert dt.datetime.now(dt.UTC) >= expiry
            taken = await b.request({"action": "select", "ticket_id": held[0]})
            assert taken["type"] == "selected"
            # Alice's four holds are over: she may take seats again.
            again = await a.request({"action": "select", "ticket_id": extra})
            assert again["type"] == "selected"

    run(scenario())
