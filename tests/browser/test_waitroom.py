"""The waiting room in the browser: a buyer of a guarded showtime waits on an accessible page (position, estimate,
progress, announced changes), is moved to the seat map when admitted and picks a seat with the admission; staff
set the sale up and pause it from the showtime page."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.browser import helpers
from tests.browser.helpers import ACK_TIMEOUT_MS, seat

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect

OPENS_IN = 8  # seconds: long enough to see the draw's waiting page


def guarded_showtime(base_url: str, opening: dt.datetime, rate: int = 60) -> helpers.Showtime:
    staff = helpers.staff_token(base_url)
    showtime = helpers.create_showtime(
        base_url, staff, title=f"Premiere {uuid.uuid4().hex[:6]}", date="2031-04-01", starts_at="20:00"
    )
    helpers.rest(
        base_url,
        "PUT",
        f"/api/staff/showtimes/{showtime.showtime_id}/sale/",
        {"on_sale_at": opening.isoformat(), "guarded": True, "rate_per_minute": rate},
        token=staff,
    )
    return showtime


@pytest.mark.browser
def test_a_buyer_waits_in_the_draw_then_picks_seats_with_the_admission(new_page, base_url, artifacts_dir):
    opening = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=OPENS_IN)
    showtime = guarded_showtime(base_url, opening)
    page = new_page()
    helpers.ui_login(page, helpers.register_user(base_url, "queue"))
    page.goto(showtime.hash_route)

    status = page.locator("#queue-status")
    expect(status).to_contain_text("You are in the draw")
    expect(page.locator("#queue-announce")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#queue-progress")).to_be_visible()
    helpers.assert_accessible(page, "the waiting page before opening")
    page.screenshot(path=str(artifacts_dir / "waitroom-draw.png"), full_page=True)

    # At opening the draw runs, the ticker admits one a second: the page moves to the seat map by itself.
    helpers.wait_live(page)
    expect(page.locator("#admission-note")).to_contain_text("It is your turn")
    helpers.assert_accessible(page, "the seat map of an admitted buyer")
    [ticket_id] = helpers.available_seats(page, 1)
    seat(page, ticket_id).click()
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "mine", timeout=ACK_TIMEOUT_MS)


@pytest.mark.browser
def test_staff_set_up_a_sale_and_pause_it(new_page, base_url):
    opening = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    showtime = guarded_showtime(base_url, opening, rate=30)
    staff = new_page()
    helpers.ui_login_staff(staff)
    staff.goto(f"/#/staff/showtimes/{showtime.showtime_id}")
    section = staff.locator("#sale-section")
    expect(section.locator("#sale-status")).to_contain_text("Waiting room")
    expect(section.locator("#sale-count-joined")).to_have_text("0")
    helpers.assert_accessible(staff, "the staff showtime page with a sale")

    buyer = new_page()
    helpers.ui_login(buyer, helpers.register_user(base_url, "queue-staff"))
    buyer.goto(showtime.hash_route)
    expect(buyer.locator("#queue-status, #admission-note").first).to_be_visible()
    expect(section.locator("#sale-count-joined")).to_have_text("1", timeout=10_000)

    section.get_by_role("button", name="Pause admissions").click()
    expect(section.locator("#sale-status")).to_have_attribute("data-paused", "true")
    expect(section.get_by_role("button", name="Resume admissions")).to_be_visible()
    section.get_by_label("New rate per minute").fill("120")
    section.get_by_role("button", name="Change the rate").click()
    expect(section.locator("#sale-status")).to_contain_text("120 per minute")
