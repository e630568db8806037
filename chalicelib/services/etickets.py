"""E-tickets (issue 15): a buyer's signed codes and QR images, door check-in, and what offline scanners sync
(the public keys and the revocation list). docs/tickets.md has the design."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable

from chalicelib import etickets, holds
from chalicelib.domain import OrderRecord, plausible_id
from chalicelib.errors import BadRequest, NotFound
from chalicelib.observability import logger, metrics
from chalicelib.order_status import OrderStatus
from chalicelib.services.catalog import CatalogService
from chalicelib.storage.checkins import CheckinRepository
from chalicelib.storage.orders import OrderRepository

# Orders whose unrefunded seats are tickets (a refund in flight keeps the rest valid).
TICKETED = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUND_PENDING)
QR_SCALE = 4
CURSOR_SETTLE_SECONDS = 60
MAX_OFFLINE_SECONDS = 24 * 3600
_CURSOR = re.compile(r"^[0-9]{13}\.[A-Za-z0-9_-]{1,64}$")  # <epoch ms>.<ticket id>


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def qr_svg_data_uri(code: str) -> str:
    """The code as a QR image (SVG data URI; segno, error correction M)."""
    import segno  # only the tickets endpoint draws QR codes

    return segno.make(code, error="m", micro=False).svg_data_uri(scale=QR_SCALE, border=4)


class TicketService:
    """Raises NotFound, BadRequest and the e-ticket errors of chalicelib.etickets."""

    def __init__(
        self,
        *,
        orders: OrderRepository,
        catalog: CatalogService,
        checkins: CheckinRepository,
        keyset: Callable[[], etickets.Keyset],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._orders = orders
        self._catalog = catalog
        self._checkins = checkins
        self._keyset = keyset
        self._clock = clock

    # --- the buyer's tickets ------------------------------------------------------------------------------------
    def tickets(self, user_id: str, order_id: str) -> dict:
        order = self._orders.get(order_id) if plausible_id(order_id) else None
        if order is None or order.user_id != user_id:
            raise NotFound("No such order.")
        return self._issue(order, qr=True)

    def _issue(self, order: OrderRecord, qr: bool = False) -> dict:
        starts = self._starts_at(order)
        valid_from, valid_until = etickets.window(starts)
        keyset = self._keyset() if order.status in TICKETED else None
        results = []
        refunded = set(order.refunded_ticket_ids)
        for ticket in order.tickets:
            status = self._ticket_status(order, ticket.ticket_id, refunded)
            entry: dict = {"ticket_id": ticket.ticket_id, "seat": ticket.seat, "label": ticket.label, "status": status}
            if status == "valid" and keyset is not None:
                code = etickets.sign(
                    keyset,
                    etickets.Claims(
                        ticket_id=ticket.ticket_id,
                        showtime_id=order.showtime_id,
                        order_id=order.order_id,
                        label=ticket.label,
                        valid_from=valid_from,
                        valid_until=valid_until,
                        kid=keyset.current,
                    ),
                )
                entry["code"] = code
                if qr:
                    entry["qr_svg"] = qr_svg_data_uri(code)
            results.append(entry)
        return {
            "order_id": order.order_id,
            "showtime_id": order.showtime_id,
            "event_title": order.event_title,
            "starts_at": _iso(starts),
            "theater": order.theater,
            "valid_from": _iso(valid_from),
            "valid_until": _iso(valid_until),
            "results": results,
        }

    def codes(self, order: OrderRecord) -> dict[str, str]:
        """The codes of an order's valid tickets by ticket id (for its receipt)."""
        if order.status not in TICKETED:
            return {}
        return {
            t["ticket_id"]: t["code"] for t in self._issue(order)["results"] if t["status"] == "valid" and "code" in t
        }

    @staticmethod
    def _ticket_status(order: OrderRecord, ticket_id: str, refunded: set[str]) -> str:
        if order.status == OrderStatus.REVERSED:
            return "void"
        if ticket_id in refunded or order.status == OrderStatus.REFUNDED:
            return "refunded"
        if order.status in TICKETED:
            return "valid"
        return "not_issued"  # not paid (yet, or ever)

    def _starts_at(self, order: OrderRecord) -> int:
        if order.starts_at:
            return _epoch(order.starts_at)
        return _epoch(self._catalog.showtime(order.showtime_id).starts_at)

    # --- the door -----------------------------------------------------------------------------------------------
    def check_in(self, staff_id: str, code: str, showtime_id: str, door: str, scanned_at: float | None = None) -> dict:
        """Admit a ticket once. `scanned_at`: when an offline scanner admitted it (synced later); the time window
        is judged at that moment, the once-only write now."""
        if not plausible_id(showtime_id):
            raise NotFound("No such showtime.")
        claims = etickets.verify(code, self._keyset().public())
        if claims.showtime_id != showtime_id:
            raise etickets.WrongShowtime()
        now = self._clock()
        # A synced offline scan is judged when it happened, but never later than now nor more than a day ago (a
        # backdated time must not let a ticket in after its showing).
        at = max(min(scanned_at, now), now - MAX_OFFLINE_SECONDS) if scanned_at is not None else now
        etickets.check_time(claims, at)
        refusal = self._checkins.admit(
            showtime_id, claims.ticket_id, claims.order_id, now=int(at), door=door, by=staff_id
        )
        if refusal is None:
            metrics.add_metric(name="TicketsCheckedIn", unit="Count", value=1)
            logger.info("checked in", extra={"ticket_id": claims.ticket_id, "door": door})
            return {
                "result": "admitted",
                "ticket_id": claims.ticket_id,
                "label": claims.label,
                "showtime_id": showtime_id,
                "admitted_at": _iso(at),
                "door": door,
            }
        if refusal.status == holds.SOLD and refusal.order_id == claims.order_id and refusal.checked_in_at:
            raise etickets.AlreadyAdmitted(refusal.checked_in_at, refusal.door)
        if refusal.status == holds.VOID and refusal.order_id == claims.order_id:
            raise etickets.TicketVoid()
        if refusal.status is None:
            raise etickets.TicketForged()  # signed by us for a seat that does not exist: never issued here
        raise etickets.TicketRefunded()

    # --- offline scanners ---------------------------------------------------------------------------------------
    def public_keys(self) -> dict:
        keyset = self._keyset()
        return {
            "algorithm": "Ed25519",
            "format": etickets.VERSION,
            "current": keyset.current or None,
            "keys": [{"kid": kid, "public_key": raw} for kid, raw in keyset.public_raw().items()],
        }

    def revocations(self, showtime_id: str, since: str | None, limit: int = 500) -> dict:
        if not plausible_id(showtime_id):
            raise NotFound("No such showtime.")
        if since is not None and not _CURSOR.match(since):
            raise BadRequest("since: not a cursor from this endpoint")
        records = self._checkins.revocations(showtime_id, since.replace(".", "#", 1) if since else None, limit)
        # Revocations are dated by the stream handler that writes them, and several may run at once (one per
        # shard): one dated a moment earlier can land after a later one was read. So the cursor never passes
        # the last CURSOR_SETTLE_SECONDS: what is newer comes again next time (a repeat, never a miss).
        settled_ms = int((self._clock() - CURSOR_SETTLE_SECONDS) * 1000)
        settled = [r for r in records if r.at_ms <= settled_ms]
        cursor = settled[-1].cursor.replace("#", ".", 1) if settled else since
        return {
            "showtime_id": showtime_id,
            "results": [
                {
                    "ticket_id": r.ticket_id,
                    "order_id": r.order_id,
                    "reason": r.reason,
                    "revoked_at": _iso(r.at_ms / 1000),
                }
                for r in records
            ],
            "cursor": cursor,
            "more": len(records) == limit and cursor != since,
        }
