"""A buyer has their tickets emailed again from the order page, and the local outbox shows both emails."""

from __future__ import annotations

import time

import pytest
import requests

from tests.browser import helpers
from tests.browser.helpers import SLOW_TIMEOUT_MS

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect


def receipts(base_url: str, address: str) -> list[dict]:
    answer = requests.get(f"{base_url}/local/outbox.json", timeout=10)
    return [m for m in answer.json()["results"] if address in m["to"]]


def wait_for_receipts(base_url: str, address: str, count: int) -> list[dict]:
    deadline = time.monotonic() + SLOW_TIMEOUT_MS / 1000
    while len(found := receipts(base_url, address)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} emails to {address} in the outbox"
        time.sleep(0.2)
    return found


@pytest.mark.browser
def test_a_buyer_has_their_tickets_emailed_again_from_the_order_page(new_page, base_url, catalog, artifacts_dir):
    showtime = catalog[4 % len(catalog)]
    buyer = new_page()
    address = helpers.register_user(base_url, "resender")
    helpers.ui_login(buyer, address)
    helpers.open_showtime(buyer, showtime)
    (ticket,) = helpers.available_seats(buyer, 1)
    helpers.hold_seats(buyer, [ticket])
    helpers.pay_with_emulator(buyer)
    wait_for_receipts(base_url, address, 1)

    buyer.get_by_role("link", name="My orders").first.click()
    buyer.locator(".order-item a").first.click()
    expect(buyer.locator("#order-status")).to_have_attribute("data-status", "paid")
    buyer.get_by_role("button", name="Email me my tickets again").click()

    expect(buyer.locator("#resend-message")).to_have_text(
        "Your tickets are on their way to your email address.", timeout=SLOW_TIMEOUT_MS
    )
    first, again = wait_for_receipts(base_url, address, 2)
    assert first["subject"] == again["subject"] and first["subject"].startswith("Your tickets for ")
    buyer.screenshot(path=str(artifacts_dir / "order-tickets-resent.png"), full_page=True)
    helpers.assert_accessible(buyer, "the order page after a resend")
