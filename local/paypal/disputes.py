"""Disputes and chargebacks: a buyer's case against a capture (PayPal's Disputes API v1 shapes) and the money a
card issuer takes back. PayPal's sandbox only makes these through buyer accounts and its dashboard, so here the
`/_control/` endpoints trigger them; the backend sees them as PayPal shows them: webhooks, then re-reads.

Plain synchronous code like ledger.py. Raises ApiError (PayPal-shaped answers) and ControlError (our control
endpoints: 400 bad input, 404 unknown id, 409 a state that does not allow it).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from local.paypal.model import (
    ApiError,
    Capture,
    ControlError,
    Dispute,
    hateoas_link,
    money_of,
    now_iso,
)

log = logging.getLogger(__name__)

DEFAULT_REASON = "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"
# The `reason` enum of PayPal's Disputes API v1.
DISPUTE_REASONS = (
    DEFAULT_REASON,
    "MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED",
    "UNAUTHORISED",
    "CREDIT_NOT_PROCESSED",
    "DUPLICATE_TRANSACTION",
    "INCORRECT_AMOUNT",
    "PAYMENT_BY_OTHER_MEANS",
    "CANCELED_RECURRING_BILLING",
    "PROBLEM_WITH_REMITTANCE",
    "OTHER",
)
# The `dispute_life_cycle_stage` enum; a dispute the card issuer raised starts as CHARGEBACK.
DISPUTE_STAGES = ("INQUIRY", "CHARGEBACK", "PRE_ARBITRATION", "ARBITRATION")
UNRESOLVED_STATUSES = ("OPEN", "WAITING_FOR_SELLER_RESPONSE", "UNDER_REVIEW")
BUYER_FAVOUR = "RESOLVED_BUYER_FAVOUR"
OUTCOMES = (BUYER_FAVOUR, "RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER")
# Money that is still (partly) the merchant's: what a dispute or a chargeback can be about.
REVERSIBLE_STATUSES = ("COMPLETED", "PARTIALLY_REFUNDED")


class Disputes:
    """Mixed into PayPalEmulator: its disputes, and chargebacks of its captures."""

    captures: dict[str, Capture]
    disputes: dict[str, Dispute]

    def emit(self, event_type: str, resource: dict[str, Any], base: str) -> None:
        raise NotImplementedError

    def capture_view(self, capture: Capture, base: str) -> dict[str, Any]:
        raise NotImplementedError

    # -- the REST side ---------------------------------------------------------------------------------

    def get_dispute(self, dispute_id: str) -> Dispute:
        """Raises ApiError 404 for an unknown id."""
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise ApiError(404, "INVALID_RESOURCE_ID", api="customer-disputes", version="v1")
        return dispute

    def unresolved_dispute_of(self, capture_id: str) -> Dispute | None:
        return next(
            (d for d in self.disputes.values() if d.capture_id == capture_id and d.status != "RESOLVED"),
            None,
        )

    def dispute_view(self, dispute: Dispute, base: str) -> dict[str, Any]:
        view: dict[str, Any] = {
            "dispute_id": dispute.id,
            "create_time": dispute.create_time,
            "update_time": dispute.update_time,
            "disputed_transactions": [{"seller_transaction_id": dispute.capture_id}],
            "reason": dispute.reason,
            "status": dispute.status,
            "dispute_amount": money_of(dispute.amount, dispute.currency),
            "dispute_life_cycle_stage": dispute.stage,
            # PayPal's own cases are INTERNAL; those a card issuer raised come in from outside.
            "dispute_channel": "INTERNAL" if dispute.stage == "INQUIRY" else "EXTERNAL",
            "links": [hateoas_link(f"{base}/v1/customer/disputes/{dispute.id}", "self")],
        }
        if dispute.outcome is not None:
            view["dispute_outcome"] = {"outcome_code": dispute.outcome}
            if dispute.outcome == BUYER_FAVOUR:
                view["dispute_outcome"]["amount_refunded"] = money_of(dispute.amount, dispute.currency)
        return view

    # -- the control side ------------------------------------------------------------------------------

    def open_dispute(self, capture_id: str, base: str, *, reason: Any = None, stage: Any = None) -> Dispute:
        """The buyer opens a case (CUSTOMER.DISPUTE.CREATED). Raises ControlError 400/404/409."""
        reason = DEFAULT_REASON if reason is None else reason
        stage = "INQUIRY" if stage is None else stage
        if reason not in DISPUTE_REASONS:
            raise ControlError(400, f"reason must be one of {DISPUTE_REASONS}")
        if stage not in DISPUTE_STAGES:
            raise ControlError(400, f"stage must be one of {DISPUTE_STAGES}")
        capture = self._reversible_capture(capture_id)
        existing = self.unresolved_dispute_of(capture.id)
        if existing is not None:
            raise ControlError(409, f"capture {capture_id} already has the unresolved dispute {existing.id}")
        now = now_iso()
        dispute = Dispute(
            id=self._new_dispute_id(),
            capture_id=capture.id,
            reason=reason,
            stage=stage,
            status="OPEN",
            amount=capture.remaining,
            currency=capture.currency,
            create_time=now,
            update_time=now,
        )
        self.disputes[dispute.id] = dispute
        self.emit("CUSTOMER.DISPUTE.CREATED", self.dispute_view(dispute, base), base)
        return dispute

    def update_dispute(self, dispute_id: str, status: Any, base: str) -> Dispute:
        """PayPal moves the case along (CUSTOMER.DISPUTE.UPDATED). Raises ControlError 400/404/409."""
        if status not in UNRESOLVED_STATUSES:
            raise ControlError(400, f"status must be one of {UNRESOLVED_STATUSES}")
        dispute = self._unresolved(dispute_id)
        dispute.status = status
        dispute.update_time = now_iso()
        self.emit("CUSTOMER.DISPUTE.UPDATED", self.dispute_view(dispute, base), base)
        return dispute

    def resolve_dispute(self, dispute_id: str, outcome: Any, base: str) -> Dispute:
        """The case closes (CUSTOMER.DISPUTE.RESOLVED); in the buyer's favour the money goes back to the buyer, as
        a reversal sent after the resolution. Raises ControlError 400/404/409."""
        if outcome not in OUTCOMES:
            raise ControlError(400, f"outcome must be one of {OUTCOMES}")
        dispute = self._unresolved(dispute_id)
        dispute.status = "RESOLVED"
        dispute.outcome = outcome
        dispute.update_time = now_iso()
        self.emit("CUSTOMER.DISPUTE.RESOLVED", self.dispute_view(dispute, base), base)
        capture = self.captures[dispute.capture_id]
        # A chargeback during the case may already have taken the money back: it goes back only once.
        if outcome == BUYER_FAVOUR and capture.status in REVERSIBLE_STATUSES:
            self._reverse(capture, base)
        return dispute

    def reverse_capture(self, capture_id: str, base: str) -> Capture:
        """A chargeback: all the money goes back to the buyer (PAYMENT.CAPTURE.REVERSED). Raises ControlError
        404/409."""
        capture = self._reversible_capture(capture_id)
        self._reverse(capture, base)
        return capture

    def _reverse(self, capture: Capture, base: str) -> None:
        # Reversed money counts as refunded, so the refund rules (CAPTURE_FULLY_REFUNDED) follow by themselves.
        capture.refunded = capture.amount
        capture.status = "REFUNDED"
        capture.status_reason = "CHARGEBACK"
        capture.update_time = now_iso()
        self.emit("PAYMENT.CAPTURE.REVERSED", self.capture_view(capture, base), base)

    def _reversible_capture(self, capture_id: str) -> Capture:
        capture = self.captures.get(capture_id)
        if capture is None:
            raise ControlError(404, f"unknown capture {capture_id}")
        if capture.status not in REVERSIBLE_STATUSES:
            raise ControlError(409, f"capture {capture_id} is {capture.status}, not one of {REVERSIBLE_STATUSES}")
        return capture

    def _unresolved(self, dispute_id: str) -> Dispute:
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise ControlError(404, f"unknown dispute {dispute_id}")
        if dispute.status == "RESOLVED":
            raise ControlError(409, f"dispute {dispute_id} is already RESOLVED ({dispute.outcome})")
        return dispute

    def _new_dispute_id(self) -> str:
        while True:
            dispute_id = f"PP-D-{secrets.randbelow(90_000_000) + 10_000_000}"
            if dispute_id not in self.disputes:
                return dispute_id
