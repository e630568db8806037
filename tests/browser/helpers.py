"""Helpers for the browser tests: a little REST (setup only) and the UI steps the tests share."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

PASSWORD = "correct-horse-battery"
# What one user does reaches the others "within a second": 2 s leaves room for a loaded machine.
LIVE_TIMEOUT_MS = int(os.environ.get("BROWSER_TESTS_LIVE_TIMEOUT_MS", "2000"))
# The server's answer to the page's own request (select/unselect ack, snapshot): not what these tests time.
ACK_TIMEOUT_MS = 10_000
SLOW_TIMEOUT_MS = 30_000  # SQS workers (purchase, refund) and the PayPal round trip


@dataclass(frozen=True)
class Showtime:
    event_id: str
    showtime_id: str
    date: str
    theater: str

    @property
    def hash_route(self) -> str:
        return (
            f"/#/events/{urllib.parse.quote(self.event_id, safe='')}"
            f"/showtimes/{urllib.parse.quote(self.showtime_id, safe='')}"
        )


def rest(base_url: str, method: str, path: str, body: dict | None = None, token: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base_url + path, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            raw = res.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read()[:500]!r}") from None
    return json.loads(raw) if raw else None


def wait_healthy(base_url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rest(base_url, "GET", "/api/health/")
            return
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def list_showtimes(base_url: str) -> list[Showtime]:
    found: list[Showtime] = []
    for event in rest(base_url, "GET", "/api/events/?limit=100")["results"]:
        detail = rest(base_url, "GET", f"/api/events/{urllib.parse.quote(str(event['id']), safe='')}/")
        for s in detail.get("showtimes", []):
            found.append(Showtime(str(event["id"]), str(s["showtime_id"]), s["date"], s["theater"]))
    return found


def ticket_prices(base_url: str, showtime: Showtime) -> dict[str, tuple[Decimal, str]]:
    query = urllib.parse.urlencode({"date": showtime.date, "theater": showtime.theater})
    listing = rest(base_url, "GET", f"/api/events/{urllib.parse.quote(showtime.event_id, safe='')}/tickets/?{query}")
    return {str(t["ticket_id"]): (Decimal(t["price"]), t["currency"]) for t in listing["results"]}


def unique_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def register_user(base_url: str, tag: str) -> str:
    """A fresh account created over REST; returns its email (the password is PASSWORD)."""
    email = unique_email(tag)
    rest(base_url, "POST", "/api/auth/register/", {"email": email, "password": PASSWORD})
    return email


# ---- UI steps --------------------------------------------------------------------------------------------------


def ui_login(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/#/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/#/events")
    page.locator(".page-title", has_text="Events").wait_for()


def ui_register(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/#/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/#/events")
    page.locator(".page-title", has_text="Events").wait_for()


def seat(page, ticket_id: str):
    return page.locator(f'button.seat[data-ticket-id="{ticket_id}"]')


def wait_live(page) -> None:
    """The seat map is drawn and its WebSocket is open (and has re-synced)."""
    page.locator("button.seat[data-ticket-id]").first.wait_for()
    page.locator('#live-status[data-state="open"]').wait_for()


def open_showtime(page, showtime: Showtime) -> None:
    page.goto(showtime.hash_route)
    wait_live(page)


def available_seats(page, count: int, exclude: set[str] = frozenset()) -> list[str]:
    ids = page.eval_on_selector_all('button.seat[data-status="available"]', "els => els.map(e => e.dataset.ticketId)")
    picked = [i for i in ids if i not in exclude][:count]
    assert len(picked) == count, f"needed {count} available seats, found {len(picked)}"
    return picked


def hold_seats(page, ticket_ids: list[str]) -> None:
    from playwright.sync_api import expect

    for ticket_id in ticket_ids:
        seat(page, ticket_id).click()
        expect(seat(page, ticket_id)).to_have_attribute("data-status", "mine", timeout=ACK_TIMEOUT_MS)


def pay_with_emulator(page) -> None:
    """From the seat map: Pay with PayPal, approve on the emulator's page, land on the return page as paid."""
    from playwright.sync_api import expect

    page.locator("#pay-button").click()
    approve = page.get_by_role("button", name="Approve")
    approve.wait_for(timeout=SLOW_TIMEOUT_MS)
    approve.click()
    page.wait_for_url("**/paypal/return**", timeout=SLOW_TIMEOUT_MS)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid", timeout=SLOW_TIMEOUT_MS)


# ---- staff and accessibility -------------------------------------------------------------------------------------

STAFF_EMAIL = os.environ.get("DEMO_STAFF_EMAIL", "staff@example.com")
STAFF_PASSWORD = os.environ.get("DEMO_STAFF_PASSWORD", "staff-password")
_REPO_ROOT = Path(__file__).resolve().parents[2]
# axe-core's browser build: AXE_CORE_JS names it, else an npm install of axe-core in the checkout
# (`npm install --no-save axe-core@4`).
AXE_CANDIDATES = (
    os.environ.get("AXE_CORE_JS", ""),
    str(_REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"),
    "/usr/share/nodejs/axe-core/axe.min.js",
)


def axe_source() -> str | None:
    for candidate in AXE_CANDIDATES:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_text(encoding="utf-8")
    return None


def axe_violations(page, context: str = "body") -> list[str]:
    """axe-core's WCAG 2.x A/AA violations on the page as it is now, one line each ("rule: target ...").

    The source is evaluated through the DevTools protocol, so the page's Content-Security-Policy (script-src
    'self') stays as deployed."""
    import pytest

    source = axe_source()
    if source is None:
        pytest.skip("axe-core is missing: npm install --no-save axe-core@4 (or set AXE_CORE_JS)")
    if not page.evaluate("() => Boolean(window.axe)"):
        page.evaluate(f"() => {{ {source}\n; if (!window.axe && typeof axe !== 'undefined') window.axe = axe; }}")
    result = page.evaluate(
        """async (context) => {
            const r = await window.axe.run(context, {
                runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] },
            });
            return r.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
        }""",
        context,
    )
    return list(result)


def assert_accessible(page, what: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"axe-core on {what}:\n" + "\n".join(violations)


def staff_token(base_url: str) -> str:
    return rest(base_url, "POST", "/api/token/", {"email": STAFF_EMAIL, "password": STAFF_PASSWORD})["access"]


def create_showtime(
    base_url: str,
    staff: str,
    *,
    date: str,
    starts_at: str,
    theater: str = "Hall Q",
    title: str | None = None,
    rows: int = 2,
    seats_per_row: int = 6,
    price: str = "12",
) -> Showtime:
    """A new event (drama) with one showtime, through the staff API."""
    event = rest(
        base_url,
        "POST",
        "/api/events/",
        {"title": title or f"Show {uuid.uuid4().hex[:6]}", "category": "drama", "duration_minutes": 100},
        token=staff,
    )
    created = rest(
        base_url,
        "POST",
        f"/api/events/{event['id']}/showtimes/",
        {
            "date": date,
            "theater": theater,
            "starts_at": starts_at,
            "rows": rows,
            "seats_per_row": seats_per_row,
            "price": price,
        },
        token=staff,
    )
    return Showtime(event["id"], created["showtime_id"], date, theater)


def ui_login_staff(page) -> None:
    ui_login(page, STAFF_EMAIL, STAFF_PASSWORD)
