"""Refunds and PayPal webhooks: buyer refunds through SQS, automatic refunds of lost seats, and
convergence with what happened in PayPal (approvals whose buyer never returned, dashboard refunds)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from chalicelib.errors import BadRequest, NotFound, NotRefundable, PaymentProviderUnavailable
from chalicelib.observability import logger, metrics
from chalicelib.paypal import PayPalClient, PayPalError, PayPalUnavailable, first_capture
from chalicelib.queues import QueuePublisher
from chalicelib.services.catalog import CatalogService
from chalicelib.services.payments import PaymentService, now_iso
from chalicelib.storage.orders import OrderRecord, OrderRepository, RefundEntry, StaleState, money

REFUND_REASONS = {
    "REFUND_TIME_LIMIT_EXCEEDED": "The refund window for this payment has passed.",
    "REFUND_AMOUNT_EXCEEDED": "The refund is larger than what is left of the payment.",
    "TRANSACTION_DISPUTED": "The payment is disputed; the refund will be settled in the dispute.",
    "PENDING_CAPTURE": "The payment has not settled yet; please try again later.",
    "REFUND_NOT_ALLOWED": "PayPal does not allow refunding this payment.",
    "PARTIAL_REFUND_NOT_ALLOWED": "PayPal does not allow a partial refund of this payment.",
    "REFUND_FAILED_INSUFFICIENT_FUNDS": "The refund could not be paid out right now; please try again later.",
}
_EVENT_TTL_SECONDS = 45 * 24 * 3600


class RefundService:
    """Raises NotFound, NotRefundable, BadRequest, PaymentProviderUnavailable."""

    def __init__(
        self,
        *,
        orders: OrderRepository,
        payments: PaymentService,
        catalog: CatalogService,
        paypal: Callable[[], PayPalClient],
        refunds: QueuePublisher,
        cutoff_seconds: int,
        webhook_id: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._orders = orders
        self._payments = payments
        self._catalog = catalog
        self._paypal = paypal
        self._queue = refunds
        self._cutoff = cutoff_seconds
        self._webhook_id = webhook_id
        self._clock = clock

    # --- buyer refunds ------------------------------------------------------------------
    def request(self, user_id: str, order_id: str, ticket_ids: list[str] | None) -> dict:
        order = self._orders.get(order_id) if order_id else None
        if order is None or order.user_id != user_id:
            raise NotFound("No such order.")
        if order.status not in ("paid", "partially_refunded"):
            raise NotRefundable(f"An order in status {order.status} cannot be refunded.")
        self._check_cutoff(order)
        chosen = self._chosen_tickets(order, ticket_ids)
        amount = sum((money(t.price) for t in order.tickets if t.ticket_id in chosen), Decimal("0.00"))
        refund = RefundEntry(
            refund_id=uuid.uuid4().hex,
            status="pending",
            amount=f"{amount:.2f}",
            ticket_ids=tuple(t.ticket_id for t in order.tickets if t.ticket_id in chosen),
            previous_status=order.status,
        )
        try:
            self._orders.request_refund(order, refund, now_iso(self._clock()))
        except StaleState as exc:
            raise NotRefundable("The order is already being refunded.") from exc
        self._queue.send({"order_id": order.order_id, "refund_id": refund.refund_id})
        metrics.add_metric(name="RefundsRequested", unit="Count", value=1)
        return {
            "refund_id": refund.refund_id,
            "order_id": order.order_id,
            "status": "pending",
            "amount": refund.amount,
            "currency": order.currency,
        }

    def _check_cutoff(self, order: OrderRecord) -> None:
        showtime = self._catalog.showtime(order.showtime_id)
        starts = datetime.fromisoformat(showtime.starts_at.replace("Z", "+00:00")).timestamp()
        if self._clock() >= starts - self._cutoff:
            raise NotRefundable("The showtime starts too soon to refund.")

    @staticmethod
    def _chosen_tickets(order: OrderRecord, ticket_ids: list[str] | None) -> set[str]:
        remaining = [t for t in order.ticket_ids if t not in order.refunded_ticket_ids]
        if ticket_ids is None:
            chosen = set(remaining)
        else:
            if len(set(ticket_ids)) != len(ticket_ids):
                raise BadRequest("ticket_ids: duplicate ticket")
            unknown = [t for t in ticket_ids if t not in order.ticket_ids]
            if unknown:
                raise BadRequest("ticket_ids: not tickets of this order")
            chosen = set(ticket_ids)
            if chosen - set(remaining):
                raise NotRefundable("Some of these tickets are already refunded.")
        if not chosen:
            raise NotRefundable("Every ticket of this order is already refunded.")
        return chosen

    # --- refund worker ------------------------------------------------------------------
    def process(self, order_id: str, refund_id: str) -> str:
        """Run one pending refund against PayPal, exactly once. Raises PayPalUnavailable (retry)."""
        order = self._orders.get(order_id)
        refund = next((r for r in order.refunds if r.refund_id == refund_id), None) if order else None
        if order is None or refund is None or refund.status != "pending":
            return refund.status if refund else "unknown"
        try:
            result = self._paypal().refund_capture(
                order.capture_id or "",
                request_id=f"refund-{refund_id}",
                amount=money(refund.amount),
                currency=order.currency,
                invoice_id=f"{order.order_id}-{refund_id}"[:127],
                note_to_payer="Ticket refund",
            )
        except PayPalUnavailable:
            raise
        except PayPalError as exc:
            return self._refused(order, refund, exc)
        if result.get("status") in ("COMPLETED", "PENDING"):
            self._complete(order, refund, result.get("id"))
            return "completed"
        self._fail(order, refund, "PayPal could not complete the refund.")
        return "failed"

    def _refused(self, order: OrderRecord, refund: RefundEntry, exc: PayPalError) -> str:
        if exc.issue == "CAPTURE_FULLY_REFUNDED":
            self._complete(order, refund, None)
            return "completed"
        reason = REFUND_REASONS.get(exc.issue, "PayPal refused the refund.")
        logger.warning("refund refused", extra={"order_id": order.order_id, "issue": exc.issue})
        self._fail(order, refund, reason)
        return "failed"

    def _complete(self, order: OrderRecord, refund: RefundEntry, paypal_refund_id: str | None) -> None:
        try:
            self._orders.complete_refund(order, refund, paypal_refund_id)
        except StaleState:
            logger.info("refund already settled", extra={"order_id": order.order_id})
            return
        metrics.add_metric(name="RefundsCompleted", unit="Count", value=1)

    def _fail(self, order: OrderRecord, refund: RefundEntry, reason: str) -> None:
        try:
            self._orders.fail_refund(order, refund, reason)
        except StaleState:
            logger.info("refund already settled", extra={"order_id": order.order_id})

    # --- automatic refund of an order whose seats were lost ------------------------------------
    def refund_lost_seats(self, order: OrderRecord) -> RefundEntry:
        """Refund the whole capture (idempotent per order). Raises PayPalUnavailable (retry)."""
        paypal_refund_id = None
        try:
            result = self._paypal().refund_capture(
                order.capture_id or "", request_id=f"refund-auto-{order.order_id}", amount=None, currency=None
            )
            paypal_refund_id = result.get("id")
        except PayPalUnavailable:
            raise
        except PayPalError as exc:
            if exc.issue != "CAPTURE_FULLY_REFUNDED":
                raise PaymentProviderUnavailable("PayPal refused the automatic refund.") from exc
        return RefundEntry(
            refund_id=f"auto-{order.order_id}",
            status="completed",
            amount=order.amount,
            ticket_ids=tuple(order.ticket_ids),
            previous_status="processing",
            reason="Your seats could not be secured after payment, so the payment was refunded in full.",
            paypal_refund_id=paypal_refund_id,
            source="system",
        )

    # --- webhooks -----------------------------------------------------------------------
    def webhook(self, headers: Mapping[str, str], raw_body: bytes) -> dict:
        """Act on a PayPal event only after re-reading its resource from PayPal. Raises BadRequest,
        PaymentProviderUnavailable (PayPal unreachable: answer 503 so PayPal redelivers)."""
        event = _parse_event(raw_body)
        try:
            if self._webhook_id and not self._paypal().verify_webhook_signature(
                headers=headers, webhook_id=self._webhook_id, event=event
            ):
                raise BadRequest("The webhook signature could not be verified.")
            if self._orders.seen_event(event["id"]):
                return {"status": "duplicate"}
            outcome = self._dispatch(event)
        except PayPalUnavailable as exc:
            raise PaymentProviderUnavailable() from exc
        self._orders.remember_event(event["id"], int(self._clock()) + _EVENT_TTL_SECONDS)
        return {"status": outcome}

    def _dispatch(self, event: dict) -> str:
        kind = event["event_type"]
        resource_id = str(event["resource"].get("id") or "")
        if not resource_id:
            return "ignored"
        try:
            if kind == "CHECKOUT.ORDER.APPROVED":
                return self._approved(resource_id)
            if kind.startswith("PAYMENT.CAPTURE.") and kind != "PAYMENT.CAPTURE.REFUNDED":
                return self._capture_event(resource_id)
            if kind == "PAYMENT.CAPTURE.REFUNDED":
                return self._refund_event(resource_id)
        except PayPalUnavailable:
            raise
        except PayPalError as exc:
            # PayPal does not know the resource: a forged or foreign event changes nothing.
            logger.info("webhook resource unknown to PayPal", extra={"event_type": kind, "issue": exc.issue})
            return "ignored"
        return "ignored"

    def _approved(self, paypal_order_id: str) -> str:
        remote = self._paypal().get_order(paypal_order_id)
        order = self._orders.by_paypal_id(remote.get("id", ""))
        if order is None or remote.get("status") != "APPROVED" or order.status != "created":
            return "ignored"
        try:
            self._payments.capture(order)
        except Exception as exc:  # noqa: BLE001 - the buyer may still execute; log and move on
            if isinstance(exc, PaymentProviderUnavailable):
                raise PayPalUnavailable(None, "UNAVAILABLE", "UNAVAILABLE") from exc
            logger.info("webhook capture did not complete", extra={"order_id": order.order_id})
        return "captured"

    def _capture_event(self, capture_id: str) -> str:
        capture = self._paypal().get_capture(capture_id)
        related = capture.get("supplementary_data", {}).get("related_ids", {})
        order = self._orders.by_paypal_id(related.get("order_id", ""))
        if order is None:
            return "ignored"
        status = capture.get("status")
        if status == "COMPLETED" and order.status in ("created", "processing"):
            self._payments.settle_capture(order, capture["id"], completed=True)
            return "settled"
        if status in ("DECLINED", "FAILED") and order.status == "processing" and order.capture_id == capture["id"]:
            self._payments.fail(order.order_id, "The payment was declined by PayPal.")
            return "failed"
        return "ignored"

    def _refund_event(self, paypal_refund_id: str) -> str:
        refund = self._paypal().get_refund(paypal_refund_id)
        capture_id = _capture_id_of(refund)
        capture = self._paypal().get_capture(capture_id) if capture_id else {}
        related = capture.get("supplementary_data", {}).get("related_ids", {})
        order = self._orders.by_paypal_id(related.get("order_id", ""))
        if order is None or order.capture_id != capture.get("id"):
            return "ignored"
        known = {r.paypal_refund_id for r in order.refunds if r.paypal_refund_id}
        if refund.get("id") in known or any(r.status == "pending" for r in order.refunds):
            return "known"
        tickets = _tickets_for_amount(order, money(refund.get("amount", {}).get("value", "0")), capture)
        if not tickets:
            return "ignored"
        entry = RefundEntry(
            refund_id=f"paypal-{refund['id']}",
            status="completed",
            amount=f"{sum((money(t.price) for t in order.tickets if t.ticket_id in tickets), Decimal('0.00')):.2f}",
            ticket_ids=tuple(tickets),
            previous_status=order.status,
            reason="Refunded in PayPal.",
            paypal_refund_id=refund["id"],
            source="paypal",
        )
        try:
            self._orders.record_external_refund(order, entry, now_iso(self._clock()))
        except StaleState:
            return "known"
        return "recorded"


def _parse_event(raw_body: bytes) -> dict:
    try:
        event = json.loads(raw_body or b"")
    except ValueError as exc:
        raise BadRequest("body: malformed JSON") from exc
    if not isinstance(event, dict):
        raise BadRequest("body: a JSON object is required")
    if not isinstance(event.get("id"), str) or not isinstance(event.get("event_type"), str):
        raise BadRequest("id, event_type: required")
    if not isinstance(event.get("resource"), dict):
        raise BadRequest("resource: required")
    return event


def _capture_id_of(refund: dict) -> str | None:
    for link in refund.get("links", []):
        if link.get("rel") == "up" and "/captures/" in link.get("href", ""):
            return link["href"].rstrip("/").rsplit("/", 1)[-1]
    return None


def _tickets_for_amount(order: OrderRecord, amount: Decimal, capture: dict) -> list[str]:
    """Which seats a PayPal-side refund pays back: all that remain for a full refund, else as many
    remaining seats (in order) as the amount covers."""
    remaining = [t for t in order.tickets if t.ticket_id not in order.refunded_ticket_ids]
    if capture.get("status") == "REFUNDED":
        return [t.ticket_id for t in remaining]
    chosen, total = [], Decimal("0.00")
    for ticket in remaining:
        if total + money(ticket.price) > amount:
            break
        chosen.append(ticket.ticket_id)
        total += money(ticket.price)
    return chosen
