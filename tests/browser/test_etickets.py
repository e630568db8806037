"""E-tickets in the browser: the buyer's order page shows a QR code per valid seat (accessible); at the door staff
check codes in once, are told a second scan was already admitted, keep checking in offline on the cached keys and
revocation list, and see conflicts when the offline scans sync."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests

from tests.browser import helpers
from tests.support.payflow import Buyer, Showtime, free_seats

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect


class _Stack:
    """What tests.support.payflow needs of a stack, for the browser tests' one."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://") + "/ws"

    def api(self, path: str) -> str:
        return f"{self.base_url}/api/{path.lstrip('/')}"

    def register(self) -> dict:
        email = helpers.unique_email("door")
        created = requests.post(
            self.api("auth/register/"), json={"email": email, "password": helpers.PASSWORD}, timeout=30
        )
        created.raise_for_status()
        tokens = requests.post(
            self.api("token/"), json={"email": email, "password": helpers.PASSWORD}, timeout=30
        ).json()
        return {"email": email, "password": helpers.PASSWORD, "id": created.json()["id"], **tokens}


def soon_showtime(base_url: str, staff: str) -> Showtime:
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=90)
    return helpers.create_showtime(
        base_url,
        staff,
        date=starts.date().isoformat(),
        starts_at=starts.strftime("%H:%M"),
        theater="Hall D",
        rows=1,
        price="9",
    )


@pytest.mark.browser
def test_qr_codes_on_the_order_page_and_the_door_online_then_offline(new_page, base_url, artifacts_dir):
    stack = _Stack(base_url)
    staff = helpers.staff_token(base_url)
    showtime = soon_showtime(base_url, staff)
    buyer = Buyer(stack)
    order = buyer.buy(showtime, free_seats(stack, showtime, 4))
    issued = buyer.call("GET", f"orders/{order['order_id']}/tickets/").json()["results"]
    codes, labels = [t["code"] for t in issued], [t["label"] for t in issued]

    page = new_page()
    helpers.ui_login(page, buyer.user["email"])
    page.goto(f"/#/orders/{order['order_id']}")
    qr = page.locator(".eticket[data-status='valid'] img.eticket-qr")
    expect(qr).to_have_count(4)
    expect(qr.first).to_have_attribute("alt", re.compile(r"^QR code of the ticket for Row A, seat \d$"))
    assert qr.first.evaluate("img => img.complete && img.naturalWidth > 0")  # the SVG really draws
    helpers.assert_accessible(page, "the order page with e-tickets")
    page.screenshot(path=str(artifacts_dir / "etickets-order.png"), full_page=True)

    door = new_page()
    helpers.ui_login_staff(door)
    door.goto(f"/#/staff/checkin?showtime={showtime.showtime_id}")
    expect(door.locator("#checkin-status")).to_contain_text("Ready for offline use")
    helpers.assert_accessible(door, "the door check-in page")
    result = door.locator("#checkin-result")

    def scan(code: str) -> None:
        door.get_by_label("Ticket code (scan or type)").fill(code)
        door.get_by_role("button", name="Check in").click()

    scan(codes[0])
    expect(result).to_have_text(re.compile(r"^Admitted: Row A, seat \d\.$"))
    expect(result).to_have_attribute("data-result", "admitted")
    scan(codes[0])
    expect(result).to_contain_text("Already admitted")
    expect(result).to_have_attribute("data-result", "refused")

    # Another door lets codes[2] in while this one is offline; this door admits it offline too: a conflict.
    helpers.rest(
        base_url,
        "POST",
        "/api/checkin/",
        {"code": codes[2], "showtime_id": showtime.showtime_id, "door": "Gate B"},
        token=staff,
    )
    door.context.set_offline(True)
    scan(codes[1])
    expect(result).to_contain_text(f"Admitted offline: {labels[1]}.")
    scan(codes[1])
    expect(result).to_contain_text(f"{labels[1]}: already admitted at this door")
    scan(codes[0])
    expect(result).to_contain_text(f"{labels[0]}: already admitted at this door")  # admitted online: known offline
    forged = codes[3][:-4] + ("AAAA" if not codes[3].endswith("AAAA") else "BBBB")
    scan(forged)
    expect(result).to_contain_text("Not a valid ticket")
    scan(codes[2])
    expect(result).to_contain_text(f"Admitted offline: {labels[2]}.")
    expect(door.locator("#checkin-pending")).to_contain_text("2 offline scans waiting")

    # Reloaded without a network, the page still loads (web/sw.js keeps the app shell) and keeps its scans.
    door.reload()
    expect(door.locator("#checkin-pending")).to_contain_text("2 offline scans waiting")
    scan(codes[1])
    expect(result).to_contain_text(f"{labels[1]}: already admitted at this door")

    door.context.set_offline(False)
    door.get_by_role("button", name="Sync now").click()
    expect(door.locator("#checkin-pending")).to_have_text("Every scan is synced.", timeout=helpers.SLOW_TIMEOUT_MS)
    conflicts = door.locator("#checkin-conflicts li")
    expect(conflicts).to_have_count(1)  # codes[1] went in here only: synced, no conflict
    expect(conflicts).to_contain_text("already admitted at Gate B")
    door.screenshot(path=str(artifacts_dir / "etickets-door.png"), full_page=True)


@pytest.mark.browser
def test_staff_make_door_staff_who_only_see_the_door(new_page, base_url):
    stack = _Stack(base_url)
    staff = helpers.staff_token(base_url)
    showtime = soon_showtime(base_url, staff)
    buyer = Buyer(stack)
    order = buyer.buy(showtime, free_seats(stack, showtime, 1))
    (ticket,) = buyer.call("GET", f"orders/{order['order_id']}/tickets/").json()["results"]
    door_email = helpers.register_user(base_url, "doorstaff")

    manager = new_page()
    helpers.ui_login_staff(manager)
    manager.goto(f"/#/staff/checkin?showtime={showtime.showtime_id}")
    manager.get_by_label("Door staff account (email)").fill(door_email)
    manager.get_by_role("button", name="Let this account scan tickets").click()
    expect(manager.locator("#scanner-result")).to_contain_text("can now check tickets in")

    scanner = new_page()
    helpers.ui_login(scanner, door_email)
    nav = scanner.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Door check-in")).to_be_visible()
    expect(nav.get_by_role("link", name="Staff", exact=True)).to_have_count(0)
    nav.get_by_role("link", name="Door check-in").click()
    scanner.get_by_label("Showtime id").fill(showtime.showtime_id)
    scanner.get_by_label("Ticket code (scan or type)").fill(ticket["code"])
    scanner.get_by_role("button", name="Check in").click()
    expect(scanner.locator("#checkin-result")).to_contain_text(f"Admitted: {ticket['label']}.")
    expect(scanner.locator("#scanner-form")).to_have_count(0)  # granting is for staff
    helpers.assert_accessible(scanner, "the door page of a scanner")
