"""The emulator assembled as an aiohttp application (mounted under /paypal by the local gateway), or served on
its own (`start_standalone`, for tests; `python -m local.paypal`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from local.paypal.api import (
    handle_capture_order,
    handle_create_order,
    handle_get_capture,
    handle_get_dispute,
    handle_get_order,
    handle_get_refund,
    handle_refund,
    handle_token,
    handle_verify,
)
from local.paypal.approval import handle_approval_action, handle_approval_page
from local.paypal.control import (
    control_errors,
    handle_add_faults,
    handle_clear_faults,
    handle_complete_capture,
    handle_control_approve,
    handle_control_refund,
    handle_deny_capture,
    handle_dispute,
    handle_dispute_update,
    handle_expire_tokens,
    handle_reset,
    handle_resolve_dispute,
    handle_reverse,
    handle_state,
    handle_webhook_url,
    handle_webhooks,
)
from local.paypal.ledger import PayPalEmulator
from local.paypal.model import MOUNT_PREFIX, TOKEN_PATH, TOKEN_ROUTE
from local.paypal.routing import EMULATOR_KEY
from local.paypal.store import Store
from local.paypal.webhooks import WebhookSender

SENDER_KEY = web.AppKey("paypal_webhook_sender", WebhookSender)

log = logging.getLogger(__name__)


def create_paypal_app(
    *,
    webhook_url: str | None = None,
    client_id: str = "local-client",
    client_secret: str = "local-secret",
    public_base: str | None = None,
    webhook_id: str | None = None,
    block_duplicate_invoice_ids: bool = True,
    state_path: Path | None = None,
) -> web.Application:
    """Build the emulator as an aiohttp application, meant to be mounted with `add_subapp("/paypal", ...)`.

    With `state_path`, the emulator's orders, captures, refunds and disputes are loaded from that file and kept there.
    Raises StateFileError for a file that cannot be read.
    """
    emulator = PayPalEmulator(
        webhook_url=webhook_url,
        client_id=client_id,
        client_secret=client_secret,
        public_base=public_base,
        webhook_id=webhook_id,
        block_duplicate_invoice_ids=block_duplicate_invoice_ids,
    )
    sender = WebhookSender(emulator)
    emulator.deliver = sender.send
    store = Store(emulator, state_path) if state_path is not None else None
    if store is not None:
        store.load()
        emulator.on_change = store.changed
    app = web.Application(middlewares=[control_errors, _saving_changes] if store else [control_errors])
    app[EMULATOR_KEY] = emulator
    app[SENDER_KEY] = sender  # a stopping stack cancels deliveries before it closes the server they post to
    app.on_cleanup.append(sender.close)
    if store is not None:
        app.on_cleanup.append(store.close)
    router = app.router
    router.add_post(TOKEN_PATH, handle_token, name=TOKEN_ROUTE)
    router.add_post("/v2/checkout/orders", handle_create_order)
    router.add_get("/v2/checkout/orders/{order_id}", handle_get_order)
    router.add_post("/v2/checkout/orders/{order_id}/capture", handle_capture_order)
    router.add_get("/v2/payments/captures/{capture_id}", handle_get_capture)
    router.add_post("/v2/payments/captures/{capture_id}/refund", handle_refund)
    router.add_get("/v2/payments/refunds/{refund_id}", handle_get_refund)
    router.add_get("/v1/customer/disputes/{dispute_id}", handle_get_dispute)
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
    router.add_post("/_control/dispute", handle_dispute)
    router.add_post("/_control/dispute_update", handle_dispute_update)
    router.add_post("/_control/resolve_dispute", handle_resolve_dispute)
    router.add_post("/_control/reverse", handle_reverse)
    router.add_post("/_control/expire_tokens", handle_expire_tokens)
    router.add_post("/_control/reset", handle_reset)
    return app


@web.middleware
async def _saving_changes(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every request but a read may change the emulator's state: save it (debounced) after each."""
    try:
        return await handler(request)
    finally:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            request.app[EMULATOR_KEY].changed()


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
