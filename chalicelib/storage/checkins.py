"""Door check-ins and the revocation list of e-tickets (issue 15).

A check-in is one conditional UpdateItem on the seat's ticket item: it sets `checked_in_at` only if the seat is
still `sold` to the order the code names and was not checked in before. So the same write that admits also
re-checks a refund (the seat is `available` again, or sold to another order) or a reversal (`void`), and two doors
scanning one ticket at once admit it exactly once. A refused write is explained with one consistent read.
"""

from __future__ import annotations

from typing import NamedTuple

from pynamodb.exceptions import UpdateError

from chalicelib import holds
from chalicelib.storage.conditions import condition_failed
from chalicelib.storage.models import Revocation, Ticket

REVOCATION_TTL_SECONDS = 7 * 24 * 3600


class Refusal(NamedTuple):
    """Why a check-in write was refused: the seat as it is now."""

    status: str | None  # None: no such seat
    order_id: str | None
    checked_in_at: int | None
    door: str | None


class RevocationRecord(NamedTuple):
    showtime_id: str
    ticket_id: str
    order_id: str
    reason: str
    at_ms: int

    @property
    def cursor(self) -> str:
        return f"{self.at_ms:013d}#{self.ticket_id}"


class CheckinRepository:
    def admit(self, showtime_id: str, ticket_id: str, order_id: str, *, now: int, door: str, by: str) -> Refusal | None:
        """Check the ticket in; None when admitted, else the seat as it is (already in, refunded, void)."""
        try:
            Ticket(showtime_id, ticket_id).update(
                actions=[
                    Ticket.checked_in_at.set(now),
                    Ticket.checked_in_door.set(door),
                    Ticket.checked_in_by.set(by),
                ],
                condition=(Ticket.status == holds.SOLD)
                & (Ticket.order_id == order_id)
                & Ticket.checked_in_at.does_not_exist(),
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
            return self._refusal(showtime_id, ticket_id)
        return None

    def _refusal(self, showtime_id: str, ticket_id: str) -> Refusal:
        try:
            ticket = Ticket.get(showtime_id, ticket_id, consistent_read=True)
        except Ticket.DoesNotExist:
            return Refusal(None, None, None, None)
        return Refusal(
            status=ticket.status,
            order_id=ticket.order_id,
            checked_in_at=int(ticket.checked_in_at) if ticket.checked_in_at is not None else None,
            door=ticket.checked_in_door,
        )

    def add_revocations(self, records: list[RevocationRecord]) -> None:
        """Write revocations (idempotent per record: the same change always has the same key)."""
        if not records:
            return
        with Revocation.batch_write() as batch:
            for record in records:
                batch.save(
                    Revocation(
                        record.showtime_id,
                        record.cursor,
                        ticket_id=record.ticket_id,
                        order_id=record.order_id,
                        reason=record.reason,
                        expires_at=record.at_ms // 1000 + REVOCATION_TTL_SECONDS,
                    )
                )

    def revocations(self, showtime_id: str, since: str | None, limit: int) -> list[RevocationRecord]:
        """A showtime's revocations after the cursor `since`, oldest first."""
        condition = Revocation.rev > since if since else None
        items = Revocation.query(showtime_id, range_key_condition=condition, limit=limit, consistent_read=True)
        return [
            RevocationRecord(
                showtime_id=item.showtime_id,
                ticket_id=item.ticket_id,
                order_id=item.order_id,
                reason=item.reason,
                at_ms=int(item.rev.split("#", 1)[0]),
            )
            for item in items
        ]
