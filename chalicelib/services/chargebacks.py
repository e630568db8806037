"""Chargebacks and disputes: money PayPal takes back, or may. Each event is acted on only after its dispute and
capture are re-read from PayPal (a webhook body is never trusted).

- A dispute opened (CUSTOMER.DISPUTE.CREATED / UPDATED): the order is marked disputed, refunds through our API
  wait for the outcome (PayPal refuses them anyway), and staff see it (`GET /api/staff/orders/?attention=disputed`).
  Its seats stay sold, so they are not resold while the money is in doubt.
- A dispute the buyer won, or a reversal (PAYMENT.CAPTURE.REVERSED): the order becomes `reversed` and its sold
  tickets `void` (not valid for entry, never put back on sale by themselves). A metric and an error log alert staff.
- A dispute resolved otherwise: the order leaves the staff list and refunds are possible again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from urllib.parse import urlsplit

from chalicelib.domain import OrderRecord, plausible_paypal_id
from chalicelib.errors import BadRequest, PaymentProviderUnavailable
from chalicelib.observability import logger, metrics
from chalicelib.order_status import REVERSE, OrderStatus
from chalicelib.paypal import PayPalClient
from chalicelib.services.payments import order_view
from chalicelib.storage.orders import ATTENTION, DISPUTE_OPEN, OrderRepository, StaleState

# Outcomes of a resolved dispute in which the buyer got the money back.
BUYER_WON = frozenset({"RESOLVED_BUYER_FAVOUR", "ACCEPTED"})
_MAX_DISPUTED_TRANSACTIONS = 10
_REVERSED_REASON = "The payment was taken back through PayPal (chargeback or dispute)."
_ATTEMPTS = 3


class ChargebackService:
    """Raises PaymentProviderUnavailable (PayPal unreachable, or the order still settling: PayPal redelivers)."""

    def __init__(self, *, orders: OrderRepository, paypal: Callable[[], PayPalClient]) -> None:
        self._orders = orders
        self._paypal = paypal

    # --- webhook events -----------------------------------------------------------------
    def capture_reversed(self, resource: dict) -> str:
        """PAYMENT.CAPTURE.REVERSED: its resource is the capture, or a refund whose `up` link names it."""
        capture_id = _capture_id_of(resource)
        if capture_id is None:
            return "ignored"
        capture = self._paypal().get_capture(capture_id)
        if capture.get("status") not in ("REFUNDED", "PARTIALLY_REFUNDED"):
            return "ignored"  # PayPal says the money is still ours: nothing was reversed
        order = self._order_of(capture)
        if order is None:
            return "ignored"
        return self._reverse(order, outcome=None)

    def dispute_changed(self, dispute_id: str) -> str:
        """CUSTOMER.DISPUTE.CREATED / UPDATED / RESOLVED: act on what PayPal says the dispute is now."""
        dispute = self._paypal().get_dispute(dispute_id)
        transactions = dispute.get("disputed_transactions") or []
        outcome = "ignored"
        for transaction in transactions[:_MAX_DISPUTED_TRANSACTIONS]:
            capture_id = transaction.get("seller_transaction_id") if isinstance(transaction, dict) else None
            if not plausible_paypal_id(capture_id):
                continue
            order = self._order_of(self._paypal().get_capture(capture_id))
            if order is not None:
                outcome = self._apply(order, dispute)
        return outcome

    def _apply(self, order: OrderRecord, dispute: dict) -> str:
        dispute_id = str(dispute.get("dispute_id", ""))
        if dispute.get("status") != "RESOLVED":
            return self._open(order, dispute_id)
        code = str((dispute.get("dispute_outcome") or {}).get("outcome_code", "NONE"))
        if code in BUYER_WON:
            outcome = self._reverse(order, outcome=code)
            # PayPal's PAYMENT.CAPTURE.REVERSED may have been handled first: the dispute still gets its outcome.
            with contextlib.suppress(StaleState):
                self._orders.note_dispute_outcome(order.order_id, dispute_id, code)
            return outcome
        try:
            self._orders.resolve_dispute(order.order_id, dispute_id, code)
        except StaleState:
            return "ignored"  # another dispute, or the order was reversed meanwhile
        logger.info("dispute resolved", extra={"order_id": order.order_id, "outcome": code})
        return "dispute_resolved"

    def _open(self, order: OrderRecord, dispute_id: str) -> str:
        if order.status == OrderStatus.REVERSED:
            return "reversed"
        if order.dispute_id == dispute_id and order.dispute_status == DISPUTE_OPEN:
            return "disputed"  # an update of a dispute we know: nothing changes here
        try:
            self._orders.open_dispute(order.order_id, dispute_id)
        except StaleState:
            return "ignored"
        metrics.add_metric(name="DisputesOpened", unit="Count", value=1)
        logger.error(
            "payment disputed: staff attention needed",
            extra={"order_id": order.order_id, "dispute_id": dispute_id, "amount": order.amount},
        )
        return "disputed"

    def _reverse(self, order: OrderRecord, *, outcome: str | None) -> str:
        for _ in range(_ATTEMPTS):
            if order.status == OrderStatus.REVERSED:
                return "reversed"
            if order.status == OrderStatus.PROCESSING:
                # The purchase worker is turning the capture into tickets: once it has, PayPal's redelivery
                # voids them. Reversing now would race the worker for the same seats.
                raise PaymentProviderUnavailable("The order is still being settled; PayPal will redeliver.")
            if order.status not in REVERSE.sources:
                logger.warning("reversal of an order that holds no sale", extra={"order_id": order.order_id})
                return "ignored"
            states = self._orders.tickets(order.showtime_id, order.ticket_ids)
            try:
                self._orders.reverse(order, states, _REVERSED_REASON, outcome)
            except StaleState:
                order = self._orders.get(order.order_id) or order  # a refund moved it: decide again
                continue
            metrics.add_metric(name="PaymentsReversed", unit="Count", value=1)
            logger.error(
                "payment reversed: tickets void, staff attention needed",
                extra={"order_id": order.order_id, "amount": order.amount, "outcome": outcome},
            )
            return "reversed"
        raise PaymentProviderUnavailable("The order keeps changing; PayPal will redeliver.")

    def _order_of(self, capture: dict) -> OrderRecord | None:
        related = (capture.get("supplementary_data") or {}).get("related_ids") or {}
        order_id = related.get("order_id")
        return self._orders.by_paypal_id(order_id) if plausible_paypal_id(order_id) else None

    # --- staff ------------------------------------------------------------------------------
    def needing_attention(self, attention: str, *, limit: int, cursor: str | None) -> dict:
        """Orders staff should look at, newest first. Raises BadRequest."""
        if attention not in ATTENTION:
            raise BadRequest(f"attention: one of {', '.join(ATTENTION)}")
        page = self._orders.needing_attention(attention, limit=limit, cursor=cursor)
        return {"results": [staff_order_view(o) for o in page.items], "next": page.cursor}


def staff_order_view(order: OrderRecord) -> dict:
    """The buyer's view plus who bought it and the dispute."""
    view = order_view(order)
    view["user_id"] = order.user_id
    view["capture_id"] = order.capture_id
    if order.dispute_id:
        view["dispute"] = {"dispute_id": order.dispute_id, "status": order.dispute_status}
        if order.dispute_outcome:
            view["dispute"]["outcome"] = order.dispute_outcome
    return view


def _capture_id_of(resource: dict) -> str | None:
    for link in resource.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "up":
            path = urlsplit(str(link.get("href", ""))).path.rstrip("/")
            parent, _, capture_id = path.rpartition("/")
            if parent.endswith("/v2/payments/captures") and plausible_paypal_id(capture_id):
                return capture_id
    resource_id = resource.get("id")
    return resource_id if plausible_paypal_id(resource_id) else None
