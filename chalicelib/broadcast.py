"""All posting to WebSocket clients goes through here: replies and room fan-out.

Posts use the API Gateway Management API at the configured endpoint (the local gateway serves the
same API). A 410 Gone deletes the connection row where it is found.

A room's fan-out (docs/broadcasts.md): its connection list is read once per batch; a room of up to
`slice_size` connections is posted from this invocation, all its posts on one asyncio loop with the client's
`max_connections` in flight (a post is network wait, not CPU: chalicelib/async_http.py); a bigger room is cut into slices of about `slice_size` connections (by a hash of the connection id), each
sent to the FIFO fan-out queue in the group `<room>#<slice>`, so separate invocations post the slices in parallel
and each slice's batches stay in order.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.observability import logger, metrics
from chalicelib.queues import QueuePublisher
from chalicelib.storage.connections import ConnectionRepository

# A post can race the connection's own $connect (row written, socket not open yet): such a 410 is
# not a gone connection, so only rows older than this are deleted.
_GONE_GRACE_SECONDS = 5


class Broadcaster:
    """Raises nothing for individual post failures: they are logged, gone connections pruned."""

    def __init__(
        self,
        client_factory: Callable[[], object],
        connections: ConnectionRepository,
        *,
        slice_size: int = 0,
        slices: QueuePublisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_factory = client_factory
        self._client: object | None = None
        self._client_lock = threading.Lock()
        self._connections = connections
        # 0 or no queue: every room is posted from here, whatever its size.
        self._slice_size = slice_size if slices is not None else 0
        self._slices = slices
        self._clock = clock

    @property
    def client(self):
        if self._client is None:
            with self._client_lock:  # the fan-out pool's threads would each build a client
                if self._client is None:
                    self._client = self._client_factory()
        return self._client

    def send(self, connection_id: str, message: dict) -> bool:
        """Post one message; False when the connection is gone (and its row was pruned)."""
        data = json.dumps(message, separators=(",", ":")).encode("utf-8")
        return self._post(connection_id, data)

    def fan_out(self, room: str, messages: Iterable[dict]) -> int:
        """Post every message to every connection of the room. Returns posts made here (not by slices)."""
        return self.fan_out_rooms({room: list(messages)})

    def fan_out_rooms(self, rooms: Mapping[str, list[dict]]) -> int:
        """Post each room's messages to its connections: the small rooms' posts all at once from here, the big
        rooms in slices through the fan-out queue. Returns posts made here."""
        jobs: list[tuple[str, bytes]] = []
        for room, messages in rooms.items():
            payloads = [json.dumps(m, separators=(",", ":")) for m in messages]
            if not payloads:
                continue
            connection_ids = self._connections.in_room(room)  # once per room and batch
            if self._slice_size and len(connection_ids) > self._slice_size:
                self._send_slices(room, connection_ids, payloads)
                continue
            jobs += [(cid, data.encode("utf-8")) for cid in connection_ids for data in payloads]
        return self._post_all(jobs)

    def post_slice(self, connection_ids: list[str], payloads: list[str]) -> int:
        """A fan-out queue message: post its payloads to its connections. Returns posts made."""
        return self._post_all([(cid, data.encode("utf-8")) for cid in connection_ids for data in payloads])

    def _post_all(self, jobs: list[tuple[str, bytes]]) -> int:
        if not jobs:
            return 0
        try:
            outcomes = self.client.post_many(jobs)  # type: ignore[attr-defined]
        except BotoCoreError as exc:  # no credentials: nothing was sent
            outcomes = [exc] * len(jobs)
        for (connection_id, _), outcome in zip(jobs, outcomes, strict=True):
            if outcome is not None:
                self._failed(connection_id, outcome)
        metrics.add_metric(name="BroadcastPosts", unit="Count", value=len(jobs))
        return len(jobs)

    def _send_slices(self, room: str, connection_ids: list[str], payloads: list[str]) -> None:
        count = math.ceil(len(connection_ids) / self._slice_size)
        members: defaultdict[int, list[str]] = defaultdict(list)
        for connection_id in connection_ids:
            # A connection stays in its slice while the room keeps its size class, so its messages keep their
            # order; when the class changes, `seq` on each update lets the client drop an overtaken one.
            members[zlib.crc32(connection_id.encode()) % count].append(connection_id)
        assert self._slices is not None
        for index, ids in sorted(members.items()):
            body = {"room": room, "connection_ids": ids, "payloads": payloads}
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            self._slices.send(body, group=f"{room}#{index}", dedup=digest)
        metrics.add_metric(name="BroadcastSlices", unit="Count", value=len(members))

    def _post(self, connection_id: str, data: bytes) -> bool:
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)  # type: ignore[attr-defined]
            return True
        except (ClientError, BotoCoreError) as exc:
            self._failed(connection_id, exc)
            return False

    def _failed(self, connection_id: str, exc: Exception) -> None:
        """A post that failed after its retries: a gone connection's row is pruned, anything else logged. One
        viewer's failure never fails (and so replays) the batch."""
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                cutoff = int(self._clock()) - _GONE_GRACE_SECONDS
                self._connections.remove_if_connected_before(connection_id, cutoff)
                return
            logger.warning("post failed", extra={"connection_id": connection_id, "error_code": code})
            return
        # Unreachable endpoint, timeout...
        logger.warning("post failed", extra={"connection_id": connection_id, "error": type(exc).__name__})

    # --- closing sockets ------------------------------------------------------------------------------------
    def close(self, connection_id: str) -> None:
        """Close one socket through the Management API and forget its row (a gone one is simply forgotten)."""
        try:
            self.client.delete_connection(ConnectionId=connection_id)  # type: ignore[attr-defined]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "GoneException":
                logger.warning("close failed", extra={"connection_id": connection_id, "error_code": code})
        except BotoCoreError as exc:
            logger.warning("close failed", extra={"connection_id": connection_id, "error": type(exc).__name__})
        self._connections.remove(connection_id)

    def close_sockets(self, user_id: str, sessions: frozenset[str] | None, keep: str | None = None) -> int:
        """Close the user's sockets of these sessions (None: of every session) but those of `keep`."""
        closing = [
            connection_id
            for connection_id, session_id in self._connections.of_user(user_id)
            if (sessions is None or session_id in sessions) and (keep is None or session_id != keep)
        ]
        for connection_id in closing:
            self.close(connection_id)
        return len(closing)
