"""PayPal's objects as the emulator keeps them, its errors, and the small rules every part shares: ids, money,
timestamps, the request shapes our client sends."""

from __future__ import annotations

import logging
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

log = logging.getLogger(__name__)


MOUNT_PREFIX = "/paypal"
TOKEN_LIFETIME_SECONDS = 32400  # what PayPal's sandbox hands out (9 h)
TOKEN_ROUTE = "paypal-oauth2-token"
TOKEN_PATH = "/v1/oauth2/token"
CENT = Decimal("0.01")
_ID_ALPHABET = string.ascii_uppercase + string.digits
# PayPal account ids (payer / merchant) are 13 characters of a Base32 variant without 0, 1, I and O.
ACCOUNT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
WEBHOOK_ATTEMPTS = 3
WEBHOOK_RETRY_DELAYS = (0.3, 1.0)
AUTH_ALGO = "SHA256withRSA"
MERCHANT = {"email_address": "merchant@example.com", "merchant_id": "L7CALMERCHANT"}
BUYER_NAME = {"given_name": "Local", "surname": "Buyer"}
BUYER_EMAIL = "buyer@example.com"

# name/message per status, exactly as in the specs' error_4xx / error_500 schemas.
ERROR_NAMES = {
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
DESCRIPTIONS = {
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
    # PayPal's wording says "partial", but it refuses any refund while a case is open.
    "TRANSACTION_DISPUTED": (
        "Partial refunds cannot be offered at this time because there is an open case on this transaction. "
        "Visit the PayPal Resolution Center to review this case."
    ),
}

OPS = ("token", "create", "get_order", "capture", "refund", "get_capture", "get_refund", "get_dispute", "verify")
FAULT_KINDS = ("declined", "error500", "slow", "lost_response", "pending", "refund_time_limit")
# These change a capture's outcome, so they wait in the queue until a capture reaches that decision.
OUTCOME_FAULTS = ("declined", "pending")
# The same for a refund: PayPal refuses it as past the refund window (180 days for standard payments).
REFUND_OUTCOME_FAULTS = ("refund_time_limit",)
TRANSPORT_FAULTS = ("error500", "slow", "lost_response")


class ApiError(Exception):
    """A PayPal-shaped error answer."""

    def __init__(
        self,
        status: int,
        issue: str | None = None,
        *,
        api: str = "orders",
        version: str = "v2",
        field: str | None = None,
        description: str | None = None,
        extra_links: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(issue or str(status))
        self.status = status
        self.issue = issue
        self.api = api
        self.version = version
        self.field = field
        self.description = description
        self.extra_links = extra_links or []

    def body(self) -> dict[str, Any]:
        name, message = ERROR_NAMES[self.status]
        anchor = self.issue or name
        body: dict[str, Any] = {"name": name, "message": message, "debug_id": debug_id()}
        if self.issue:
            detail = {"issue": self.issue, "description": self.description or DESCRIPTIONS.get(self.issue, "")}
            if self.field:
                detail.update(field=self.field, location="body")
            body["details"] = [detail]
        info = {
            "href": f"https://developer.paypal.com/docs/api/{self.api}/{self.version}/#error-{anchor}",
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
class Dispute:
    """A buyer's case against a capture (Disputes API v1); `amount` is what was still unrefunded when it opened."""

    id: str
    capture_id: str
    reason: str
    stage: str
    status: str
    amount: Decimal
    currency: str
    create_time: str
    update_time: str
    outcome: str | None = None


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

    def headers(self, transmission_id: str) -> dict[str, str]:
        """The signature headers PayPal sends with a delivery."""
        return {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": self.time,
            "PAYPAL-TRANSMISSION-SIG": self.signature,
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": AUTH_ALGO,
        }


# ---- small helpers ---------------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id(length: int = 17, alphabet: str = _ID_ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def debug_id() -> str:
    return secrets.token_hex(7)[:13]


def format_amount(amount: Decimal) -> str:
    return f"{amount:.2f}"


def money_of(amount: Decimal, currency: str) -> dict[str, str]:
    return {"currency_code": currency, "value": format_amount(amount)}


def hateoas_link(href: str, rel: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "rel": rel, "method": method}


def with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def paypal_fee(gross: Decimal) -> Decimal:
    fee = (gross * Decimal("0.0349") + Decimal("0.49")).quantize(CENT, rounding=ROUND_HALF_UP)
    return min(fee, gross)


_VALUE_RE = re.compile(r"^-?\d+(\.\d+)?$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_QUANTITY_RE = re.compile(r"^[1-9][0-9]{0,9}$")


def parse_money(value: Any, where: str, api: str = "orders") -> tuple[str, Decimal]:
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


_UNIT = "/purchase_units/@reference_id=='default'"


def _check_length(unit: dict[str, Any], key: str, limit: int) -> None:
    value = unit.get(key)
    if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= limit):
        raise ApiError(400, "INVALID_STRING_LENGTH", field=f"{_UNIT}/{key}")


# The item fields PayPal's spec bounds (components.schemas.item), and the categories it knows.
_ITEM_TEXT = (("name", 1, 127), ("description", 0, 127), ("sku", 0, 127))
_ITEM_CATEGORIES = frozenset({"DIGITAL_GOODS", "PHYSICAL_GOODS", "DONATION"})


def _check_item(item: dict[str, Any], where: str) -> None:
    for key, shortest, longest in _ITEM_TEXT:
        value = item.get(key)
        if value is not None and (not isinstance(value, str) or not shortest <= len(value) <= longest):
            raise ApiError(400, "INVALID_STRING_LENGTH", field=f"{where}/{key}")
    if "category" in item and item["category"] not in _ITEM_CATEGORIES:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", field=f"{where}/category")


def _items_total(items: Any, currency: str) -> Decimal:
    if not isinstance(items, list):
        raise ApiError(400, "INVALID_PARAMETER_SYNTAX", field="/purchase_units/0/items")
    total = Decimal(0)
    for index, item in enumerate(items):
        where = f"/purchase_units/0/items/{index}"
        if not isinstance(item, dict) or not item.get("name") or "unit_amount" not in item:
            raise ApiError(400, "MISSING_REQUIRED_PARAMETER", field=where)
        _check_item(item, where)
        quantity = item.get("quantity")
        if not isinstance(quantity, str) or not _QUANTITY_RE.match(quantity):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", field=f"{where}/quantity")
        item_currency, unit_amount = parse_money(item["unit_amount"], f"{where}/unit_amount")
        if item_currency != currency:
            raise ApiError(422, "ITEM_TOTAL_MISMATCH", field=f"{where}/unit_amount/currency_code")
        total += unit_amount * int(quantity)
    return total


def check_breakdown(unit: dict[str, Any], currency: str, total: Decimal) -> None:
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
            part_currency, value = parse_money(breakdown[key], f"/purchase_units/0/amount/breakdown/{key}")
            if part_currency != currency:
                raise ApiError(422, "AMOUNT_MISMATCH", field="/purchase_units/0/amount")
            parts[key] = value
    if items and _items_total(items, currency) != parts.get("item_total"):
        raise ApiError(422, "ITEM_TOTAL_MISMATCH", field="/purchase_units/0/amount/breakdown/item_total")
    positive = sum(parts.get(k, Decimal(0)) for k in ("item_total", "tax_total", "shipping", "handling", "insurance"))
    negative = parts.get("shipping_discount", Decimal(0)) + parts.get("discount", Decimal(0))
    if positive - negative != total:
        raise ApiError(422, "AMOUNT_MISMATCH", field="/purchase_units/0/amount/value")


def experience_of(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
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


def parse_unit(body: dict[str, Any]) -> dict[str, Any]:
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
