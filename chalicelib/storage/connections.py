"""WebSocket connection rows. A row never changes after $connect, so reads are cached per container."""

from __future__ import annotations

import threading

from pynamodb.exceptions import DeleteError

from chalicelib.domain import ConnectionRecord
from chalicelib.storage.conditions import condition_failed
from chalicelib.storage.models import Connection

# API Gateway closes a WebSocket after 2 hours; the TTL removes rows whose $disconnect never ran.
_ROW_LIFETIME = 2 * 3600 + 15 * 60


class ConnectionRepository:
    def __init__(self, cache_size: int = 20_000) -> None:
        self._cache: dict[str, ConnectionRecord] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def add(self, record: ConnectionRecord) -> None:
        Connection(
            connection_id=record.connection_id,
            room=record.room,
            user_id=record.user_id,
            connected_at=record.connected_at,
            source_ip=record.source_ip,
            session_id=record.session_id,
            expires_at=record.connected_at + _ROW_LIFETIME,
        ).save()
        self._remember(record)

    def get(self, connection_id: str) -> ConnectionRecord | None:
        cached = self._cache.get(connection_id)
        if cached is not None:
            return cached
        try:
            item = Connection.get(connection_id)
        except Connection.DoesNotExist:
            return None
        record = ConnectionRecord(
            connection_id=item.connection_id,
            room=item.room,
            user_id=item.user_id,
            connected_at=int(item.connected_at),
            source_ip=item.source_ip,
            session_id=item.session_id,
        )
        self._remember(record)
        return record

    def remove(self, connection_id: str) -> None:
        self._forget(connection_id)
        Connection(connection_id=connection_id).delete()

    def remove_if_connected_before(self, connection_id: str, cutoff: int) -> bool:
        """Delete a gone connection, unless it is so new that its socket may still be opening."""
        self._forget(connection_id)
        try:
            Connection(connection_id=connection_id).delete(condition=Connection.connected_at < cutoff)
        except DeleteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def of_user(self, user_id: str) -> list[tuple[str, str | None]]:
        """(connection id, session id) of every open connection of the user (an index read: eventually
        consistent, so a socket opened this very second may be missing)."""
        return [(c.connection_id, c.session_id) for c in Connection.by_user.query(user_id)]

    def in_room(self, room: str) -> list[str]:
        return [c.connection_id for c in Connection.by_room.query(room)]

    def _remember(self, record: ConnectionRecord) -> None:
        with self._lock:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[record.connection_id] = record

    def _forget(self, connection_id: str) -> None:
        with self._lock:
            self._cache.pop(connection_id, None)
