"""PayPal REST client for Orders v2 and Payments v2, over plain `requests` (no SDK).

What it adds over raw HTTP, and why:
* an OAuth2 client-credentials token cached per instance (one per Lambda container), refreshed once on a 401;
* retries with exponential backoff and jitter on timeouts, connection errors and 5xx, always with the SAME
  `PayPal-Request-Id`, so PayPal's idempotency turns a retried capture or refund into a replay, never a second
  charge or refund; 4xx answers are never retried (they would fail the same way);
* errors as `PayPalError` carrying PayPal's machine code (`details[].issue`) so callers branch on codes,
  never on message text.

Nothing here reads the environment or touches the network at import time.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    import requests

logger = Logger(child=True)

SANDBOX_BASE_URL = "https://api-m.sandbox.paypal.com"
LIVE_BASE_URL = "https://api-m.paypal.com"

# Refresh a little before PayPal's expiry so a token never dies between our check and PayPal's.
TOKEN_REFRESH_MARGIN_SECONDS = 60.0
# PayPal caps these purchase-unit strings at 127 characters; longer ones would fail the whole create.
_MAX_TEXT = 127
_CENT = Decimal("0.01")


def _transient_errors() -> tuple[type[Exception], ...]:
    """What a retry may cure. `requests` is imported with the first client, not with this module: the purchase
    worker imports this module and, for most batches, never calls PayPal (~30 ms of its cold start)."""
    import requests

    return (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


# Headers PayPal sends with a webhook, mapped to the verify-webhook-signature body fields.
_WEBHOOK_HEADER_FIELDS = {
    "auth_algo": "paypal-auth-algo",
    "cert_url": "paypal-cert-url",
    "transmission_id": "paypal-transmission-id",
    "transmission_sig": "paypal-transmission-sig",
    "transmission_time": "paypal-transmission-time",
}
_AUTH_ALGOS = frozenset({"SHA256withRSA"})
_MAX_HEADER = 2048


class Item(NamedTuple):
    """One line of what the buyer sees at PayPal and on the receipt (quantity 1)."""

    name: str
    amount: Decimal
    description: str | None = None


class PayPalError(Exception):
    """PayPal refused a call. Branch on `issue` (PayPal's `details[].issue`, else its error `name`)."""

    def __init__(
        self,
        status: int | None,
        name: str,
        issue: str,
        debug_id: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"PayPal {status or 'no response'}: {name}/{issue} (debug_id={debug_id})")
        self.status = status
        self.name = name
        self.issue = issue
        self.debug_id = debug_id
        self.details = details or []


class PayPalUnavailable(PayPalError):
    """PayPal could not be reached, timed out or answered 5xx on every attempt; the outcome is unknown."""


def base_url_for(mode: str, override: str | None = None) -> str:
    """Return the API base URL for `PAYPAL_MODE`; `override` (PAYPAL_API_BASE) wins. Raises ValueError."""
    if override:
        return override.rstrip("/")
    if mode == "sandbox":
        return SANDBOX_BASE_URL
    if mode == "live":
        return LIVE_BASE_URL
    if mode == "local":
        raise ValueError("PAYPAL_MODE=local needs PAYPAL_API_BASE (the local emulator's URL)")
    raise ValueError(f"unknown PayPal mode {mode!r}; expected sandbox, live or local")


def format_amount(amount: Decimal) -> str:
    """Format money the way PayPal wants it ("12.00"). Raises ValueError for sub-cent or non-Decimal amounts."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"amount must be a finite Decimal, got {amount!r}")
    cents = amount.quantize(_CENT)
    # Rounding money silently would charge or refund a different amount than the caller computed.
    if cents != amount:
        raise ValueError(f"amount {amount} has more than 2 decimals")
    return f"{cents:.2f}"


def approval_url(order: Mapping[str, Any]) -> str | None:
    """Where to send the buyer: `payer-action` (experience_context orders) or the legacy `approve` link."""
    for link in order.get("links") or ():
        if link.get("rel") in ("payer-action", "approve") and link.get("href"):
            return str(link["href"])
    return None


def first_capture(order: Mapping[str, Any]) -> dict[str, Any] | None:
    """`purchase_units[0].payments.captures[0]` of an order, or None when the order holds no capture."""
    units = order.get("purchase_units") or [{}]
    captures = ((units[0] or {}).get("payments") or {}).get("captures") or []
    return captures[0] if captures else None


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"currency_code": currency, "value": format_amount(amount)}


def _item(item: Item, currency: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": item.name[:_MAX_TEXT],
        "quantity": "1",
        "unit_amount": _money(item.amount, currency),
    }
    if item.description:
        body["description"] = item.description[:_MAX_TEXT]
    return body


def _error_from_response(response: requests.Response, error_cls: type[PayPalError] = PayPalError) -> PayPalError:
    """Build a PayPalError from any PayPal error body: v2 `{name, details[]}` or OAuth `{error}`."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    details = [d for d in body.get("details") or [] if isinstance(d, dict)]
    name = body.get("name") or body.get("error") or f"HTTP_{response.status_code}"
    issue = next((d["issue"] for d in details if d.get("issue")), name)
    debug_id = body.get("debug_id") or response.headers.get("PayPal-Debug-Id")
    return error_cls(response.status_code, name, issue, debug_id, details=details)


class PayPalClient:
    """Calls PayPal Orders v2 / Payments v2. Methods return PayPal's JSON as dicts.

    Every method raises PayPalError on a 4xx answer and PayPalUnavailable when PayPal stays unreachable.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (3.05, 10.0),
        max_attempts: int = 3,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        if session is None:
            import requests

            session = requests.Session()
        self._session = session
        self._transient = _transient_errors()
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0
        # Chalice local and threaded tests may share one client; one token fetch at a time is enough.
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:
        # Never let a secret reach a log line or a traceback through repr().
        return f"PayPalClient(base_url={self._base_url!r})"

    # ---- Orders v2 -------------------------------------------------------------------------------

    def create_order(
        self,
        *,
        request_id: str,
        reference_id: str,
        custom_id: str,
        invoice_id: str,
        description: str,
        currency: str,
        items: Iterable[Item | tuple[str, Decimal]],
        return_url: str,
        cancel_url: str,
        brand_name: str = "Tickets",
    ) -> dict[str, Any]:
        """Create an intent=CAPTURE order for `items` (one unit each). Raises PayPalError, PayPalUnavailable."""
        item_list = [Item(*item) for item in items]
        if not item_list:
            raise ValueError("an order needs at least one item")
        total = sum((item.amount for item in item_list), Decimal(0))
        unit = {
            "reference_id": reference_id,
            "custom_id": custom_id,
            "invoice_id": invoice_id,
            "description": description[:_MAX_TEXT],
            "amount": {**_money(total, currency), "breakdown": {"item_total": _money(total, currency)}},
            "items": [_item(item, currency) for item in item_list],
        }
        experience = {
            "brand_name": brand_name[:_MAX_TEXT],
            "return_url": return_url,
            "cancel_url": cancel_url,
            "user_action": "PAY_NOW",
            "shipping_preference": "NO_SHIPPING",
        }
        body = {
            "intent": "CAPTURE",
            "purchase_units": [unit],
            "payment_source": {"paypal": {"experience_context": experience}},
        }
        return self._call("create_order", "POST", "/v2/checkout/orders", body=body, request_id=request_id)

    def get_order(self, order_id: str) -> dict[str, Any]:
        """Read an order's current state. Raises PayPalError (404 RESOURCE_NOT_FOUND), PayPalUnavailable."""
        return self._call("get_order", "GET", f"/v2/checkout/orders/{_segment(order_id)}")

    def capture_order(self, order_id: str, *, request_id: str) -> dict[str, Any]:
        """Capture an approved order. Raises PayPalError (e.g. ORDER_NOT_APPROVED, INSTRUMENT_DECLINED,
        ORDER_ALREADY_CAPTURED), PayPalUnavailable (outcome unknown: retry with the same request_id)."""
        path = f"/v2/checkout/orders/{_segment(order_id)}/capture"
        return self._call("capture_order", "POST", path, body={}, request_id=request_id)

    # ---- Payments v2 -----------------------------------------------------------------------------

    def refund_capture(
        self,
        capture_id: str,
        *,
        request_id: str,
        amount: Decimal | None,
        currency: str | None,
        invoice_id: str | None = None,
        note_to_payer: str | None = None,
        custom_id: str | None = None,
    ) -> dict[str, Any]:
        """Refund `amount` of a capture, or what is left of it when `amount` is None.

        Raises ValueError (amount without currency), PayPalError (e.g. CAPTURE_FULLY_REFUNDED,
        REFUND_AMOUNT_EXCEEDED), PayPalUnavailable.
        """
        body: dict[str, Any] = {}
        if amount is not None:
            if not currency:
                raise ValueError("a partial refund needs its currency")
            body["amount"] = _money(amount, currency)
        optional = {"invoice_id": invoice_id, "note_to_payer": note_to_payer, "custom_id": custom_id}
        body.update({key: value for key, value in optional.items() if value})
        path = f"/v2/payments/captures/{_segment(capture_id)}/refund"
        return self._call("refund_capture", "POST", path, body=body, request_id=request_id)

    def get_refund(self, refund_id: str) -> dict[str, Any]:
        """Read a refund. Raises PayPalError (404 RESOURCE_NOT_FOUND), PayPalUnavailable."""
        return self._call("get_refund", "GET", f"/v2/payments/refunds/{_segment(refund_id)}")

    def get_capture(self, capture_id: str) -> dict[str, Any]:
        """Read a capture. Raises PayPalError (404 RESOURCE_NOT_FOUND), PayPalUnavailable."""
        return self._call("get_capture", "GET", f"/v2/payments/captures/{_segment(capture_id)}")

    def get_dispute(self, dispute_id: str) -> dict[str, Any]:
        """Read a dispute (Disputes API v1). Raises PayPalError (404 RESOURCE_NOT_FOUND), PayPalUnavailable."""
        return self._call("get_dispute", "GET", f"/v1/customer/disputes/{_segment(dispute_id)}")

    # ---- Webhooks --------------------------------------------------------------------------------

    def verify_webhook_signature(self, *, headers: Mapping[str, str], webhook_id: str, event: dict[str, Any]) -> bool:
        """Ask PayPal whether a received webhook is genuine (postback verification).

        Returns False when signature headers are missing or PayPal rejects the input (400).
        Raises PayPalError (other 4xx), PayPalUnavailable.
        """
        lowered = {key.lower(): value for key, value in headers.items()}
        body: dict[str, Any] = {field: lowered.get(header) for field, header in _WEBHOOK_HEADER_FIELDS.items()}
        problem = self._implausible_transmission(body)
        if problem:
            # Refused before any call: a forgery that cannot even look like PayPal's costs us nothing at PayPal.
            logger.warning("PayPal webhook refused unverified", extra={"event_id": event.get("id"), "why": problem})
            return False
        body.update(webhook_id=webhook_id, webhook_event=event)
        path = "/v1/notifications/verify-webhook-signature"
        try:
            result = self._call("verify_webhook", "POST", path, body=body, request_id=str(uuid.uuid4()))
        except PayPalUnavailable:
            raise
        except PayPalError as exc:
            if exc.status == 400:
                return False
            raise
        return result.get("verification_status") == "SUCCESS"

    def _implausible_transmission(self, fields: dict[str, Any]) -> str | None:
        """Why these signature headers cannot be PayPal's, or None. PayPal signs with SHA256withRSA and serves
        its certificates from paypal.com over https (the configured API origin too: the local emulator)."""
        if not all(isinstance(value, str) and value and len(value) <= _MAX_HEADER for value in fields.values()):
            return "signature headers missing"
        if fields["auth_algo"] not in _AUTH_ALGOS:
            return "unknown auth_algo"
        cert = urlsplit(fields["cert_url"])
        own = urlsplit(self._base_url)
        from_paypal = cert.scheme == "https" and (cert.hostname or "").endswith(".paypal.com")
        if not from_paypal and (cert.scheme, cert.netloc) != (own.scheme, own.netloc):
            return "certificate not served by PayPal"
        return None

    # ---- plumbing --------------------------------------------------------------------------------

    def _call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if method == "POST":
            if not request_id:
                raise ValueError(f"{op} needs a PayPal-Request-Id")
            headers.update({"PayPal-Request-Id": request_id, "Prefer": "return=representation"})
        response = self._authorized(op, method, path, headers, body)
        if response.status_code >= 400:
            raise self._logged(op, _error_from_response(response), request_id)
        return _json_body(response)

    def _authorized(
        self, op: str, method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None
    ) -> requests.Response:
        """Send with a bearer token; on a 401 fetch a fresh token and send once more."""
        response = self._send_with_retries(op, method, path, headers, body, self._access_token())
        if response.status_code == 401:
            logger.info("PayPal rejected the cached token; refreshing once", extra={"op": op})
            self._drop_token()
            response = self._send_with_retries(op, method, path, headers, body, self._access_token())
        return response

    def _send_with_retries(
        self,
        op: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any] | None,
        token: str,
    ) -> requests.Response:
        url = self._base_url + path
        all_headers = {**headers, "Authorization": f"Bearer {token}"}
        return self._retrying(
            op,
            lambda: self._session.request(method, url, headers=all_headers, json=body, timeout=self._timeout),
            headers.get("PayPal-Request-Id"),
        )

    def _retrying(self, op: str, send: Callable[[], requests.Response], request_id: str | None) -> requests.Response:
        """Run `send` until it gets a non-5xx answer; raise PayPalUnavailable when attempts run out."""
        for attempt in range(1, self._max_attempts + 1):
            failure: PayPalError
            try:
                response = send()
            except self._transient as exc:
                failure = PayPalUnavailable(None, type(exc).__name__, "NO_RESPONSE")
            else:
                if response.status_code < 500:
                    return response
                failure = _error_from_response(response, PayPalUnavailable)
            self._log_attempt(op, attempt, failure, request_id)
            if attempt < self._max_attempts:
                self._sleep(self._delay(attempt))
        raise failure

    def _delay(self, attempt: int) -> float:
        # "Equal jitter": half fixed, half random, so retries from many containers spread out.
        ceiling: float = self._backoff * (2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token is None or self._clock() >= self._token_expires_at:
                self._token, lifetime = self._fetch_token()
                self._token_expires_at = self._clock() + max(lifetime - TOKEN_REFRESH_MARGIN_SECONDS, 0.0)
            return self._token

    def _drop_token(self) -> None:
        with self._token_lock:
            self._token = None

    def _fetch_token(self) -> tuple[str, float]:
        url = f"{self._base_url}/v1/oauth2/token"
        response = self._retrying(
            "oauth_token",
            lambda: self._session.post(
                url,
                auth=(self._client_id, self._client_secret),
                data={"grant_type": "client_credentials"},
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            ),
            None,
        )
        if response.status_code >= 400:
            raise self._logged("oauth_token", _error_from_response(response), None)
        body = _json_body(response)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._logged("oauth_token", PayPalError(response.status_code, "INVALID_RESPONSE", "NO_TOKEN"), None)
        return token, float(body.get("expires_in") or 0)

    def _log_attempt(self, op: str, attempt: int, failure: PayPalError, request_id: str | None) -> None:
        logger.warning(
            "PayPal call failed, will retry" if attempt < self._max_attempts else "PayPal unavailable, giving up",
            extra={
                "op": op,
                "attempt": attempt,
                "status": failure.status,
                "issue": failure.issue,
                "debug_id": failure.debug_id,
                "paypal_request_id": request_id,
            },
        )

    @staticmethod
    def _logged(op: str, error: PayPalError, request_id: str | None) -> PayPalError:
        logger.warning(
            "PayPal refused the call",
            extra={
                "op": op,
                "status": error.status,
                "error_name": error.name,
                "issue": error.issue,
                "debug_id": error.debug_id,
                "paypal_request_id": request_id,
            },
        )
        return error


def _json_body(response: requests.Response) -> dict[str, Any]:
    """Parse a 2xx body; a success without JSON is PayPal misbehaving, not something to act on."""
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise PayPalError(response.status_code, "INVALID_RESPONSE", "INVALID_JSON") from None
    if not isinstance(body, dict):
        raise PayPalError(response.status_code, "INVALID_RESPONSE", "INVALID_JSON")
    return body


def _segment(resource_id: str) -> str:
    """Refuse ids that would change the URL path (they come from webhooks and query strings)."""
    if not resource_id or not resource_id.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"invalid PayPal resource id {resource_id!r}")
    return resource_id
