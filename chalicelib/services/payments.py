"""Checkout use cases: create, execute (capture), cancel, cart, orders, the purchase worker, the sweeper.

Idempotency root: our order id. PayPal-Request-Id is `create-<order>`, `capture-<order>-<attempt>` (the
attempt moves with each created -> processing transition) and `refund-<refund id>`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from chalicelib import holds
from chalicelib.domain import OrderRecord, OrderTicket, RefundEntry, ShowtimeRecord, plausible_id, showing_time
from chalicelib.errors import (
    Busy,
    Forbidden,
    NoHolds,
    NotCancellable,
    NotFound,
    OrderCancelled,
    OrderExpired,
    OrderNotApproved,
    PaymentDeclined,
    PaymentProviderUnavailable,
)
from chalicelib.observability import logger, metrics
from chalicelib.order_status import CancelReason, OrderStatus
from chalicelib.paypal import Item, PayPalClient, PayPalError, PayPalUnavailable, approval_url, first_capture
from chalicelib.queues import EmailJobs, QueuePublisher
from chalicelib.services.catalog import CatalogService, ticket_view
from chalicelib.storage.orders import OrderRepository, StaleState, money
from chalicelib.storage.seats import SeatRepository

_DECLINED = {
    "INSTRUMENT_DECLINED",
    "PAYER_CANNOT_PAY",
    "TRANSACTION_REFUSED",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
}
_NOT_APPROVED = {"ORDER_NOT_APPROVED", "PAYER_ACTION_REQUIRED"}
# Captured or finished: a repeated execute answers the current status.
_SETTLED = frozenset(OrderStatus) - {OrderStatus.CREATED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
_ATTEMPTS = 5
# How long after its window a `processing` order with no capture may still have a capture call in flight:
# far above a Lambda's API timeout plus the PayPal client's retries.
CAPTURE_GRACE_SECONDS = 300


def now_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ticket_view(ticket: OrderTicket) -> dict:
    view: dict = {"ticket_id": ticket.ticket_id, "seat": ticket.seat, "label": ticket.label, "price": ticket.price}
    if ticket.row is not None and ticket.number is not None:
        view.update(row=ticket.row, number=ticket.number)
    return view


def order_view(order: OrderRecord) -> dict:
    view = {
        "order_id": order.order_id,
        "status": order.status,
        "amount": order.amount,
        "currency": order.currency,
        "showtime_id": order.showtime_id,
        "event_id": order.event_id,
        "event_title": order.event_title,
        "starts_at": order.starts_at,
        "theater": order.theater,
        "tickets": [_ticket_view(t) for t in order.tickets],
        "refunded_ticket_ids": list(order.refunded_ticket_ids),
        "refunds": [_refund_view(r) for r in order.refunds],
        "created_at": order.created_at,
        "expires_at": holds.iso(order.expires_at),
        "paypal_order_id": order.paypal_order_id,
    }
    if order.status == OrderStatus.CREATED and order.approval_url:
        view["approval_url"] = order.approval_url
    if order.failure_reason:
        view["failure_reason"] = order.failure_reason
    if order.status == OrderStatus.CANCELLED and order.cancel_reason:
        view["cancel_reason"] = order.cancel_reason
    return view


def paypal_description(order: OrderRecord) -> str:
    """The purchase's one line at PayPal: what, when, where, how many (an order id means nothing to a buyer)."""
    count = f"{len(order.tickets)} seat{'' if len(order.tickets) == 1 else 's'}"
    parts = [order.event_title, showing_time(order.starts_at), order.theater]
    return ", ".join([p for p in parts if p] + [count])


def paypal_items(order: OrderRecord) -> list[Item]:
    """One item per seat, named so the buyer can tell which: "Inception: Row D, seat 5", then when and where."""
    details = ", ".join(p for p in (showing_time(order.starts_at), order.theater) if p) or None
    items = []
    for ticket in order.tickets:
        seat = ticket.label
        name = f"{order.event_title[: 120 - len(seat)]}: {seat}" if order.event_title else seat
        items.append(Item(name=name, amount=money(ticket.price), description=details))
    return items


def _refund_view(refund: RefundEntry) -> dict:
    view = {
        "refund_id": refund.refund_id,
        "status": refund.status,
        "amount": refund.amount,
        "ticket_ids": list(refund.ticket_ids),
    }
    if refund.reason:
        view["reason"] = refund.reason
    return view


class PaymentService:
    """Raises NotFound, Forbidden, NoHolds, Busy, OrderExpired, OrderCancelled, OrderNotApproved,
    PaymentDeclined, NotCancellable, PaymentProviderUnavailable."""

    def __init__(
        self,
        *,
        orders: OrderRepository,
        seats: SeatRepository,
        catalog: CatalogService,
        paypal: Callable[[], PayPalClient],
        purchases: QueuePublisher,
        payment_window_seconds: int,
        return_url: str,
        cancel_url: str,
        emails: EmailJobs | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.orders = orders
        self._seats = seats
        self._catalog = catalog
        self._paypal = paypal
        self._purchases = purchases
        self._window = payment_window_seconds
        self._return_url = return_url
        self._cancel_url = cancel_url
        self._emails = emails  # None: no emails (settings without EMAILS_QUEUE_URL)
        self._clock = clock

    # --- cart ---------------------------------------------------------------------------
    def cart(self, user_id: str, showtime_id: str) -> dict:
        showtime = self._catalog.showtime(showtime_id)
        now = self._clock()
        live = holds.live_holds(self._seats.read_cart(user_id, showtime.id).holds, now)
        items = self.orders.tickets(showtime.id, live)
        mine = [t for t in items.values() if t.holder == user_id and t.status in (holds.HELD, holds.CHECKOUT)]
        mine.sort(key=lambda t: (len(t.row), t.row, int(t.number)))
        total = sum((money(t.price) for t in mine), Decimal("0.00"))
        return {
            "showtime_id": showtime.id,
            "tickets": [ticket_view(t, user_id, now) for t in mine],
            "total": f"{total:.2f}",
            "currency": showtime.currency,
            "expires_at": holds.iso(min(live[t.ticket_id] for t in mine)) if mine else None,
        }

    # --- create -------------------------------------------------------------------------
    def create(self, user_id: str, showtime_id: str) -> dict:
        showtime = self._catalog.showtime(showtime_id)
        reused = self._reuse_open_order(user_id, showtime.id)
        if reused is not None:
            return reused
        title = self._event_title(showtime.event_id)
        for _ in range(_ATTEMPTS):
            order = self._start_checkout(user_id, showtime, title)
            if order is not None:
                return self._attach_paypal(order)
        raise Busy("Your seats changed while checking out; please retry.")

    def _event_title(self, event_id: str) -> str | None:
        try:
            return self._catalog.event(event_id).title
        except NotFound:
            return None  # a showtime without its event still sells; the order names what it can

    def _reuse_open_order(self, user_id: str, showtime_id: str) -> dict | None:
        open_id = self.orders.open_order_of(user_id, showtime_id)
        existing = self.orders.get(open_id) if open_id else None
        if existing is None or existing.status != OrderStatus.CREATED:
            return None
        now = self._clock()
        live = holds.live_holds(self._seats.read_cart(user_id, showtime_id).holds, now)
        if existing.expires_at > now and set(existing.ticket_ids) == set(live):
            if existing.paypal_order_id:
                return self._created_view(existing)
            return self._attach_paypal(existing)
        self._end_checkout(existing, OrderStatus.CANCELLED, restore=True, reason=CancelReason.REPLACED)
        return None

    def _start_checkout(self, user_id: str, showtime: ShowtimeRecord, event_title: str | None) -> OrderRecord | None:
        showtime_id = showtime.id
        now = self._clock()
        cart = self._seats.read_cart(user_id, showtime_id)
        live = holds.live_holds(cart.holds, now)
        items = self.orders.tickets(showtime_id, live)
        held = {
            tid: item
            for tid, item in items.items()
            if item.status == holds.HELD and item.holder == user_id and not holds.is_expired(item.hold_expires_at, now)
        }
        if not held:
            raise NoHolds()
        order_id = uuid.uuid4().hex
        tickets = tuple(
            OrderTicket(
                ticket_id=tid,
                seat=f"{item.row}{int(item.number)}",
                price=item.price,
                row=item.row,
                number=int(item.number),
            )
            for tid, item in sorted(held.items(), key=lambda kv: (len(kv[1].row), kv[1].row, int(kv[1].number)))
        )
        amount = sum((money(t.price) for t in tickets), Decimal("0.00"))
        order = OrderRecord(
            order_id=order_id,
            user_id=user_id,
            showtime_id=showtime_id,
            event_id=showtime.event_id,
            status=OrderStatus.CREATED,
            amount=f"{amount:.2f}",
            currency=showtime.currency,
            tickets=tickets,
            created_at=now_iso(now),
            expires_at=int(now) + self._window,
            event_title=event_title,
            starts_at=showtime.starts_at,
            theater=showtime.theater,
        )
        new_holds = {**live, **{tid: order.expires_at for tid in held}}
        expiries = {tid: int(item.hold_expires_at or 0) for tid, item in held.items()}  # held: never None
        try:
            self.orders.start_checkout(order, cart.version, cart.exists, new_holds, expiries, now)
        except StaleState:
            return None
        metrics.add_metric(name="OrdersCreated", unit="Count", value=1)
        return order

    def _attach_paypal(self, order: OrderRecord) -> dict:
        try:
            created = self._paypal().create_order(
                request_id=f"create-{order.order_id}",
                reference_id=order.order_id,
                custom_id=order.order_id,
                invoice_id=order.order_id,
                description=paypal_description(order),
                currency=order.currency,
                items=paypal_items(order),
                return_url=self._return_url,
                cancel_url=self._cancel_url,
            )
        except PayPalError as exc:
            logger.warning("PayPal create failed", extra={"order_id": order.order_id, "issue": exc.issue})
            self._end_checkout(order, OrderStatus.CANCELLED, restore=True, reason=CancelReason.PAYMENT_NOT_CREATED)
            raise PaymentProviderUnavailable("PayPal could not create the payment; your seats are still held.") from exc
        url = approval_url(created)
        self.orders.attach_paypal(order.order_id, created["id"], url)
        fresh = self.orders.get(order.order_id)
        return self._created_view(fresh or order)

    def _created_view(self, order: OrderRecord) -> dict:
        view = order_view(order)
        view["status"] = OrderStatus.CREATED
        view["approval_url"] = order.approval_url
        return view

    # --- execute ------------------------------------------------------------------------
    def _owned_by_token(self, user_id: str, paypal_order_id: str) -> OrderRecord:
        order = self.orders.by_paypal_id(paypal_order_id) if paypal_order_id else None
        if order is None:
            raise NotFound("No order for this payment token.")
        if order.user_id != user_id:
            raise Forbidden("This order belongs to someone else.")
        return order

    def execute(self, user_id: str, paypal_order_id: str) -> dict:
        order = self._owned_by_token(user_id, paypal_order_id)
        return self.capture(order)

    def capture(self, order: OrderRecord) -> dict:
        """Capture a created order (from execute or an approval webhook); safe to repeat."""
        for _ in range(3):
            if order.status in _SETTLED:
                return {"order_id": order.order_id, "status": order.status}
            if order.status == OrderStatus.CANCELLED:
                raise OrderCancelled()
            if order.status == OrderStatus.EXPIRED or order.expires_at <= self._clock():
                raise OrderExpired()
            try:
                attempt = self.orders.begin_capture(order, self._clock())
            except StaleState:
                order = self.orders.get(order.order_id) or order
                continue
            return self._capture_attempt(order, attempt)
        raise Busy("The order is changing; please retry.")

    def _capture_attempt(self, order: OrderRecord, attempt: int) -> dict:
        client = self._paypal()
        try:
            result = client.capture_order(order.paypal_order_id or "", request_id=f"capture-{order.order_id}-{attempt}")
        except PayPalUnavailable:
            result = self._read_back(order, attempt)
        except PayPalError as exc:
            result = self._capture_refused(order, attempt, exc)
        except Exception:
            # Never leave the order in `processing` with no capture behind it: its seats would stay locked.
            # Back in `created` with this attempt counted, the sweeper asks PayPal before expiring it.
            self._abort(order, attempt)
            raise
        return self._after_capture(order, attempt, result)

    def _read_back(self, order: OrderRecord, attempt: int) -> dict:
        """The capture's answer was lost: ask PayPal what happened before deciding anything."""
        try:
            result = self._paypal().get_order(order.paypal_order_id or "")
        except PayPalError as exc:
            self._abort(order, attempt)
            raise PaymentProviderUnavailable() from exc
        if first_capture(result) is None:
            self._abort(order, attempt)
            raise PaymentProviderUnavailable()
        return result

    def _capture_refused(self, order: OrderRecord, attempt: int, exc: PayPalError) -> dict:
        if exc.issue == "ORDER_ALREADY_CAPTURED":
            return self._read_back(order, attempt)
        declined = exc.issue in _DECLINED
        # PayPal wants a new approval after a decline, so a capture right after one (the approval webhook's
        # capture was declined first, then the buyer's execute arrives) is refused as "not approved": the buyer
        # is told what happened, that the payment was declined.
        declined_before = exc.issue in _NOT_APPROVED and order.capture_declined
        self._abort(order, attempt, declined=declined or declined_before)
        logger.info("capture refused", extra={"order_id": order.order_id, "issue": exc.issue})
        if declined or declined_before:
            raise PaymentDeclined() from exc
        if exc.issue in _NOT_APPROVED:
            raise OrderNotApproved() from exc
        if exc.issue == "ORDER_EXPIRED":
            raise OrderExpired() from exc
        raise PaymentProviderUnavailable("PayPal refused the capture; please retry.") from exc

    def _abort(self, order: OrderRecord, attempt: int, *, declined: bool = False) -> None:
        try:
            self.orders.abort_capture(order.order_id, attempt, declined=declined)
        except StaleState:
            logger.info("capture abort found the order moved", extra={"order_id": order.order_id})

    def _after_capture(self, order: OrderRecord, attempt: int, paypal_order: dict) -> dict:
        capture = first_capture(paypal_order) or {}
        status = capture.get("status")
        if status in ("COMPLETED", "PENDING"):
            self.settle_capture(order, capture["id"], completed=status == "COMPLETED")
            return {"order_id": order.order_id, "status": OrderStatus.PROCESSING}
        self.fail(order.order_id, "The payment was declined by PayPal.")
        raise PaymentDeclined()

    def settle_capture(self, order: OrderRecord, capture_id: str, *, completed: bool) -> None:
        """Record a capture; once it is COMPLETED, hand the order to the purchase worker."""
        try:
            self.orders.record_capture(order.order_id, capture_id)
        except StaleState:
            current = self.orders.get(order.order_id)
            if current is None or current.status != OrderStatus.PROCESSING or current.capture_id != capture_id:
                logger.warning("capture for an order that moved on", extra={"order_id": order.order_id})
                return
        if completed:
            self._purchases.send({"order_id": order.order_id})
            metrics.add_metric(name="Captures", unit="Count", value=1)

    def fail(self, order_id: str, reason: str, refund: RefundEntry | None = None) -> None:
        order = self.orders.get(order_id)
        if order is None or order.status != OrderStatus.PROCESSING:
            return
        states = self.orders.tickets(order.showtime_id, order.ticket_ids)
        try:
            self.orders.fail_order(order, reason, states, refund)
        except StaleState:
            logger.info("order moved before it could be failed", extra={"order_id": order_id})
            return
        self._notify_failed(order_id)

    def _notify_failed(self, order_id: str) -> None:
        """Best effort: a declined payment is failed by a request, a webhook or the sweeper, none of which may fail
        because SQS did. The buyer sees the failure on the order page anyway (docs/email.md)."""
        if self._emails is None:
            return
        try:
            self._emails.failed(order_id)
        except Exception:  # noqa: BLE001 - logged and counted, never raised
            logger.exception("failure email not queued", extra={"order_id": order_id})
            metrics.add_metric(name="EmailsNotQueued", unit="Count", value=1)

    # --- cancel -------------------------------------------------------------------------
    def cancel(self, user_id: str, paypal_order_id: str) -> dict:
        order = self._owned_by_token(user_id, paypal_order_id)
        for _ in range(3):
            if order.status == OrderStatus.CANCELLED:
                return {"order_id": order.order_id, "status": OrderStatus.CANCELLED}
            if order.status != OrderStatus.CREATED:
                raise NotCancellable()
            if self._end_checkout(order, OrderStatus.CANCELLED, restore=True, reason=CancelReason.BUYER):
                return {"order_id": order.order_id, "status": OrderStatus.CANCELLED}
            order = self.orders.get(order.order_id) or order
        raise Busy("The order is changing; please retry.")

    def _end_checkout(
        self, order: OrderRecord, status: str, *, restore: bool, reason: CancelReason | None = None
    ) -> bool:
        states = self.orders.tickets(order.showtime_id, order.ticket_ids)
        # An unpaid checkout that ran out counts as an unpaid hold: the buyer cools down on those seats.
        cooldown = self._seats.cooldown_seconds
        cooldown_until = int(self._clock()) + cooldown if not restore and cooldown > 0 else None
        try:
            self.orders.end_checkout(
                order, status, states, restore=restore, cooldown_until=cooldown_until, cancel_reason=reason
            )
        except StaleState:
            return False
        return True

    # --- orders -------------------------------------------------------------------------
    def list_orders(self, user_id: str, *, limit: int, cursor: str | None) -> dict:
        page = self.orders.list_for_user(user_id, limit=limit, cursor=cursor)
        return {"results": [order_view(o) for o in page.items], "next": page.cursor}

    def order(self, user_id: str, order_id: str) -> dict:
        order = self.orders.get(order_id) if plausible_id(order_id) else None
        if order is None or order.user_id != user_id:
            raise NotFound("No such order.")
        return order_view(order)

    # --- purchase worker ----------------------------------------------------------------
    def complete_purchase(
        self,
        order_id: str,
        refund_lost: Callable[[OrderRecord], RefundEntry],
        paid: Callable[[OrderRecord], None] | None = None,
    ) -> str:
        """Turn a captured order into sold tickets, exactly once, and queue the buyer's email (a receipt, or the
        failure notice when the seats were lost). Returns the order's final status. `paid` hears of the order once
        its tickets are sold (it must not raise). Raises the queue's errors once the order is settled: the purchase
        message is redelivered and queues the email again (the worker sends it once per order)."""
        status = self._complete_purchase(order_id, refund_lost, paid)
        if self._emails is not None and status == OrderStatus.PAID:
            self._emails.receipt(order_id)
        elif self._emails is not None and status == OrderStatus.FAILED:
            self._emails.failed(order_id)
        return status

    def _complete_purchase(
        self,
        order_id: str,
        refund_lost: Callable[[OrderRecord], RefundEntry],
        paid: Callable[[OrderRecord], None] | None = None,
    ) -> str:
        order = self.orders.get(order_id)
        if order is None:
            logger.warning("purchase for an unknown order", extra={"order_id": order_id})
            return "unknown"
        if order.status != OrderStatus.PROCESSING:
            return order.status  # already finished by an earlier delivery
        try:
            self.orders.complete_purchase(order)
        except StaleState:
            return self._seats_lost(order, refund_lost)
        metrics.add_metric(name="TicketsSold", unit="Count", value=len(order.tickets))
        logger.info("order paid", extra={"order_id": order_id})
        if paid is not None:
            paid(order)
        return OrderStatus.PAID

    def _seats_lost(self, order: OrderRecord, refund_lost: Callable[[OrderRecord], RefundEntry]) -> str:
        current = self.orders.get(order.order_id)
        if current is None or current.status != OrderStatus.PROCESSING:
            return current.status if current else "unknown"
        states = self.orders.tickets(order.showtime_id, order.ticket_ids)
        ours = [
            tid
            for tid in order.ticket_ids
            if tid in states and states[tid].status == holds.CHECKOUT and states[tid].order_id == order.order_id
        ]
        if len(ours) == len(order.ticket_ids):
            raise StaleState("transient conflict; redeliver")  # nothing lost: let SQS retry
        refund = refund_lost(current)
        self.orders.fail_order(current, refund.reason or "seats lost", states, refund)
        metrics.add_metric(name="OrdersFailedSeatsLost", unit="Count", value=1)
        logger.warning("seats lost after capture; refunded", extra={"order_id": order.order_id})
        return OrderStatus.FAILED

    # --- sweeper ------------------------------------------------------------------------
    def expire_orders(self) -> int:
        """Expire created orders whose window passed; never one PayPal already captured. Also settles
        orders whose capture attempt died midway (`processing` with no capture, long past the window)."""
        now = self._clock()
        expired = 0
        for order_id in self.orders.expiring_orders(now):
            order = self.orders.get(order_id)
            if order is not None and order.status == OrderStatus.PROCESSING and order.capture_id:
                self._settle_unfinished_purchase(order, now)
                continue
            if order is not None and order.status == OrderStatus.PROCESSING:
                order = self._reconcile_stalled_capture(order, now)
            if order is None or order.status != OrderStatus.CREATED or order.expires_at > now:
                continue
            if order.capture_attempt and self._captured_meanwhile(order):
                continue
            if self._end_checkout(order, OrderStatus.EXPIRED, restore=False):
                expired += 1
        return expired

    def _settle_unfinished_purchase(self, order: OrderRecord, now: float) -> None:
        """A captured order still `processing` long after its window: its purchase message was lost (the
        Lambda died between recording the capture and sending it) or its capture is PENDING. Ask PayPal:
        a COMPLETED capture is handed to the purchase worker again (it is idempotent per order), a denied
        one fails the order, a pending one waits for the next sweep or PayPal's webhook."""
        if now < order.expires_at + CAPTURE_GRACE_SECONDS:
            return
        try:
            capture = self._paypal().get_capture(order.capture_id or "")
        except PayPalError:  # PayPalUnavailable included: try again on the next sweep
            return
        status = capture.get("status")
        if status == "COMPLETED":
            self._purchases.send({"order_id": order.order_id})
            logger.warning("purchase re-sent for an unfinished order", extra={"order_id": order.order_id})
        elif status in ("DECLINED", "FAILED"):
            self.fail(order.order_id, "The payment was declined by PayPal.")

    def _reconcile_stalled_capture(self, order: OrderRecord, now: float) -> OrderRecord | None:
        """A capture attempt that never finished (its Lambda died between our transition and PayPal's
        answer): once no attempt can still be running, return the order to `created` so the check below
        settles it from PayPal's truth or expires it."""
        if order.capture_id or now < order.expires_at + CAPTURE_GRACE_SECONDS:
            return None
        try:
            self.orders.abort_capture(order.order_id, order.capture_attempt)
        except StaleState:
            return None
        logger.warning("stalled capture attempt reconciled", extra={"order_id": order.order_id})
        return self.orders.get(order.order_id)

    def _captured_meanwhile(self, order: OrderRecord) -> bool:
        try:
            remote = self._paypal().get_order(order.paypal_order_id or "")
        except PayPalUnavailable:
            return True  # cannot tell: keep the seats until PayPal answers
        except PayPalError:
            return False
        capture = first_capture(remote)
        if capture and capture.get("status") in ("COMPLETED", "PENDING"):
            self.settle_capture(order, capture["id"], completed=capture["status"] == "COMPLETED")
            return True
        return False
