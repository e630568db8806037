"""The page survives a dropped WebSocket (banner, backoff, re-sync), answers that arrive out of order, and an
expired access token."""

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

    # Let connections through only while the page's own next try is seconds away, so that the reconnect
    # below is the button's (on a slow machine the scheduled one could otherwise win the race).
    expect(alice.locator("#conn-banner .conn-wait")).to_have_text(
        re.compile(r"Next try in ([4-9]|\d\d) s\."), timeout=20_000
    )
    cutter.refusing = False
    alice.get_by_role("button", name="Reconnect now").click()
    expect(alice.locator("#live-status")).to_have_attribute("data-state", "open", timeout=20_000)
    expect(seat(alice, ticket_id)).to_have_attribute("data-status", "held", timeout=ACK_TIMEOUT_MS)
    expect(banner).to_contain_text("restored")

    # And live updates flow again.
    seat(bob, ticket_id).click()
    expect(seat(bob, ticket_id)).to_have_attribute("data-status", "available", timeout=ACK_TIMEOUT_MS)
    expect(seat(alice, ticket_id)).to_have_attribute("data-status", "available", timeout=LIVE_TIMEOUT_MS)


class SnapshotHolder:
    """Routes the page's room WebSocket and holds back the server's `snapshot` answers until released;
    everything else passes (and is recorded)."""

    def __init__(self, page):
        if not hasattr(page, "route_web_socket"):
            pytest.skip("needs playwright>=1.48 (Page.route_web_socket)")
        self.holding = True
        self.held: list[dict] = []
        self.passed: list[dict] = []
        self.page_side = None
        page.route_web_socket(re.compile(r"/ws(\?|$)"), self._handle)

    def _handle(self, route) -> None:
        server = route.connect_to_server()
        self.page_side = route

        def from_server(message) -> None:
            parsed = json.loads(message)
            if self.holding and parsed.get("type") == "snapshot":
                self.held.append(parsed)
                return
            self.passed.append(parsed)
            route.send(message)

        server.on_message(from_server)

    def broadcast_seen(self, ticket_id: str, status: str) -> bool:
        return any(
            update["ticket_id"] == ticket_id and update["status"] == status
            for message in self.passed
            if message.get("type") == "ticket_status"
            for update in message["updates"]
        )

    def release(self, edit) -> None:
        self.holding = False
        for snapshot in self.held:
            self.page_side.send(json.dumps(edit(snapshot)))
        self.held.clear()


def pump_until(page, condition, what: str, timeout_s: float = 10.0) -> None:
    """Wait for a condition that Playwright's event callbacks make true (they run while the page is waited on)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(50)


@pytest.mark.browser
def test_a_snapshot_read_before_my_select_committed_does_not_undo_the_hold(new_page, base_url, catalog):
    # The server answers each message on its own, so the snapshot the page asks for when it connects can be
    # read before a quick select commits and still arrive after its `selected` ack and its broadcast.
    showtime = catalog[min(7, len(catalog) - 1)]
    page = new_page()
    holder = SnapshotHolder(page)
    helpers.ui_login(page, helpers.register_user(base_url, "quick"))
    helpers.open_showtime(page, showtime)
    pump_until(page, lambda: holder.held, "the page's snapshot request to be answered")
    mine, marker = helpers.available_seats(page, 2)
    helpers.hold_seats(page, [mine])
    pump_until(page, lambda: holder.broadcast_seen(mine, "held"), "the hold's broadcast")

    def stale(snapshot: dict) -> dict:
        # Read before the select: `mine` is still free in it. A seat nobody touches is marked sold so the
        # test can tell when the page has applied the snapshot.
        assert {t["ticket_id"]: t["status"] for t in snapshot["tickets"]}[mine] == "available"
        for ticket in snapshot["tickets"]:
            if ticket["ticket_id"] == marker:
                ticket["status"] = "sold"
        return snapshot

    holder.release(stale)
    expect(seat(page, marker)).to_have_attribute("data-status", "sold", timeout=ACK_TIMEOUT_MS)
    expect(seat(page, mine)).to_have_attribute("data-status", "mine")
    expect(page.locator(f'.cart-items li[data-ticket-id="{mine}"]')).to_have_count(1)


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
