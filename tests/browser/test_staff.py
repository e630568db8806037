"""Staff pages: a manager creates an event and a showtime, watches it sell live, finds the buyer's order and refunds
it; customers get no staff pages. Every page passes axe-core and works from the keyboard."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.browser import helpers
from tests.browser.helpers import ACK_TIMEOUT_MS, LIVE_TIMEOUT_MS, SLOW_TIMEOUT_MS, seat

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect

# The report is fetched again at most once a second after a change: a second more than the live bound.
REPORT_TIMEOUT_MS = LIVE_TIMEOUT_MS + 1_500


def create_event(page, title: str) -> None:
    page.get_by_role("link", name="Staff", exact=True).click()
    page.locator(".page-title", has_text="Staff: events").wait_for()
    form = page.locator('form[data-form="new-event"]')
    form.get_by_label("Title").fill(title)
    form.get_by_label("Category").select_option("drama")
    form.get_by_label("Length in minutes").fill("101")
    form.get_by_label("Description").fill("Made by the staff browser test.")
    form.get_by_role("button", name="Create event").click()
    page.locator(".page-title", has_text=title).wait_for()


def create_showtime(page, theater: str, *, rows: int = 2, per_row: int = 5, price: str = "7.50") -> str:
    form = page.locator('form[data-form="new-showtime"]')
    form.get_by_label("Theater").fill(theater)
    form.get_by_label("Rows").fill(str(rows))
    form.get_by_label("Seats per row").fill(str(per_row))
    form.get_by_label("Price per seat").fill(price)
    form.get_by_role("button", name="Create showtime").click()
    page.wait_for_url(re.compile(r".*#/staff/showtimes/[^/?]+"))
    expect(page.locator("#count-available")).to_have_text(str(rows * per_row))
    return re.search(r"#/staff/showtimes/([^/?]+)", page.url).group(1)


@pytest.mark.browser
def test_staff_create_an_event_and_a_showtime_watch_it_sell_live_and_refund_the_buyer(
    new_page, base_url, artifacts_dir
):
    staff, buyer = new_page(), new_page()
    helpers.ui_login_staff(staff)
    title = f"Staff test {uuid.uuid4().hex[:6]}"
    create_event(staff, title)
    helpers.assert_accessible(staff, "the staff event page")
    showtime_id = create_showtime(staff, "Hall S")
    expect(staff.locator('#live-status[data-state="open"]')).to_be_visible()
    expect(staff.locator("#revenue")).to_have_text("0.00 USD")
    helpers.assert_accessible(staff, "the staff showtime page")
    staff.screenshot(path=str(artifacts_dir / "staff-showtime-empty.png"), full_page=True)

    # A buyer finds the new event as any customer would, and picks two seats: the manager sees them held.
    buyer_email = helpers.register_user(base_url, "staff-watched")
    helpers.ui_login(buyer, buyer_email)
    event_id = staff.locator(".breadcrumb a").get_attribute("href").split("/")[-1]
    helpers.open_showtime(buyer, helpers.Showtime(event_id, showtime_id, "", "Hall S"))
    picked = helpers.available_seats(buyer, 2)
    helpers.hold_seats(buyer, picked)
    expect(staff.locator("#count-held")).to_have_text("2", timeout=REPORT_TIMEOUT_MS)
    expect(staff.locator("#count-available")).to_have_text("8")

    helpers.pay_with_emulator(buyer)
    expect(staff.locator("#count-sold")).to_have_text("2", timeout=SLOW_TIMEOUT_MS)
    expect(staff.locator("#count-held")).to_have_text("0")
    expect(staff.locator("#revenue")).to_have_text("15.00 USD")
    staff.screenshot(path=str(artifacts_dir / "staff-showtime-sold.png"), full_page=True)

    # The buyer's order, found by email, refunded in full by the manager: the seats go back on sale.
    staff.get_by_role("link", name="Find an order").click()
    staff.get_by_label("Buyer’s email or order id").fill(buyer_email.upper())
    staff.get_by_label("Buyer’s email or order id").press("Enter")
    card = staff.locator("article.staff-order").first
    expect(card).to_have_attribute("data-status", "paid")
    expect(card.locator(".order-buyer")).to_have_text(buyer_email)
    helpers.assert_accessible(staff, "the staff order search")
    card.get_by_role("button", name="Refund the whole order").click()
    expect(card.locator(".refund-message")).to_contain_text("Refunded 15.00 USD", timeout=SLOW_TIMEOUT_MS)
    expect(card).to_have_attribute("data-status", "refunded")
    staff.screenshot(path=str(artifacts_dir / "staff-order-refunded.png"), full_page=True)
    helpers.open_showtime(buyer, helpers.Showtime(event_id, showtime_id, "", "Hall S"))
    for ticket_id in picked:
        expect(seat(buyer, ticket_id)).to_have_attribute("data-status", "available", timeout=SLOW_TIMEOUT_MS)

    # The same order by its id.
    order_id = card.locator(".order-id").inner_text()
    staff.goto(f"/#/staff/orders?q={order_id}")
    expect(staff.locator("article.staff-order")).to_have_count(1)
    expect(staff.locator("article.staff-order")).to_have_attribute("data-order-id", order_id)


@pytest.mark.browser
def test_staff_edit_an_event_and_move_a_showtime_from_the_keyboard_and_see_errors_at_their_field(new_page):
    staff = new_page()
    helpers.ui_login_staff(staff)
    title = f"Edit test {uuid.uuid4().hex[:6]}"
    create_event(staff, title)

    edit = staff.locator('form[data-form="edit-event"]')
    edit.get_by_label("Title").fill(f"{title} (director's cut)")
    edit.get_by_label("Title").press("Enter")  # submits from the keyboard
    expect(edit.locator(".form-saved")).to_have_text("Saved.")
    expect(staff.locator(".page-title")).to_have_text(f"{title} (director's cut)")

    # A second showtime in the same theater on the same date: the server's refusal is read out and shown.
    create_showtime(staff, "Hall K", rows=1, per_row=3)
    staff.locator(".breadcrumb a").click()
    form = staff.locator('form[data-form="new-showtime"]')
    form.get_by_label("Theater").fill("hall k")
    form.get_by_role("button", name="Create showtime").focus()
    staff.keyboard.press("Enter")
    expect(form.locator('.form-error[role="alert"]')).to_contain_text("already exists")
    # A price the server refuses names its field, which is marked invalid and focused.
    form.get_by_label("Theater").fill("Hall K2")
    form.get_by_label("Price per seat").fill("0")
    form.get_by_role("button", name="Create showtime").click()
    expect(form.locator(".form-error")).to_contain_text("price")
    expect(form.get_by_label("Price per seat")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Price per seat")).to_be_focused()
    helpers.assert_accessible(staff, "the staff event page with a form error")

    staff.get_by_role("link", name=re.compile(r"^Occupancy and revenue, Hall K,")).click()
    move = staff.locator('form[data-form="move-showtime"]')
    move.get_by_label(re.compile(r"New start on")).fill("21:45")
    move.get_by_role("button", name="Change start time").click()
    expect(move.locator(".form-saved")).to_contain_text("Start changed")


@pytest.mark.browser
def test_customers_get_no_staff_link_and_the_staff_pages_turn_them_away(new_page, base_url):
    page = new_page()
    helpers.ui_login(page, helpers.register_user(base_url, "not-staff"))
    expect(page.get_by_role("link", name="Staff", exact=True)).to_have_count(0)
    page.goto("/#/staff/orders")
    expect(page.locator('.notice-error[role="alert"]')).to_contain_text("for cinema staff only")
    expect(page.locator("form")).to_have_count(0)
    helpers.assert_accessible(page, "the staff page seen by a customer")


@pytest.mark.browser
def test_staff_showtime_page_fits_a_phone_and_counts_a_hold_live(new_page, base_url, catalog):
    showtime = catalog[3 % len(catalog)]
    staff = new_page({"width": 390, "height": 844})
    helpers.ui_login_staff(staff)
    staff.goto(f"/#/staff/showtimes/{showtime.showtime_id}")
    expect(staff.locator('#live-status[data-state="open"]')).to_be_visible()
    held_before = int(staff.locator("#count-held").inner_text())
    assert staff.evaluate("() => document.documentElement.scrollWidth") <= 390
    helpers.assert_accessible(staff, "the staff showtime page at 390 px")

    buyer = new_page()
    helpers.ui_login(buyer, helpers.register_user(base_url, "phone-watched"))
    helpers.open_showtime(buyer, showtime)
    [ticket_id] = helpers.available_seats(buyer, 1)
    seat(buyer, ticket_id).click()
    expect(seat(buyer, ticket_id)).to_have_attribute("data-status", "mine", timeout=ACK_TIMEOUT_MS)
    expect(staff.locator("#count-held")).to_have_text(str(held_before + 1), timeout=REPORT_TIMEOUT_MS)
