"""Staff use cases that read across customers: a showtime's occupancy and revenue, finding orders by buyer or id.

Every read here is bounded: one Query of one showtime's seats, a GetItem per order id or per buyer, and Queries
of one buyer's orders through the `by_user` index. Nothing scans a table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal

from chalicelib import holds
from chalicelib.domain import OrderRecord, plausible_id
from chalicelib.errors import BadRequest
from chalicelib.services.catalog import CatalogService
from chalicelib.services.chargebacks import ChargebackService, staff_order_view
from chalicelib.storage.accounts import AccountRepository
from chalicelib.storage.catalog import CatalogRepository
from chalicelib.storage.orders import OrderRepository, money


def tally(seats: Iterable[tuple[str, int | None, str]], now: float) -> tuple[dict[str, int], Decimal]:
    """Counts of available / held / sold / void seats and the revenue of those sold, from (status, expiry, price).

    `held` includes seats in a checkout; a lapsed hold is available (as buyers see it); `void` seats (payment
    taken back) are neither sold nor revenue."""
    counts = {"available": 0, "held": 0, "sold": 0, "void": 0}
    revenue = Decimal("0.00")
    for status, expiry, price in seats:
        if status == holds.VOID:
            counts["void"] += 1
            continue
        shown = holds.public_status(status, expiry, now)
        counts[shown] += 1
        if shown == holds.SOLD:
            revenue += money(price)
    return counts, revenue


class StaffService:
    """Raises NotFound, BadRequest."""

    def __init__(
        self,
        *,
        catalog: CatalogService,
        catalog_repo: CatalogRepository,
        orders: OrderRepository,
        accounts: AccountRepository,
        chargebacks: ChargebackService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._catalog_repo = catalog_repo
        self._orders = orders
        self._accounts = accounts
        self._chargebacks = chargebacks
        self._clock = clock

    def showtime_report(self, showtime_id: str) -> dict:
        """A showtime with its seats counted by status and its revenue so far. Raises NotFound."""
        showtime = self._catalog.showtime(showtime_id)
        event = self._catalog.event(showtime.event_id)
        counts, revenue = tally(self._catalog_repo.iter_ticket_sales(showtime.id), self._clock())
        return {
            "showtime_id": showtime.id,
            "event_id": event.id,
            "event_title": event.title,
            "date": showtime.date,
            "theater": showtime.theater,
            "starts_at": showtime.starts_at,
            "tickets": showtime.tickets_count,
            "price": showtime.price,
            "currency": showtime.currency,
            **counts,
            "revenue": f"{revenue:.2f}",
        }

    def orders(
        self,
        *,
        attention: str | None,
        email: str | None,
        order_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> dict:
        """Orders by exactly one of: attention flag, buyer email, order id; each names its buyer's email."""
        given = [name for name, value in (("attention", attention), ("email", email), ("order_id", order_id)) if value]
        if len(given) != 1:
            raise BadRequest("attention: send exactly one of attention, email, order_id")
        if attention:
            page = self._chargebacks.needing_attention(attention, limit=limit, cursor=cursor)
        elif email:
            page = self._by_email(email, limit=limit, cursor=cursor)
        else:
            page = self._by_id(str(order_id))
        return {"results": self._with_emails(page["results"]), "next": page["next"]}

    def _by_email(self, email: str, *, limit: int, cursor: str | None) -> dict:
        user = self._accounts.find_by_email(email)
        if user is None:
            return {"results": [], "next": None}
        page = self._orders.list_for_user(user.id, limit=limit, cursor=cursor)
        return {"results": [staff_order_view(o) for o in page.items], "next": page.cursor}

    def _by_id(self, order_id: str) -> dict:
        order: OrderRecord | None = self._orders.get(order_id) if plausible_id(order_id) else None
        return {"results": [staff_order_view(order)] if order else [], "next": None}

    def _with_emails(self, views: list[dict]) -> list[dict]:
        # One GetItem per distinct buyer on the page (at most `limit`).
        emails: dict[str, str | None] = {}
        for view in views:
            user_id = view["user_id"]
            if user_id not in emails:
                user = self._accounts.get(user_id)
                emails[user_id] = user.email if user else None
            view["email"] = emails[user_id]
        return views
