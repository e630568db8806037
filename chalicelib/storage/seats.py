"""Seat-hold writes: every lock is a condition checked by DynamoDB, never a read-then-write.

A select is one TransactWriteItems over the ticket (condition: available, or held with an expired
hold) and the user's cart for the showtime (condition: the version we read). The cart read is an
optimistic read re-checked by that version condition, so it may come from a per-container cache.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib import holds, tables
from chalicelib.domain import CartRecord
from chalicelib.errors import (
    Busy,
    CheckoutInProgress,
    HoldBudgetSpent,
    LimitReached,
    NotFound,
    NotHolder,
    SeatCooldown,
    TicketUnavailable,
)
from chalicelib.storage.conditions import (
    OldTicket,
    cancellation_reasons,
    condition_failed,
    item_failed,
    old_ticket,
    transaction_cancelled,
)
from chalicelib.storage.models import Cart, Ticket, transact_write


class ExpiredHold(NamedTuple):
    showtime_id: str
    ticket_id: str
    holder: str
    expires_at: int


class _CartCache:
    """A small LRU of carts this container wrote or read; safe because writes re-check the version."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[tuple[str, str], CartRecord] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> CartRecord | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, record: CartRecord) -> None:
        with self._lock:
            self._items[(record.user_id, record.showtime_id)] = record
            self._items.move_to_end((record.user_id, record.showtime_id))
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._items.pop(key, None)


class SeatRepository:
    """select / unselect / release. Raises TicketUnavailable, LimitReached, NotFound, NotHolder,
    CheckoutInProgress, Busy."""

    def __init__(
        self,
        *,
        hold_seconds: int,
        limit: int,
        attempts: int,
        cooldown_seconds: int = 0,
        budget_seconds: int = 0,
        budget_renew_seconds: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.hold_seconds = hold_seconds
        self.limit = limit
        self.attempts = attempts
        # Hoarding rules (docs/seat-holds.md): after a hold runs out unpaid its holder may not take that seat
        # again for `cooldown_seconds`; a user's holds in a showtime all end within `budget_seconds` of their
        # first, and a new budget starts `budget_renew_seconds` after that first hold. 0 turns a rule off.
        self.cooldown_seconds = cooldown_seconds
        self.budget_seconds = budget_seconds
        self.budget_renew_seconds = max(budget_renew_seconds, budget_seconds)
        self._sleep = sleep
        self._carts = _CartCache()

    # --- carts --------------------------------------------------------------------------
    def read_cart(self, user_id: str, showtime_id: str) -> CartRecord:
        """A strongly consistent read of the cart (empty record when none exists)."""
        try:
            item = Cart.get(user_id, showtime_id, consistent_read=True)
        except Cart.DoesNotExist:
            record = CartRecord(user_id=user_id, showtime_id=showtime_id)
        else:
            record = CartRecord(
                user_id=user_id,
                showtime_id=showtime_id,
                holds={k: int(v) for k, v in item.holds.as_dict().items()},
                version=int(item.version or 0),
                exists=True,
                budget_from=int(item.budget_from) if item.budget_from is not None else None,
            )
        self._carts.put(record)
        return record

    def _cart(self, user_id: str, showtime_id: str, fresh: bool) -> CartRecord:
        if not fresh:
            cached = self._carts.get((user_id, showtime_id))
            if cached is not None:
                return cached
        return self.read_cart(user_id, showtime_id)

    @staticmethod
    def _cart_update(
        cart: CartRecord, new_holds: dict[str, int], tx: TransactWrite, budget_from: int | None = None
    ) -> None:
        condition = Cart.version == cart.version if cart.exists else Cart.version.does_not_exist()
        actions: list[Action] = [Cart.holds.set(new_holds), Cart.version.set(cart.version + 1)]
        if budget_from is not None and budget_from != cart.budget_from:
            actions.append(Cart.budget_from.set(budget_from))
        tx.update(Cart(cart.user_id, cart.showtime_id), actions=actions, condition=condition)

    def _budget(self, cart: CartRecord, now: float) -> tuple[int, int] | None:
        """(start, end) of the user's hold-time budget in this showtime as of `now`; None when off."""
        if self.budget_seconds <= 0:
            return None
        start = cart.budget_from
        if start is None or now >= start + self.budget_renew_seconds:
            start = int(now)
        return start, start + self.budget_seconds

    def _backoff(self, attempt: int) -> None:
        self._sleep(random.uniform(0, 0.004 * (attempt + 1)))

    # --- select -------------------------------------------------------------------------
    def select(self, user_id: str, showtime_id: str, ticket_id: str, now: float) -> int:
        """Hold the ticket for the user; returns the hold's expiry (epoch seconds)."""
        fresh = False
        for attempt in range(self.attempts):
            cart = self._cart(user_id, showtime_id, fresh)
            live = holds.live_holds(cart.holds, now)
            if ticket_id in live:
                if fresh:
                    return live[ticket_id]
                # A cached cart may miss an unselect made by another container: never ack a seat
                # on it alone (the seat may be someone else's by now).
                fresh = True
                continue
            if len(live) >= self.limit:
                if fresh:
                    raise LimitReached(ticket_id=ticket_id)
                fresh = True  # a cached cart may be stale: confirm before refusing
                continue
            budget = self._budget(cart, now)
            if budget is not None and now >= budget[1]:
                if fresh:
                    raise HoldBudgetSpent(ticket_id=ticket_id, retry_after=budget[0] + self.budget_renew_seconds - now)
                fresh = True  # confirm on a fresh read, as for the limit
                continue
            expires_at = int(now) + self.hold_seconds
            if budget is not None:
                expires_at = min(expires_at, budget[1])
            outcome = self._try_select(cart, live, ticket_id, now, expires_at, budget[0] if budget else None)
            if outcome is not None:
                return outcome
            fresh = True
            self._backoff(attempt)
        raise Busy(ticket_id=ticket_id)

    def _selectable(self, user_id: str, now: float) -> Any:
        """The condition a ticket must meet to be held by `user_id` now: free (or a lapsed hold), and not a seat
        whose unpaid hold by this same user ran out less than `cooldown_seconds` ago."""
        moment = int(now)
        free = Ticket.status == holds.AVAILABLE
        lapsed = (Ticket.status == holds.HELD) & (Ticket.hold_expires_at <= moment)
        if self.cooldown_seconds > 0:
            free = free & (
                Ticket.last_holder.does_not_exist()
                | (Ticket.last_holder != user_id)
                | (Ticket.cooldown_until <= moment)
            )
            lapsed = lapsed & ((Ticket.holder != user_id) | (Ticket.hold_expires_at <= moment - self.cooldown_seconds))
        return Ticket.ticket_id.exists() & (free | lapsed)

    def _try_select(
        self,
        cart: CartRecord,
        live: dict[str, int],
        ticket_id: str,
        now: float,
        expires_at: int,
        budget_from: int | None = None,
    ) -> int | None:
        """One transaction; the expiry on success or idempotent ack, None when the cart moved."""
        new_holds = {**live, ticket_id: expires_at}
        condition = self._selectable(cart.user_id, now)
        try:
            with transact_write() as tx:
                tx.update(
                    Ticket(cart.showtime_id, ticket_id),
                    actions=[
                        Ticket.status.set(holds.HELD),
                        Ticket.holder.set(cart.user_id),
                        Ticket.hold_expires_at.set(expires_at),
                        Ticket.sweep_shard.set(holds.sweep_shard(ticket_id)),
                    ],
                    condition=condition,
                    return_values="ALL_OLD",
                )
                self._cart_update(cart, new_holds, tx, budget_from)
        except TransactWriteError as exc:
            if not transaction_cancelled(exc):
                raise
            return self._explain_select_failure(cancellation_reasons(exc), cart, ticket_id, now)
        self._carts.put(
            CartRecord(
                cart.user_id,
                cart.showtime_id,
                new_holds,
                cart.version + 1,
                exists=True,
                budget_from=budget_from if budget_from is not None else cart.budget_from,
            )
        )
        return expires_at

    def _explain_select_failure(self, reasons: list, cart: CartRecord, ticket_id: str, now: float) -> int | None:
        if item_failed(reasons, 1) or not item_failed(reasons, 0):
            # The cart moved (or the reasons do not say): the cached copy is stale. When only the
            # ticket failed, the cart was just confirmed current and stays cached: under a rush most
            # selects are refused seats, and each would otherwise cost one more read next time.
            self._carts.drop((cart.user_id, cart.showtime_id))
        if item_failed(reasons, 0):
            old = old_ticket(reasons[0])
            if not old.exists:
                raise NotFound("No such ticket in this showtime.", ticket_id=ticket_id)
            live_own = old.holder == cart.user_id and not holds.is_expired(old.hold_expires_at, now)
            if old.status == holds.HELD and live_own:
                # Our own concurrent select (another connection) won: acknowledge it.
                return int(old.hold_expires_at or 0)
            wait = self._cooldown_left(old, cart.user_id, now)
            if wait is not None:
                raise SeatCooldown(ticket_id=ticket_id, retry_after=wait)
            raise TicketUnavailable(ticket_id=ticket_id)
        return None  # only the cart version moved: another select of this user raced us

    def _cooldown_left(self, old: OldTicket, user_id: str, now: float) -> float | None:
        """Seconds until `user_id` may hold this seat again, when a cooldown is what refused the select."""
        if self.cooldown_seconds <= 0:
            return None
        if old.status == holds.AVAILABLE and old.last_holder == user_id and (old.cooldown_until or 0) > now:
            return (old.cooldown_until or 0) - now
        lapsed_at = old.hold_expires_at or 0
        if old.status == holds.HELD and old.holder == user_id and lapsed_at <= now < lapsed_at + self.cooldown_seconds:
            return lapsed_at + self.cooldown_seconds - now
        return None

    # --- unselect -----------------------------------------------------------------------
    def unselect(self, user_id: str, showtime_id: str, ticket_id: str, now: float) -> None:
        """Release a plain hold of this user."""
        fresh = False
        for attempt in range(self.attempts):
            cart = self._cart(user_id, showtime_id, fresh)
            new_holds = {k: v for k, v in holds.live_holds(cart.holds, now).items() if k != ticket_id}
            try:
                with transact_write() as tx:
                    tx.update(
                        Ticket(showtime_id, ticket_id),
                        actions=[
                            Ticket.status.set(holds.AVAILABLE),
                            Ticket.holder.remove(),
                            Ticket.hold_expires_at.remove(),
                            Ticket.sweep_shard.remove(),
                        ],
                        condition=(Ticket.status == holds.HELD) & (Ticket.holder == user_id),
                        return_values="ALL_OLD",
                    )
                    self._cart_update(cart, new_holds, tx)
            except TransactWriteError as exc:
                if not transaction_cancelled(exc):
                    raise
                self._explain_unselect_failure(cancellation_reasons(exc), user_id, ticket_id)
                fresh = True
                self._backoff(attempt)
                continue
            self._carts.put(CartRecord(user_id, showtime_id, new_holds, cart.version + 1, exists=True))
            return
        raise Busy(ticket_id=ticket_id)

    def _explain_unselect_failure(self, reasons: list, user_id: str, ticket_id: str) -> None:
        if not item_failed(reasons, 0):
            return
        old = old_ticket(reasons[0])
        if not old.exists:
            raise NotFound("No such ticket in this showtime.", ticket_id=ticket_id)
        if old.status == holds.CHECKOUT and old.holder == user_id:
            raise CheckoutInProgress(ticket_id=ticket_id)
        raise NotHolder(ticket_id=ticket_id)

    # --- expiry sweep -------------------------------------------------------------------
    def expired_holds(self, now: float, limit_per_shard: int = 500) -> list[ExpiredHold]:
        """Plain holds whose expiry passed, from the sparse expiry index."""
        found: list[ExpiredHold] = []
        for shard in range(tables.SWEEP_SHARDS):
            for item in Ticket.by_expiry.query(str(shard), Ticket.hold_expires_at <= int(now), limit=limit_per_shard):
                found.append(
                    ExpiredHold(item.showtime_id, item.ticket_id, item.holder or "", int(item.hold_expires_at))
                )
        return found

    def release_expired(self, hold: ExpiredHold, now: float) -> bool:
        """Free one expired hold if it is still exactly what the sweeper saw; its holder's cooldown on the seat
        is kept on the ticket."""
        actions: list[Action] = [
            Ticket.status.set(holds.AVAILABLE),
            Ticket.holder.remove(),
            Ticket.hold_expires_at.remove(),
            Ticket.sweep_shard.remove(),
        ]
        if self.cooldown_seconds > 0 and hold.holder:
            actions += [
                Ticket.last_holder.set(hold.holder),
                Ticket.cooldown_until.set(hold.expires_at + self.cooldown_seconds),
            ]
        try:
            Ticket(hold.showtime_id, hold.ticket_id).update(
                actions=actions,
                condition=(Ticket.status == holds.HELD)
                & (Ticket.holder == hold.holder)
                & (Ticket.hold_expires_at == hold.expires_at)
                & (Ticket.hold_expires_at <= int(now)),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def forget_expired_cart_entry(self, user_id: str, showtime_id: str, ticket_id: str, expiry: int) -> None:
        """Tidy a stale cart entry; harmless to skip since expired entries never count."""
        try:
            Cart(user_id, showtime_id).update(
                actions=[Cart.holds[ticket_id].remove()],
                condition=Cart.holds[ticket_id] == expiry,
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
        self._carts.drop((user_id, showtime_id))
