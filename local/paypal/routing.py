"""What every handler of the emulator needs: the emulator behind the app and the base URL links are built on."""

from __future__ import annotations

import logging

from aiohttp import web

from local.paypal.ledger import PayPalEmulator
from local.paypal.model import TOKEN_PATH, TOKEN_ROUTE

log = logging.getLogger(__name__)


# ---- HTTP layer ------------------------------------------------------------------------------------------

EMULATOR_KEY = web.AppKey("paypal_emulator", PayPalEmulator)


def emulator_of_request(request: web.Request) -> PayPalEmulator:
    return request.app[EMULATOR_KEY]


def base_of(request: web.Request) -> str:
    """Origin of this request plus wherever the emulator is mounted (found through its own named route)."""
    emulator = emulator_of_request(request)
    if emulator.public_base:
        return emulator.public_base
    token_path = str(request.app.router[TOKEN_ROUTE].url_for())
    prefix = token_path[: -len(TOKEN_PATH)]
    return f"{request.url.origin()}{prefix}"
