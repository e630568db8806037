"""Pure seat-hold rules over plain values. `now` is always an argument (epoch seconds)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import UTC, datetime

from chalicelib import tables

AVAILABLE = "available"
HELD = "held"
CHECKOUT = "checkout"
SOLD = "sold"
# The payment of a sold ticket was reversed: not valid for entry, and never put back on sale by itself (staff
# decide). Viewers see it as sold.
VOID = "void"


def is_expired(expires_at: int | float | None, now: float) -> bool:
    """A hold is live while now < expires_at; at expires_at it is over."""
    return expires_at is None or expires_at <= now


def public_status(status: str, hold_expires_at: int | float | None, now: float) -> str:
    """What a viewer sees: checkout reads as held; an expired plain hold reads as available."""
    if status in (SOLD, VOID):
        return SOLD
    if status == CHECKOUT:
        return HELD
    if status == HELD and not is_expired(hold_expires_at, now):
        return HELD
    return AVAILABLE


def public_view(status: str, hold_expires_at: int | float | None, now: float) -> tuple[str, int | None]:
    """(public status, expiry shown to viewers) — the expiry only accompanies `held`."""
    shown = public_status(status, hold_expires_at, now)
    if shown == HELD and hold_expires_at is not None:
        return shown, int(hold_expires_at)
    return shown, None


def live_holds(holds: Mapping[str, float], now: float) -> dict[str, int]:
    """The cart's entries that still count toward the limit."""
    return {ticket: int(exp) for ticket, exp in holds.items() if not is_expired(exp, now)}


def at_limit(holds: dict[str, int | float], now: float, limit: int) -> bool:
    return len(live_holds(holds, now)) >= limit


def sweep_shard(ticket_id: str) -> str:
    """Stable shard of the sparse expiry index for a ticket."""
    return str(zlib.crc32(ticket_id.encode("utf-8")) % tables.SWEEP_SHARDS)


def iso(epoch: int | float) -> str:
    """ISO 8601 UTC with a Z suffix."""
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seat_label(row: str, number: int) -> str:
    return f"{row}{number}"


def row_label(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA ... so halls of any size get distinct row names."""
    label = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        label = chr(ord("A") + rem) + label
    return label
