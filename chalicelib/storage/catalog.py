"""Catalog repository: categories, events, showtimes and the tickets of a showtime."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError

from chalicelib.domain import CategoryRecord, EventRecord, Page, ShowtimeRecord, TicketRecord
from chalicelib.errors import AlreadyExists, BadRequest
from chalicelib.storage.conditions import condition_failed, transaction_cancelled
from chalicelib.storage.models import Category, Event, Showtime, Ticket, transact_write

_BATCH = 25  # BatchWriteItem's limit


_CURSOR_VALUE_MAX = 256


def encode_cursor(position: dict[str, str] | None) -> str | None:
    """An opaque page cursor: the plain key values of the last item returned (never a raw DynamoDB key)."""
    if not position:
        return None
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, fields: tuple[str, ...]) -> dict[str, str] | None:
    """The key values a cursor carries: exactly `fields`, each a short non-empty string.

    Raises BadRequest on anything else, so no client input can make DynamoDB refuse the key.
    """
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True))
    except (ValueError, binascii.Error, UnicodeError, RecursionError) as exc:
        raise BadRequest("cursor: malformed cursor") from exc
    if not isinstance(value, dict) or set(value) != set(fields):
        raise BadRequest("cursor: malformed cursor")
    for item in value.values():
        if not isinstance(item, str) or not 0 < len(item) <= _CURSOR_VALUE_MAX:
            raise BadRequest("cursor: malformed cursor")
    return value


def start_key(position: dict[str, str] | None, extra: dict[str, str] | None = None) -> dict | None:
    if position is None:
        return None
    return {name: {"S": value} for name, value in {**position, **(extra or {})}.items()}


def _category(item: Category) -> CategoryRecord:
    return CategoryRecord(slug=item.slug, name=item.name)


def _event(item: Event) -> EventRecord:
    return EventRecord(
        id=item.id,
        title=item.title,
        description=item.description or "",
        category=item.category,
        category_name=item.category_name,
        duration_minutes=int(item.duration_minutes),
        created_at=item.created_at,
    )


def _showtime(item: Showtime) -> ShowtimeRecord:
    return ShowtimeRecord(
        id=item.id,
        event_id=item.event_id,
        date=item.date,
        theater=item.theater,
        starts_at=item.starts_at,
        rows=int(item.rows),
        seats_per_row=int(item.seats_per_row),
        price=item.price,
        currency=item.currency,
        tickets_count=int(item.tickets_count),
    )


def ticket_record(item: Ticket) -> TicketRecord:
    return TicketRecord(
        showtime_id=item.showtime_id,
        ticket_id=item.ticket_id,
        row=item.row,
        number=int(item.number),
        price=item.price,
        currency=item.currency,
        status=item.status,
        holder=item.holder,
        hold_expires_at=int(item.hold_expires_at) if item.hold_expires_at is not None else None,
        order_id=item.order_id,
        hold_expiry_before_checkout=(
            int(item.hold_expiry_before_checkout) if item.hold_expiry_before_checkout is not None else None
        ),
    )


def _new_ticket(t: TicketRecord) -> Ticket:
    return Ticket(
        showtime_id=t.showtime_id,
        ticket_id=t.ticket_id,
        row=t.row,
        number=t.number,
        price=t.price,
        currency=t.currency,
        status="available",
    )


class CatalogRepository:
    """Reads and writes catalog items. Raises AlreadyExists, BadRequest (cursors)."""

    # --- categories ---------------------------------------------------------------------
    def list_categories(self) -> list[CategoryRecord]:
        return sorted((_category(c) for c in Category.scan()), key=lambda c: c.name.lower())

    def get_category(self, slug: str) -> CategoryRecord | None:
        try:
            return _category(Category.get(slug))
        except Category.DoesNotExist:
            return None

    def put_category(self, slug: str, name: str) -> None:
        Category(slug=slug, name=name).save()

    # --- events -------------------------------------------------------------------------
    def list_events(self, *, category: str | None, limit: int, cursor: str | None) -> Page:
        """One page of events; `cursor` is None exactly when no event follows. Raises BadRequest."""
        # One item more than asked tells whether a next page exists, so it is never empty.
        if category:
            position = decode_cursor(cursor, ("id", "created_at"))
            result = Event.by_category.query(
                category,
                limit=limit + 1,
                last_evaluated_key=start_key(position, {"category": category}),
                scan_index_forward=False,
            )
        else:
            position = decode_cursor(cursor, ("id",))
            result = Event.scan(limit=limit + 1, last_evaluated_key=start_key(position))
        items = [_event(e) for e in result]
        if len(items) <= limit:
            return Page(items=items, cursor=None)
        last = items[limit - 1]
        after = {"id": last.id, "created_at": last.created_at} if category else {"id": last.id}
        return Page(items=items[:limit], cursor=encode_cursor(after))

    def get_event(self, event_id: str) -> EventRecord | None:
        try:
            return _event(Event.get(event_id))
        except Event.DoesNotExist:
            return None

    def create_event(self, record: EventRecord) -> None:
        try:
            Event(
                id=record.id,
                title=record.title,
                description=record.description,
                category=record.category,
                category_name=record.category_name,
                duration_minutes=record.duration_minutes,
                created_at=record.created_at,
            ).save(condition=Event.id.does_not_exist())
        except PutError as exc:
            if condition_failed(exc):
                raise AlreadyExists("An event with this id already exists.") from exc
            raise

    def update_event(self, record: EventRecord) -> bool:
        """Write an event's editable fields; False when it no longer exists."""
        try:
            Event(id=record.id).update(
                actions=[
                    Event.title.set(record.title),
                    Event.description.set(record.description),
                    Event.category.set(record.category),
                    Event.category_name.set(record.category_name),
                    Event.duration_minutes.set(record.duration_minutes),
                ],
                condition=Event.id.exists(),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    # --- showtimes ----------------------------------------------------------------------
    def list_showtimes(self, event_id: str) -> list[ShowtimeRecord]:
        return [_showtime(s) for s in Showtime.by_event.query(event_id)]

    def get_showtime(self, showtime_id: str) -> ShowtimeRecord | None:
        try:
            return _showtime(Showtime.get(showtime_id))
        except Showtime.DoesNotExist:
            return None

    def create_showtime(self, record: ShowtimeRecord, tickets: Iterable[TicketRecord]) -> None:
        """Write the tickets in batches, then the showtime, so a listed showtime always has its seats.

        Raises AlreadyExists when a showtime for the same event, date and theater exists.
        """
        if self.get_showtime(record.id) is not None:
            raise AlreadyExists("A showtime for this event, date and theater already exists.")
        batch: list[TicketRecord] = []
        for ticket in tickets:
            batch.append(ticket)
            if len(batch) == _BATCH:
                self._write_ticket_batch(batch)
                batch = []
        if batch:
            self._write_ticket_batch(batch)
        try:
            Showtime(
                id=record.id,
                event_id=record.event_id,
                date=record.date,
                theater=record.theater,
                starts_at=record.starts_at,
                rows=record.rows,
                seats_per_row=record.seats_per_row,
                price=record.price,
                currency=record.currency,
                tickets_count=record.tickets_count,
            ).save(condition=Showtime.id.does_not_exist())
        except PutError as exc:
            if condition_failed(exc):
                raise AlreadyExists("A showtime for this event, date and theater already exists.") from exc
            raise

    def set_showtime_start(self, showtime_id: str, starts_at: str) -> bool:
        """Move a showtime's start (same date); False when it no longer exists."""
        try:
            Showtime(id=showtime_id).update(actions=[Showtime.starts_at.set(starts_at)], condition=Showtime.id.exists())
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    @staticmethod
    def _write_ticket_batch(batch: list[TicketRecord]) -> None:
        # Conditional puts in one transaction: re-running a half-finished showtime creation never
        # resets a seat someone already holds or bought.
        try:
            with transact_write() as tx:
                for t in batch:
                    tx.save(_new_ticket(t), condition=Ticket.ticket_id.does_not_exist())
        except TransactWriteError as exc:
            if not transaction_cancelled(exc):
                raise
            # Some seats exist already (a retried creation): write the missing ones one by one.
            for t in batch:
                try:
                    _new_ticket(t).save(condition=Ticket.ticket_id.does_not_exist())
                except PutError as put_exc:
                    if not condition_failed(put_exc):
                        raise

    # --- tickets ------------------------------------------------------------------------
    def list_tickets(self, showtime_id: str, *, consistent: bool = False) -> list[TicketRecord]:
        return [ticket_record(t) for t in Ticket.query(showtime_id, consistent_read=consistent)]

    def iter_ticket_states(self, showtime_id: str) -> Iterator[tuple[str, int | None]]:
        """Only what availability needs (status and expiry), for the event detail counts."""
        for t in Ticket.query(showtime_id, attributes_to_get=["status", "hold_expires_at"]):
            yield t.status, (int(t.hold_expires_at) if t.hold_expires_at is not None else None)

    def iter_ticket_sales(self, showtime_id: str) -> Iterator[tuple[str, int | None, str]]:
        """Status, hold expiry and price of each seat: what a staff occupancy and revenue report needs.

        One Query of the showtime's partition, projected to three attributes (strongly consistent).
        """
        for t in Ticket.query(
            showtime_id, consistent_read=True, attributes_to_get=["status", "hold_expires_at", "price"]
        ):
            yield t.status, (int(t.hold_expires_at) if t.hold_expires_at is not None else None), t.price
