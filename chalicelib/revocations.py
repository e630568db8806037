"""Which e-tickets a batch of ticket changes revokes (issue 15), read from the tickets stream's images.

Kept apart from chalicelib.etickets so the stream handler does not import the signing library.
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib import holds
from chalicelib.storage.checkins import RevocationRecord


def _attr(image: dict | None, name: str) -> str | None:
    if not image or name not in image:
        return None
    value = image[name]
    return value.get("S") if "S" in value else value.get("N")


def revoked(images: Iterable[tuple[dict | None, dict | None, str | None]], now: float) -> list[RevocationRecord]:
    """A seat that was sold and is no longer sold to that order (refunded, voided, resold) revokes the codes of
    that order's ticket. `now` dates them: a redelivered batch writes them again, later (a repeat, never a gap)."""
    records = []
    for old, new, _seq in images:
        old_order = _attr(old, "order_id")
        if _attr(old, "status") != holds.SOLD or not old_order:
            continue
        new_status = _attr(new, "status")
        if new_status == holds.SOLD and _attr(new, "order_id") == old_order:
            continue  # still the same sale (a check-in, say)
        records.append(
            RevocationRecord(
                showtime_id=_attr(old, "showtime_id") or "",
                ticket_id=_attr(old, "ticket_id") or "",
                order_id=old_order,
                reason="void" if new_status == holds.VOID else "refunded",
                at_ms=int(now * 1000),
            )
        )
    return records
