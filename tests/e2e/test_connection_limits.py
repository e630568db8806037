"""The local gateway enforces API Gateway's connection quotas: idle timeout, maximum age, new-connection rate.

One stack of this module's own, with the quotas shrunk so each acts in seconds (the defaults are AWS's).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

from tests.support.rooms import (
    TIMEOUT,
    Client,
    connection_ids_of,
    connection_row_exists,
    new_room,
    url_for,
    wait_until,
)
from tests.support.stack import running_stack

IDLE_SECONDS = 2.0
MAX_AGE_SECONDS = 6.0
CONNECT_RATE = 5  # a second, and the burst
GOING_AWAY = 1001
# How late a close may come on a shared 2-core machine (the gateway's timers are exact; the loop may be busy).
SLACK_SECONDS = 1.5


@pytest.fixture(scope="module")
def limited():
    env = {
        "LOCAL_WS_IDLE_SECONDS": str(IDLE_SECONDS),
        "LOCAL_WS_MAX_AGE_SECONDS": str(MAX_AGE_SECONDS),
        "LOCAL_WS_CONNECT_RATE": str(CONNECT_RATE),
    }
    with running_stack(env=env) as running:
        yield running


@pytest.fixture(scope="module")
def room(limited) -> dict:
    return new_room(limited, rows=1, seats=2)


async def connect(address: str):
    # No protocol pings from the client library: they must not be what keeps (or fails to keep) a socket open.
    return await websockets.connect(address, open_timeout=TIMEOUT, close_timeout=2, ping_interval=None)


async def closed_after(ws, started: float, limit: float) -> float:
    """Seconds from `started` until the server closed `ws` (which must happen by `limit` + slack)."""
    await asyncio.wait_for(ws.wait_closed(), limit + SLACK_SECONDS + TIMEOUT / 2)
    return time.monotonic() - started


def wait_for_tokens() -> None:
    """Let the bucket refill after another test's handshakes."""
    time.sleep(1.0 + 1.0 / CONNECT_RATE)


def test_an_idle_socket_is_closed_going_away_at_the_idle_timeout_and_its_row_removed(limited, room):
    user = limited.register()
    wait_for_tokens()

    async def scenario():
        started = time.monotonic()
        ws = await connect(url_for(limited, room, user))
        [connection_id] = await asyncio.to_thread(connection_ids_of, limited, user["id"])
        lasted = await closed_after(ws, started, IDLE_SECONDS)
        return connection_id, lasted, ws.close_code, ws.close_reason

    connection_id, lasted, code, reason = asyncio.run(scenario())
    assert (code, reason) == (GOING_AWAY, "Going away")
    assert IDLE_SECONDS - 0.1 <= lasted <= IDLE_SECONDS + SLACK_SECONDS
    wait_until(lambda: not connection_row_exists(limited, connection_id), what="$disconnect to remove the row")


def test_a_socket_that_sends_pings_outlives_the_idle_timeout(limited, room):
    user = limited.register()
    wait_for_tokens()

    async def scenario():
        started = time.monotonic()
        client = Client(await connect(url_for(limited, room, user)))
        try:
            while time.monotonic() - started < 2.5 * IDLE_SECONDS:
                await client.send({"action": "ping"})
                assert await client.reply(type_="pong") == {"type": "pong"}
                await asyncio.sleep(IDLE_SECONDS / 3)
            assert client.ws.close_code is None, "the gateway closed a socket that kept sending frames"
            assert (await client.request({"action": "snapshot"}))["type"] == "snapshot"
        finally:
            await client.close()

    asyncio.run(scenario())


def test_an_active_socket_is_closed_going_away_at_its_maximum_age(limited, room):
    user = limited.register()
    wait_for_tokens()

    async def scenario():
        started = time.monotonic()
        ws = await connect(url_for(limited, room, user))
        [connection_id] = await asyncio.to_thread(connection_ids_of, limited, user["id"])

        async def keep_busy() -> None:
            while True:
                await ws.send(json.dumps({"action": "ping"}))
                await asyncio.sleep(IDLE_SECONDS / 4)

        busy = asyncio.create_task(keep_busy())
        try:
            lasted = await closed_after(ws, started, MAX_AGE_SECONDS)
        finally:
            busy.cancel()
        return connection_id, lasted, ws.close_code, ws.close_reason

    connection_id, lasted, code, reason = asyncio.run(scenario())
    assert (code, reason) == (GOING_AWAY, "Going away")
    assert MAX_AGE_SECONDS - 0.1 <= lasted <= MAX_AGE_SECONDS + SLACK_SECONDS
    wait_until(lambda: not connection_row_exists(limited, connection_id), what="$disconnect to remove the row")


def test_handshakes_over_the_connection_rate_are_refused_429_before_connect_runs(limited, room):
    user = limited.register()
    attempts = 3 * CONNECT_RATE
    wait_for_tokens()

    async def attempt():
        try:
            return await connect(url_for(limited, room, user))
        except websockets.exceptions.InvalidStatus as refused:
            return refused.response

    async def burst():
        outcomes = await asyncio.gather(*(attempt() for _ in range(attempts)))
        opened = [o for o in outcomes if isinstance(o, websockets.ClientConnection)]
        refused = [o for o in outcomes if not isinstance(o, websockets.ClientConnection)]
        rows = await asyncio.to_thread(connection_ids_of, limited, user["id"])
        for ws in opened:
            await ws.close()
        return opened, refused, rows

    opened, refused, rows = asyncio.run(burst())
    # The burst is the rate; the refill during the burst may let one or two more through.
    assert CONNECT_RATE <= len(opened) <= CONNECT_RATE + 3, (len(opened), len(refused))
    assert refused and {r.status_code for r in refused} == {429}
    assert {json.loads(r.body)["code"] for r in refused} == {"rate_limited"}
    assert len(rows) == len(opened), "a refused handshake ran $connect (it wrote a connection row)"
    wait_until(lambda: connection_ids_of(limited, user["id"]) == [], what="$disconnect to remove the rows")

    # The bucket refills: a second later handshakes are accepted again.
    wait_for_tokens()

    async def later():
        ws = await connect(url_for(limited, room, user))
        await ws.close()

    asyncio.run(later())
