"""Orders repository: every status change is one conditional transaction over the order, its tickets
and the buyer's cart, so listings and orders never disagree and nothing is sold twice."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import size
from pynamodb.expressions.update import Action

from chalicelib import holds, tables
from chalicelib.domain import OrderRecord, OrderTicket, Page, RefundEntry, TicketRecord
from chalicelib.order_status import (
    ABORT_CAPTURE,
    BEGIN_CAPTURE,
    CANCEL,
    EXPIRE,
    EXTERNAL_REFUND,
    FAIL,
    PURCHASE,
    RECORD_CAPTURE,
    REQUEST_REFUND,
    REVERSE,
    Move,
    OrderStatus,
    refunded_status,
)
from chalicelib.storage.catalog import decode_cursor, encode_cursor, start_key, ticket_record
from chalicelib.storage.conditions import condition_failed, refused
from chalicelib.storage.models import Cart, Order, PaymentRef, Ticket, transact_write

DISPUTE_OPEN, DISPUTE_RESOLVED = "open", "resolved"
ATTENTION_DISPUTED, ATTENTION_REVERSED = "disputed", "reversed"
ATTENTION = (ATTENTION_DISPUTED, ATTENTION_REVERSED)


class StaleState(Exception):
    """A condition failed: the order or its tickets moved since they were read."""


def _refund_entries(raw: dict) -> tuple[RefundEntry, ...]:
    entries = []
    for refund_id, value in sorted(raw.items(), key=lambda kv: str(kv[1].get("created_at", ""))):
        entries.append(
            RefundEntry(
                refund_id=refund_id,
                status=value["status"],
                amount=value["amount"],
                ticket_ids=tuple(value.get("ticket_ids", [])),
                previous_status=value.get("previous_status", OrderStatus.PAID),
                reason=value.get("reason"),
                paypal_refund_id=value.get("paypal_refund_id"),
                source=value.get("source", "buyer"),
                created_at=value.get("created_at"),
            )
        )
    return tuple(entries)


def _order_ticket(raw: dict[str, Any]) -> OrderTicket:
    number = raw.get("number")
    return OrderTicket(
        ticket_id=str(raw["ticket_id"]),
        seat=str(raw["seat"]),
        price=str(raw["price"]),
        row=None if raw.get("row") is None else str(raw["row"]),
        number=None if number is None else int(number),
    )


def _ticket_item(ticket: OrderTicket) -> dict[str, Any]:
    item: dict[str, Any] = {"ticket_id": ticket.ticket_id, "seat": ticket.seat, "price": ticket.price}
    if ticket.row is not None and ticket.number is not None:
        item.update(row=ticket.row, number=ticket.number)
    return item


def _record(item: Order) -> OrderRecord:
    refunds_raw = item.refunds.as_dict() if item.refunds is not None else {}
    return OrderRecord(
        order_id=item.order_id,
        user_id=item.user_id,
        showtime_id=item.showtime_id,
        event_id=item.event_id,
        status=item.status,
        amount=item.amount,
        currency=item.currency,
        tickets=tuple(_order_ticket(t) for t in (item.tickets or [])),
        created_at=item.created_at,
        expires_at=int(item.expires_at),
        paypal_order_id=item.paypal_order_id,
        approval_url=item.approval_url,
        capture_id=item.capture_id,
        capture_attempt=int(item.capture_attempt or 0),
        capture_declined=bool(item.capture_declined),
        dispute_id=item.dispute_id,
        dispute_status=item.dispute_status,
        dispute_outcome=item.dispute_outcome,
        attention=item.attention,
        refunded_ticket_ids=tuple(item.refunded_ticket_ids or []),
        refunds=_refund_entries(refunds_raw),
        failure_reason=item.failure_reason,
        event_title=item.event_title,
        starts_at=item.starts_at,
        theater=item.theater,
        cancel_reason=item.cancel_reason,
    )


def _raise_stale(exc: TransactWriteError | UpdateError) -> None:
    if refused(exc):
        raise StaleState(str(exc.cause_response_code)) from exc
    raise exc


def _status_in(move: Move) -> Any:
    """The condition that the order is in one of the move's source statuses."""
    return Order.status.is_in(*sorted(move.sources))


def _open_shard(order_id: str) -> str:
    return holds.sweep_shard(order_id)


class OrderRepository:
    """Raises StaleState when a condition fails (callers re-read and decide)."""

    # --- reads ----------------------------------------------------------------------------
    def get(self, order_id: str) -> OrderRecord | None:
        try:
            return _record(Order.get(order_id, consistent_read=True))
        except Order.DoesNotExist:
            return None

    def by_paypal_id(self, paypal_order_id: str) -> OrderRecord | None:
        try:
            ref = PaymentRef.get(f"paypal-order#{paypal_order_id}", consistent_read=True)
        except PaymentRef.DoesNotExist:
            return None
        return self.get(ref.order_id) if ref.order_id else None

    def list_for_user(self, user_id: str, *, limit: int, cursor: str | None) -> Page:
        """One page of a buyer's orders, newest first; the cursor names the last order of the previous page, and
        only ever pages through the caller's own orders. Raises BadRequest for a malformed cursor."""
        position = decode_cursor(cursor, ("order_id", "created_at"))
        result = Order.by_user.query(
            user_id,
            scan_index_forward=False,
            limit=limit + 1,  # one more than asked tells whether a next page exists
            last_evaluated_key=start_key(position, {"user_id": user_id}),
        )
        return _page([_record(o) for o in result], limit)

    def tickets(self, showtime_id: str, ticket_ids: Iterable[str]) -> dict[str, TicketRecord]:
        keys = [(showtime_id, t) for t in ticket_ids]
        return {t.ticket_id: ticket_record(t) for t in Ticket.batch_get(keys, consistent_read=True)}

    def open_order_of(self, user_id: str, showtime_id: str) -> str | None:
        try:
            cart = Cart.get(user_id, showtime_id, consistent_read=True, attributes_to_get=["open_order"])
        except Cart.DoesNotExist:
            return None
        return getattr(cart, "open_order", None)

    def expiring_orders(self, now: float, limit_per_shard: int = 200) -> list[str]:
        found: list[str] = []
        for shard in range(tables.SWEEP_SHARDS):
            for item in Order.by_open_expiry.query(str(shard), Order.expires_at <= int(now), limit=limit_per_shard):
                found.append(item.order_id)
        return found

    # --- checkout: held -> checkout ------------------------------------------------------------
    def start_checkout(
        self,
        order: OrderRecord,
        cart_version: int,
        cart_exists: bool,
        new_cart_holds: dict[str, int],
        hold_expiries: dict[str, int],
        now: float,
    ) -> None:
        """Move the buyer's holds into checkout and write the order, atomically."""
        try:
            with transact_write() as tx:
                for ticket in order.tickets:
                    tx.update(
                        Ticket(order.showtime_id, ticket.ticket_id),
                        actions=[
                            Ticket.status.set(holds.CHECKOUT),
                            Ticket.order_id.set(order.order_id),
                            Ticket.hold_expiry_before_checkout.set(hold_expiries[ticket.ticket_id]),
                            Ticket.hold_expires_at.set(order.expires_at),
                            Ticket.sweep_shard.remove(),
                        ],
                        condition=(Ticket.status == holds.HELD)
                        & (Ticket.holder == order.user_id)
                        & (Ticket.hold_expires_at == hold_expiries[ticket.ticket_id])
                        & (Ticket.hold_expires_at > int(now)),
                    )
                cart_condition = Cart.version == cart_version if cart_exists else Cart.version.does_not_exist()
                tx.update(
                    Cart(order.user_id, order.showtime_id),
                    actions=[
                        Cart.holds.set(new_cart_holds),
                        Cart.version.set(cart_version + 1),
                        Cart.open_order.set(order.order_id),
                    ],
                    condition=cart_condition,
                )
                tx.save(self._new_order(order), condition=Order.order_id.does_not_exist())
        except TransactWriteError as exc:
            _raise_stale(exc)

    @staticmethod
    def _new_order(order: OrderRecord) -> Order:
        return Order(
            order_id=order.order_id,
            user_id=order.user_id,
            showtime_id=order.showtime_id,
            event_id=order.event_id,
            status=OrderStatus.CREATED,
            amount=order.amount,
            currency=order.currency,
            tickets=[_ticket_item(t) for t in order.tickets],
            created_at=order.created_at,
            expires_at=order.expires_at,
            open_shard=_open_shard(order.order_id),
            capture_attempt=0,
            refunds={},
            event_title=order.event_title,
            starts_at=order.starts_at,
            theater=order.theater,
        )

    def attach_paypal(self, order_id: str, paypal_order_id: str, approval_url: str | None) -> None:
        """Record the PayPal order and its id mapping (no index read is ever needed to find it)."""
        try:
            PaymentRef(ref=f"paypal-order#{paypal_order_id}", order_id=order_id).save(
                condition=PaymentRef.ref.does_not_exist() | (PaymentRef.order_id == order_id)
            )
        except PutError as exc:
            if condition_failed(exc):
                raise StaleState("paypal order mapped to another order") from exc
            raise
        Order(order_id=order_id).update(
            # approval_url may be None: PayPal gave no link (a set of None is what was always written here).
            actions=[Order.paypal_order_id.set(paypal_order_id), Order.approval_url.set(approval_url)],  # type: ignore[arg-type]
            condition=Order.order_id.exists(),
        )

    # --- checkout ends without payment: checkout -> held / available -------------------------
    def end_checkout(
        self,
        order: OrderRecord,
        new_status: str,
        ticket_states: dict[str, TicketRecord],
        *,
        restore: bool,
        cooldown_until: int | None = None,
        cancel_reason: str | None = None,
    ) -> None:
        """created -> cancelled (tickets back to the buyer's holds; `cancel_reason` says why) or expired (tickets
        released; with `cooldown_until`, the buyer may not hold them again before then)."""
        move = CANCEL if restore else EXPIRE
        if new_status not in move.targets:
            raise ValueError(f"a checkout ends cancelled (restore) or expired, not {new_status}")
        try:
            with transact_write() as tx:
                order_actions: list[Action] = [Order.status.set(new_status), Order.open_shard.remove()]
                if restore and cancel_reason is not None:
                    order_actions.append(Order.cancel_reason.set(cancel_reason))
                tx.update(
                    Order(order.order_id),
                    actions=order_actions,
                    condition=_status_in(move) & (Order.capture_attempt == order.capture_attempt),
                )
                cart_actions: list[Action] = [Cart.open_order.remove(), Cart.version.add(1)]
                for ticket_id, item in ticket_states.items():
                    if item.status != holds.CHECKOUT or item.order_id != order.order_id:
                        continue
                    original = int(item.hold_expiry_before_checkout or 0)
                    if restore:
                        actions: list[Action] = [
                            Ticket.status.set(holds.HELD),
                            Ticket.hold_expires_at.set(original),
                            Ticket.sweep_shard.set(holds.sweep_shard(ticket_id)),
                            Ticket.order_id.remove(),
                            Ticket.hold_expiry_before_checkout.remove(),
                        ]
                        cart_actions.append(Cart.holds[ticket_id].set(original))
                    else:
                        actions = _release_actions()
                        if cooldown_until is not None:
                            actions += [
                                Ticket.last_holder.set(order.user_id),
                                Ticket.cooldown_until.set(cooldown_until),
                            ]
                        cart_actions.append(Cart.holds[ticket_id].remove())
                    tx.update(
                        Ticket(order.showtime_id, ticket_id),
                        actions=actions,
                        condition=(Ticket.status == holds.CHECKOUT) & (Ticket.order_id == order.order_id),
                    )
                tx.update(Cart(order.user_id, order.showtime_id), actions=cart_actions)
        except TransactWriteError as exc:
            _raise_stale(exc)

    # --- capture ------------------------------------------------------------------------
    def begin_capture(self, order: OrderRecord, now: float) -> int:
        """created -> processing with a fresh capture attempt number; returns it. The order stays in the
        sweep index until a capture is recorded, so an attempt that dies midway is found again."""
        attempt = order.capture_attempt + 1
        try:
            Order(order.order_id).update(
                actions=[
                    Order.status.set(OrderStatus.PROCESSING),
                    Order.capture_attempt.set(attempt),
                ],
                condition=_status_in(BEGIN_CAPTURE)
                & (Order.capture_attempt == order.capture_attempt)
                & (Order.expires_at > int(now)),
            )
        except UpdateError as exc:
            _raise_stale(exc)
        return attempt

    def abort_capture(self, order_id: str, attempt: int, *, declined: bool = False) -> None:
        """processing -> created after a declined or unknown capture (the buyer may try again). `declined`
        is remembered, so a later capture that PayPal refuses for want of a new approval reads as declined."""
        try:
            Order(order_id).update(
                actions=[
                    Order.status.set(OrderStatus.CREATED),
                    Order.open_shard.set(_open_shard(order_id)),
                    Order.capture_declined.set(True) if declined else Order.capture_declined.remove(),
                ],
                # Never undo a capture someone recorded meanwhile (a webhook may settle it first).
                condition=_status_in(ABORT_CAPTURE)
                & (Order.capture_attempt == attempt)
                & Order.capture_id.does_not_exist(),
            )
        except UpdateError as exc:
            _raise_stale(exc)

    def record_capture(self, order_id: str, capture_id: str) -> None:
        """Note the capture id and make sure the order is processing (a webhook may capture first)."""
        condition = _status_in(RECORD_CAPTURE)
        try:
            Order(order_id).update(
                # The order stays in the sweeper's index until it is paid or failed: a purchase message
                # lost between here and SQS, or a PENDING capture, is then settled from PayPal's truth.
                actions=[Order.capture_id.set(capture_id), Order.status.set(OrderStatus.PROCESSING)],
                condition=condition & (Order.capture_id.does_not_exist() | (Order.capture_id == capture_id)),
            )
        except UpdateError as exc:
            _raise_stale(exc)

    # --- purchase worker: checkout -> sold --------------------------------------------------
    def complete_purchase(self, order: OrderRecord) -> None:
        """processing -> paid with every ticket checkout-by-this-order -> sold, in one transaction."""
        try:
            with transact_write() as tx:
                tx.update(
                    Order(order.order_id),
                    actions=[Order.status.set(OrderStatus.PAID), Order.open_shard.remove()],
                    condition=_status_in(PURCHASE),
                )
                # open_order is left alone: by now it may name a newer order of this buyer, and a pointer
                # to an order that is no longer `created` is ignored anyway.
                cart_actions: list[Action] = [Cart.version.add(1)]
                for ticket_id in order.ticket_ids:
                    tx.update(
                        Ticket(order.showtime_id, ticket_id),
                        actions=[
                            Ticket.status.set(holds.SOLD),
                            Ticket.hold_expires_at.remove(),
                            Ticket.hold_expiry_before_checkout.remove(),
                            Ticket.sweep_shard.remove(),
                        ],
                        condition=(Ticket.status == holds.CHECKOUT) & (Ticket.order_id == order.order_id),
                    )
                    cart_actions.append(Cart.holds[ticket_id].remove())
                tx.update(Cart(order.user_id, order.showtime_id), actions=cart_actions)
        except TransactWriteError as exc:
            _raise_stale(exc)

    def fail_order(
        self, order: OrderRecord, reason: str, ticket_states: dict[str, TicketRecord], refund: RefundEntry | None
    ) -> None:
        """processing -> failed; whatever tickets are still ours go back on sale."""
        actions: list[Action] = [
            Order.status.set(OrderStatus.FAILED),
            Order.failure_reason.set(reason),
            Order.open_shard.remove(),
        ]
        if refund is not None:
            actions.append(Order.refunds[refund.refund_id].set(_refund_value(refund)))
        try:
            with transact_write() as tx:
                tx.update(Order(order.order_id), actions=actions, condition=_status_in(FAIL))
                cart_actions: list[Action] = [Cart.version.add(1)]  # open_order: see complete_purchase
                for ticket_id, item in ticket_states.items():
                    cart_actions.append(Cart.holds[ticket_id].remove())
                    if item.status in (holds.CHECKOUT, holds.SOLD) and item.order_id == order.order_id:
                        tx.update(
                            Ticket(order.showtime_id, ticket_id),
                            actions=_release_actions(),
                            condition=Ticket.order_id == order.order_id,
                        )
                tx.update(Cart(order.user_id, order.showtime_id), actions=cart_actions)
        except TransactWriteError as exc:
            _raise_stale(exc)

    # --- refunds ----------------------------------------------------------------------------
    def request_refund(self, order: OrderRecord, refund: RefundEntry, created_at: str) -> None:
        """paid | partially_refunded -> refund_pending, with the refund entry, if nothing moved."""
        value = {**_refund_value(refund), "created_at": created_at}
        try:
            Order(order.order_id).update(
                # In the sweeper's index while pending: a refund message lost on its way to SQS is re-sent.
                actions=[
                    Order.status.set(OrderStatus.REFUND_PENDING),
                    Order.refunds[refund.refund_id].set(value),
                    Order.open_shard.set(_open_shard(order.order_id)),
                ],
                condition=(Order.status == order.status)
                & _status_in(REQUEST_REFUND)
                & _refunded_unchanged(order)
                & _no_open_dispute()
                & Order.refunds[refund.refund_id].does_not_exist(),
            )
        except UpdateError as exc:
            _raise_stale(exc)

    def complete_refund(self, order: OrderRecord, refund: RefundEntry, paypal_refund_id: str | None) -> None:
        """refund pending -> completed: order status, refunded tickets back on sale, in one transaction."""
        entry = Order.refunds[refund.refund_id]
        order_actions = [*_refunded_actions(order, refund), entry["status"].set("completed"), Order.open_shard.remove()]
        if paypal_refund_id:
            order_actions.append(entry["paypal_refund_id"].set(paypal_refund_id))
        try:
            with transact_write() as tx:
                tx.update(Order(order.order_id), actions=order_actions, condition=entry["status"] == "pending")
                _release_sold(tx, order, refund.ticket_ids)
        except TransactWriteError as exc:
            _raise_stale(exc)

    def fail_refund(self, order: OrderRecord, refund: RefundEntry, reason: str) -> None:
        """refund pending -> failed with a readable reason; the order returns to where it was."""
        entry = Order.refunds[refund.refund_id]
        try:
            Order(order.order_id).update(
                actions=[
                    Order.status.set(refund.previous_status),
                    entry["status"].set("failed"),
                    entry["reason"].set(reason),
                    Order.open_shard.remove(),
                ],
                condition=entry["status"] == "pending",
            )
        except UpdateError as exc:
            _raise_stale(exc)

    def record_external_refund(self, order: OrderRecord, refund: RefundEntry, created_at: str) -> None:
        """A refund made outside our API (PayPal dashboard): record it completed and free its seats."""
        value = {**_refund_value(refund), "created_at": created_at}
        try:
            with transact_write() as tx:
                tx.update(
                    Order(order.order_id),
                    actions=[*_refunded_actions(order, refund), Order.refunds[refund.refund_id].set(value)],
                    condition=_status_in(EXTERNAL_REFUND)
                    & _refunded_unchanged(order)
                    & Order.refunds[refund.refund_id].does_not_exist(),
                )
                _release_sold(tx, order, refund.ticket_ids)
        except TransactWriteError as exc:
            _raise_stale(exc)

    def record_orphan_refund(self, order: OrderRecord, refund: RefundEntry, created_at: str) -> None:
        """Note the refund of a capture that arrived after the order ended; the order keeps its status."""
        value = {**_refund_value(refund), "created_at": created_at}
        try:
            Order(order.order_id).update(
                actions=[Order.refunds[refund.refund_id].set(value)],
                condition=Order.refunds[refund.refund_id].does_not_exist(),
            )
        except UpdateError as exc:
            _raise_stale(exc)

    # --- disputes and chargebacks ------------------------------------------------------------
    def open_dispute(self, order_id: str, dispute_id: str) -> None:
        """Note an open PayPal dispute: refunds wait for its outcome, staff see the order. Repeats are harmless."""
        try:
            Order(order_id).update(
                actions=[
                    Order.dispute_id.set(dispute_id),
                    Order.dispute_status.set(DISPUTE_OPEN),
                    Order.dispute_outcome.remove(),
                    Order.attention.set(ATTENTION_DISPUTED),
                ],
                # a reversed order stays reversed (and listed as such); a resolved dispute may be reopened
                condition=(Order.status != OrderStatus.REVERSED)
                & (Order.dispute_id.does_not_exist() | (Order.dispute_id == dispute_id) | _no_open_dispute()),
            )
        except UpdateError as exc:
            _raise_stale(exc)

    def resolve_dispute(self, order_id: str, dispute_id: str, outcome: str) -> None:
        """The dispute ended without the money going back: the order leaves the staff list."""
        try:
            Order(order_id).update(
                actions=[
                    Order.dispute_status.set(DISPUTE_RESOLVED),
                    Order.dispute_outcome.set(outcome),
                    Order.attention.remove(),
                ],
                condition=(Order.dispute_id == dispute_id) & (Order.status != OrderStatus.REVERSED),
            )
        except UpdateError as exc:
            _raise_stale(exc)

    def note_dispute_outcome(self, order_id: str, dispute_id: str, outcome: str) -> None:
        """Record how a dispute ended, whatever the order became (a reversal may have been reported first)."""
        try:
            Order(order_id).update(
                actions=[Order.dispute_status.set(DISPUTE_RESOLVED), Order.dispute_outcome.set(outcome)],
                condition=Order.dispute_id == dispute_id,
            )
        except UpdateError as exc:
            _raise_stale(exc)

    def reverse(
        self, order: OrderRecord, states: dict[str, TicketRecord], reason: str, outcome: str | None = None
    ) -> None:
        """paid | partially_refunded | refund_pending -> reversed, in one transaction: the tickets it still holds
        sold become void, a refund still pending fails (PayPal took the money back already), staff see it."""
        actions: list[Action] = [Order.status.set(OrderStatus.REVERSED), Order.attention.set(ATTENTION_REVERSED)]
        if order.dispute_status == DISPUTE_OPEN:
            actions += [Order.dispute_status.set(DISPUTE_RESOLVED), Order.dispute_outcome.set(outcome or "REVERSED")]
        pending = [refund for refund in order.refunds if refund.status == "pending"]
        for refund in pending:
            failed = refund._replace(status="failed", reason=reason)
            actions.append(Order.refunds[refund.refund_id].set(_refund_value(failed)))
        if pending:
            actions.append(Order.open_shard.remove())
        try:
            with transact_write() as tx:
                tx.update(
                    Order(order.order_id),
                    actions=actions,
                    condition=(Order.status == order.status) & _status_in(REVERSE) & _refunded_unchanged(order),
                )
                for ticket_id, state in states.items():
                    if state.status == holds.SOLD and state.order_id == order.order_id:
                        tx.update(
                            Ticket(order.showtime_id, ticket_id),
                            actions=[Ticket.status.set(holds.VOID)],
                            condition=(Ticket.status == holds.SOLD) & (Ticket.order_id == order.order_id),
                        )
        except TransactWriteError as exc:
            _raise_stale(exc)

    def needing_attention(self, attention: str, *, limit: int, cursor: str | None) -> Page:
        """One page of the orders flagged `attention`, newest first (the sparse by_attention index)."""
        position = decode_cursor(cursor, ("order_id", "created_at"))
        result = Order.by_attention.query(
            attention,
            scan_index_forward=False,
            limit=limit + 1,
            last_evaluated_key=start_key(position, {"attention": attention}),
        )
        return _page([_record(o) for o in result], limit)

    # --- webhook de-duplication -----------------------------------------------------------
    def seen_event(self, event_id: str) -> bool:
        try:
            PaymentRef.get(f"webhook#{event_id}", consistent_read=True)
        except PaymentRef.DoesNotExist:
            return False
        return True

    def remember_event(self, event_id: str, expires_at: int) -> None:
        PaymentRef(ref=f"webhook#{event_id}", expires_at=expires_at).save()


def _page(items: list[OrderRecord], limit: int) -> Page:
    """A page of `limit` orders out of limit + 1 read; the cursor names the last one when more follow."""
    if len(items) <= limit:
        return Page(items=items, cursor=None)
    last = items[limit - 1]
    return Page(items=items[:limit], cursor=encode_cursor({"order_id": last.order_id, "created_at": last.created_at}))


def _no_open_dispute():
    return Order.dispute_status.does_not_exist() | (Order.dispute_status != DISPUTE_OPEN)


def _refunded_unchanged(order: OrderRecord):
    """Condition: no ticket of the order was refunded since it was read (the set only ever grows), so a
    refund computed from that read never pays back a seat twice."""
    count = len(order.refunded_ticket_ids)
    unchanged = size(Order.refunded_ticket_ids) == count
    return unchanged | Order.refunded_ticket_ids.does_not_exist() if count == 0 else unchanged


def _refunded_actions(order: OrderRecord, refund: RefundEntry) -> list[Action]:
    """The order's status and refunded tickets once this refund is done."""
    refunded = sorted(set(order.refunded_ticket_ids) | set(refund.ticket_ids))
    status = refunded_status(set(refunded), set(order.ticket_ids))
    return [Order.status.set(status), Order.refunded_ticket_ids.set(refunded)]


def _release_sold(tx, order: OrderRecord, ticket_ids: Iterable[str]) -> None:
    """Put this order's sold tickets back on sale, inside the caller's transaction."""
    for ticket_id in ticket_ids:
        tx.update(
            Ticket(order.showtime_id, ticket_id),
            actions=_release_actions(),
            condition=(Ticket.status == holds.SOLD) & (Ticket.order_id == order.order_id),
        )


def _release_actions() -> list[Action]:
    return [
        Ticket.status.set(holds.AVAILABLE),
        Ticket.holder.remove(),
        Ticket.hold_expires_at.remove(),
        Ticket.hold_expiry_before_checkout.remove(),
        Ticket.order_id.remove(),
        Ticket.sweep_shard.remove(),
    ]


def _refund_value(refund: RefundEntry) -> dict:
    value = {
        "status": refund.status,
        "amount": refund.amount,
        "ticket_ids": list(refund.ticket_ids),
        "previous_status": str(refund.previous_status),  # a plain str: map attributes serialize by exact type
        "source": refund.source,
    }
    if refund.reason:
        value["reason"] = refund.reason
    if refund.paypal_refund_id:
        value["paypal_refund_id"] = refund.paypal_refund_id
    return value


def money(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def dumps(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
