"""Real WebSocket clients of the seat map (the `websockets` asyncio client), one connection each.

A client keeps one reader task: replies (`selected` / `unselected` / `error`) resolve the request
waiting for that ticket; `ticket_status` broadcasts are counted and handed to an optional observer
with their arrival time, so viewers can be timed without a second read path.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import websockets

REPLY_TYPES = {"select": ("selected", "error"), "unselect": ("unselected", "error")}
StatusObserver = Callable[["Client", float, dict], None]


@dataclass
class Reply:
    """The answer to one request: its type, error code if any, and the round trip in ms (None if lost)."""

    action: str
    ticket_id: str
    sent_at: float
    latency_ms: float | None
    message: dict | None

    @property
    def lost(self) -> bool:
        return self.message is None

    @property
    def kind(self) -> str | None:
        return None if self.message is None else self.message.get("type")

    @property
    def code(self) -> str | None:
        return None if self.message is None else self.message.get("code")

    @property
    def received_at(self) -> float | None:
        return None if self.latency_ms is None else self.sent_at + self.latency_ms / 1000


@dataclass
class Counters:
    frames: int = 0
    replies: int = 0
    status_frames: int = 0
    status_updates: int = 0
    unmatched_replies: int = 0  # a reply nobody waited for (a late answer, or a post made in-process)
    unmatched: list[dict] = field(default_factory=list)  # the first 100 of them


@dataclass
class Client:
    name: str
    user_id: str
    url: str
    reply_timeout: float = 15.0
    observer: StatusObserver | None = None
    counters: Counters = field(default_factory=Counters)
    _ws: object | None = None
    _reader: asyncio.Task | None = None
    _pending: dict[str, tuple[str, asyncio.Future]] = field(default_factory=dict)

    @staticmethod
    def room_url(ws_url: str, showtime_id: str, token: str) -> str:
        return f"{ws_url}?{urlencode({'showtime_id': showtime_id, 'token': token})}"

    async def open(self, timeout: float = 60.0) -> None:
        # No permessage-deflate (API Gateway does not negotiate it) and no keepalive pings: a client
        # loop busy with 1,000 sockets must not drop connections for a late pong.
        self._ws = await websockets.connect(
            self.url, compression=None, ping_interval=None, open_timeout=timeout, max_size=2**22, close_timeout=5
        )
        self._reader = asyncio.create_task(self._read(), name=f"reader-{self.name}")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:  # type: ignore[union-attr]
                self._on_frame(time.perf_counter(), raw)
        except websockets.ConnectionClosed:
            pass

    def _on_frame(self, now: float, raw: str | bytes) -> None:
        self.counters.frames += 1
        message = json.loads(raw)
        if message.get("type") == "ticket_status":
            self.counters.status_frames += 1
            self.counters.status_updates += len(message.get("updates", ()))
            if self.observer is not None:
                self.observer(self, now, message)
            return
        self.counters.replies += 1
        waiting = self._pending.get(message.get("ticket_id") or "")
        if waiting is None or message.get("type") not in REPLY_TYPES[waiting[0]] or waiting[1].done():
            self.counters.unmatched_replies += 1
            if len(self.counters.unmatched) < 100:
                self.counters.unmatched.append(message)
            return
        waiting[1].set_result((now, message))

    async def request(self, action: str, ticket_id: str) -> Reply:
        """Send select / unselect and wait for its reply (a lost reply after reply_timeout)."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[ticket_id] = (action, future)
        sent_at = time.perf_counter()
        try:
            await self._ws.send(json.dumps({"action": action, "ticket_id": ticket_id}))  # type: ignore[union-attr]
            received_at, message = await asyncio.wait_for(future, self.reply_timeout)
        except (TimeoutError, websockets.ConnectionClosed):
            return Reply(action, ticket_id, sent_at, None, None)
        finally:
            if self._pending.get(ticket_id, (None, None))[1] is future:
                del self._pending[ticket_id]
        return Reply(action, ticket_id, sent_at, (received_at - sent_at) * 1000, message)


async def open_all(clients: list[Client], concurrency: int = 25) -> None:
    """Open every client, at most `concurrency` handshakes at a time (each is a $connect handler call)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> None:
        async with gate:
            await client.open()

    await asyncio.gather(*(one(c) for c in clients))


async def close_all(clients: list[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


class Watch:
    """Times one change until every watched client has seen it in a ticket_status message."""

    def __init__(self, watched: list[Client]) -> None:
        self._watched = {id(c) for c in watched}
        self._key: tuple[str, str] | None = None
        self._seen: dict[int, float] = {}
        self._done = asyncio.Event()

    def arm(self, ticket_id: str, status: str) -> None:
        self._key = (ticket_id, status)
        self._seen = {}
        self._done = asyncio.Event()

    def observe(self, client: Client, now: float, message: dict) -> None:
        if self._key is None or id(client) not in self._watched or id(client) in self._seen:
            return
        for update in message.get("updates", ()):
            if (update.get("ticket_id"), update.get("status")) == self._key:
                self._seen[id(client)] = now
                if len(self._seen) == len(self._watched):
                    self._done.set()
                return

    async def wait(self, timeout: float) -> tuple[float | None, float | None, int]:
        """(first arrival, last arrival or None if someone missed it, how many saw it)."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            pass
        times = list(self._seen.values())
        self._key = None
        if not times:
            return None, None, 0
        return min(times), (max(times) if len(times) == len(self._watched) else None), len(times)
