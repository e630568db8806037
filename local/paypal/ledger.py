"""The order / capture / refund state machine of the emulator: plain synchronous code, no HTTP.

Every state change happens in a method here, called with no await between its check and its write, so no
other request can interleave. Raises ApiError (PayPal-shaped answers) and ControlError (our control endpoints).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from local.paypal.disputes import Disputes
from local.paypal.model import (
    ACCOUNT_ALPHABET,
    DESCRIPTIONS,
    FAULT_KINDS,
    OPS,
    OUTCOME_FAULTS,
    REFUND_OUTCOME_FAULTS,
    TOKEN_LIFETIME_SECONDS,
    ApiError,
    Capture,
    ControlError,
    Dispute,
    Fault,
    Order,
    Refund,
    Transmission,
    check_breakdown,
    experience_of,
    format_amount,
    hateoas_link,
    new_id,
    now_iso,
    parse_money,
    parse_unit,
)
from local.paypal.views import Views
from local.paypal.webhooks import Webhooks

log = logging.getLogger(__name__)


class PayPalEmulator(Views, Webhooks, Disputes):
    """In-memory PayPal: orders, captures, refunds, disputes, tokens, idempotency keys, faults and webhook
    deliveries."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        client_id: str,
        client_secret: str,
        public_base: str | None,
        webhook_id: str | None = None,
        block_duplicate_invoice_ids: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.webhook_url = webhook_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.public_base = public_base.rstrip("/") if public_base else None
        self.webhook_id = webhook_id
        # PayPal's default account setting blocks a second payment with the same invoice id.
        self.block_duplicate_invoice_ids = block_duplicate_invoice_ids
        self.signing_key = secrets.token_bytes(32)
        self._clock = clock
        self.deliver: Callable[[str, Transmission, bytes], None] | None = None
        self.on_change: Callable[[], None] | None = None
        self.reset()

    def reset(self) -> None:
        self.tokens: dict[str, float] = {}
        self.orders: dict[str, Order] = {}
        self.captures: dict[str, Capture] = {}
        self.refunds: dict[str, Refund] = {}
        self.disputes: dict[str, Dispute] = {}
        self.idempotency: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.faults: dict[str, deque[Fault]] = {op: deque() for op in (*OPS, "any")}
        self.transmissions: dict[str, Transmission] = {}
        self.verifications = {"SUCCESS": 0, "FAILURE": 0, "INVALID": 0}  # verify-webhook-signature calls

    def changed(self) -> None:
        """Something durable changed outside a request (a webhook was delivered): the app's store saves it."""
        if self.on_change is not None:
            self.on_change()

    # -- auth ------------------------------------------------------------------------------------------

    def issue_token(self, authorization: str | None, grant_type: str | None) -> tuple[int, dict[str, Any]]:
        if not self._client_matches(authorization):
            return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
        if grant_type != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}
        token = "A21AA" + secrets.token_urlsafe(48)
        self.tokens[token] = self._clock() + TOKEN_LIFETIME_SECONDS
        return 200, {
            "scope": "https://uri.paypal.com/services/payments/payment/authcapture openid",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-LOCALEMULATOR",
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "nonce": f"{now_iso()}{secrets.token_hex(8)}",
        }

    def _client_matches(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, secret = decoded.partition(":")
        return hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(secret, self.client_secret)

    def authenticate(self, authorization: str | None) -> None:
        """Raises ApiError 401 unless the header carries a live token this emulator issued."""
        token = authorization[7:] if authorization and authorization.startswith("Bearer ") else None
        expires = self.tokens.get(token or "")
        if expires is None or expires <= self._clock():
            raise ApiError(401)

    # -- faults ----------------------------------------------------------------------------------------

    def add_fault(self, spec: Any) -> Fault:
        """Queue a fault from its JSON spec. Raises ControlError (400) for an invalid spec."""
        if not isinstance(spec, dict):
            raise ControlError(400, "a fault is a JSON object")
        op, kind = spec.get("op", "any"), spec.get("kind")
        if op not in (*OPS, "any") or kind not in FAULT_KINDS:
            raise ControlError(400, f"op must be one of {(*OPS, 'any')}, kind one of {FAULT_KINDS}")
        if kind in OUTCOME_FAULTS and op != "capture":
            raise ControlError(400, f"{kind} only applies to op=capture")
        if kind in REFUND_OUTCOME_FAULTS and op != "refund":
            raise ControlError(400, f"{kind} only applies to op=refund")
        count, delay = spec.get("count", 1), spec.get("delay", 2.0)
        if not isinstance(count, int) or count < 1 or not isinstance(delay, int | float) or not 0 <= delay <= 120:
            raise ControlError(400, "count must be an integer >= 1 and delay a number of seconds in 0..120")
        fault = Fault(kind, count, float(delay))
        self.faults[op].append(fault)
        return fault

    def take_fault(self, op: str, kinds: tuple[str, ...]) -> Fault | None:
        """Consume one use of the fault at the head of `op`'s queue (else of `any`'s) if its kind is in `kinds`."""
        for queue in (self.faults[op], self.faults["any"]):
            if queue and queue[0].kind in kinds:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining == 0:
                    queue.popleft()
                return fault
        return None

    # -- idempotency -----------------------------------------------------------------------------------

    def idempotent(
        self, op: str, request_id: str | None, perform: Callable[[], tuple[int, dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]]:
        """Replay the first successful answer for (op, PayPal-Request-Id); errors raise and are not stored."""
        key = (op, request_id or "")
        if request_id and key in self.idempotency:
            status, body = self.idempotency[key]
            return status, copy.deepcopy(body)
        status, body = perform()
        if request_id:
            self.idempotency[key] = (status, copy.deepcopy(body))
        return status, body

    # -- orders ----------------------------------------------------------------------------------------

    def create_order(self, body: Any, base: str, prefer: str) -> tuple[int, dict[str, Any]]:
        """POST /v2/checkout/orders. Raises ApiError (400 INVALID_REQUEST, 422 amount arithmetic)."""
        if not isinstance(body, dict):
            raise ApiError(400, "MALFORMED_REQUEST_JSON")
        unit = parse_unit(body)
        if "amount" not in unit:
            raise ApiError(400, "MISSING_REQUIRED_PARAMETER", field="/purchase_units/0/amount")
        currency, total = parse_money(unit["amount"], "/purchase_units/0/amount")
        check_breakdown(unit, currency, total)
        context, modern = experience_of(body)
        now = now_iso()
        order = Order(
            id=new_id(),
            unit=copy.deepcopy(unit),
            currency=currency,
            total=total,
            return_url=context.get("return_url"),
            cancel_url=context.get("cancel_url"),
            brand_name=str(context.get("brand_name") or "Merchant"),
            awaiting_status="PAYER_ACTION_REQUIRED" if modern else "CREATED",
            status="PAYER_ACTION_REQUIRED" if modern else "CREATED",
            create_time=now,
            update_time=now,
        )
        order.unit.setdefault("reference_id", "default")
        self.orders[order.id] = order
        full = self.order_view(order, base)
        if "return=representation" in prefer:
            return 201, full
        minimal = {"id": order.id, "status": order.status, "links": full["links"]}
        if modern:
            minimal["payment_source"] = {"paypal": {}}
        return 201, minimal

    def get_order(self, order_id: str) -> Order:
        """Raises ApiError 404 for an unknown id (as do get_capture and get_refund)."""
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, "INVALID_RESOURCE_ID")
        return order

    def approve(self, order_id: str, base: str, payer_id: str | None = None) -> Order:
        """The buyer clicked Approve. Raises ControlError when the order can no longer be approved."""
        order = self.orders.get(order_id)
        if order is None:
            raise ControlError(404, f"unknown order {order_id}")
        if order.status == "APPROVED":
            return order
        if order.status != order.awaiting_status:
            raise ControlError(409, f"order {order_id} is {order.status} and cannot be approved")
        order.payer_id = order.payer_id or payer_id or new_id(13, ACCOUNT_ALPHABET)
        order.status = "APPROVED"
        order.update_time = now_iso()
        self.emit("CHECKOUT.ORDER.APPROVED", self.order_view(order, base), base)
        return order

    def capture_order(self, order_id: str, body: Any, base: str) -> tuple[int, dict[str, Any]]:
        """POST .../capture. Raises ApiError (404; 422 ORDER_NOT_APPROVED, ORDER_ALREADY_CAPTURED,
        INSTRUMENT_DECLINED, DUPLICATE_INVOICE_ID)."""
        if body is not None and not isinstance(body, dict):
            raise ApiError(400, "MALFORMED_REQUEST_JSON")
        order = self.get_order(order_id)
        if order.status == "COMPLETED":
            raise ApiError(422, "ORDER_ALREADY_CAPTURED")
        if order.status != "APPROVED":
            raise ApiError(422, "ORDER_NOT_APPROVED")
        self._check_invoice_unused(order)
        outcome = self.take_fault("capture", OUTCOME_FAULTS)
        if outcome and outcome.kind == "declined":
            raise self._decline(order, base)
        capture = self._new_capture(order, pending=bool(outcome and outcome.kind == "pending"))
        order.status = "COMPLETED"
        order.update_time = capture.create_time
        event = "PAYMENT.CAPTURE.PENDING" if capture.status == "PENDING" else "PAYMENT.CAPTURE.COMPLETED"
        self.emit(event, self.capture_view(capture, base), base)
        return 201, self.order_view(order, base)

    def _check_invoice_unused(self, order: Order) -> None:
        invoice_id = order.unit.get("invoice_id")
        if not (self.block_duplicate_invoice_ids and invoice_id):
            return
        for capture in self.captures.values():
            if capture.invoice_id == invoice_id and capture.status not in ("DECLINED", "FAILED"):
                raise ApiError(422, "DUPLICATE_INVOICE_ID", field="/purchase_units/0/invoice_id")

    def _decline(self, order: Order, base: str) -> ApiError:
        # Like PayPal: no capture exists; the buyer must go back to PayPal and pick another funding source.
        order.status = order.awaiting_status
        order.declined_attempts += 1
        order.update_time = now_iso()
        redirect = hateoas_link(self.approval_link(order, base), "redirect")
        return ApiError(422, "INSTRUMENT_DECLINED", extra_links=[redirect])

    def _new_capture(self, order: Order, *, pending: bool) -> Capture:
        now = now_iso()
        capture = Capture(
            id=new_id(),
            order_id=order.id,
            status="PENDING" if pending else "COMPLETED",
            status_reason="ECHECK" if pending else None,
            amount=order.total,
            currency=order.currency,
            custom_id=order.unit.get("custom_id"),
            invoice_id=order.unit.get("invoice_id"),
            create_time=now,
            update_time=now,
        )
        self.captures[capture.id] = capture
        order.capture_ids.append(capture.id)
        return capture

    # -- captures and refunds --------------------------------------------------------------------------

    def get_capture(self, capture_id: str) -> Capture:
        capture = self.captures.get(capture_id)
        if capture is None:
            raise ApiError(404, "INVALID_RESOURCE_ID", api="payments")
        return capture

    def get_refund(self, refund_id: str) -> Refund:
        refund = self.refunds.get(refund_id)
        if refund is None:
            raise ApiError(404, "INVALID_RESOURCE_ID", api="payments")
        return refund

    def refund_capture(self, capture_id: str, body: Any, base: str) -> tuple[int, dict[str, Any]]:
        """POST .../refund, full when `body` has no amount. Raises ApiError (404; 422 CAPTURE_FULLY_REFUNDED,
        REFUND_AMOUNT_EXCEEDED, PENDING_CAPTURE, TRANSACTION_DISPUTED, CURRENCY_MISMATCH, ...)."""
        if body is not None and not isinstance(body, dict):
            raise ApiError(400, "INVALID_PARAMETER_SYNTAX", api="payments", field="/")
        body = body or {}
        capture = self.get_capture(capture_id)
        self._check_refundable(capture)
        if self.unresolved_dispute_of(capture.id) is not None:
            raise ApiError(422, "TRANSACTION_DISPUTED", api="payments")
        if self.take_fault("refund", REFUND_OUTCOME_FAULTS):
            raise ApiError(422, "REFUND_TIME_LIMIT_EXCEEDED", api="payments")
        amount = self._refund_amount(capture, body.get("amount"))
        self._check_refund_invoice(body.get("invoice_id"))
        refund = Refund(
            id=new_id(),
            capture_id=capture.id,
            amount=amount,
            currency=capture.currency,
            total_refunded=capture.refunded + amount,
            invoice_id=body.get("invoice_id"),
            custom_id=body.get("custom_id"),
            note_to_payer=body.get("note_to_payer"),
            create_time=now_iso(),
        )
        self.refunds[refund.id] = refund
        capture.refunded = refund.total_refunded
        capture.refund_ids.append(refund.id)
        capture.status = "REFUNDED" if capture.remaining == 0 else "PARTIALLY_REFUNDED"
        capture.update_time = refund.create_time
        view = self.refund_view(refund, base)
        self.emit("PAYMENT.CAPTURE.REFUNDED", view, base)
        return 201, view

    @staticmethod
    def _check_refundable(capture: Capture) -> None:
        if capture.status == "REFUNDED":
            raise ApiError(422, "CAPTURE_FULLY_REFUNDED", api="payments")
        if capture.status == "PENDING":
            raise ApiError(422, "PENDING_CAPTURE", api="payments")
        if capture.status not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            raise ApiError(422, "REFUND_NOT_ALLOWED", api="payments")

    @staticmethod
    def _refund_amount(capture: Capture, requested: Any) -> Decimal:
        if requested is None:
            return capture.remaining
        currency, amount = parse_money(requested, "/amount", api="payments")
        if currency != capture.currency:
            raise ApiError(422, "CURRENCY_MISMATCH", api="payments", field="/amount/currency_code")
        if amount > capture.remaining:
            raise ApiError(422, "REFUND_AMOUNT_EXCEEDED", api="payments", field="/amount/value")
        return amount

    def _check_refund_invoice(self, invoice_id: Any) -> None:
        if not (self.block_duplicate_invoice_ids and invoice_id):
            return
        if any(refund.invoice_id == invoice_id for refund in self.refunds.values()):
            raise ApiError(
                422,
                "DUPLICATE_INVOICE_ID",
                api="payments",
                field="/invoice_id",
                description=DESCRIPTIONS["REFUND_DUPLICATE_INVOICE_ID"],
            )

    def settle_pending(self, capture_id: Any, *, deny: bool, base: str) -> Capture:
        """A PENDING capture clears (COMPLETED) or is denied (DECLINED), with the matching webhook."""
        capture = self.captures.get(str(capture_id))
        if capture is None:
            raise ControlError(404, f"unknown capture {capture_id}")
        if capture.status != "PENDING":
            raise ControlError(409, f"capture {capture_id} is {capture.status}, not PENDING")
        capture.status = "DECLINED" if deny else "COMPLETED"
        capture.status_reason = None
        capture.update_time = now_iso()
        event = "PAYMENT.CAPTURE.DENIED" if deny else "PAYMENT.CAPTURE.COMPLETED"
        self.emit(event, self.capture_view(capture, base), base)
        return capture

    def state(self) -> dict[str, Any]:
        return {
            "orders": len(self.orders),
            "captures": len(self.captures),
            "refunds": len(self.refunds),
            "captures_per_order": {oid: len(o.capture_ids) for oid, o in self.orders.items()},
            "orders_by_id": {
                oid: {
                    "status": o.status,
                    "capture_ids": list(o.capture_ids),
                    "declined_attempts": o.declined_attempts,
                    "custom_id": o.unit.get("custom_id"),
                    "amount": format_amount(o.total),
                }
                for oid, o in self.orders.items()
            },
            "captures_by_id": {
                cid: {
                    "order_id": c.order_id,
                    "status": c.status,
                    "amount": format_amount(c.amount),
                    "refunded": format_amount(c.refunded),
                }
                for cid, c in self.captures.items()
            },
            "refunds_by_id": {
                rid: {"capture_id": r.capture_id, "amount": format_amount(r.amount), "status": r.status}
                for rid, r in self.refunds.items()
            },
            "disputes_by_id": {
                did: {"capture_id": d.capture_id, "status": d.status, "outcome": d.outcome}
                for did, d in self.disputes.items()
            },
            "webhooks_sent": len(self.transmissions),
            "webhook_verifications": dict(self.verifications),
            "faults": {op: [f.as_dict() for f in q] for op, q in self.faults.items() if q},
        }
