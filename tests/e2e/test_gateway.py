"""The local WebSocket gateway behaves as API Gateway does: frame limit, handshake status, @connections API."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
import websockets

from tests.support.rooms import TIMEOUT, Client, clients, connection_ids_of, new_room, url_for, wait_until

FRAME_LIMIT = 32 * 1024


@pytest.fixture
def room(stack) -> dict:
    return new_room(stack, rows=1, seats=2)


def padded_snapshot(size: int) -> str:
    """A valid snapshot request of exactly `size` bytes."""
    frame = json.dumps({"action": "snapshot", "pad": ""})
    return json.dumps({"action": "snapshot", "pad": "x" * (size - len(frame))})


def test_a_frame_of_exactly_32_kb_is_accepted(stack, room):
    user = stack.register()
    frame = padded_snapshot(FRAME_LIMIT)
    assert len(frame.encode()) == FRAME_LIMIT

    async def scenario():
        async with clients(url_for(stack, room, user)) as (client,):
            await client.send(frame)
            assert (await client.reply(type_="snapshot"))["tickets"]

    asyncio.run(scenario())


def test_a_frame_over_32_kb_closes_the_connection_with_1009(stack, room):
    user = stack.register()

    async def scenario():
        ws = await websockets.connect(url_for(stack, room, user), open_timeout=TIMEOUT, max_size=None)
        await ws.send(padded_snapshot(FRAME_LIMIT + 1))
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        return ws.close_code

    assert asyncio.run(scenario()) == 1009
    wait_until(lambda: connection_ids_of(stack, user["id"]) == [], what="$disconnect to remove the row")


def test_management_api_posts_to_an_open_connection_and_answers_410_once_it_is_gone(stack, room):
    user = stack.register()

    async def scenario():
        client = await Client.open(url_for(stack, room, user))
        [connection_id] = await asyncio.to_thread(connection_ids_of, stack, user["id"])
        endpoint = f"{stack.base_url}/@connections/{connection_id}"

        posted = await asyncio.to_thread(
            requests.post, endpoint, data=json.dumps({"type": "hello"}).encode(), timeout=TIMEOUT
        )
        assert posted.status_code == 200
        assert await client.reply(type_="hello") == {"type": "hello"}

        info = await asyncio.to_thread(requests.get, endpoint, timeout=TIMEOUT)
        assert info.status_code == 200
        assert {"connectedAt", "identity", "lastActiveAt"} <= set(info.json())

        deleted = await asyncio.to_thread(requests.delete, endpoint, timeout=TIMEOUT)
        assert deleted.status_code == 204
        await asyncio.wait_for(client.ws.wait_closed(), TIMEOUT)

        for method in (requests.get, requests.post, requests.delete):
            gone = await asyncio.to_thread(method, endpoint, timeout=TIMEOUT)
            assert gone.status_code == 410
        return connection_id

    asyncio.run(scenario())
    wait_until(lambda: connection_ids_of(stack, user["id"]) == [], what="$disconnect to remove the row")


def test_management_api_answers_410_for_an_unknown_connection(stack):
    for method in (requests.get, requests.post, requests.delete):
        assert method(f"{stack.base_url}/@connections/never-existed", timeout=TIMEOUT).status_code == 410
    # botocore URL-encodes the @ of the path; both spellings reach the same API.
    assert requests.get(f"{stack.base_url}/%40connections/never-existed", timeout=TIMEOUT).status_code == 410


def test_a_refused_handshake_writes_no_connection_row(stack):
    user = stack.register()

    async def scenario():
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(
                f"{stack.ws_url}?showtime_id=0123456789abcdef0000&token={user['access']}", open_timeout=TIMEOUT
            ):
                pass
        assert refused.value.response.status_code == 404
        body = json.loads(refused.value.response.body)
        assert body["code"] == "not_found"

    asyncio.run(scenario())
    assert connection_ids_of(stack, user["id"]) == []
