"""Buying through the PayPal emulator, and refunding from My orders, as two users watch the same hall."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tests.browser import helpers
from tests.browser.helpers import LIVE_TIMEOUT_MS, SLOW_TIMEOUT_MS, seat

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect


@pytest.mark.browser
def test_buyer_pays_two_seats_with_paypal_and_the_other_user_sees_them_sold(new_page, base_url, catalog, artifacts_dir):
    showtime = catalog[1 % len(catalog)]
    buyer, watcher = new_page(), new_page()
    helpers.ui_register(buyer, helpers.unique_email("buyer"))
    helpers.ui_login(watcher, helpers.register_user(base_url, "watcher"))

    # The buyer finds the showtime through the pages: events -> event -> showtime.
    buyer.goto("/#/events")
    buyer.locator(f'.event-card[data-event-id="{showtime.event_id}"] h2 a').click()
    buyer.locator(f'a.showtime[data-showtime-id="{showtime.showtime_id}"]').click()
    helpers.wait_live(buyer)
    helpers.open_showtime(watcher, showtime)

    picked = helpers.available_seats(buyer, 2)
    helpers.hold_seats(buyer, picked)
    prices = helpers.ticket_prices(base_url, showtime)
    total = sum((prices[t][0] for t in picked), Decimal("0"))
    currency = prices[picked[0]][1]
    expect(buyer.locator("#cart-total")).to_have_text(f"{total:.2f} {currency}")
    for ticket_id in picked:
        expect(seat(watcher, ticket_id)).to_have_attribute("data-status", "held", timeout=LIVE_TIMEOUT_MS)
    buyer.locator(".seat-layout").screenshot(path=str(artifacts_dir / "seat-map-cart.png"))

    helpers.pay_with_emulator(buyer)
    expect(buyer.locator("#order-status")).to_contain_text("paid")
    buyer.screenshot(path=str(artifacts_dir / "payment-return-paid.png"), full_page=True)

    for ticket_id in picked:
        expect(seat(watcher, ticket_id)).to_have_attribute("data-status", "sold", timeout=SLOW_TIMEOUT_MS)
        expect(seat(watcher, ticket_id)).to_have_attribute("aria-label", re.compile(r", sold, "))
    watcher.locator(".hall-panel").screenshot(path=str(artifacts_dir / "seat-map-sold.png"))


@pytest.mark.browser
def test_refunding_one_ticket_from_my_orders_frees_that_seat_for_others(new_page, base_url, catalog, artifacts_dir):
    showtime = catalog[2 % len(catalog)]
    buyer, watcher = new_page(), new_page()
    helpers.ui_login(buyer, helpers.register_user(base_url, "refunder"))
    helpers.ui_login(watcher, helpers.register_user(base_url, "onlooker"))
    helpers.open_showtime(buyer, showtime)
    helpers.open_showtime(watcher, showtime)
    refunded, kept = helpers.available_seats(buyer, 2)
    helpers.hold_seats(buyer, [refunded, kept])
    helpers.pay_with_emulator(buyer)
    for ticket_id in (refunded, kept):
        expect(seat(watcher, ticket_id)).to_have_attribute("data-status", "sold", timeout=SLOW_TIMEOUT_MS)

    buyer.get_by_role("link", name="My orders").first.click()
    buyer.locator(".order-item a").first.click()
    expect(buyer.locator("#order-status")).to_have_attribute("data-status", "paid")
    buyer.locator(f'input[type="checkbox"][data-ticket-id="{refunded}"]').check()
    buyer.get_by_role("button", name="Refund selected tickets").click()
    expect(buyer.locator("#order-status")).to_have_attribute(
        "data-status", "partially_refunded", timeout=SLOW_TIMEOUT_MS
    )
    expect(buyer.locator(f'input[data-ticket-id="{refunded}"]')).to_have_count(0)
    expect(buyer.locator(f'input[data-ticket-id="{kept}"]')).to_have_count(1)
    buyer.screenshot(path=str(artifacts_dir / "order-partially-refunded.png"), full_page=True)

    expect(seat(watcher, refunded)).to_have_attribute("data-status", "available", timeout=SLOW_TIMEOUT_MS)
    expect(seat(watcher, kept)).to_have_attribute("data-status", "sold")
    watcher.locator(".hall-panel").screenshot(path=str(artifacts_dir / "seat-map-after-refund.png"))


@pytest.mark.browser
def test_cancelling_at_paypal_keeps_the_seats_held_for_the_buyer(new_page, base_url, catalog, artifacts_dir):
    showtime = catalog[min(6, len(catalog) - 1)]
    buyer = new_page()
    helpers.ui_login(buyer, helpers.register_user(base_url, "hesitant"))
    helpers.open_showtime(buyer, showtime)
    [ticket_id] = helpers.available_seats(buyer, 1)
    helpers.hold_seats(buyer, [ticket_id])

    buyer.locator("#pay-button").click()
    cancel = buyer.get_by_role("button", name="Cancel", exact=True)
    cancel.wait_for(timeout=SLOW_TIMEOUT_MS)
    cancel.click()
    buyer.wait_for_url("**/paypal/cancel**", timeout=SLOW_TIMEOUT_MS)
    expect(buyer.locator("#order-status")).to_have_attribute("data-status", "cancelled", timeout=SLOW_TIMEOUT_MS)
    buyer.screenshot(path=str(artifacts_dir / "payment-cancelled.png"), full_page=True)

    buyer.get_by_role("link", name="Back to the seat map").click()
    helpers.wait_live(buyer)
    expect(seat(buyer, ticket_id)).to_have_attribute("data-status", "mine")
    expect(buyer.locator(f'.cart-items li[data-ticket-id="{ticket_id}"]')).to_have_count(1)
    expect(buyer.locator("#pay-button")).to_be_enabled()
