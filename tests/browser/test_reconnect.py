"""The seat map outlives the sockets the server closes (API Gateway's maximum connection age) without a glitch,
keeps a quiet socket under the idle timeout with `ping`, and applies each ticket's updates only in `seq` order."""

from __future__ import annotations

import json
import re

import pytest
from websockets.sync.client import connect

from tests.browser import helpers
from tests.browser.helpers import ACK_TIMEOUT_MS, seat
from tests.support.rooms import new_room, url_for
from tests.support.stack import running_stack

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect

MAX_AGE_SECONDS = 6  # long enough to log in and open the map, short enough to see the socket replaced
FUTURE = "2099-01-01T00:00:00Z"

# Records every state the badge, the banner and the hall go through, and the fewest seats ever drawn, so the
# test can tell a replaced socket went unnoticed (no "reconnecting", no banner, no blank or "loading" map).
WATCH_PAGE = """() => {
  const seen = { badge: [], bannerShown: false, hallOff: false, fewestSeats: Infinity };
  const look = () => {
    const badge = document.querySelector('#live-status')?.dataset.state;
    if (badge && seen.badge[seen.badge.length - 1] !== badge) seen.badge.push(badge);
    const banner = document.querySelector('#conn-banner');
    if (banner && !banner.hidden) seen.bannerShown = true;
    if (document.querySelector('.hall-scroll')?.dataset.live === 'off') seen.hallOff = true;
    seen.fewestSeats = Math.min(seen.fewestSeats, document.querySelectorAll('button.seat[data-ticket-id]').length);
  };
  new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true });
  window.__watched = seen;
}"""


class Proxy:
    """Routes the page's room WebSockets through Playwright: counts them, can swallow the server's
    ticket_status messages on the current one, and can send the page messages of the test's own."""

    def __init__(self, page):
        if not hasattr(page, "route_web_socket"):
            pytest.skip("needs playwright>=1.48 (Page.route_web_socket)")
        self.routes = []
        self.sent: list[dict] = []  # what the page sent, on every socket
        self.swallowing = False
        page.route_web_socket(re.compile(r"/ws(\?|$)"), self._handle)

    def _handle(self, route) -> None:
        server = route.connect_to_server()
        self.routes.append(route)
        self.swallowing = False  # only the socket it was set on misses updates

        def from_server(message) -> None:
            if route is self.routes[-1] and self.swallowing and json.loads(message).get("type") == "ticket_status":
                return
            route.send(message)

        def from_page(message) -> None:
            self.sent.append(json.loads(message))
            server.send(message)

        server.on_message(from_server)
        route.on_message(from_page)

    def send(self, message: dict) -> None:
        self.routes[-1].send(json.dumps(message))


@pytest.fixture(scope="module")
def short_lived():
    """A stack of its own whose sockets live MAX_AGE_SECONDS (the session's stack keeps AWS's 2 hours)."""
    with running_stack(env={"LOCAL_WS_MAX_AGE_SECONDS": str(MAX_AGE_SECONDS)}) as stack:
        helpers.wait_healthy(stack.base_url)
        yield stack


@pytest.fixture
def short_lived_page(browser, short_lived):
    """A page on that stack; the test fails on an uncaught error or a console error in it."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, base_url=short_lived.base_url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    yield page
    context.close()
    assert not problems, "\n".join(problems)


@pytest.mark.browser
def test_a_socket_closed_at_its_maximum_age_is_replaced_unnoticed_and_the_map_catches_up(
    short_lived, short_lived_page, artifacts_dir
):
    room = new_room(short_lived, rows=2, seats=6)
    showtime = helpers.Showtime(room["event_id"], room["showtime_id"], room["date"], room["theater"])
    page = short_lived_page
    proxy = Proxy(page)
    helpers.ui_login(page, helpers.register_user(short_lived.base_url, "patient"))
    helpers.open_showtime(page, showtime)
    page.evaluate(WATCH_PAGE)
    first = len(proxy.routes)
    ticket_id = room["tickets"][0]

    # Another user takes a seat and the page's socket misses the broadcast, as a socket being replaced would.
    proxy.swallowing = True
    with connect(url_for(short_lived, room, short_lived.register()), open_timeout=10) as other:
        other.send(json.dumps({"action": "select", "ticket_id": ticket_id}))
        while (reply := json.loads(other.recv(timeout=10)))["type"] == "ticket_status":
            pass  # the room's broadcast may come before the ack
        assert reply["type"] == "selected", reply
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "available")

    # The server closes the socket at its maximum age; the page connects again and re-syncs on its own.
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "held", timeout=(MAX_AGE_SECONDS + 10) * 1000)
    assert len(proxy.routes) > first, "the seat changed without a new socket"
    expect(page.locator('#live-status[data-state="open"]')).to_have_text("Live")
    page.locator(".hall-panel").screenshot(path=str(artifacts_dir / "seat-map-after-max-age.png"))
    watched = page.evaluate("window.__watched")
    assert watched["badge"] == ["open"], f"the badge showed the replaced socket: {watched['badge']}"
    assert not watched["bannerShown"] and not watched["hallOff"], watched
    assert watched["fewestSeats"] == 12, "the map went blank while the socket was replaced"


@pytest.mark.browser
def test_an_update_older_than_the_last_one_applied_for_its_ticket_is_dropped(new_page, base_url, catalog):
    showtime = catalog[min(8, len(catalog) - 1)]
    page = new_page()
    proxy = Proxy(page)
    helpers.ui_login(page, helpers.register_user(base_url, "ordered"))
    helpers.open_showtime(page, showtime)
    ticket_id, marker = helpers.available_seats(page, 2)

    def update(ticket: str, status: str, seq: str) -> dict:
        held = {"expires_at": FUTURE} if status == "held" else {}
        return {"ticket_id": ticket, "status": status, "seq": seq, **held}

    proxy.send({"type": "ticket_status", "updates": [update(ticket_id, "held", "200")]})
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "held", timeout=ACK_TIMEOUT_MS)
    # Overtaken: an older change of the same ticket arrives late. The marker (another ticket) shows it was read.
    proxy.send(
        {"type": "ticket_status", "updates": [update(ticket_id, "available", "150"), update(marker, "sold", "151")]}
    )
    expect(seat(page, marker)).to_have_attribute("data-status", "sold", timeout=ACK_TIMEOUT_MS)
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "held")
    # Compared as decimals: "1000" is after "200" although it sorts before it as text.
    proxy.send({"type": "ticket_status", "updates": [update(ticket_id, "available", "1000")]})
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "available", timeout=ACK_TIMEOUT_MS)
    proxy.send({"type": "ticket_status", "updates": [update(ticket_id, "held", "2000")]})
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "held", timeout=ACK_TIMEOUT_MS)

    # A snapshot (here the one a new socket asks for) carries no seq: after it, any seq is taken.
    sockets = len(proxy.routes)
    proxy.routes[-1].close()
    expect(seat(page, marker)).to_have_attribute("data-status", "available", timeout=ACK_TIMEOUT_MS)
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "available")
    assert len(proxy.routes) > sockets
    proxy.send({"type": "ticket_status", "updates": [update(ticket_id, "held", "5")]})
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "held", timeout=ACK_TIMEOUT_MS)


@pytest.mark.browser
def test_a_quiet_seat_map_pings_after_four_to_five_minutes(new_page, base_url, catalog):
    page = new_page()
    page.clock.install()  # the page's timers run on a clock the test moves
    proxy = Proxy(page)
    helpers.ui_login(page, helpers.register_user(base_url, "quiet"))
    helpers.open_showtime(page, catalog[min(9, len(catalog) - 1)])

    def pings() -> list[dict]:
        return [m for m in proxy.sent if m.get("action") == "ping"]

    page.clock.run_for(235_000)
    assert pings() == [], "a ping before 4 minutes of quiet"
    page.clock.run_for(70_000)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "open")
    assert pings() == [{"action": "ping"}], proxy.sent
