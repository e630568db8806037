"""PayPal-shaped webhook events: made and signed when the state changes, delivered in the background with
retries, and recognised again by verify-webhook-signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from local.paypal.model import (
    AUTH_ALGO,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_RETRY_DELAYS,
    Transmission,
    hateoas_link,
    new_id,
    now_iso,
)

log = logging.getLogger(__name__)


class Webhooks:
    """Mixed into PayPalEmulator: the events it emits and the signatures it verifies.

    `deliver(transmission_id, transmission, body)` sends an event (a WebhookSender's `send`); None records events
    without sending them.
    """

    webhook_url: str | None
    webhook_id: str | None
    signing_key: bytes
    verifications: dict[str, int]
    transmissions: dict[str, Transmission]
    deliver: Callable[[str, Transmission, bytes], None] | None

    def changed(self) -> None:
        raise NotImplementedError

    # -- webhooks --------------------------------------------------------------------------------------

    def emit(self, event_type: str, resource: dict[str, Any], base: str) -> None:
        """Record a PayPal event, sign it, and deliver it in the background (never blocking the answer)."""
        event_id = f"WH-{new_id()}-{new_id()}"
        event = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": now_iso(),
            "resource_type": RESOURCE_TYPES[event_type],
            "resource_version": _resource_version(event_type),
            "event_type": event_type,
            "summary": _summary(event_type, resource),
            "resource": resource,
            "links": [
                hateoas_link(f"{base}/v1/notifications/webhooks-events/{event_id}", "self"),
                hateoas_link(f"{base}/v1/notifications/webhooks-events/{event_id}/resend", "resend", "POST"),
            ],
        }
        body = json.dumps(event).encode()
        transmission_id = str(uuid.uuid4())
        sent_at = now_iso()
        signed = f"{transmission_id}|{sent_at}|{self.webhook_id or ''}|{zlib.crc32(body)}".encode()
        transmission = Transmission(
            # hex digits only: the spec pattern wants a word character first (base64 may start with +)
            signature=hmac.new(self.signing_key, signed, hashlib.sha256).hexdigest(),
            time=sent_at,
            cert_url=f"{base}/v1/notifications/certs/CERT-LOCAL-EMULATOR",
            event=event,
        )
        self.transmissions[transmission_id] = transmission
        if self.webhook_url and self.deliver is not None:
            self.deliver(transmission_id, transmission, body)

    def verify(self, body: Any) -> dict[str, str]:
        """SUCCESS only for an event this emulator signed and sent, unchanged. Raises VerificationInputError."""
        required = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id")
        missing = [key for key in (*required, "webhook_event") if not isinstance(body, dict) or not body.get(key)]
        if missing:
            self.verifications["INVALID"] += 1
            raise VerificationInputError(missing)
        sent = self.transmissions.get(str(body["transmission_id"]))
        genuine = (
            sent is not None
            and hmac.compare_digest(str(body["transmission_sig"]), sent.signature)
            and body["transmission_time"] == sent.time
            and body["cert_url"] == sent.cert_url
            and body["auth_algo"] == AUTH_ALGO
            and body["webhook_event"] == sent.event
            and (self.webhook_id is None or body["webhook_id"] == self.webhook_id)
        )
        outcome = "SUCCESS" if genuine else "FAILURE"
        self.verifications[outcome] += 1
        return {"verification_status": outcome}

    def deliveries(self) -> list[dict[str, Any]]:
        return [
            {
                "transmission_id": tid,
                "event_id": t.event["id"],
                "event_type": t.event["event_type"],
                "resource_id": resource_id_of(t.event["resource"]),
                "delivered": t.delivered,
                "attempts": t.attempts,
                "last_status": t.last_status,
                # what went over the wire, as someone who captured it could replay it
                "headers": t.headers(tid),
                "body": json.dumps(t.event),
            }
            for tid, t in self.transmissions.items()
        ]


class VerificationInputError(Exception):
    """verify-webhook-signature got an incomplete body (PayPal answers 400 VALIDATION_ERROR)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


RESOURCE_TYPES = {
    "CHECKOUT.ORDER.APPROVED": "checkout-order",
    "PAYMENT.CAPTURE.COMPLETED": "capture",
    "PAYMENT.CAPTURE.PENDING": "capture",
    "PAYMENT.CAPTURE.DENIED": "capture",
    "PAYMENT.CAPTURE.REFUNDED": "refund",
    "PAYMENT.CAPTURE.REVERSED": "capture",
    "CUSTOMER.DISPUTE.CREATED": "dispute",
    "CUSTOMER.DISPUTE.UPDATED": "dispute",
    "CUSTOMER.DISPUTE.RESOLVED": "dispute",
}
_DISPUTE_SUMMARIES = {
    "CUSTOMER.DISPUTE.CREATED": "A new dispute opened with Case # {}",
    "CUSTOMER.DISPUTE.UPDATED": "A dispute was updated with Case # {}",
    "CUSTOMER.DISPUTE.RESOLVED": "A dispute was resolved with Case # {}",
}


def resource_id_of(resource: dict[str, Any]) -> Any:
    """The id of an event's resource: disputes (Disputes API v1) name theirs `dispute_id`."""
    return resource.get("id", resource.get("dispute_id"))


def _resource_version(event_type: str) -> str:
    # Disputes come from a v1 API; orders, captures and refunds from v2 ones.
    return "1.0" if RESOURCE_TYPES[event_type] == "dispute" else "2.0"


def _summary(event_type: str, resource: dict[str, Any]) -> str:
    if event_type == "CHECKOUT.ORDER.APPROVED":
        return "An order has been approved by buyer"
    if event_type in _DISPUTE_SUMMARIES:
        return _DISPUTE_SUMMARIES[event_type].format(resource.get("dispute_id", ""))
    amount = resource.get("amount", {})
    money = f"{amount.get('currency_code', '')} {amount.get('value', '')}"
    return {
        "PAYMENT.CAPTURE.COMPLETED": f"Payment completed for {money}",
        "PAYMENT.CAPTURE.PENDING": f"Payment pending for {money}",
        "PAYMENT.CAPTURE.DENIED": f"Payment denied for {money}",
        "PAYMENT.CAPTURE.REFUNDED": f"A {money} capture payment was refunded",
        "PAYMENT.CAPTURE.REVERSED": f"A {money} capture payment was reversed",
    }[event_type]


class WebhookSender:
    """Delivers events in the background, never blocking the answer that caused them: up to WEBHOOK_ATTEMPTS
    tries with the delays PayPal would leave between them (shortened), to the emulator's current webhook URL."""

    def __init__(self, emulator: Any) -> None:
        self._emulator = emulator
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    def send(self, transmission_id: str, transmission: Transmission, body: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(transmission_id, transmission, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, transmission_id: str, transmission: Transmission, body: bytes) -> None:
        headers = transmission.headers(transmission_id)
        for attempt in range(WEBHOOK_ATTEMPTS):
            url = self._emulator.webhook_url
            if not url:
                return
            transmission.attempts += 1
            try:
                session = self._session()
                async with session.post(url, data=body, headers=headers) as response:
                    transmission.last_status = response.status
                    if response.status < 300:
                        transmission.delivered = True
                        self._emulator.changed()
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("webhook delivery to %s failed: %s", url, type(exc).__name__)
            if attempt < len(WEBHOOK_RETRY_DELAYS):
                await asyncio.sleep(WEBHOOK_RETRY_DELAYS[attempt])
        log.warning(
            "webhook %s (%s) not delivered after %d attempts",
            transmission.event["id"],
            transmission.event["event_type"],
            WEBHOOK_ATTEMPTS,
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
        """Cancel deliveries in flight and close the HTTP session (an aiohttp on_cleanup hook)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.close()
