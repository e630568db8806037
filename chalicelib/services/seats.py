"""Live seat selection use cases: WebSocket connect / messages, the expiry sweep, stream broadcasts."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from chalicelib import holds
from chalicelib.broadcast import Broadcaster
from chalicelib.config import AbuseLimits
from chalicelib.domain import ConnectionRecord, plausible_id
from chalicelib.errors import BadRequest, Busy, DomainError, NotFound, RateLimited, Unauthorized
from chalicelib.limits import FloodGuard, Limit, RateLimiter
from chalicelib.observability import logger, metrics
from chalicelib.services.accounts import AccountService
from chalicelib.services.catalog import CatalogService
from chalicelib.storage.connections import ConnectionRepository
from chalicelib.storage.seats import SeatRepository

if TYPE_CHECKING:
    from chalicelib.services.waitroom import WaitroomService

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# How long a socket's claim on its user's per-room cap lives without a $disconnect: API Gateway's 2 h limit.
SOCKET_CLAIM_SECONDS = 2 * 3600 + 900
ACTIONS = ("select", "unselect", "snapshot", "ping")
_FLOOD_SCOPE = "ws-flood"


class TicketChange(NamedTuple):
    room: str
    ticket_id: str
    status: str
    expires_at: int | None
    # The stream record's sequence number: digits, growing with every change of the room (one partition key, one
    # shard). Sent so a client can drop an update overtaken by a later one (docs/broadcasts.md).
    seq: str | None = None


def _attr(image: dict | None, name: str) -> str | None:
    if not image or name not in image:
        return None
    value = image[name]
    return value.get("S") if "S" in value else value.get("N")


def change_from_images(old: dict | None, new: dict | None, seq: str | None = None) -> TicketChange | None:
    """The viewer-visible change between two stream images of a ticket, or None if none is visible."""
    if not new:
        # A deleted ticket (a removed showtime) has no status to show; failing here would make the
        # event source retry the batch forever and stall every room's broadcasts behind it.
        return None
    room, ticket_id = _attr(new, "showtime_id"), _attr(new, "ticket_id")
    if not room or not ticket_id:
        return None
    before = _public(old)
    after = _public(new)
    if after is None or before == after:
        return None
    return TicketChange(room=room, ticket_id=ticket_id, status=after[0], expires_at=after[1], seq=seq)


def _public(image: dict | None) -> tuple[str, int | None] | None:
    if not image:
        return None
    status = _attr(image, "status") or holds.AVAILABLE
    expiry = _attr(image, "hold_expires_at")
    # A hold is reported with its expiry and never judged against the clock here: viewers free
    # the seat at expires_at themselves, and a delayed batch must not hide a real change.
    return holds.public_view(status, int(float(expiry)) if expiry else None, now=0)


def update_message(changes: list[TicketChange]) -> dict:
    updates = []
    for change in changes:
        update: dict = {"ticket_id": change.ticket_id, "status": change.status}
        if change.expires_at is not None:
            update["expires_at"] = holds.iso(change.expires_at)
        if change.seq is not None:
            update["seq"] = change.seq
        updates.append(update)
    return {"type": "ticket_status", "updates": updates}


def error_message(exc: DomainError, ticket_id: str | None) -> dict:
    message: dict[str, object] = {"type": "error", "code": exc.code, "ticket_id": ticket_id, "message": exc.message}
    if exc.retry_after is not None:
        message["retry_after"] = exc.retry_after
    return message


class SeatService:
    """WebSocket-facing use cases. connect raises Unauthorized, BadRequest, NotFound."""

    def __init__(
        self,
        *,
        repo: SeatRepository,
        catalog: CatalogService,
        accounts: AccountService,
        connections: ConnectionRepository,
        broadcaster: Broadcaster,
        limiter: RateLimiter | None = None,
        limits: AbuseLimits | None = None,
        waitroom: Callable[[], WaitroomService] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self._catalog = catalog
        self._accounts = accounts
        self._connections = connections
        self._broadcaster = broadcaster
        self._limiter = limiter
        self._limits = limits
        self._waitroom = waitroom
        self._clock = clock
        self._flood = (
            FloodGuard(limits.ws_window_seconds, max(limits.ws_messages_per_connection, 2), clock) if limits else None
        )

    # --- connection lifecycle -------------------------------------------------------------
    def connect(
        self, connection_id: str, query: dict[str, str] | None, source_ip: str | None = None
    ) -> ConnectionRecord:
        """Raises Unauthorized, BadRequest, NotFound, RateLimited (too many sockets of this user in the room)."""
        query = query or {}
        user_id, session_id = self._caller(query)
        room = self._resolve_room(query)
        now = int(self._clock())
        record = ConnectionRecord(
            connection_id=connection_id,
            room=room,
            user_id=user_id,
            connected_at=now,
            source_ip=source_ip,
            session_id=session_id,
        )
        self._refuse_flooder(user_id)
        self._claim_socket(record)
        self._connections.add(record)
        logger.info("connected", extra={"connection_id": connection_id, "user_id": user_id, "room": room})
        return record

    def _resolve_room(self, query: dict[str, str]) -> str:
        showtime_id = query.get("showtime_id")
        if showtime_id:
            if not plausible_id(showtime_id):
                raise BadRequest("showtime_id: malformed")
            return self._catalog.showtime(showtime_id).id
        event_id, date, theater = query.get("event_id"), query.get("date"), query.get("theater")
        if not event_id or not date or not theater:
            raise BadRequest("event_id, date and theater (or showtime_id) are required")
        if not plausible_id(event_id) or not _valid_date(date) or len(theater) > 100:
            raise BadRequest("event_id, date or theater: malformed")
        showtime = self._catalog.find_showtime(event_id, date, theater)
        if showtime is None:
            raise NotFound("No such showtime.")
        return showtime.id

    def _caller(self, query: dict[str, str]) -> tuple[str, str | None]:
        """(user, session) from a single-use `ticket` (POST /api/auth/ws-ticket/), or from an access `token` in
        the URL (older clients; a URL ends up in logs and histories, a spent ticket is worth nothing there)."""
        sessions = self._accounts.sessions
        ticket = query.get("ticket")
        if ticket:
            return sessions.take_ws_ticket(ticket)
        token = query.get("token")
        if not token:
            raise Unauthorized("A ticket (or token) query parameter is required.")
        claims = sessions.authenticate(token)
        return claims.user_id, claims.session_id

    def _refuse_flooder(self, user_id: str) -> None:
        """A user whose socket was closed for flooding cannot open another one until the window ends (one read
        per connect; $connect runs in other containers than the message handler, so the block is in the table)."""
        if self._limiter is None or self._limits is None:
            return
        wait = self._limiter.blocked(_FLOOD_SCOPE, user_id, Limit(1, self._limits.ws_window_seconds), "hits")
        if wait is not None:
            raise RateLimited("This account sent too many messages; wait before reconnecting.", retry_after=wait)

    def _claim_socket(self, record: ConnectionRecord) -> None:
        cap = self._limits.sockets_per_user_per_room if self._limits else 0
        if cap <= 0 or self._limiter is None:
            return
        key = _sockets_key(record.user_id, record.room)
        if self._limiter.claim(key, record.connection_id, cap, record.connected_at + SOCKET_CLAIM_SECONDS):
            return
        # Full: drop claims of connections that are gone (a $disconnect that never ran), then try once more.
        self._limiter.prune(key, lambda connection_id: self._connections.get(connection_id) is not None)
        if not self._limiter.claim(key, record.connection_id, cap, record.connected_at + SOCKET_CLAIM_SECONDS):
            metrics.add_metric(name="SocketsRefused", unit="Count", value=1)
            raise RateLimited(f"At most {cap} open connections per showtime.", retry_after=60)

    def disconnect(self, connection_id: str) -> None:
        record = self._connections.get(connection_id)
        self._connections.remove(connection_id)
        if record is not None and self._limiter is not None and self._limits and self._limits.sockets_per_user_per_room:
            self._limiter.release(_sockets_key(record.user_id, record.room), connection_id)
        if self._flood is not None:
            self._flood.forget(connection_id)

    # --- messages -----------------------------------------------------------------------
    def handle_message(self, connection_id: str, body: str | None, *, binary: bool = False) -> None:
        connection = self._connections.get(connection_id)
        if connection is None:
            return  # the row is gone (TTL or disconnect): nobody to answer
        if connection.session_id and not self._accounts.sessions.live(connection.user_id, connection.session_id):
            # The sign-in ended (signed out, password changed, a stolen token caught): so does the socket.
            self._broadcaster.send(connection_id, error_message(Unauthorized("This sign-in has ended."), None))
            self._broadcaster.close(connection_id)
            return
        message, problem = _parse(body)
        if binary:
            problem = BadRequest("body: binary frames are not part of the protocol; send JSON text")
        try:
            self._check_message_limits(connection, message)
        except RateLimited as exc:
            self._refused_for_rate(connection, exc)
            return
        self._broadcaster.send(connection_id, self._dispatch(connection, message, problem))

    def _refused_for_rate(self, connection: ConnectionRecord, exc: RateLimited) -> None:
        verdict = self._flood.refused(connection.connection_id) if self._flood else FloodGuard.ANSWER
        if verdict == FloodGuard.ANSWER:
            self._broadcaster.send(connection.connection_id, error_message(exc, exc.ticket_id))
        elif verdict == FloodGuard.CLOSE:
            if self._limiter is not None and self._limits is not None:
                self._limiter.block(_FLOOD_SCOPE, connection.user_id, self._limits.ws_window_seconds)
            metrics.add_metric(name="FloodingSocketsClosed", unit="Count", value=1)
            logger.warning(
                "socket closed for flooding",
                extra={"connection_id": connection.connection_id, "user_id": connection.user_id},
            )
            self._broadcaster.close(connection.connection_id)

    def _dispatch(self, connection: ConnectionRecord, message: dict, problem: DomainError | None) -> dict:
        ticket_id: str | None = None
        try:
            if problem is not None:
                raise problem
            action = message.get("action")
            if action is not None and action not in ACTIONS:
                raise BadRequest(f"action: unknown action, use one of {', '.join(ACTIONS)}")
            if action == "ping":
                # A frame that keeps the socket under API Gateway's idle timeout; browsers cannot send pings.
                return {"type": "pong"}
            if action == "snapshot":
                return {
                    "type": "snapshot",
                    "tickets": self._catalog.showtime_tickets(connection.room, connection.user_id),
                }
            ticket_id = _ticket_id(message)
            if action is None:
                action = "unselect" if self._holds(connection, ticket_id) else "select"
            if action == "select":
                if self._waitroom is not None:
                    # Before the sale opens nobody selects; in a guarded showtime only an admitted user does.
                    self._waitroom().check_select(connection.user_id, connection.room, message.get("admission"))
                return self.select(connection, ticket_id)
            return self.unselect(connection, ticket_id)
        except DomainError as exc:
            return error_message(exc, ticket_id if ticket_id is not None else exc.ticket_id)
        except Exception:  # noqa: BLE001 - the client must never wait for a reply that will not come
            logger.exception(
                "message failed",
                extra={
                    "connection_id": connection.connection_id,
                    "user_id": connection.user_id,
                    "ticket_id": ticket_id,
                },
            )
            return error_message(Busy("The server could not handle this message; please retry."), ticket_id)

    def _holds(self, connection: ConnectionRecord, ticket_id: str) -> bool:
        cart = self.repo.read_cart(connection.user_id, connection.room)
        return ticket_id in holds.live_holds(cart.holds, self._clock())

    def _check_message_limits(self, connection: ConnectionRecord, message: dict) -> None:
        """Per user and per connection (and snapshots per user: each reads a whole hall), in one write (docs/API.md, "Limits").
        A refusal names the seat the message was about, so a client can tell which of its requests it answers."""
        limiter, limits = self._limiter, self._limits
        if limiter is None or limits is None:
            return
        window = limits.ws_window_seconds
        counters = {
            "messages": Limit(limits.ws_messages_per_user, window),
            f"c_{connection.connection_id}": Limit(limits.ws_messages_per_connection, window),
        }
        if message.get("action") == "snapshot":
            counters["snapshots"] = Limit(limits.ws_snapshots_per_user, window)
        try:
            limiter.check("ws", connection.user_id, counters, "Too many messages; slow down.")
        except RateLimited as exc:
            named = message.get("ticket_id")
            exc.ticket_id = named if isinstance(named, str) and plausible_id(named) else None
            raise

    def _check_hold_source(self, connection: ConnectionRecord, ticket_id: str) -> None:
        if self._limiter is None or self._limits is None or not connection.source_ip:
            return
        count, window = self._limits.holds_per_source
        try:
            self._limiter.check(
                "holds", connection.source_ip, {"holds": Limit(count, window)}, "Too many seat holds from this address."
            )
        except RateLimited as exc:
            exc.ticket_id = ticket_id
            raise

    def select(self, connection: ConnectionRecord, ticket_id: str) -> dict:
        log = {"connection_id": connection.connection_id, "user_id": connection.user_id, "ticket_id": ticket_id}
        self._check_hold_source(connection, ticket_id)
        try:
            expires_at = self.repo.select(connection.user_id, connection.room, ticket_id, self._clock())
        except DomainError as exc:
            metrics.add_metric(name="HoldsRefused", unit="Count", value=1)
            logger.info("select refused", extra={**log, "code": exc.code})
            raise
        metrics.add_metric(name="HoldsTaken", unit="Count", value=1)
        logger.debug("selected", extra=log)
        return {"type": "selected", "ticket_id": ticket_id, "expires_at": holds.iso(expires_at)}

    def unselect(self, connection: ConnectionRecord, ticket_id: str) -> dict:
        self.repo.unselect(connection.user_id, connection.room, ticket_id, self._clock())
        return {"type": "unselected", "ticket_id": ticket_id}

    # --- expiry sweep -------------------------------------------------------------------
    def sweep(self) -> int:
        """Release every expired plain hold; the stream then tells the rooms. Returns releases."""
        now = self._clock()
        released = 0
        for hold in self.repo.expired_holds(now):
            if self.repo.release_expired(hold, now):
                released += 1
                if hold.holder:
                    self.repo.forget_expired_cart_entry(hold.holder, hold.showtime_id, hold.ticket_id, hold.expires_at)
        if released:
            metrics.add_metric(name="HoldsExpired", unit="Count", value=released)
            logger.info("expired holds released", extra={"released": released})
        return released

    # --- broadcasts from the tickets stream ---------------------------------------------------
    def publish(self, images: Iterable[tuple]) -> int:
        """Group visible changes by room and post one ticket_status message per connection. Each item is
        (old image, new image) or (old image, new image, stream sequence number)."""
        by_room: OrderedDict[str, list[TicketChange]] = OrderedDict()
        for old, new, *seq in images:
            change = change_from_images(old, new, seq[0] if seq else None)
            if change is not None:
                by_room.setdefault(change.room, []).append(change)
        return self._broadcaster.fan_out_rooms({room: [update_message(c)] for room, c in by_room.items()})


def _parse(body: str | None) -> tuple[dict, BadRequest | None]:
    """The message, or an empty one and why it is refused (the refusal is raised after the message counted)."""
    try:
        message = json.loads(body or "")
    except RecursionError:
        return {}, BadRequest("body: JSON nested too deeply")
    except ValueError:
        return {}, BadRequest("body: malformed JSON")
    if not isinstance(message, dict):
        return {}, BadRequest("body: a JSON object is required")
    return message, None


def _sockets_key(user_id: str, room: str) -> str:
    return f"sockets#{user_id}#{room}"


def _valid_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False  # 2031-02-30 is malformed, not an unknown showtime
    return True


def _ticket_id(message: dict) -> str:
    ticket_id = message.get("ticket_id")
    if not isinstance(ticket_id, str) or not ticket_id:
        raise BadRequest("ticket_id: required")
    if not plausible_id(ticket_id):
        raise NotFound("No such ticket in this showtime.", ticket_id=ticket_id)
    return ticket_id
