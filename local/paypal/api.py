"""The HTTP handlers of the PayPal REST API the emulator serves: OAuth2 token, Orders v2, Payments v2,
Disputes v1 (get only), verify-webhook-signature; with the transport faults (500, slow, lost response)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from local.paypal.ledger import PayPalEmulator
from local.paypal.model import TRANSPORT_FAULTS, ApiError, Fault, debug_id
from local.paypal.routing import base_of, emulator_of_request
from local.paypal.webhooks import VerificationInputError

log = logging.getLogger(__name__)


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
    emulator = emulator_of_request(request)
    fault = emulator.take_fault("token", TRANSPORT_FAULTS)
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
    emulator = emulator_of_request(request)
    fault: Fault | None = None
    try:
        emulator.authenticate(request.headers.get("Authorization"))
        fault = emulator.take_fault(op, TRANSPORT_FAULTS)
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
    base, prefer, request_id = base_of(request), request.headers.get("Prefer", ""), _request_id(request)

    def action(emulator: PayPalEmulator, body: Any) -> tuple[int, dict[str, Any]]:
        return emulator.idempotent("create", request_id, lambda: emulator.create_order(body, base, prefer))

    return await _run(request, "create", action, ApiError(400, "MALFORMED_REQUEST_JSON"))


async def handle_get_order(request: web.Request) -> web.StreamResponse:
    base, order_id = base_of(request), request.match_info["order_id"]

    def action(emulator: PayPalEmulator, _body: Any) -> tuple[int, dict[str, Any]]:
        return 200, emulator.order_view(emulator.get_order(order_id), base)

    return await _run(request, "get_order", action)


async def handle_capture_order(request: web.Request) -> web.StreamResponse:
    base, order_id, request_id = base_of(request), request.match_info["order_id"], _request_id(request)

    def action(emulator: PayPalEmulator, body: Any) -> tuple[int, dict[str, Any]]:
        return emulator.idempotent("capture", request_id, lambda: emulator.capture_order(order_id, body, base))

    return await _run(request, "capture", action, ApiError(400, "MALFORMED_REQUEST_JSON"))


async def handle_refund(request: web.Request) -> web.StreamResponse:
    base, capture_id, request_id = base_of(request), request.match_info["capture_id"], _request_id(request)

    def action(emulator: PayPalEmulator, body: Any) -> tuple[int, dict[str, Any]]:
        return emulator.idempotent("refund", request_id, lambda: emulator.refund_capture(capture_id, body, base))

    malformed = ApiError(400, "INVALID_PARAMETER_SYNTAX", api="payments", field="/")
    return await _run(request, "refund", action, malformed)


async def handle_get_capture(request: web.Request) -> web.StreamResponse:
    base, capture_id = base_of(request), request.match_info["capture_id"]

    def action(emulator: PayPalEmulator, _body: Any) -> tuple[int, dict[str, Any]]:
        return 200, emulator.capture_view(emulator.get_capture(capture_id), base)

    return await _run(request, "get_capture", action)


async def handle_get_refund(request: web.Request) -> web.StreamResponse:
    base, refund_id = base_of(request), request.match_info["refund_id"]

    def action(emulator: PayPalEmulator, _body: Any) -> tuple[int, dict[str, Any]]:
        return 200, emulator.refund_view(emulator.get_refund(refund_id), base)

    return await _run(request, "get_refund", action)


async def handle_get_dispute(request: web.Request) -> web.StreamResponse:
    base, dispute_id = base_of(request), request.match_info["dispute_id"]

    def action(emulator: PayPalEmulator, _body: Any) -> tuple[int, dict[str, Any]]:
        return 200, emulator.dispute_view(emulator.get_dispute(dispute_id), base)

    return await _run(request, "get_dispute", action)


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
        "debug_id": debug_id(),
        "information_link": "https://developer.paypal.com/docs/api/webhooks/v1/#error-VALIDATION_ERROR",
        "details": [{"field": key, "location": "body", "issue": "Required field cannot be blank"} for key in missing],
        "links": [],
    }
