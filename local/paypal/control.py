"""`/_control/` endpoints, for tests and local demos only: faults, dashboard refunds, approving without a browser,
settling PENDING captures, disputes and chargebacks, the webhook URL, a state dump."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from local.paypal.model import ApiError, ControlError, with_query
from local.paypal.routing import base_of, emulator_of_request

log = logging.getLogger(__name__)


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
async def control_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)


async def handle_add_faults(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    specs = body if isinstance(body, list) else [body]
    added = [emulator.add_fault(spec).as_dict() for spec in specs]
    return web.json_response({"added": added, "faults": emulator.state()["faults"]}, status=201)


async def handle_clear_faults(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    for queue in emulator.faults.values():
        queue.clear()
    return web.json_response({"faults": {}})


async def handle_state(request: web.Request) -> web.StreamResponse:
    return web.json_response(emulator_of_request(request).state())


async def handle_webhooks(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        {"webhook_url": emulator_of_request(request).webhook_url, "sent": emulator_of_request(request).deliveries()}
    )


async def handle_webhook_url(request: web.Request) -> web.StreamResponse:
    body = await _control_body(request)
    url = body.get("url") if isinstance(body, dict) else None
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ControlError(400, "url must be an http(s) URL or null")
    emulator_of_request(request).webhook_url = url
    return web.json_response({"webhook_url": url})


def _required(body: Any, key: str) -> str:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"{key} is required")
    return value


async def handle_control_approve(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    order = emulator.approve(_required(body, "order_id"), base_of(request), payer_id=body.get("payer_id"))
    redirect = (
        with_query(order.return_url, {"token": order.id, "PayerID": order.payer_id or ""}) if order.return_url else None
    )
    return web.json_response(
        {"order_id": order.id, "status": order.status, "payer_id": order.payer_id, "redirect_url": redirect}
    )


async def handle_control_refund(request: web.Request) -> web.StreamResponse:
    """A refund made by the merchant in PayPal's dashboard: no API idempotency key, still a webhook."""
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    capture_id = _required(body, "capture_id")
    amount = body.get("amount")
    payload: dict[str, Any] = {}
    if amount is not None:
        currency = emulator.captures[capture_id].currency if capture_id in emulator.captures else "USD"
        payload["amount"] = amount if isinstance(amount, dict) else {"currency_code": currency, "value": str(amount)}
    try:
        status, refund = emulator.refund_capture(capture_id, payload, base_of(request))
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    return web.json_response(refund, status=status)


async def handle_complete_capture(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    capture = emulator.settle_pending(_required(body, "capture_id"), deny=False, base=base_of(request))
    return web.json_response(emulator.capture_view(capture, base_of(request)))


async def handle_deny_capture(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    capture = emulator.settle_pending(_required(body, "capture_id"), deny=True, base=base_of(request))
    return web.json_response(emulator.capture_view(capture, base_of(request)))


async def handle_dispute(request: web.Request) -> web.StreamResponse:
    """A buyer opens a case against a capture."""
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    dispute = emulator.open_dispute(
        _required(body, "capture_id"), base_of(request), reason=body.get("reason"), stage=body.get("stage")
    )
    return web.json_response(emulator.dispute_view(dispute, base_of(request)))


async def handle_dispute_update(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    dispute = emulator.update_dispute(_required(body, "dispute_id"), _required(body, "status"), base_of(request))
    return web.json_response(emulator.dispute_view(dispute, base_of(request)))


async def handle_resolve_dispute(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    dispute = emulator.resolve_dispute(_required(body, "dispute_id"), _required(body, "outcome"), base_of(request))
    return web.json_response(emulator.dispute_view(dispute, base_of(request)))


async def handle_reverse(request: web.Request) -> web.StreamResponse:
    """A chargeback, with or without a dispute before it."""
    emulator = emulator_of_request(request)
    body = await _control_body(request)
    capture = emulator.reverse_capture(_required(body, "capture_id"), base_of(request))
    return web.json_response(emulator.capture_view(capture, base_of(request)))


async def handle_expire_tokens(request: web.Request) -> web.StreamResponse:
    emulator = emulator_of_request(request)
    expired = len(emulator.tokens)
    emulator.tokens.clear()
    return web.json_response({"expired": expired})


async def handle_reset(request: web.Request) -> web.StreamResponse:
    emulator_of_request(request).reset()
    return web.json_response({"reset": True})
