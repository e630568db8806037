"""The page survives a dropped WebSocket (banner, backoff, re-sync) and an expired access token."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from tests.browser import helpers
from tests.browser.helpers import ACK_TIMEOUT_MS, LIVE_TIMEOUT_MS, seat

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect


class SocketCutter:
    """Routes the page's room WebSocket through Playwright so the test can cut it and refuse reconnects."""

    def __init__(self, page):
        if not hasattr(page, "route_web_socket"):
            pytest.skip("needs playwright>=1.48 (Page.route_web_socket)")
        self.refusing = False
        self.routes = []
        page.route_web_socket(re.compile(r"/ws(\?|$)"), self._handle)

    def _handle(self, route) -> None:
        if self.refusing:
            route.close()
            return
        route.connect_to_server()
        self.routes.append(route)

    def cut(self) -> None:
        self.refusing = True
        for route in self.routes:
            route.close()
        self.routes.clear()


@pytest.mark.browser
def test_lost_connection_shows_a_banner_then_reconnects_and_resyncs(new_page, base_url, catalog, artifacts_dir):
    showtime = catalog[min(5, len(catalog) - 1)]
    alice, bob = new_page(), new_page()
    cutter = SocketCutter(alice)
    helpers.ui_login(alice, helpers.register_user(base_url, "flaky"))
    helpers.ui_login(bob, helpers.register_user(base_url, "steady"))
    helpers.open_showtime(alice, showtime)
    helpers.open_showtime(bob, showtime)

    cutter.cut()
    banner = alice.locator("#conn-banner")
    expect(banner).to_be_visible(timeout=ACK_TIMEOUT_MS)
    expect(banner).to_contain_text("Live connection lost")
    expect(alice.locator("#live-status")).not_to_have_attribute("data-state", "open")
    alice.screenshot(path=str(artifacts_dir / "seat-map-reconnecting.png"))

    # While Alice is offline, Bob takes a seat; she must see it once she is back.
    [ticket_id] = helpers.available_seats(bob, 1)
    helpers.hold_seats(bob, [ticket_id])
    expect(seat(alice, ticket_id)).to_have_attribute("data-status", "available")

    cutter.refusing = False
    alice.get_by_role("button", name="Reconnect now").click()
    expect(alice.locator("#live-status")).to_have_attribute("data-state", "open", timeout=20_000)
    expect(seat(alice, ticket_id)).to_have_attribute("data-status", "held", timeout=ACK_TIMEOUT_MS)
    expect(banner).to_contain_text("restored")

    # And live updates flow again.
    seat(bob, ticket_id).click()
    expect(seat(bob, ticket_id)).to_have_attribute("data-status", "available", timeout=ACK_TIMEOUT_MS)
    expect(seat(alice, ticket_id)).to_have_attribute("data-status", "available", timeout=LIVE_TIMEOUT_MS)


def _expired_copy(jwt: str) -> str:
    """The same token with `exp` in the past (its signature no longer matches: the server refuses it)."""
    header, payload, signature = jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = int(time.time()) - 60
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.browser
def test_expired_access_token_is_refreshed_before_rest_and_websocket_calls(new_page, base_url, catalog):
    page = new_page()
    helpers.ui_login(page, helpers.register_user(base_url, "sleepy"))
    stored = json.loads(page.evaluate("sessionStorage.getItem('tickets.session')"))
    stale = _expired_copy(stored["access"])
    page.evaluate(
        "([s]) => sessionStorage.setItem('tickets.session', s)",
        [json.dumps({**stored, "access": stale})],
    )
    page.reload()

    page.goto("/#/orders")
    expect(page.locator(".list-status")).to_have_text("You have no orders yet.")
    helpers.open_showtime(page, catalog[0])  # the WebSocket handshake needs a valid access token
    refreshed = json.loads(page.evaluate("sessionStorage.getItem('tickets.session')"))["access"]
    assert refreshed != stale
