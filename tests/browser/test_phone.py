"""The seat map on a phone (390 x 844): the whole hall in sight, prices before the cart, the pick confirmed in view
with its total and the way to pay, a legible countdown, a cue when a hall is wider than the screen, and no
"held for you" message left once the hold is gone."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tests.browser import helpers
from tests.browser.helpers import ACK_TIMEOUT_MS, LIVE_TIMEOUT_MS, SLOW_TIMEOUT_MS, seat

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect

PHONE = {"width": 390, "height": 844}


def in_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return (
        box is not None
        and box["y"] >= 0
        and box["y"] + box["height"] <= size["height"]
        and box["x"] >= 0
        and (box["x"] + box["width"] <= size["width"])
    )


@pytest.mark.browser
def test_a_phone_shows_every_seat_of_a_row_its_price_and_after_a_tap_the_total_and_pay(
    new_page, base_url, catalog, artifacts_dir
):
    showtime = catalog[5 % len(catalog)]
    page = new_page(PHONE)
    helpers.ui_login(page, helpers.register_user(base_url, "phone"))
    helpers.open_showtime(page, showtime)

    hall = page.locator(".hall-scroll")
    assert hall.evaluate("el => el.scrollWidth <= el.clientWidth"), "the hall scrolls sideways at 390 px"
    expect(page.locator("#hall-scroll-hint")).to_be_hidden()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    sizes = page.eval_on_selector_all("button.seat", "els => els.map(e => e.getBoundingClientRect().width)")
    assert min(sizes) >= 24, f"seats narrower than a 24 px touch target: {min(sizes)}"
    last = page.locator("button.seat[data-ticket-id]").last
    box = last.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"]

    prices = helpers.ticket_prices(base_url, showtime)
    price, currency = next(iter(prices.values()))
    expect(page.locator("#seat-prices")).to_have_text(f"Price per seat: {price:.2f} {currency}")
    helpers.assert_accessible(page, "the seat map at 390 px")

    [ticket_id] = helpers.available_seats(page, 1)
    seat(page, ticket_id).scroll_into_view_if_needed()
    seat(page, ticket_id).click()
    expect(seat(page, ticket_id)).to_have_attribute("data-status", "mine", timeout=ACK_TIMEOUT_MS)
    bar = page.locator("#cart-bar")
    expect(bar).to_be_visible()
    expect(page.locator("#cart-bar-total")).to_have_text(f"{Decimal(price):.2f} {currency}")
    expect(page.locator("#cart-bar-expiry")).to_have_text(re.compile(r"\d+:\d\d left"))
    assert in_viewport(page, page.locator("#cart-bar-pay")), "Pay is below the fold after the pick"
    assert in_viewport(page, page.locator("#cart-bar-total"))
    font = page.locator("#cart-bar-expiry").evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
    assert font >= 12
    page.screenshot(path=str(artifacts_dir / "phone-seat-picked.png"))
    helpers.assert_accessible(page, "the seat map at 390 px with a seat picked")

    page.locator("#cart-bar-pay").click()
    approve = page.get_by_role("button", name="Approve")
    approve.wait_for(timeout=SLOW_TIMEOUT_MS)
    approve.click()
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid", timeout=SLOW_TIMEOUT_MS)


@pytest.mark.browser
def test_the_per_seat_countdown_is_at_least_12px_on_a_desktop(new_page, base_url, catalog):
    showtime = catalog[6 % len(catalog)]
    page = new_page()
    helpers.ui_login(page, helpers.register_user(base_url, "desk-timer"))
    helpers.open_showtime(page, showtime)
    [ticket_id] = helpers.available_seats(page, 1)
    helpers.hold_seats(page, [ticket_id])
    timer = seat(page, ticket_id).locator(".seat-timer")
    expect(timer).to_have_attribute("data-timer", re.compile(r"\d+:\d\d"))
    assert timer.evaluate("el => parseFloat(getComputedStyle(el).fontSize)") >= 12
    expect(page.locator("#cart-bar")).to_be_hidden()  # the cart is beside the hall


@pytest.mark.browser
def test_a_hall_wider_than_the_phone_says_it_scrolls(new_page, base_url):
    staff = helpers.rest(
        base_url, "POST", "/api/token/", {"email": helpers.STAFF_EMAIL, "password": helpers.STAFF_PASSWORD}
    )["access"]
    event = helpers.rest(
        base_url,
        "POST",
        "/api/events/",
        {"title": "Wide hall", "category": "drama", "duration_minutes": 100},
        token=staff,
    )
    created = helpers.rest(
        base_url,
        "POST",
        f"/api/events/{event['id']}/showtimes/",
        {"date": "2031-03-01", "theater": "Imax", "starts_at": "20:00", "rows": 3, "seats_per_row": 40, "price": "15"},
        token=staff,
    )
    page = new_page(PHONE)
    helpers.ui_login(page, helpers.register_user(base_url, "wide"))
    helpers.open_showtime(page, helpers.Showtime(event["id"], created["showtime_id"], "2031-03-01", "Imax"))

    expect(page.locator("#hall-scroll-hint")).to_be_visible()
    expect(page.locator(".hall-scroll")).to_have_attribute("data-overflow", "true")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]  # only the hall scrolls
    helpers.assert_accessible(page, "a wide hall at 390 px")


@pytest.mark.browser
def test_held_for_you_message_goes_when_the_hold_ends_elsewhere(new_page, base_url, catalog):
    showtime = catalog[7 % len(catalog)]
    email = helpers.register_user(base_url, "two-tabs")
    first, second = new_page(PHONE), new_page()
    helpers.ui_login(first, email)
    helpers.ui_login(second, email)
    helpers.open_showtime(first, showtime)
    [ticket_id] = helpers.available_seats(first, 1)
    helpers.hold_seats(first, [ticket_id])
    expect(first.locator("#seat-message")).to_contain_text("held for you")

    # The same buyer lets it go from another tab: this page learns it from the room's update, not its own timer.
    helpers.open_showtime(second, showtime)
    expect(seat(second, ticket_id)).to_have_attribute("data-status", "mine")
    seat(second, ticket_id).click()
    expect(seat(second, ticket_id)).to_have_attribute("data-status", "available", timeout=ACK_TIMEOUT_MS)

    expect(seat(first, ticket_id)).to_have_attribute("data-status", "available", timeout=LIVE_TIMEOUT_MS)
    expect(first.locator("#seat-message")).to_have_text("", timeout=LIVE_TIMEOUT_MS)
    expect(first.locator(".cart-empty")).to_be_visible()
    expect(first.locator("#cart-bar")).to_be_hidden()
