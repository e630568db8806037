"""Plain records passed between storage and services (storage models never leave storage)."""

from __future__ import annotations

from dataclasses import dataclass, field


def plausible_id(value: str) -> bool:
    """Ids are short url-safe strings; anything else cannot exist and must not reach a table key."""
    return 0 < len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


@dataclass(frozen=True)
class UserRecord:
    id: str
    email: str
    password_hash: str
    is_staff: bool


@dataclass(frozen=True)
class CategoryRecord:
    slug: str
    name: str


@dataclass(frozen=True)
class EventRecord:
    id: str
    title: str
    description: str
    category: str
    category_name: str
    duration_minutes: int
    created_at: str


@dataclass(frozen=True)
class ShowtimeRecord:
    id: str
    event_id: str
    date: str
    theater: str
    starts_at: str
    rows: int
    seats_per_row: int
    price: str
    currency: str
    tickets_count: int


@dataclass(frozen=True)
class TicketRecord:
    showtime_id: str
    ticket_id: str
    row: str
    number: int
    price: str
    currency: str
    status: str
    holder: str | None = None
    hold_expires_at: int | None = None
    order_id: str | None = None

    @property
    def seat(self) -> str:
        return f"{self.row}{self.number}"


@dataclass(frozen=True)
class CartRecord:
    user_id: str
    showtime_id: str
    holds: dict[str, int] = field(default_factory=dict)
    version: int = 0
    exists: bool = False


@dataclass(frozen=True)
class ConnectionRecord:
    connection_id: str
    room: str
    user_id: str
    connected_at: int


@dataclass(frozen=True)
class Page:
    items: list
    cursor: str | None
