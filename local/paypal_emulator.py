"""Stateful local emulator of the PayPal REST endpoints the backend uses (dev and tests only, never packaged).

Same HTTP contract as PayPal for: OAuth2 client-credentials token, Orders v2 create / get / capture,
Payments v2 refund / get capture / get refund, verify-webhook-signature, and PayPal-shaped error bodies
(the `details[].issue` / `description` pairs are the exact strings of PayPal's OpenAPI specs, so responses
validate against them). It also serves the buyer's approval page and sends PayPal-shaped webhooks.

Mounted by the local gateway as a sub-application under `/paypal`; `start_standalone()` does the same on a
fresh server for tests. Links in responses use the request's own origin plus the mount prefix, or
`public_base` when given.

Test hooks live under `/_control/` (no auth): fault injection, dashboard refunds, approving without a browser,
completing or denying PENDING captures, and a state dump.

aiohttp runs handlers on one thread; every state change happens in plain (non-async) methods, so no other
request can interleave between a check and the write it guards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import copy
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import string
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

MOUNT_PREFIX = "/paypal"
TOKEN_LIFETIME_SECONDS = 32400  # what PayPal's sandbox hands out (9 h)
_TOKEN_ROUTE = "paypal-oauth2-token"
_TOKEN_PATH = "/v1/oauth2/token"
_CENT = Decimal("0.01")
_ID_ALPHABET = string.ascii_uppercase + string.digits
# PayPal account ids (payer / merchant) are 13 characters of a Base32 variant without 0, 1, I and O.
_ACCOUNT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_WEBHOOK_ATTEMPTS = 3
_WEBHOOK_RETRY_DELAYS = (0.3, 1.0)
_AUTH_ALGO = "SHA256withRSA"
_MERCHANT = {"email_address": "merchant@example.com", "merchant_id": "L7CALMERCHANT"}
_BUYER_NAME = {"given_name": "Local", "surname": "Buyer"}
_BUYER_EMAIL = "buyer@example.com"

# name/message per status, exactly as in the specs' error_4xx / error_500 schemas.
_ERROR_NAMES = {
    400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema."),
    401: (
        "AUTHENTICATION_FAILURE",
        "Authentication failed due to missing authorization header, or invalid authentication credentials.",
    ),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    422: (
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed business validation.",
    ),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error occurred."),
}
# details[].description strings; the Orders spec pins most of them with an enum.
_DESCRIPTIONS = {
    "MALFORMED_REQUEST_JSON": "The request JSON is not well formed.",
    "MISSING_REQUIRED_PARAMETER": "A required parameter is missing.",
    "INVALID_PARAMETER_VALUE": "A parameter value is not valid.",
    "INVALID_PARAMETER_SYNTAX": "The value of a field does not conform to the expected format.",
    "INVALID_STRING_LENGTH": "The value of a field is either too short or too long",
    "INVALID_RESOURCE_ID": "Specified resource ID does not exist. Please check the resource ID and try again.",
    "AMOUNT_MISMATCH": (
        "Should equal item_total + tax_total + shipping + handling + insurance - shipping_discount - discount."
    ),
    "ITEM_TOTAL_MISMATCH": "Should equal sum of (unit_amount * quantity) across all items for a given purchase_unit.",
    "ITEM_TOTAL_REQUIRED": (
        "If item details are specified (items.unit_amount and items.quantity) corresponding "
        "amount.breakdown.item_total is required."
    ),
    "DECIMAL_PRECISION": "If the currency supports decimals, only two decimal place precision is supported.",
    "CANNOT_BE_ZERO_OR_NEGATIVE": (
        "Must be greater than zero. If the currency supports decimals, only two decimal place precision is supported."
    ),
    "INVALID_CURRENCY_CODE": (
        "Currency code is invalid or is not currently supported. Please refer "
        "https://developer.paypal.com/api/rest/reference/currency-codes/ for list of supported currency codes."
    ),
    "ORDER_NOT_APPROVED": (
        "Payer has not yet approved the Order for payment. Please redirect the payer to the 'rel':'approve' url "
        "returned as part of the HATEOAS links within the Create Order call or provide a valid `payment_source` "
        "in the request."
    ),
    "ORDER_ALREADY_CAPTURED": "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
    # The double space is PayPal's own text; the spec's enum requires it verbatim.
    "INSTRUMENT_DECLINED": (
        "The instrument presented  was either declined by the processor or bank, or it can't be used for this payment."
    ),
    "DUPLICATE_INVOICE_ID": (
        "Duplicate Invoice ID detected. To avoid a potential duplicate transaction your account setting requires "
        "that Invoice Id be unique for each transaction."
    ),
    "CAPTURE_FULLY_REFUNDED": "The capture has already been fully refunded",
    "REFUND_AMOUNT_EXCEEDED": (
        "The refund amount must be less than or equal to the capture amount that has not yet been refunded."
    ),
    "PENDING_CAPTURE": (
        "Cannot initiate a refund as the capture is pending. Capture is typically pending when the payer has "
        "funded the transaction using e-check/bank funded."
    ),
    "REFUND_NOT_ALLOWED": "Capture cannot be refunded.",
    "REFUND_TIME_LIMIT_EXCEEDED": "You are over the time limit to perform a refund on this capture",
    "CURRENCY_MISMATCH": "The currency of the refund must match the currency of the capture.",
    "REFUND_DUPLICATE_INVOICE_ID": "Invoice ID was previously used to refund a capture.",
}

OPS = ("token", "create", "get_order", "capture", "refund", "get_capture", "get_refund", "verify")
FAULT_KINDS = ("declined", "error500", "slow", "lost_response", "pending", "refund_time_limit")
# These change a capture's outcome, so they wait in the queue until a capture reaches that decision.
_OUTCOME_FAULTS = ("declined", "pending")
# The same for a refund: PayPal refuses it as past the refund window (180 days for standard payments).
_REFUND_OUTCOME_FAULTS = ("refund_time_limit",)
_TRANSPORT_FAULTS = ("error500", "slow", "lost_response")


class ApiError(Exception):
    """A PayPal-shaped error answer."""

    def __init__(
        self,
        status: int,
        issue: str | None = None,
        *,
        api: str = "orders",
        field: str | None = None,
        description: str | None = None,
        extra_links: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(issue or str(status))
        self.status = status
        self.issue = issue
        self.api = api
        self.field = field
        self.description = description
        self.extra_links = extra_links or []

    def body(self) -> dict[str, Any]:
        name, message = _ERROR_NAMES[self.status]
        anchor = self.issue or name
        body: dict[str, Any] = {"name": name, "message": message, "debug_id": _debug_id()}
        if self.issue:
            detail = {"issue": self.issue, "description": self.description or _DESCRIPTIONS.get(self.issue, "")}
            if self.field:
                detail.update(field=self.field, location="body")
            body["details"] = [detail]
        info = {
            "href": f"https://developer.paypal.com/docs/api/{self.api}/v2/#error-{anchor}",
            "rel": "information_link",
            "method": "GET",
        }
        body["links"] = [info, *self.extra_links]
        return body


class ControlError(Exception):
    """A refused `/_control/` call (plain JSON, not PayPal-shaped: these endpoints are ours)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Fault:
    kind: str
    remaining: int
    delay: float

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.remaining, "delay": self.delay}


@dataclass
class Order:
    id: str
    unit: dict[str, Any]
    currency: str
    total: Decimal
    return_url: str | None
    cancel_url: str | None
    brand_name: str
    # experience_context orders wait in PAYER_ACTION_REQUIRED; legacy application_context ones in CREATED.
    awaiting_status: str
    status: str
    create_time: str
    update_time: str
    payer_id: str | None = None
    capture_ids: list[str] = field(default_factory=list)
    declined_attempts: int = 0


@dataclass
class Capture:
    id: str
    order_id: str
    status: str
    amount: Decimal
    currency: str
    custom_id: str | None
    invoice_id: str | None
    create_time: str
    update_time: str
    status_reason: str | None = None
    refunded: Decimal = Decimal(0)
    refund_ids: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.refunded


@dataclass
class Refund:
    id: str
    capture_id: str
    amount: Decimal
    currency: str
    total_refunded: Decimal
    invoice_id: str | None
    custom_id: str | None
    note_to_payer: str | None
    create_time: str
    status: str = "COMPLETED"


@dataclass
class Transmission:
    """What this emulator signed, so verify-webhook-signature can recognise its own deliveries."""

    signature: str
    time: str
    cert_url: str
    event: dict[str, Any]
    delivered: bool = False
    attempts: int = 0
    last_status: int | None = None


# ---- small helpers ---------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(length: int = 17, alphabet: str = _ID_ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _debug_id() -> str:
    return secrets.token_hex(7)[:13]


def _fmt(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"currency_code": currency, "value": _fmt(amount)}


def _link(href: str, rel: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "rel": rel, "method": method}


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _fee(gross: Decimal) -> Decimal:
    fee = (gross * Decimal("0.0349") + Decimal("0.49")).quantize(_CENT, rounding=ROUND_HALF_UP)
    return min(fee, gross)


_VALUE_RE = re.compile(r"^-?\d+(\.\d+)?$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_QUANTITY_RE = re.compile(r"^[1-9][0-9]{0,9}$")


def _parse_money(value: Any, where: str, api: str = "orders") -> tuple[str, Decimal]:
    """Validate a PayPal money object the way PayPal does (400 for shape, 422 for business rules)."""
    if not isinstance(value, dict) or "currency_code" not in value or "value" not in value:
        raise ApiError(400, "MISSING_REQUIRED_PARAMETER", api=api, field=where)
    currency, raw = value["currency_code"], value["value"]
    if not isinstance(raw, str) or not _VALUE_RE.match(raw):
        raise ApiError(400, "INVALID_PARAMETER_SYNTAX", api=api, field=f"{where}/value")
    if not isinstance(currency, str) or not _CURRENCY_RE.match(currency):
        raise ApiError(422, "INVALID_CURRENCY_CODE", api=api, field=f"{where}/currency_code")
    amount = Decimal(raw)
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ApiError(422, "DECIMAL_PRECISION", api=api, field=f"{where}/value")
    if amount <= 0:
        raise ApiError(422, "CANNOT_BE_ZERO_OR_NEGATIVE", api=api, field=f"{where}/value")
    return currency, amount


def _check_length(unit: dict[str, Any], key: str, limit: int) -> None:
    value = unit.get(key)
    if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= limit):
        raise ApiError(400, "INVALID_STRING_LENGTH", field=f"/purchase_units/@reference_id=='default'/{key}")


def _items_total(items: Any, currency: str) -> Decimal:
    if not isinstance(items, list):
        raise ApiError(400, "INVALID_PARAMETER_SYNTAX", field="/purchase_units/0/items")
    total = Decimal(0)
    for index, item in enumerate(items):
        where = f"/purchase_units/0/items/{index}"
        if not isinstance(item, dict) or not item.get("name") or "unit_amount" not in item:
            raise ApiError(400, "MISSING_REQUIRED_PARAMETER", field=where)
        quantity = item.get("quantity")
        if not isinstance(quantity, str) or not _QUANTITY_RE.match(quantity):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", field=f"{where}/quantity")
        item_currency, unit_amount = _parse_money(item["unit_amount"], f"{where}/unit_amount")
        if item_currency != currency:
            raise ApiError(422, "ITEM_TOTAL_MISMATCH", field=f"{where}/unit_amount/currency_code")
        total += unit_amount * int(quantity)
    return total


def _check_breakdown(unit: dict[str, Any], currency: str, total: Decimal) -> None:
    """Enforce PayPal's arithmetic: items sum to item_total, breakdown sums to amount."""
    breakdown = unit["amount"].get("breakdown")
    items = unit.get("items")
    if items and not (isinstance(breakdown, dict) and "item_total" in breakdown):
        raise ApiError(422, "ITEM_TOTAL_REQUIRED", field="/purchase_units/0/amount/breakdown/item_total")
    if not isinstance(breakdown, dict):
        return
    parts = {}
    for key in ("item_total", "tax_total", "shipping", "handling", "insurance", "shipping_discount", "discount"):
        if key in breakdown:
            part_currency, value = _parse_money(breakdown[key], f"/purchase_units/0/amount/breakdown/{key}")
            if part_currency != currency:
                raise ApiError(422, "AMOUNT_MISMATCH", field="/purchase_units/0/amount")
            parts[key] = value
    if items and _items_total(items, currency) != parts.get("item_total"):
        raise ApiError(422, "ITEM_TOTAL_MISMATCH", field="/purchase_units/0/amount/breakdown/item_total")
    positive = sum(parts.get(k, Decimal(0)) for k in ("item_total", "tax_total", "shipping", "handling", "insurance"))
    negative = parts.get("shipping_discount", Decimal(0)) + parts.get("discount", Decimal(0))
    if positive - negative != total:
        raise ApiError(422, "AMOUNT_MISMATCH", field="/purchase_units/0/amount/value")


def _experience(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return (context, modern): payment_source.paypal.experience_context, else the legacy application_context."""
    source = body.get("payment_source")
    if source is not None:
        paypal = source.get("paypal") if isinstance(source, dict) else None
        context = paypal.get("experience_context") if isinstance(paypal, dict) else None
        if not isinstance(paypal, dict):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", field="/payment_source")
        return (context if isinstance(context, dict) else {}), True
    legacy = body.get("application_context")
    return (legacy if isinstance(legacy, dict) else {}), False


def _parse_unit(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("intent") is None:
        raise ApiError(400, "MISSING_REQUIRED_PARAMETER", field="/intent")
    if body["intent"] != "CAPTURE":
        # Authorize-then-capture is real PayPal, but this backend never uses it, so it is not emulated.
        raise ApiError(400, "INVALID_PARAMETER_VALUE", field="/intent")
    units = body.get("purchase_units")
    if not units:
        raise ApiError(400, "MISSING_REQUIRED_PARAMETER", field="/purchase_units")
    if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", field="/purchase_units")
    unit = units[0]
    for key, limit in (("reference_id", 256), ("custom_id", 127), ("invoice_id", 127), ("description", 127)):
        _check_length(unit, key, limit)
    return unit


# ---- the emulator ----------------------------------------------------------------------------------------


class PayPalEmulator:
    """In-memory PayPal: orders, captures, refunds, tokens, idempotency keys, faults and webhook deliveries."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        client_id: str,
        client_secret: str,
        public_base: str | None,
        webhook_id: str | None = None,
        block_duplicate_invoice_ids: bool = True,
    ) -> None:
        self.webhook_url = webhook_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.public_base = public_base.rstrip("/") if public_base else None
        self.webhook_id = webhook_id
        # PayPal's default account setting blocks a second payment with the same invoice id.
        self.block_duplicate_invoice_ids = block_duplicate_invoice_ids
        self._signing_key = secrets.token_bytes(32)
        self._loop_time: Callable[[], float] = lambda: asyncio.get_running_loop().time()
        self.reset()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    def reset(self) -> None:
        self.tokens: dict[str, float] = {}
        self.orders: dict[str, Order] = {}
        self.captures: dict[str, Capture] = {}
        self.refunds: dict[str, Refund] = {}
        self.idempotency: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.faults: dict[str, deque[Fault]] = {op: deque() for op in (*OPS, "any")}
        self.transmissions: dict[str, Transmission] = {}

    # -- auth ------------------------------------------------------------------------------------------

    def issue_token(self, authorization: str | None, grant_type: str | None) -> tuple[int, dict[str, Any]]:
        if not self._client_matches(authorization):
            return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
        if grant_type != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}
        token = "A21AA" + secrets.token_urlsafe(48)
        self.tokens[token] = self._loop_time() + TOKEN_LIFETIME_SECONDS
        return 200, {
            "scope": "https://uri.paypal.com/services/payments/payment/authcapture openid",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-LOCALEMULATOR",
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "nonce": f"{_now()}{secrets.token_hex(8)}",
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
        if expires is None or expires <= self._loop_time():
            raise ApiError(401)

    # -- faults ----------------------------------------------------------------------------------------

    def add_fault(self, spec: Any) -> Fault:
        """Queue a fault from its JSON spec. Raises ControlError (400) for an invalid spec."""
        if not isinstance(spec, dict):
            raise ControlError(400, "a fault is a JSON object")
        op, kind = spec.get("op", "any"), spec.get("kind")
        if op not in (*OPS, "any") or kind not in FAULT_KINDS:
            raise ControlError(400, f"op must be one of {(*OPS, 'any')}, kind one of {FAULT_KINDS}")
        if kind in _OUTCOME_FAULTS and op != "capture":
            raise ControlError(400, f"{kind} only applies to op=capture")
        if kind in _REFUND_OUTCOME_FAULTS and op != "refund":
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
        unit = _parse_unit(body)
        if "amount" not in unit:
            raise ApiError(400, "MISSING_REQUIRED_PARAMETER", field="/purchase_units/0/amount")
        currency, total = _parse_money(unit["amount"], "/purchase_units/0/amount")
        _check_breakdown(unit, currency, total)
        context, modern = _experience(body)
        now = _now()
        order = Order(
            id=_new_id(),
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
        order.payer_id = order.payer_id or payer_id or _new_id(13, _ACCOUNT_ALPHABET)
        order.status = "APPROVED"
        order.update_time = _now()
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
        outcome = self.take_fault("capture", _OUTCOME_FAULTS)
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
        order.update_time = _now()
        redirect = _link(self.approval_link(order, base), "redirect")
        return ApiError(422, "INSTRUMENT_DECLINED", extra_links=[redirect])

    def _new_capture(self, order: Order, *, pending: bool) -> Capture:
        now = _now()
        capture = Capture(
            id=_new_id(),
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
        REFUND_AMOUNT_EXCEEDED, PENDING_CAPTURE, CURRENCY_MISMATCH, ...)."""
        if body is not None and not isinstance(body, dict):
            raise ApiError(400, "INVALID_PARAMETER_SYNTAX", api="payments", field="/")
        body = body or {}
        capture = self.get_capture(capture_id)
        self._check_refundable(capture)
        if self.take_fault("refund", _REFUND_OUTCOME_FAULTS):
            raise ApiError(422, "REFUND_TIME_LIMIT_EXCEEDED", api="payments")
        amount = self._refund_amount(capture, body.get("amount"))
        self._check_refund_invoice(body.get("invoice_id"))
        refund = Refund(
            id=_new_id(),
            capture_id=capture.id,
            amount=amount,
            currency=capture.currency,
            total_refunded=capture.refunded + amount,
            invoice_id=body.get("invoice_id"),
            custom_id=body.get("custom_id"),
            note_to_payer=body.get("note_to_payer"),
            create_time=_now(),
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
        currency, amount = _parse_money(requested, "/amount", api="payments")
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
                description=_DESCRIPTIONS["REFUND_DUPLICATE_INVOICE_ID"],
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
        capture.update_time = _now()
        event = "PAYMENT.CAPTURE.DENIED" if deny else "PAYMENT.CAPTURE.COMPLETED"
        self.emit(event, self.capture_view(capture, base), base)
        return capture

    # -- views: PayPal's JSON, links built from the current request's base --------------------------------

    def approval_link(self, order: Order, base: str) -> str:
        return f"{base}/checkoutnow?token={order.id}"

    def order_view(self, order: Order, base: str) -> dict[str, Any]:
        unit = {**copy.deepcopy(order.unit), "payee": dict(_MERCHANT)}
        if order.capture_ids:
            captures = [self.capture_view(self.captures[cid], base) for cid in order.capture_ids]
            unit["payments"] = {"captures": captures}
            refunds = [self.refund_view(self.refunds[rid], base) for c in captures for rid in self._refund_ids(c)]
            if refunds:
                unit["payments"]["refunds"] = refunds
        view: dict[str, Any] = {
            "id": order.id,
            "intent": "CAPTURE",
            "status": order.status,
            "purchase_units": [unit],
            "create_time": order.create_time,
            "update_time": order.update_time,
            "links": self._order_links(order, base),
        }
        if order.awaiting_status == "PAYER_ACTION_REQUIRED" or order.payer_id:
            view["payment_source"] = {"paypal": self._wallet(order)}
        if order.payer_id:
            view["payer"] = {
                "name": dict(_BUYER_NAME),
                "email_address": _BUYER_EMAIL,
                "payer_id": order.payer_id,
                "address": {"country_code": "US"},
            }
        return view

    def _refund_ids(self, capture_view: dict[str, Any]) -> list[str]:
        return self.captures[capture_view["id"]].refund_ids

    @staticmethod
    def _wallet(order: Order) -> dict[str, Any]:
        if not order.payer_id:
            return {}
        return {
            "email_address": _BUYER_EMAIL,
            "account_id": order.payer_id,
            "account_status": "VERIFIED",
            "name": dict(_BUYER_NAME),
            "address": {"country_code": "US"},
        }

    def _order_links(self, order: Order, base: str) -> list[dict[str, str]]:
        self_href = f"{base}/v2/checkout/orders/{order.id}"
        links = [_link(self_href, "self")]
        if order.status == "PAYER_ACTION_REQUIRED":
            links.append(_link(self.approval_link(order, base), "payer-action"))
        elif order.status == "CREATED":
            links.append(_link(self.approval_link(order, base), "approve"))
        if order.status in ("CREATED", "APPROVED"):
            links += [_link(self_href, "update", "PATCH"), _link(f"{self_href}/capture", "capture", "POST")]
        return links

    def capture_view(self, capture: Capture, base: str) -> dict[str, Any]:
        href = f"{base}/v2/payments/captures/{capture.id}"
        view: dict[str, Any] = {
            "id": capture.id,
            "status": capture.status,
            "amount": _money(capture.amount, capture.currency),
            "final_capture": True,
            "disbursement_mode": "INSTANT",
            "seller_protection": {
                "status": "ELIGIBLE",
                "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
            },
            "supplementary_data": {"related_ids": {"order_id": capture.order_id}},
            "payee": dict(_MERCHANT),
            "links": [
                _link(href, "self"),
                _link(f"{href}/refund", "refund", "POST"),
                _link(f"{base}/v2/checkout/orders/{capture.order_id}", "up"),
            ],
            "create_time": capture.create_time,
            "update_time": capture.update_time,
        }
        if capture.status_reason:
            view["status_details"] = {"reason": capture.status_reason}
        # PayPal leaves the breakdown out while money is still pending.
        if capture.status not in ("PENDING", "DECLINED"):
            fee = _fee(capture.amount)
            view["seller_receivable_breakdown"] = {
                "gross_amount": _money(capture.amount, capture.currency),
                "paypal_fee": _money(fee, capture.currency),
                "net_amount": _money(capture.amount - fee, capture.currency),
            }
        for key in ("custom_id", "invoice_id"):
            if getattr(capture, key):
                view[key] = getattr(capture, key)
        return view

    def refund_view(self, refund: Refund, base: str) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": refund.id,
            "status": refund.status,
            "amount": _money(refund.amount, refund.currency),
            "seller_payable_breakdown": {
                "gross_amount": _money(refund.amount, refund.currency),
                "paypal_fee": _money(Decimal(0), refund.currency),
                "net_amount": _money(refund.amount, refund.currency),
                "total_refunded_amount": _money(refund.total_refunded, refund.currency),
            },
            "links": [
                _link(f"{base}/v2/payments/refunds/{refund.id}", "self"),
                _link(f"{base}/v2/payments/captures/{refund.capture_id}", "up"),
            ],
            "create_time": refund.create_time,
            "update_time": refund.create_time,
        }
        for key in ("invoice_id", "custom_id", "note_to_payer"):
            if getattr(refund, key):
                view[key] = getattr(refund, key)
        return view

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
                    "amount": _fmt(o.total),
                }
                for oid, o in self.orders.items()
            },
            "captures_by_id": {
                cid: {
                    "order_id": c.order_id,
                    "status": c.status,
                    "amount": _fmt(c.amount),
                    "refunded": _fmt(c.refunded),
                }
                for cid, c in self.captures.items()
            },
            "refunds_by_id": {
                rid: {"capture_id": r.capture_id, "amount": _fmt(r.amount), "status": r.status}
                for rid, r in self.refunds.items()
            },
            "webhooks_sent": len(self.transmissions),
            "faults": {op: [f.as_dict() for f in q] for op, q in self.faults.items() if q},
        }

    # -- webhooks --------------------------------------------------------------------------------------

    def emit(self, event_type: str, resource: dict[str, Any], base: str) -> None:
        """Record a PayPal event, sign it, and deliver it in the background (never blocking the answer)."""
        event_id = f"WH-{_new_id()}-{_new_id()}"
        event = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": _now(),
            "resource_type": _RESOURCE_TYPES[event_type],
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": _summary(event_type, resource),
            "resource": resource,
            "links": [
                _link(f"{base}/v1/notifications/webhooks-events/{event_id}", "self"),
                _link(f"{base}/v1/notifications/webhooks-events/{event_id}/resend", "resend", "POST"),
            ],
        }
        body = json.dumps(event).encode()
        transmission_id = str(uuid.uuid4())
        sent_at = _now()
        signed = f"{transmission_id}|{sent_at}|{self.webhook_id or ''}|{zlib.crc32(body)}".encode()
        transmission = Transmission(
            # hex digits only: the spec pattern wants a word character first (base64 may start with +)
            signature=hmac.new(self._signing_key, signed, hashlib.sha256).hexdigest(),
            time=sent_at,
            cert_url=f"{base}/v1/notifications/certs/CERT-LOCAL-EMULATOR",
            event=event,
        )
        self.transmissions[transmission_id] = transmission
        if self.webhook_url:
            task = asyncio.get_running_loop().create_task(self._deliver(transmission_id, transmission, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, transmission_id: str, transmission: Transmission, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission.time,
            "PAYPAL-TRANSMISSION-SIG": transmission.signature,
            "PAYPAL-CERT-URL": transmission.cert_url,
            "PAYPAL-AUTH-ALGO": _AUTH_ALGO,
        }
        for attempt in range(_WEBHOOK_ATTEMPTS):
            url = self.webhook_url
            if not url:
                return
            transmission.attempts += 1
            try:
                session = self._session()
                async with session.post(url, data=body, headers=headers) as response:
                    transmission.last_status = response.status
                    if response.status < 300:
                        transmission.delivered = True
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("webhook delivery to %s failed: %s", url, type(exc).__name__)
            if attempt < len(_WEBHOOK_RETRY_DELAYS):
                await asyncio.sleep(_WEBHOOK_RETRY_DELAYS[attempt])
        log.warning(
            "webhook %s (%s) not delivered after %d attempts",
            transmission.event["id"],
            transmission.event["event_type"],
            _WEBHOOK_ATTEMPTS,
        )

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self._http

    async def wait_for_deliveries(self) -> None:
        """Let in-flight webhook deliveries finish (tests and clean shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, _app: web.Application | None = None) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def verify(self, body: Any) -> dict[str, str]:
        """SUCCESS only for an event this emulator signed and sent, unchanged. Raises VerificationInputError."""
        required = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id")
        missing = [key for key in (*required, "webhook_event") if not isinstance(body, dict) or not body.get(key)]
        if missing:
            raise VerificationInputError(missing)
        sent = self.transmissions.get(str(body["transmission_id"]))
        genuine = (
            sent is not None
            and hmac.compare_digest(str(body["transmission_sig"]), sent.signature)
            and body["transmission_time"] == sent.time
            and body["cert_url"] == sent.cert_url
            and body["auth_algo"] == _AUTH_ALGO
            and body["webhook_event"] == sent.event
            and (self.webhook_id is None or body["webhook_id"] == self.webhook_id)
        )
        return {"verification_status": "SUCCESS" if genuine else "FAILURE"}

    def deliveries(self) -> list[dict[str, Any]]:
        return [
            {
                "transmission_id": tid,
                "event_id": t.event["id"],
                "event_type": t.event["event_type"],
                "resource_id": t.event["resource"].get("id"),
                "delivered": t.delivered,
                "attempts": t.attempts,
                "last_status": t.last_status,
            }
            for tid, t in self.transmissions.items()
        ]


class VerificationInputError(Exception):
    """verify-webhook-signature got an incomplete body (PayPal answers 400 VALIDATION_ERROR)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


_RESOURCE_TYPES = {
    "CHECKOUT.ORDER.APPROVED": "checkout-order",
    "PAYMENT.CAPTURE.COMPLETED": "capture",
    "PAYMENT.CAPTURE.PENDING": "capture",
    "PAYMENT.CAPTURE.DENIED": "capture",
    "PAYMENT.CAPTURE.REFUNDED": "refund",
}


def _summary(event_type: str, resource: dict[str, Any]) -> str:
    if event_type == "CHECKOUT.ORDER.APPROVED":
        return "An order has been approved by buyer"
    amount = resource.get("amount", {})
    money = f"{amount.get('currency_code', '')} {amount.get('value', '')}"
    return {
        "PAYMENT.CAPTURE.COMPLETED": f"Payment completed for {money}",
        "PAYMENT.CAPTURE.PENDING": f"Payment pending for {money}",
        "PAYMENT.CAPTURE.DENIED": f"Payment denied for {money}",
        "PAYMENT.CAPTURE.REFUNDED": f"A {money} capture payment was refunded",
    }[event_type]


# ---- HTTP layer ------------------------------------------------------------------------------------------

EMULATOR_KEY = web.AppKey("paypal_emulator", PayPalEmulator)


def _emulator(request: web.Request) -> PayPalEmulator:
    return request.app[EMULATOR_KEY]


def _base(request: web.Request) -> str:
    """Origin of this request plus wherever the emulator is mounted (found through its own named route)."""
    emulator = _emulator(request)
    if emulator.public_base:
        return emulator.public_base
    token_path = str(request.app.router[_TOKEN_ROUTE].url_for())
    prefix = token_path[: -len(_TOKEN_PATH)]
    return f"{request.url.origin()}{prefix}"


def _drop_connection(request: web.Request) -> web.Response:
    """Simulate a lost answer: the work is done, but the client sees the connection die with no response."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


def _parsed(raw: bytes, malformed: ApiError) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise malformed from None


async def handle_token(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    fault = emulator.take_fault("token", _TRANSPORT_FAULTS)
    if fault and fault.kind == "error500":
        return web.json_response(ApiError(500).body(), status=500)
    form = await request.post()
    if fault and fault.kind == "slow":
        await asyncio.sleep(fault.delay)
    grant_type = form.get("grant_type")
    status, body = emulator.issue_token(request.headers.get("Authorization"), str(grant_type) if grant_type else None)
    if fault and fault.kind == "lost_response":
        return _drop_connection(request)
    return web.json_response(body, status=status)


async def _run(
    request: web.Request,
    op: str,
    action: Callable[[PayPalEmulator, Any], tuple[int, dict[str, Any]]],
    malformed: ApiError | None = None,
) -> web.StreamResponse:
    """Auth, then transport faults, then the synchronous action; `lost_response` drops the answer afterwards."""
    emulator = _emulator(request)
    fault: Fault | None = None
    try:
        emulator.authenticate(request.headers.get("Authorization"))
        fault = emulator.take_fault(op, _TRANSPORT_FAULTS)
        if fault and fault.kind == "error500":
            raise ApiError(500)
        # Read before any delay: a slow request still completes after its client has given up, as at PayPal.
        raw = await request.read()
        if fault and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        body = _parsed(raw, malformed) if malformed else None
        # No await from here to the answer, so the check-then-act inside `action` is atomic.
        status, payload = action(emulator, body)
        response = web.json_response(payload, status=status)
    except ApiError as exc:
        response = web.json_response(exc.body(), status=exc.status)
    if fault and fault.kind == "lost_response":
        return _drop_connection(request)
    return response


def _request_id(request: web.Request) -> str | None:
    return request.headers.get("PayPal-Request-Id")


async def handle_create_order(request: web.Request) -> web.StreamResponse:
    base, prefer, request_id = _base(request), request.headers.get("Prefer", ""), _request_id(request)

    def action(emulator: PayPalEmulator, body: Any) -> tuple[int, dict[str, Any]]:
        return emulator.idempotent("create", request_id, lambda: emulator.create_order(body, base, prefer))

    return await _run(request, "create", action, ApiError(400, "MALFORMED_REQUEST_JSON"))


async def handle_get_order(request: web.Request) -> web.StreamResponse:
    base, order_id = _base(request), request.match_info["order_id"]

    def action(emulator: PayPalEmulator, _body: Any) -> tuple[int, dict[str, Any]]:
        return 200, emulator.order_view(emulator.get_order(order_id), base)

    return await _run(request, "get_order", action)


async def handle_capture_order(request: web.Request) -> web.StreamResponse:
    base, order_id, request_id = _base(request), request.match_info["order_id"], _request_id(request)

    def action(emulator: PayPalEmulator, body: Any) -> tuple[int, dict[str, Any]]:
        return emulator.idempotent("capture", request_id, lambda: emulator.capture_order(order_id, body, base))

    return await _run(request, "capture", action, ApiError(400, "MALFORMED_REQUEST_JSON"))


async def handle_refund(request: web.Request) -> web.StreamResponse:
    base, capture_id, request_id = _base(request), request.match_info["capture_id"], _request_id(request)

    def action(emulator: PayPalEmulator, body: Any) -> tuple[int, dict[str, Any]]:
        return emulator.idempotent("refund", request_id, lambda: emulator.refund_capture(capture_id, body, base))

    malformed = ApiError(400, "INVALID_PARAMETER_SYNTAX", api="payments", field="/")
    return await _run(request, "refund", action, malformed)


async def handle_get_capture(request: web.Request) -> web.StreamResponse:
    base, capture_id = _base(request), request.match_info["capture_id"]

    def action(emulator: PayPalEmulator, _body: Any) -> tuple[int, dict[str, Any]]:
        return 200, emulator.capture_view(emulator.get_capture(capture_id), base)

    return await _run(request, "get_capture", action)


async def handle_get_refund(request: web.Request) -> web.StreamResponse:
    base, refund_id = _base(request), request.match_info["refund_id"]

    def action(emulator: PayPalEmulator, _body: Any) -> tuple[int, dict[str, Any]]:
        return 200, emulator.refund_view(emulator.get_refund(refund_id), base)

    return await _run(request, "get_refund", action)


async def handle_verify(request: web.Request) -> web.StreamResponse:
    def action(emulator: PayPalEmulator, body: Any) -> tuple[int, dict[str, Any]]:
        try:
            return 200, emulator.verify(body)
        except VerificationInputError as exc:
            return 400, _validation_error(exc.missing)

    return await _run(request, "verify", action, ApiError(400, "MALFORMED_REQUEST_JSON"))


def _validation_error(missing: list[str]) -> dict[str, Any]:
    """The older v1 error shape that the Webhooks API uses."""
    return {
        "name": "VALIDATION_ERROR",
        "message": "Invalid request - see details",
        "debug_id": _debug_id(),
        "information_link": "https://developer.paypal.com/docs/api/webhooks/v1/#error-VALIDATION_ERROR",
        "details": [{"field": key, "location": "body", "issue": "Required field cannot be blank"} for key in missing],
        "links": [],
    }


# ---- approval page ---------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body>
<main>
<h1>{title}</h1>
{content}
<p><small>Local PayPal emulator: no real money moves.</small></p>
</main>
</body>
</html>
"""


def _page(title: str, content: str, status: int = 200) -> web.Response:
    text = _PAGE.format(title=html.escape(title), content=content)
    return web.Response(text=text, content_type="text/html", status=status)


def _approval_content(order: Order, action_url: str) -> str:
    unit = order.unit
    description = f"<p>{html.escape(str(unit['description']))}</p>" if unit.get("description") else ""
    amount = f"{_fmt(order.total)} {order.currency}"
    url = html.escape(action_url, quote=True)
    return (
        f"{description}<p>Total: <strong>{html.escape(amount)}</strong></p>\n"
        f'<form method="post" action="{url}"><button type="submit" name="action" value="approve">Approve</button></form>\n'
        f'<form method="post" action="{url}"><button type="submit" name="action" value="cancel">Cancel</button></form>'
    )


async def handle_approval_page(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    order = emulator.orders.get(request.query.get("token", ""))
    if order is None:
        return _page("Unknown order", "<p>This payment link is not valid.</p>", status=404)
    if order.status not in (order.awaiting_status, "APPROVED"):
        return _page("Order closed", f"<p>This order is {html.escape(order.status)}.</p>", status=409)
    content = _approval_content(order, emulator.approval_link(order, _base(request)))
    return _page(f"Pay {order.brand_name} with PayPal", content)


async def handle_approval_action(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    form = await request.post()
    order_id = request.query.get("token") or str(form.get("token", ""))
    action = form.get("action")
    order = emulator.orders.get(order_id)
    if order is None:
        return _page("Unknown order", "<p>This payment link is not valid.</p>", status=404)
    if action == "cancel":
        if not order.cancel_url:
            return _page("Payment cancelled", "<p>You can close this window.</p>")
        raise web.HTTPFound(_with_query(order.cancel_url, {"token": order.id}))
    if action != "approve":
        return _page("Bad request", "<p>Choose Approve or Cancel.</p>", status=400)
    try:
        emulator.approve(order.id, _base(request))
    except ControlError as exc:
        return _page("Order closed", f"<p>{html.escape(str(exc))}</p>", status=exc.status)
    if not order.return_url:
        return _page("Payment approved", "<p>You can close this window.</p>")
    raise web.HTTPFound(_with_query(order.return_url, {"token": order.id, "PayerID": order.payer_id or ""}))


# ---- control endpoints (tests and local demos only) --------------------------------------------------------


async def _control_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ControlError(400, "body must be JSON") from None
    if not isinstance(body, dict | list):
        raise ControlError(400, "body must be a JSON object")
    return body  # type: ignore[return-value]


@web.middleware
async def _control_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)


async def handle_add_faults(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    body = await _control_body(request)
    specs = body if isinstance(body, list) else [body]
    added = [emulator.add_fault(spec).as_dict() for spec in specs]
    return web.json_response({"added": added, "faults": emulator.state()["faults"]}, status=201)


async def handle_clear_faults(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    for queue in emulator.faults.values():
        queue.clear()
    return web.json_response({"faults": {}})


async def handle_state(request: web.Request) -> web.StreamResponse:
    return web.json_response(_emulator(request).state())


async def handle_webhooks(request: web.Request) -> web.StreamResponse:
    return web.json_response({"webhook_url": _emulator(request).webhook_url, "sent": _emulator(request).deliveries()})


async def handle_webhook_url(request: web.Request) -> web.StreamResponse:
    body = await _control_body(request)
    url = body.get("url") if isinstance(body, dict) else None
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ControlError(400, "url must be an http(s) URL or null")
    _emulator(request).webhook_url = url
    return web.json_response({"webhook_url": url})


def _required(body: Any, key: str) -> str:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"{key} is required")
    return value


async def handle_control_approve(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    body = await _control_body(request)
    order = emulator.approve(_required(body, "order_id"), _base(request), payer_id=body.get("payer_id"))
    redirect = (
        _with_query(order.return_url, {"token": order.id, "PayerID": order.payer_id or ""})
        if order.return_url
        else None
    )
    return web.json_response(
        {"order_id": order.id, "status": order.status, "payer_id": order.payer_id, "redirect_url": redirect}
    )


async def handle_control_refund(request: web.Request) -> web.StreamResponse:
    """A refund made by the merchant in PayPal's dashboard: no API idempotency key, still a webhook."""
    emulator = _emulator(request)
    body = await _control_body(request)
    capture_id = _required(body, "capture_id")
    amount = body.get("amount")
    payload: dict[str, Any] = {}
    if amount is not None:
        currency = emulator.captures[capture_id].currency if capture_id in emulator.captures else "USD"
        payload["amount"] = amount if isinstance(amount, dict) else {"currency_code": currency, "value": str(amount)}
    try:
        status, refund = emulator.refund_capture(capture_id, payload, _base(request))
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    return web.json_response(refund, status=status)


async def handle_complete_capture(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    body = await _control_body(request)
    capture = emulator.settle_pending(_required(body, "capture_id"), deny=False, base=_base(request))
    return web.json_response(emulator.capture_view(capture, _base(request)))


async def handle_deny_capture(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    body = await _control_body(request)
    capture = emulator.settle_pending(_required(body, "capture_id"), deny=True, base=_base(request))
    return web.json_response(emulator.capture_view(capture, _base(request)))


async def handle_expire_tokens(request: web.Request) -> web.StreamResponse:
    emulator = _emulator(request)
    expired = len(emulator.tokens)
    emulator.tokens.clear()
    return web.json_response({"expired": expired})


async def handle_reset(request: web.Request) -> web.StreamResponse:
    _emulator(request).reset()
    return web.json_response({"reset": True})


# ---- assembly --------------------------------------------------------------------------------------------


def create_paypal_app(
    *,
    webhook_url: str | None = None,
    client_id: str = "local-client",
    client_secret: str = "local-secret",
    public_base: str | None = None,
    webhook_id: str | None = None,
    block_duplicate_invoice_ids: bool = True,
) -> web.Application:
    """Build the emulator as an aiohttp application, meant to be mounted with `add_subapp("/paypal", ...)`."""
    app = web.Application(middlewares=[_control_errors])
    app[EMULATOR_KEY] = PayPalEmulator(
        webhook_url=webhook_url,
        client_id=client_id,
        client_secret=client_secret,
        public_base=public_base,
        webhook_id=webhook_id,
        block_duplicate_invoice_ids=block_duplicate_invoice_ids,
    )
    app.on_cleanup.append(app[EMULATOR_KEY].close)
    router = app.router
    router.add_post(_TOKEN_PATH, handle_token, name=_TOKEN_ROUTE)
    router.add_post("/v2/checkout/orders", handle_create_order)
    router.add_get("/v2/checkout/orders/{order_id}", handle_get_order)
    router.add_post("/v2/checkout/orders/{order_id}/capture", handle_capture_order)
    router.add_get("/v2/payments/captures/{capture_id}", handle_get_capture)
    router.add_post("/v2/payments/captures/{capture_id}/refund", handle_refund)
    router.add_get("/v2/payments/refunds/{refund_id}", handle_get_refund)
    router.add_post("/v1/notifications/verify-webhook-signature", handle_verify)
    router.add_get("/checkoutnow", handle_approval_page)
    router.add_post("/checkoutnow", handle_approval_action)
    router.add_post("/_control/faults", handle_add_faults)
    router.add_delete("/_control/faults", handle_clear_faults)
    router.add_get("/_control/state", handle_state)
    router.add_get("/_control/webhooks", handle_webhooks)
    router.add_post("/_control/webhook_url", handle_webhook_url)
    router.add_post("/_control/approve", handle_control_approve)
    router.add_post("/_control/refund", handle_control_refund)
    router.add_post("/_control/complete_capture", handle_complete_capture)
    router.add_post("/_control/deny_capture", handle_deny_capture)
    router.add_post("/_control/expire_tokens", handle_expire_tokens)
    router.add_post("/_control/reset", handle_reset)
    return app


async def start_standalone(host: str = "127.0.0.1", port: int = 0, **kw: Any) -> tuple[web.AppRunner, str]:
    """Serve the emulator under /paypal on its own server; returns the runner (call `cleanup()`) and base URL."""
    root = web.Application()
    root.add_subapp(MOUNT_PREFIX, create_paypal_app(**kw))
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    shown_host = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown_host}:{bound_port}{MOUNT_PREFIX}"


def emulator_of(app: web.Application) -> PayPalEmulator:
    """The emulator behind an app from `create_paypal_app` (for in-process tests)."""
    return app[EMULATOR_KEY]


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the local PayPal emulator under /paypal.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--webhook-url", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    async def serve() -> None:
        runner, base = await start_standalone(args.host, args.port, webhook_url=args.webhook_url)
        log.info("PayPal emulator ready at %s", base)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
