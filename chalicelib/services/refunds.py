"""Refunds and PayPal webhooks: buyer refunds through SQS, automatic refunds of lost seats, and
convergence with what happened in PayPal (approvals whose buyer never returned, dashboard refunds)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from chalicelib.domain import PAYPAL_EVENT_FIELD_MAX, OrderRecord, RefundEntry, plausible_id, plausible_paypal_id
from chalicelib.errors import (
    BadRequest,
    DomainError,
    NotFound,
    NotRefundable,
    PaymentProviderUnavailable,
    WebhooksDisabled,
)
from chalicelib.observability import logger, metrics
from chalicelib.order_status import OPEN, REQUEST_REFUND, OrderStatus
from chalicelib.paypal import PayPalClient, PayPalError, PayPalUnavailable
from chalicelib.queues import EmailJobs, QueuePublisher
from chalicelib.services.catalog import CatalogService
from chalicelib.services.chargebacks import ChargebackService
from chalicelib.services.payments import PaymentService, now_iso
from chalicelib.storage.orders import DISPUTE_OPEN, OrderRepository, StaleState, money

REFUND_REASONS = {
    "REFUND_TIME_LIMIT_EXCEEDED": "The refund window for this payment has passed.",
    "REFUND_AMOUNT_EXCEEDED": "The refund is larger than what is left of the payment.",
    "TRANSACTION_DISPUTED": "The payment is disputed; the refund will be settled in the dispute.",
    "REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK": "The payment was taken back through a chargeback.",
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
        chargebacks: ChargebackService,
        webhook_id: str | None,
        webhooks_on: bool = True,
        emails: EmailJobs | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._orders = orders
        self._payments = payments
        self._catalog = catalog
        self._paypal = paypal
        self._queue = refunds
        self._cutoff = cutoff_seconds
        self._chargebacks = chargebacks
        self._webhook_id = webhook_id
        self._webhooks_on = webhooks_on
        self._emails = emails  # None: no emails (settings without EMAILS_QUEUE_URL)
        self._clock = clock

    # --- buyer refunds ------------------------------------------------------------------
    def request(self, user_id: str, order_id: str, ticket_ids: list[str] | None) -> dict:
        order = self._orders.get(order_id) if order_id else None
        if order is None or order.user_id != user_id:
            raise NotFound("No such order.")
        return self._request(order, ticket_ids)

    def request_for_staff(self, order_id: str, ticket_ids: list[str] | None, *, staff_user: str) -> dict:
        """A refund staff start for a buyer: the same rules, amount and worker as the buyer's own. Logged with the
        staff member who asked (the audit trail of money leaving on someone else's behalf)."""
        order = self._orders.get(order_id) if plausible_id(order_id) else None
        if order is None:
            raise NotFound("No such order.")
        logger.info("staff refund requested", extra={"order_id": order.order_id, "staff_user_id": staff_user})
        return self._request(order, ticket_ids)

    def _request(self, order: OrderRecord, ticket_ids: list[str] | None) -> dict:
        if order.status not in REQUEST_REFUND.sources:
            raise NotRefundable(f"An order in status {order.status} cannot be refunded.")
        if order.dispute_status == DISPUTE_OPEN:
            raise NotRefundable(REFUND_REASONS["TRANSACTION_DISPUTED"])
        self._check_cutoff(order)
        chosen = refundable_tickets(order, ticket_ids)
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

    # --- refund worker ------------------------------------------------------------------
    def process(self, order_id: str, refund_id: str) -> str:
        """Run one pending refund against PayPal, exactly once, and queue the buyer's notice once it has settled
        (completed or failed). Raises PayPalUnavailable (retry), and the queue's errors once the refund is settled:
        the refund message is redelivered and queues the notice again (the worker sends it once per refund)."""
        outcome = self._process(order_id, refund_id)
        if self._emails is not None and outcome in ("completed", "failed"):
            self._emails.refund(order_id, refund_id)
        return outcome

    def _process(self, order_id: str, refund_id: str) -> str:
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
                invoice_id=refund_invoice(order.order_id, refund_id),
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
            current = self._orders.get(order.order_id)
            entry = next((r for r in current.refunds if r.refund_id == refund.refund_id), None) if current else None
            if entry is not None and entry.status == "pending":
                # PayPal paid the money back but our records could not follow: retry, and let the DLQ
                # tell a human rather than leave the order in refund_pending for ever.
                logger.error("refunded at PayPal but not recorded", extra={"order_id": order.order_id})
                raise
            logger.info("refund already settled", extra={"order_id": order.order_id})
            return
        metrics.add_metric(name="RefundsCompleted", unit="Count", value=1)

    def _fail(self, order: OrderRecord, refund: RefundEntry, reason: str) -> None:
        try:
            self._orders.fail_refund(order, refund, reason)
        except StaleState:
            logger.info("refund already settled", extra={"order_id": order.order_id})

    def resend_stalled(self, grace_seconds: int = 300) -> int:
        """Re-send the message of every refund still pending after `grace_seconds` (its message may
        have been lost between recording the refund and SQS). The worker is idempotent per refund, and
        PayPal's request id makes a second delivery replay the first answer. Returns messages sent."""
        now = self._clock()
        cutoff = now_iso(now - grace_seconds)
        sent = 0
        for order_id in self._orders.expiring_orders(now):
            order = self._orders.get(order_id)
            if order is None or order.status != OrderStatus.REFUND_PENDING:
                continue
            for refund in order.refunds:
                if refund.status == "pending" and (refund.created_at or "") < cutoff:
                    self._queue.send({"order_id": order.order_id, "refund_id": refund.refund_id})
                    sent += 1
        if sent:
            logger.warning("stalled refunds re-sent", extra={"count": sent})
        return sent

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
            previous_status=OrderStatus.PROCESSING,
            reason="Your seats could not be secured after payment, so the payment was refunded in full.",
            paypal_refund_id=paypal_refund_id,
            source="system",
        )

    # --- webhooks -----------------------------------------------------------------------
    def webhook(self, headers: Mapping[str, str], raw_body: bytes) -> dict:
        """Act on a PayPal event only after re-reading its resource from PayPal. Raises BadRequest,
        PaymentProviderUnavailable (PayPal unreachable: answer 503 so PayPal redelivers)."""
        if not self._webhooks_on:
            raise WebhooksDisabled()  # a 503: PayPal redelivers for days, past the deploy that adds the id
        event = parse_event(raw_body)
        try:
            # A delivery we handled already is answered from the dedupe row, without asking PayPal again; a
            # forgery reusing its id gets the same answer and changes nothing.
            if self._orders.seen_event(event["id"]):
                return {"status": "duplicate"}
            if self._webhook_id and not self._paypal().verify_webhook_signature(
                headers=headers, webhook_id=self._webhook_id, event=event
            ):
                raise BadRequest("The webhook signature could not be verified.")
            outcome = self._dispatch(event)
        except PayPalUnavailable as exc:
            raise PaymentProviderUnavailable() from exc
        if self._webhook_id:
            # Only verified events leave a row: a forgery must not make us store anything for 45 days.
            self._orders.remember_event(event["id"], int(self._clock()) + _EVENT_TTL_SECONDS)
        return {"status": outcome}

    def _dispatch(self, event: dict) -> str:
        kind = event["event_type"]
        resource = event["resource"]
        resource_id = resource.get("dispute_id") if kind.startswith("CUSTOMER.DISPUTE.") else resource.get("id")
        if not plausible_paypal_id(resource_id):
            return "ignored"  # not an id PayPal would issue: nothing to look up
        try:
            if kind.startswith("CUSTOMER.DISPUTE."):
                return self._chargebacks.dispute_changed(resource_id)
            if kind == "PAYMENT.CAPTURE.REVERSED":
                return self._chargebacks.capture_reversed(resource)
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
        if order is None or remote.get("status") != "APPROVED" or order.status != OrderStatus.CREATED:
            return "ignored"
        try:
            self._payments.capture(order)
        except PaymentProviderUnavailable as exc:
            raise PayPalUnavailable(None, "UNAVAILABLE", "UNAVAILABLE") from exc
        except DomainError as exc:
            # Declined, expired, cancelled...: the order says so, and the buyer may still act on it.
            # Anything else (an outage of ours) propagates: a 500 makes PayPal redeliver.
            logger.info("webhook capture refused", extra={"order_id": order.order_id, "code": exc.code})
            return "refused"
        return "captured"

    def _capture_event(self, capture_id: str) -> str:
        capture = self._paypal().get_capture(capture_id)
        related = capture.get("supplementary_data", {}).get("related_ids", {})
        order = self._orders.by_paypal_id(related.get("order_id", ""))
        if order is None:
            return "ignored"
        status = capture.get("status")
        if status == "COMPLETED" and order.status in (OrderStatus.CREATED, OrderStatus.PROCESSING):
            self._payments.settle_capture(order, capture["id"], completed=True)
            order = self._orders.get(order.order_id) or order
            if order.capture_id == capture["id"]:
                return "settled"
            # The sweeper expired it between our read and the settle: the money buys nothing now.
        if status == "COMPLETED" and order.capture_id != capture["id"] and order.status not in OPEN:
            return self._refund_orphan_capture(order, capture)
        if (
            status in ("DECLINED", "FAILED")
            and order.status == OrderStatus.PROCESSING
            and order.capture_id == capture["id"]
        ):
            self._payments.fail(order.order_id, "The payment was declined by PayPal.")
            return "failed"
        return "ignored"

    def _refund_orphan_capture(self, order: OrderRecord, capture: dict) -> str:
        """Money that landed after the order ended (expired, cancelled): it buys nothing, so give it back.
        Raises PayPalUnavailable (the webhook answers 503 and PayPal redelivers)."""
        refund_id = f"orphan-{capture['id']}"
        if any(r.refund_id == refund_id for r in order.refunds):
            return "known"
        try:
            result = self._paypal().refund_capture(
                capture["id"], request_id=f"refund-{refund_id}", amount=None, currency=None
            )
        except PayPalUnavailable:
            raise
        except PayPalError as exc:
            if exc.issue != "CAPTURE_FULLY_REFUNDED":
                logger.error(
                    "could not refund a capture of an ended order",
                    extra={"order_id": order.order_id, "issue": exc.issue},
                )
                raise PayPalUnavailable(exc.status, exc.name, exc.issue) from exc
            result = {}
        entry = RefundEntry(
            refund_id=refund_id,
            status="completed",
            amount=str(capture.get("amount", {}).get("value") or order.amount),
            ticket_ids=(),
            previous_status=order.status,
            reason="The payment arrived after the order had ended, so it was refunded in full.",
            paypal_refund_id=result.get("id"),
            source="system",
        )
        try:
            self._orders.record_orphan_refund(order, entry, now_iso(self._clock()))
        except StaleState:
            return "known"
        metrics.add_metric(name="OrphanCapturesRefunded", unit="Count", value=1)
        logger.warning("refunded a capture of an ended order", extra={"order_id": order.order_id})
        return "refunded"

    def _refund_event(self, paypal_refund_id: str) -> str:
        refund = self._paypal().get_refund(paypal_refund_id)
        capture_id = capture_id_of(refund)
        capture = self._paypal().get_capture(capture_id) if capture_id else {}
        related = capture.get("supplementary_data", {}).get("related_ids", {})
        order = self._orders.by_paypal_id(related.get("order_id", ""))
        if order is None or order.capture_id != capture.get("id"):
            return "ignored"
        if refund.get("id") in {r.paypal_refund_id for r in order.refunds if r.paypal_refund_id}:
            return "known"
        ours = {refund_invoice(order.order_id, r.refund_id) for r in order.refunds}
        if refund.get("invoice_id") in ours:
            return "known"  # one of our own refunds: its worker records it
        if any(r.status == "pending" for r in order.refunds):
            # Recording it now would race our own pending refund over the same seats and status.
            # Answer 503 so PayPal redelivers once ours has settled; remembering it would lose it.
            raise PayPalUnavailable(None, "REFUND_PENDING", "RETRY_LATER")
        return self._record_paypal_refund(order, refund, capture)

    def _record_paypal_refund(self, order: OrderRecord, refund: dict, capture: dict) -> str:
        """A refund made in PayPal's dashboard: record the amount PayPal moved, free the seats it covers."""
        amount = money(str(refund.get("amount", {}).get("value", "0")))
        tickets = tickets_for_amount(order, amount, completes_capture(refund, capture))
        entry = RefundEntry(
            refund_id=f"paypal-{refund['id']}",
            status="completed",
            amount=f"{amount:.2f}",
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
        metrics.add_metric(name="RefundsFromPayPal", unit="Count", value=1)
        return "recorded"


def refundable_tickets(order: OrderRecord, ticket_ids: list[str] | None) -> set[str]:
    """The tickets a refund request covers (all not yet refunded when none are named).
    Raises BadRequest (duplicates, foreign tickets), NotRefundable (already refunded, nothing left)."""
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


def parse_event(raw_body: bytes) -> dict:
    try:
        event = json.loads(raw_body or b"")
    except RecursionError as exc:
        raise BadRequest("body: JSON nested too deeply") from exc
    except ValueError as exc:
        raise BadRequest("body: malformed JSON") from exc
    if not isinstance(event, dict):
        raise BadRequest("body: a JSON object is required")
    if not isinstance(event.get("id"), str) or not isinstance(event.get("event_type"), str):
        raise BadRequest("id, event_type: required")
    # The id becomes a key of the de-duplication table; PayPal's are ~40 characters.
    if not 0 < len(event["id"]) <= PAYPAL_EVENT_FIELD_MAX or len(event["event_type"]) > PAYPAL_EVENT_FIELD_MAX:
        raise BadRequest(f"id, event_type: at most {PAYPAL_EVENT_FIELD_MAX} characters")
    if not isinstance(event.get("resource"), dict):
        raise BadRequest("resource: required")
    return event


def refund_invoice(order_id: str, refund_id: str) -> str:
    """The invoice id our refunds carry, so a webhook about one of them is recognised as ours."""
    return f"{order_id}-{refund_id}"[:127]


def capture_id_of(refund: dict) -> str | None:
    for link in refund.get("links", []):
        if link.get("rel") == "up" and "/captures/" in link.get("href", ""):
            return link["href"].rstrip("/").rsplit("/", 1)[-1]
    return None


def completes_capture(refund: dict, capture: dict) -> bool:
    """Whether this refund brought the capture's refunded total to its full amount. Read from the refund
    itself (PayPal's running total at that refund), so a later refund does not change the answer."""
    total = refund.get("seller_payable_breakdown", {}).get("total_refunded_amount", {}).get("value")
    captured = capture.get("amount", {}).get("value")
    if total is None or captured is None:
        return capture.get("status") == "REFUNDED"
    return money(str(total)) >= money(str(captured))


def tickets_for_amount(order: OrderRecord, amount: Decimal, completes: bool) -> list[str]:
    """Which seats a PayPal-side refund pays back: all that remain when it completes the capture, else as
    many remaining seats (in order) as the amount covers."""
    remaining = [t for t in order.tickets if t.ticket_id not in order.refunded_ticket_ids]
    if completes:
        return [t.ticket_id for t in remaining]
    chosen, total = [], Decimal("0.00")
    for ticket in remaining:
        if total + money(ticket.price) > amount:
            break
        chosen.append(ticket.ticket_id)
        total += money(ticket.price)
    return chosen
