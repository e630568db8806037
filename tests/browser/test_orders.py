"""My orders as a buyer reads them (issue 16): each order names its event, showing, theater and seats; statuses
are in plain words; a checkout replaced by a later one says so; PayPal's page lists one item per seat."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from tests.browser import helpers
from tests.browser.helpers import SLOW_TIMEOUT_MS

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect

# What an order must never show a buyer: the API's own status words, or PayPal's internal showtime id.
RAW_STATUS = re.compile(r"^(created|cancelled|processing|refund_pending|partially_refunded)$")


def event_title(base_url: str, showtime: helpers.Showtime) -> str:
    return helpers.rest(base_url, "GET", f"/api/events/{urllib.parse.quote(showtime.event_id, safe='')}/")["title"]


def seat_names(base_url: str, showtime: helpers.Showtime, ticket_ids: list[str]) -> list[str]:
    """How the app names these seats ("Row D seat 5"), from the public listing."""
    query = urllib.parse.urlencode({"date": showtime.date, "theater": showtime.theater})
    path = f"/api/events/{urllib.parse.quote(showtime.event_id, safe='')}/tickets/?{query}"
    listing = {t["ticket_id"]: t for t in helpers.rest(base_url, "GET", path)["results"]}
    return [f"Row {listing[t]['row']} seat {listing[t]['number']}" for t in ticket_ids]


def start_payment_and_come_back(page) -> None:
    """Pay with PayPal, look at PayPal's page, then go back to the seat map without paying."""
    page.locator("#pay-button").click()
    page.get_by_role("button", name="Approve").wait_for(timeout=SLOW_TIMEOUT_MS)
    page.go_back()
    helpers.wait_live(page)


def assert_plain_status_words(page) -> None:
    for text in page.locator(".status-chip").all_text_contents():
        assert not RAW_STATUS.match(text.strip()), f"a raw API status reached the buyer: {text!r}"


@pytest.mark.browser
def test_orders_name_what_was_bought_and_a_replaced_checkout_says_why(new_page, base_url, catalog, artifacts_dir):
    showtime = catalog[3 % len(catalog)]
    title = event_title(base_url, showtime)
    buyer = new_page()
    helpers.ui_login(buyer, helpers.register_user(base_url, "orders"))
    helpers.open_showtime(buyer, showtime)
    first, second = helpers.available_seats(buyer, 2)
    first_name, second_name = seat_names(base_url, showtime, [first, second])

    # A first checkout: PayPal's page lists the seat as an item named for the event, not an internal id.
    helpers.hold_seats(buyer, [first])
    buyer.locator("#pay-button").click()
    items = buyer.locator("ul.items li")
    items.first.wait_for(timeout=SLOW_TIMEOUT_MS)
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text(f"{title}: {first_name.replace(' seat', ', seat')}")
    expect(items.first).to_contain_text(showtime.theater)
    expect(buyer.locator("main")).not_to_contain_text(showtime.showtime_id)
    buyer.screenshot(path=str(artifacts_dir / "paypal-items.png"), full_page=True)
    buyer.go_back()
    helpers.wait_live(buyer)

    # The buyer changes their mind, adds a seat and pays: that later checkout replaces the first.
    helpers.hold_seats(buyer, [second])
    helpers.pay_with_emulator(buyer)
    expect(buyer.locator(".order-what")).to_contain_text(title)
    expect(buyer.locator(".order-what")).to_contain_text(showtime.theater)

    buyer.get_by_role("link", name="My orders").first.click()
    orders = buyer.locator(".order-item")
    expect(orders).to_have_count(2)
    paid, replaced = orders.nth(0), orders.nth(1)
    expect(paid.locator(".order-title")).to_have_text(title)
    expect(paid.locator(".status-chip")).to_have_text("Paid")
    expect(paid.locator(".order-showing")).to_contain_text(showtime.theater)
    expect(paid.locator(".order-seats")).to_have_text(f"{first_name}, {second_name}")
    expect(replaced.locator(".order-title")).to_have_text(title)
    expect(replaced.locator(".status-chip")).to_have_text("Replaced by a later checkout")
    expect(replaced.locator(".order-seats")).to_have_text(first_name)
    assert_plain_status_words(buyer)
    buyer.screenshot(path=str(artifacts_dir / "my-orders.png"), full_page=True)

    replaced.locator("a").click()
    expect(buyer.locator(".page-title")).to_have_text(title)
    expect(buyer.locator("#order-status")).to_have_attribute("data-status", "cancelled")
    expect(buyer.locator("#order-status")).to_contain_text("Replaced by a later checkout")
    expect(buyer.locator("#order-status")).to_contain_text("new checkout")
    expect(buyer.locator(".order-theater")).to_have_text(showtime.theater)
    expect(buyer.locator(".order-starts")).not_to_be_empty()
    expect(buyer.locator(".order-tickets")).to_contain_text(first_name)


@pytest.mark.browser
def test_an_unpaid_checkout_reads_awaiting_payment_and_offers_to_continue(new_page, base_url, catalog):
    showtime = catalog[4 % len(catalog)]
    buyer = new_page()
    helpers.ui_login(buyer, helpers.register_user(base_url, "unpaid"))
    helpers.open_showtime(buyer, showtime)
    [ticket_id] = helpers.available_seats(buyer, 1)
    helpers.hold_seats(buyer, [ticket_id])
    start_payment_and_come_back(buyer)

    buyer.get_by_role("link", name="My orders").first.click()
    order = buyer.locator(".order-item")
    expect(order).to_have_count(1)
    expect(order.locator(".status-chip")).to_have_text("Awaiting payment")
    expect(order.locator(".order-title")).to_have_text(event_title(base_url, showtime))
    assert_plain_status_words(buyer)
    order.locator("a").click()
    expect(buyer.locator("#order-status")).to_contain_text("Awaiting payment")
    expect(buyer.get_by_role("link", name="Continue to PayPal to pay")).to_be_visible()
