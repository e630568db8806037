"""What the bench needs in the stack before it measures: users, rooms and their tickets (over REST),
plus a boto3 view of the tables for the checks no client can make (who holds a seat, which row is a
connection's). Nothing here is timed."""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import boto3
import requests
from boto3.dynamodb.conditions import Attr

TABLE_PREFIX = "tickets-local-"
_ENDPOINT = re.compile(r"AWS endpoint (http://[^\s)]+)")


@dataclass(frozen=True)
class User:
    id: str
    email: str
    access: str


@dataclass(frozen=True)
class Room:
    name: str
    showtime_id: str
    tickets: tuple[str, ...]


def aws_endpoint(stack) -> str | None:
    """The moto endpoint, from the stack's `ready` line (None until it is printed)."""
    for line in list(stack.output):
        match = _ENDPOINT.search(line)
        if match:
            return match.group(1)
    return None


def register_users(stack, count: int, label: str, workers: int = 8) -> list[User]:
    def one(index: int) -> User:
        data = stack.register(email=f"bench-{label}-{index}-{uuid.uuid4().hex[:6]}@example.com")
        return User(id=data["id"], email=data["email"], access=data["access"])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(count)))


class Rooms:
    """Creates one showtime per bench room under a demo event, so rooms never share connections."""

    def __init__(self, stack) -> None:
        self._stack = stack
        self._headers = {"Authorization": f"Bearer {stack.staff_token()}"}
        events = requests.get(stack.api("events/"), timeout=30).json()["results"]
        self._event_id = events[0]["id"]
        self._date = (dt.date.today() + dt.timedelta(days=20)).isoformat()

    def create(self, name: str, min_tickets: int) -> Room:
        seats_per_row = 40 if min_tickets > 80 else 10
        rows = max(1, math.ceil(min_tickets / seats_per_row))
        theater = f"Bench {name}"
        created = requests.post(
            self._stack.api(f"events/{self._event_id}/showtimes/"),
            json={
                "date": self._date,
                "theater": theater,
                "starts_at": "20:00",
                "rows": rows,
                "seats_per_row": seats_per_row,
                "price": "10.00",
                "currency": "USD",
            },
            headers=self._headers,
            timeout=60,
        )
        created.raise_for_status()
        listing = requests.get(
            self._stack.api(f"events/{self._event_id}/tickets/"),
            params={"date": self._date, "theater": theater},
            timeout=60,
        )
        listing.raise_for_status()
        tickets = tuple(t["ticket_id"] for t in listing.json()["results"])
        return Room(name=name, showtime_id=created.json()["showtime_id"], tickets=tickets)


class Tables:
    """Direct reads of the stack's tables (consistent), outside anything measured."""

    def __init__(self, endpoint: str) -> None:
        self._db = boto3.session.Session().resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        self.tickets = self._db.Table(f"{TABLE_PREFIX}tickets")
        self.carts = self._db.Table(f"{TABLE_PREFIX}carts")
        self.connections = self._db.Table(f"{TABLE_PREFIX}connections")

    def holder(self, showtime_id: str, ticket_id: str) -> tuple[str | None, str | None]:
        item = self.tickets.get_item(Key={"showtime_id": showtime_id, "ticket_id": ticket_id}, ConsistentRead=True).get(
            "Item", {}
        )
        return item.get("status"), item.get("holder")

    def connection_ids(self, user_id: str) -> list[str]:
        return [i["connection_id"] for i in self._scan(self.connections, Attr("user_id").eq(user_id))]

    def room_tickets(self, showtime_id: str) -> list[dict]:
        return self._scan(self.tickets, Attr("showtime_id").eq(showtime_id))

    def room_carts(self, showtime_id: str) -> list[dict]:
        return self._scan(self.carts, Attr("showtime_id").eq(showtime_id))

    @staticmethod
    def _scan(table, condition) -> list[dict]:
        items, kwargs = [], {"FilterExpression": condition, "ConsistentRead": True}
        while True:
            page = table.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
