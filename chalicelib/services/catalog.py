"""Catalog use cases: browse events and showtimes, list seats, staff creation."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

from chalicelib import holds
from chalicelib.domain import EventRecord, ShowtimeRecord, TicketRecord, plausible_id
from chalicelib.errors import BadRequest, HasSales, NotFound
from chalicelib.storage.catalog import CatalogRepository


def showtime_id_for(event_id: str, date: str, theater: str) -> str:
    """Deterministic id of a room: the same event, date and theater (any case) is one showtime."""
    key = f"{event_id}|{date}|{theater_key(theater)}".encode()
    return hashlib.sha256(key).hexdigest()[:20]


def theater_key(theater: str) -> str:
    """How theater names compare: any case, runs of whitespace as one space."""
    return " ".join(theater.split()).lower()


def starts_at_iso(date: dt.date, starts_at: str) -> str:
    """Accept HH:MM[:SS] (on the showtime's date, UTC) or an ISO 8601 datetime on that date (as written, in its own
    offset: the cinema's date). Raises BadRequest."""
    text = starts_at.strip()
    try:
        if len(text) <= 8 and "-" not in text and "T" not in text:
            moment = dt.datetime.combine(date, dt.time.fromisoformat(text), tzinfo=dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
        utc = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise BadRequest("starts_at: use HH:MM or an ISO 8601 datetime") from exc
    if moment.date() != date:
        raise BadRequest(f"starts_at: falls on {moment.date().isoformat()}, not on the showtime's date {date}")
    return utc.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def event_view(event: EventRecord) -> dict:
    return {
        "id": event.id,
        "title": event.title,
        "description": event.description,
        "category": {"slug": event.category, "name": event.category_name},
        "duration_minutes": event.duration_minutes,
    }


def ticket_view(ticket: TicketRecord, viewer: str | None, now: float) -> dict:
    status, expires = holds.public_view(ticket.status, ticket.hold_expires_at, now)
    mine = viewer is not None and ticket.holder == viewer and status != holds.AVAILABLE and ticket.status != holds.VOID
    view = {
        "ticket_id": ticket.ticket_id,
        "showtime_id": ticket.showtime_id,
        "seat": ticket.seat,
        "row": ticket.row,
        "number": ticket.number,
        "price": ticket.price,
        "currency": ticket.currency,
        "status": status,
        "mine": mine,
    }
    if expires is not None:
        view["expires_at"] = holds.iso(expires)
    return view


class CatalogService:
    """Raises NotFound, BadRequest, AlreadyExists, HasSales."""

    def __init__(self, repo: CatalogRepository, clock: Callable[[], float] = time.time) -> None:
        self._repo = repo
        self._clock = clock

    def categories(self) -> dict:
        return {"results": [{"slug": c.slug, "name": c.name} for c in self._repo.list_categories()]}

    def events(self, *, category: str | None, limit: int, cursor: str | None) -> dict:
        page = self._repo.list_events(category=category, limit=limit, cursor=cursor)
        return {"results": [event_view(e) for e in page.items], "next": page.cursor}

    def event(self, event_id: str) -> EventRecord:
        event = self._repo.get_event(event_id) if plausible_id(event_id) else None
        if event is None:
            raise NotFound("No such event.")
        return event

    def event_detail(self, event_id: str) -> dict:
        event = self.event(event_id)
        now = self._clock()
        showtimes = sorted(self._repo.list_showtimes(event.id), key=lambda s: (s.starts_at, s.theater))
        view = event_view(event)
        view["showtimes"] = [self._showtime_view(s, now) for s in showtimes]
        return view

    def _showtime_view(self, showtime: ShowtimeRecord, now: float) -> dict:
        available = sum(
            1
            for status, expiry in self._repo.iter_ticket_states(showtime.id)
            if holds.public_status(status, expiry, now) == holds.AVAILABLE
        )
        return {
            "showtime_id": showtime.id,
            "date": showtime.date,
            "theater": showtime.theater,
            "starts_at": showtime.starts_at,
            "available": available,
        }

    def showtime(self, showtime_id: str) -> ShowtimeRecord:
        showtime = self._repo.get_showtime(showtime_id) if plausible_id(showtime_id) else None
        if showtime is None:
            raise NotFound("No such showtime.")
        return showtime

    def find_showtime(self, event_id: str, date: str, theater: str) -> ShowtimeRecord | None:
        if not plausible_id(event_id):
            return None
        return self._repo.get_showtime(showtime_id_for(event_id, date, theater))

    def tickets(self, event_id: str, *, date: str | None, theater: str | None, viewer: str | None) -> dict:
        event = self.event(event_id)
        wanted = None if theater is None else theater_key(theater)
        showtimes = [
            s
            for s in self._repo.list_showtimes(event.id)
            if (date is None or s.date == date) and (wanted is None or theater_key(s.theater) == wanted)
        ]
        now = self._clock()
        results: list[dict] = []
        for showtime in sorted(showtimes, key=lambda s: (s.starts_at, s.theater)):
            results.extend(ticket_view(t, viewer, now) for t in self._sorted_tickets(showtime.id))
        return {"results": results}

    def showtime_tickets(self, showtime_id: str, viewer: str | None) -> list[dict]:
        now = self._clock()
        return [ticket_view(t, viewer, now) for t in self._sorted_tickets(showtime_id, consistent=True)]

    def _sorted_tickets(self, showtime_id: str, consistent: bool = False) -> list[TicketRecord]:
        tickets = self._repo.list_tickets(showtime_id, consistent=consistent)
        return sorted(tickets, key=lambda t: (len(t.row), t.row, t.number))

    # --- staff --------------------------------------------------------------------------
    def create_event(self, *, title: str, description: str, category: str, duration_minutes: int) -> dict:
        found = self._repo.get_category(category)
        if found is None:
            raise BadRequest("category: unknown category slug")
        record = EventRecord(
            id=uuid.uuid4().hex[:12],
            title=title,
            description=description,
            category=found.slug,
            category_name=found.name,
            duration_minutes=duration_minutes,
            created_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        self._repo.create_event(record)
        return event_view(record)

    def create_showtime(
        self,
        event_id: str,
        *,
        date: dt.date,
        theater: str,
        starts_at: str,
        rows: int,
        seats_per_row: int,
        price: Decimal,
        currency: str,
    ) -> dict:
        event = self.event(event_id)
        showtime_id = showtime_id_for(event.id, date.isoformat(), theater)
        record = ShowtimeRecord(
            id=showtime_id,
            event_id=event.id,
            date=date.isoformat(),
            theater=theater,
            starts_at=starts_at_iso(date, starts_at),
            rows=rows,
            seats_per_row=seats_per_row,
            price=f"{price:.2f}",
            currency=currency,
            tickets_count=rows * seats_per_row,
        )
        self._repo.create_showtime(record, _generate_tickets(record))
        return {
            "showtime_id": record.id,
            "event_id": record.event_id,
            "date": record.date,
            "theater": record.theater,
            "starts_at": record.starts_at,
            "available": record.tickets_count,
            "tickets": record.tickets_count,
            "price": record.price,
            "currency": record.currency,
        }

    def update_event(self, event_id: str, changes: dict) -> dict:
        """Change an event's title, description, category or duration. Raises NotFound, BadRequest.

        Orders keep the title they were bought under (their receipts stay true)."""
        if not changes:
            raise BadRequest("body: send at least one of title, description, category, duration_minutes")
        event = self.event(event_id)
        category, category_name = event.category, event.category_name
        if "category" in changes:
            found = self._repo.get_category(changes["category"])
            if found is None:
                raise BadRequest("category: unknown category slug")
            category, category_name = found.slug, found.name
        record = event._replace(
            title=changes.get("title", event.title),
            description=changes.get("description", event.description),
            duration_minutes=changes.get("duration_minutes", event.duration_minutes),
            category=category,
            category_name=category_name,
        )
        if not self._repo.update_event(record):
            raise NotFound("No such event.")
        return event_view(record)

    def update_showtime(self, event_id: str, showtime_id: str, *, starts_at: str) -> dict:
        """Move a showtime's start within its date, while none of its seats is sold or in a checkout (their
        orders and PayPal receipts name the start they were bought for). Raises NotFound, BadRequest, HasSales."""
        event = self.event(event_id)
        showtime = self.showtime(showtime_id)
        if showtime.event_id != event.id:
            raise NotFound("No such showtime.")
        moved = starts_at_iso(dt.date.fromisoformat(showtime.date), starts_at)
        if any(status in _SALES for status, _expiry in self._repo.iter_ticket_states(showtime.id)):
            raise HasSales("Seats of this showtime are sold or being paid for, so its start cannot move.")
        if not self._repo.set_showtime_start(showtime.id, moved):
            raise NotFound("No such showtime.")
        view = self._showtime_view(showtime._replace(starts_at=moved), self._clock())
        return {
            **view,
            "event_id": event.id,
            "tickets": showtime.tickets_count,
            "price": showtime.price,
            "currency": showtime.currency,
        }


# Seats whose order names the showtime's start: sold (or void), or in a checkout.
_SALES = frozenset({holds.SOLD, holds.VOID, holds.CHECKOUT})


def _generate_tickets(showtime: ShowtimeRecord) -> Iterator[TicketRecord]:
    for r in range(showtime.rows):
        row = holds.row_label(r)
        for number in range(1, showtime.seats_per_row + 1):
            yield TicketRecord(
                showtime_id=showtime.id,
                ticket_id=f"{showtime.id}-{row}{number}",
                row=row,
                number=number,
                price=showtime.price,
                currency=showtime.currency,
                status=holds.AVAILABLE,
            )
