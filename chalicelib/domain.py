"""Plain records passed between storage and services (storage models never leave storage).

Immutable NamedTuples (change one with `record._replace(field=...)`): a frozen dataclass costs about 0.7 ms to
define in a cold Lambda container, a NamedTuple about 0.1 ms, and every handler imports these
(`python -m bench.coldstart`, infra/README.md "Cold start").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import NamedTuple, TypeGuard

# The one rule for our ids (events, showtimes, tickets, orders, users, refunds): what we generate is always
# 1..64 url-safe characters. Anything else cannot exist and must not reach a table key.
ID_MAX_LENGTH = 64
ID_PATTERN = rf"^[A-Za-z0-9_-]{{1,{ID_MAX_LENGTH}}}$"
_ID = re.compile(ID_PATTERN)


# PayPal's ids (orders, captures, refunds) are another kind, with a rule of their own: short uppercase
# alphanumerics in practice; a return-URL token or a webhook resource id outside this cannot be PayPal's, so
# nothing is looked up for it. Webhook event ids and event types may be longer.
PAYPAL_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_PAYPAL_ID = re.compile(PAYPAL_ID_PATTERN)
PAYPAL_EVENT_FIELD_MAX = 128


def plausible_paypal_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _PAYPAL_ID.fullmatch(value) is not None


def plausible_id(value: object) -> bool:
    """Whether `value` could be one of our ids (see ID_PATTERN)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


class UserRecord(NamedTuple):
    id: str
    email: str
    password_hash: str
    is_staff: bool
    session_epoch: int = 0  # sessions that began under an older epoch are over (a password change moves it)
    is_scanner: bool = False  # may check e-tickets in at the door (and nothing else staff may do)


class SessionRecord(NamedTuple):
    """One sign-in: a family of refresh tokens of which exactly one (`refresh_jti`) may be used next."""

    session_id: str
    user_id: str
    epoch: int
    refresh_jti: str
    refresh_iat: int
    expires_at: int
    previous_jti: str | None = None
    rotated_at: int | None = None
    revoked_at: int | None = None


class CategoryRecord(NamedTuple):
    slug: str
    name: str


class EventRecord(NamedTuple):
    id: str
    title: str
    description: str
    category: str
    category_name: str
    duration_minutes: int
    created_at: str


class ShowtimeRecord(NamedTuple):
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


class TicketRecord(NamedTuple):
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
    # While in checkout: the hold's own expiry, so a cancelled checkout restores the hold as it was.
    hold_expiry_before_checkout: int | None = None

    @property
    def seat(self) -> str:
        return f"{self.row}{self.number}"


class CartRecord(NamedTuple):
    user_id: str
    showtime_id: str
    holds: Mapping[str, int] = MappingProxyType({})  # read-only: a shared default must not be mutable
    version: int = 0
    exists: bool = False
    # When the user's current hold-time budget in this showtime began (epoch seconds), None before any hold.
    budget_from: int | None = None


class ConnectionRecord(NamedTuple):
    connection_id: str
    room: str
    user_id: str
    connected_at: int
    source_ip: str | None = None  # the client's address at $connect, for per-source limits
    session_id: str | None = None  # the sign-in it was opened with: the socket closes when that ends


class Page(NamedTuple):
    items: list
    cursor: str | None


class OrderTicket(NamedTuple):
    ticket_id: str
    seat: str
    price: str
    # Kept on the order at checkout (orders from before issue 16 have neither): the seat as the buyer saw it.
    row: str | None = None
    number: int | None = None

    @property
    def label(self) -> str:
        """The seat as a buyer reads it: "Row D, seat 5" (the short `seat` label when row and number are unknown)."""
        if self.row is not None and self.number is not None:
            return f"Row {self.row}, seat {self.number}"
        return f"Seat {self.seat}"


class RefundEntry(NamedTuple):
    refund_id: str
    status: str
    amount: str
    ticket_ids: tuple[str, ...]
    previous_status: str
    reason: str | None = None
    paypal_refund_id: str | None = None
    source: str = "buyer"
    created_at: str | None = None


class OrderRecord(NamedTuple):
    order_id: str
    user_id: str
    showtime_id: str
    event_id: str | None
    status: str
    amount: str
    currency: str
    tickets: tuple[OrderTicket, ...]
    created_at: str
    expires_at: int
    paypal_order_id: str | None = None
    approval_url: str | None = None
    capture_id: str | None = None
    capture_attempt: int = 0
    capture_declined: bool = False
    # A PayPal dispute about the payment: its id, "open" or "resolved", and PayPal's outcome code once resolved.
    dispute_id: str | None = None
    dispute_status: str | None = None
    dispute_outcome: str | None = None
    # Why staff should look at the order ("disputed", "reversed"); None otherwise.
    attention: str | None = None
    refunded_ticket_ids: tuple[str, ...] = ()
    refunds: tuple[RefundEntry, ...] = ()
    failure_reason: str | None = None
    # What was bought, as it was at checkout (an event renamed later does not change a receipt); None on orders
    # written before these were kept.
    event_title: str | None = None
    starts_at: str | None = None
    theater: str | None = None
    # Why a `cancelled` order ended (order_status.CancelReason); None on other orders and older cancelled ones.
    cancel_reason: str | None = None

    @property
    def ticket_ids(self) -> list[str]:
        return [t.ticket_id for t in self.tickets]


def showing_time(starts_at: str | None) -> str | None:
    """ "2026-12-05T19:30:00Z" -> "Sat 5 Dec 2026, 19:30 UTC": how a receipt names the showing (None if unreadable)."""
    try:
        moment = datetime.fromisoformat((starts_at or "").replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M} UTC"
