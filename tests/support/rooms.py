"""WebSocket rooms of the running stack for the e2e suites: fresh showtimes, clients that remember what they
saw, direct looks at the connections table."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import uuid
from urllib.parse import urlencode

import boto3
import requests
import websockets
from websockets.exceptions import ConnectionClosed

from tests.support.stack import Stack

TIMEOUT = 10.0  # per awaited message: the machine is shared
LIMIT = 4
TICKETS_TABLE = "tickets-local-tickets"
CONNECTIONS_TABLE = "tickets-local-connections"


# --- helpers ------------------------------------------------------------------------------------------


_events: dict[str, str] = {}  # stack base URL -> the event holding this suite's showtimes


def suite_event(stack: Stack) -> str:
    """An event of this suite's own, so demo events keep their seeded showtimes for other suites."""
    if stack.base_url not in _events:
        response = requests.post(
            stack.api("events/"),
            json={"title": "WebSocket e2e", "description": "", "category": "drama", "duration_minutes": 90},
            headers={"Authorization": f"Bearer {stack.staff_token()}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        _events[stack.base_url] = response.json()["id"]
    return _events[stack.base_url]


def new_room(stack: Stack, rows: int = 2, seats: int = 10) -> dict:
    """A fresh showtime; returns {"event_id", "showtime_id", "date", "theater", "tickets": [ids in seat order]}."""
    event_id = suite_event(stack)
    theater = f"Room {uuid.uuid4().hex[:8]}"
    date = "2031-06-01"
    response = requests.post(
        stack.api(f"events/{event_id}/showtimes/"),
        json={
            "date": date,
            "theater": theater,
            "starts_at": "19:00",
            "rows": rows,
            "seats_per_row": seats,
            "price": "8.00",
        },
        headers={"Authorization": f"Bearer {stack.staff_token()}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    showtime_id = response.json()["showtime_id"]
    listing = requests.get(
        stack.api(f"events/{event_id}/tickets/"), params={"date": date, "theater": theater}, timeout=30
    )
    tickets = [t["ticket_id"] for t in listing.json()["results"]]
    assert len(tickets) == rows * seats
    return {"event_id": event_id, "showtime_id": showtime_id, "date": date, "theater": theater, "tickets": tickets}


def ws_url(stack: Stack, **query: str) -> str:
    return f"{stack.ws_url}?{urlencode(query)}"


def aws_endpoint(stack: Stack) -> str:
    return stack.aws_endpoint


def dynamodb(stack: Stack):
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=aws_endpoint(stack),
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def connection_ids_of(stack: Stack, user_id: str) -> list[str]:
    items = dynamodb(stack).scan(
        TableName=CONNECTIONS_TABLE,
        FilterExpression="user_id = :u",
        ExpressionAttributeValues={":u": {"S": user_id}},
        ConsistentRead=True,
    )["Items"]
    return [item["connection_id"]["S"] for item in items]


def connection_row_exists(stack: Stack, connection_id: str) -> bool:
    item = dynamodb(stack).get_item(
        TableName=CONNECTIONS_TABLE, Key={"connection_id": {"S": connection_id}}, ConsistentRead=True
    )
    return "Item" in item


def wait_until(condition, timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def iso(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


class Client:
    """One WebSocket connection; replies and ticket_status updates are collected in the background."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.replies: list[dict] = []  # selected / unselected / error / snapshot
        self.updates: list[dict] = []  # ticket_status updates, flattened, in arrival order
        self.raw_status: list[str] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> Client:
        return cls(await websockets.connect(url, open_timeout=TIMEOUT, close_timeout=2))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") == "ticket_status":
                    self.raw_status.append(raw)
                    self.updates.extend(message["updates"])
                else:
                    self.replies.append(message)
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            self._arrived.set()

    async def send(self, message: dict | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def _take(self, box: list[dict], predicate, what: str, timeout: float, passed_over=None) -> dict:
        """Pop the first message matching `predicate`; with `passed_over`, also drop the earlier
        messages it matches."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._arrived.clear()
            for index, message in enumerate(box):
                if predicate(message):
                    earlier = box[:index]
                    box[: index + 1] = [m for m in earlier if not passed_over(m)] if passed_over else earlier
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout} s; replies={self.replies} updates={self.updates}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def reply(self, ticket_id: str | None = None, type_: str | None = None, timeout: float = TIMEOUT) -> dict:
        def matches(m: dict) -> bool:
            return (type_ is None or m["type"] == type_) and (ticket_id is None or m.get("ticket_id") == ticket_id)

        return await self._take(self.replies, matches, f"reply {type_} for {ticket_id}", timeout)

    async def request(self, message: dict, timeout: float = TIMEOUT) -> dict:
        await self.send(message)
        return await self.reply(message.get("ticket_id"), timeout=timeout)

    async def seen(self, ticket_id: str, status: str, timeout: float = TIMEOUT) -> dict:
        """The first update of this ticket to `status` not yet taken; the ticket's updates received
        before it are dropped (tests read a ticket's updates in the order they expect them).

        Updates reach a connection in stream order, so an older one (such as the `available` a new
        room's tickets are broadcast with, arriving after the viewer connected) is never taken for a
        later change."""
        return await self._take(
            self.updates,
            lambda u: u["ticket_id"] == ticket_id and u["status"] == status,
            f"ticket_status {status} for {ticket_id}",
            timeout,
            passed_over=lambda u: u["ticket_id"] == ticket_id,
        )

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


@contextlib.asynccontextmanager
async def clients(*urls: str):
    opened = [await Client.open(url) for url in urls]
    try:
        yield opened
    finally:
        for client in opened:
            with contextlib.suppress(Exception):
                await client.close()


def run(coroutine):
    return asyncio.run(coroutine)


def url_for(stack: Stack, room: dict, user: dict) -> str:
    return ws_url(stack, showtime_id=room["showtime_id"], token=user["access"])
