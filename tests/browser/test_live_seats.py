"""Live seat map: what one user picks, the others see within a second; the hall works from the keyboard."""

from __future__ import annotations

import re

import pytest

from tests.browser import helpers
from tests.browser.helpers import ACK_TIMEOUT_MS, LIVE_TIMEOUT_MS, seat

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'playwright>=1.45,<2'"
).expect


@pytest.mark.browser
def test_seat_picked_by_one_user_shows_held_to_another_and_free_again_when_released(
    new_page, base_url, catalog, artifacts_dir
):
    showtime = catalog[0]
    alice, bob = new_page(), new_page()
    helpers.ui_login(alice, helpers.register_user(base_url, "alice"))
    helpers.ui_login(bob, helpers.register_user(base_url, "bob"))
    helpers.open_showtime(alice, showtime)
    helpers.open_showtime(bob, showtime)
    [ticket_id] = helpers.available_seats(alice, 1)

    seat(alice, ticket_id).click()
    expect(seat(alice, ticket_id)).to_have_attribute("data-status", "mine", timeout=ACK_TIMEOUT_MS)
    expect(seat(bob, ticket_id)).to_have_attribute("data-status", "held", timeout=LIVE_TIMEOUT_MS)
    expect(seat(bob, ticket_id)).to_have_attribute("aria-label", re.compile(r", held by another customer"))
    alice.locator(".hall-panel").screenshot(path=str(artifacts_dir / "seat-map-holder.png"))
    bob.locator(".hall-panel").screenshot(path=str(artifacts_dir / "seat-map-other-user.png"))

    # Bob cannot take it: the page says why, in words, in a live region.
    seat(bob, ticket_id).click(force=True)  # aria-disabled, but still focusable and it answers
    expect(bob.locator("#seat-error")).to_contain_text("held by another customer")

    seat(alice, ticket_id).click()
    expect(seat(alice, ticket_id)).to_have_attribute("data-status", "available", timeout=ACK_TIMEOUT_MS)
    expect(seat(bob, ticket_id)).to_have_attribute("data-status", "available", timeout=LIVE_TIMEOUT_MS)


@pytest.mark.browser
def test_fifth_seat_is_refused_with_the_limit_in_words(new_page, base_url, catalog):
    showtime = catalog[min(4, len(catalog) - 1)]
    page = new_page()
    helpers.ui_login(page, helpers.register_user(base_url, "greedy"))
    helpers.open_showtime(page, showtime)
    *four, fifth = helpers.available_seats(page, 5)
    helpers.hold_seats(page, four)

    seat(page, fifth).click()
    expect(page.locator("#seat-error")).to_have_text(
        re.compile(r"You can hold at most \d+ seats for this showtime"), timeout=ACK_TIMEOUT_MS
    )
    expect(seat(page, fifth)).to_have_attribute("data-status", "available")
    expect(page.locator(".cart-items li")).to_have_count(4)


@pytest.mark.browser
def test_keyboard_only_user_tabs_into_the_hall_and_picks_a_seat(new_page, base_url, catalog, artifacts_dir):
    showtime = catalog[min(3, len(catalog) - 1)]
    page = new_page()
    helpers.ui_login(page, helpers.register_user(base_url, "keys"))
    helpers.open_showtime(page, showtime)
    page.evaluate("document.activeElement && document.activeElement.blur()")

    focused_seat = "document.activeElement && document.activeElement.dataset.ticketId || null"
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate(focused_seat):
            break
    else:
        pytest.fail("Tab never reached a seat button")

    # Arrow keys move inside the hall; walk right (and down a row at a row's end) to a free seat.
    for _ in range(400):
        if page.evaluate("document.activeElement.dataset.status") == "available":
            break
        before = page.evaluate(focused_seat)
        page.keyboard.press("ArrowRight")
        if page.evaluate(focused_seat) == before:
            page.keyboard.press("ArrowDown")
            page.keyboard.press("Home")
    ticket_id = page.evaluate(focused_seat)
    assert page.evaluate("document.activeElement.dataset.status") == "available"
    target = seat(page, ticket_id)
    expect(target).to_have_attribute("aria-pressed", "false")
    expect(target).to_have_attribute("aria-label", re.compile(r"^Row \S+ seat \S+, available, \d+\.\d{2} [A-Z]{3}$"))

    page.keyboard.press("Enter")
    expect(target).to_have_attribute("aria-pressed", "true", timeout=ACK_TIMEOUT_MS)
    expect(target).to_have_attribute("data-status", "mine")
    expect(target).to_have_attribute("aria-label", re.compile(r", held by you, "))
    expect(target).to_be_focused()
    page.locator(".hall-panel").screenshot(path=str(artifacts_dir / "seat-map-keyboard.png"))

    # Moving away and back with the arrows, then Space releases it.
    page.keyboard.press("ArrowLeft")
    if page.evaluate(focused_seat) == ticket_id:  # first seat of its row
        page.keyboard.press("ArrowRight")
        assert page.evaluate(focused_seat) != ticket_id
        page.keyboard.press("ArrowLeft")
    else:
        page.keyboard.press("ArrowRight")
    expect(target).to_be_focused()
    page.keyboard.press("Space")
    expect(target).to_have_attribute("aria-pressed", "false", timeout=ACK_TIMEOUT_MS)
    expect(target).to_have_attribute("data-status", "available")


@pytest.mark.browser
def test_seat_map_at_320px_scrolls_inside_its_box_not_the_page(new_page, base_url, catalog, artifacts_dir):
    page = new_page(viewport={"width": 320, "height": 640})
    helpers.ui_login(page, helpers.register_user(base_url, "narrow"))
    helpers.open_showtime(page, catalog[0])
    [ticket_id] = helpers.available_seats(page, 1)
    helpers.hold_seats(page, [ticket_id])

    page_width = page.evaluate("document.scrollingElement.scrollWidth")
    assert page_width <= 320, f"the page is {page_width}px wide at a 320px viewport"
    hall = page.locator(".hall-scroll")
    box = hall.evaluate("el => ({right: el.getBoundingClientRect().right, overflowX: getComputedStyle(el).overflowX})")
    assert box["right"] <= 320, "the hall's box sticks out of the viewport"
    assert box["overflowX"] in ("auto", "scroll"), "a wide hall must scroll inside its own box"
    page.screenshot(path=str(artifacts_dir / "seat-map-320px.png"), full_page=True)

    for route in ("/#/events", "/#/orders"):
        page.goto(route)
        page.locator(".page-title").wait_for()
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 320, f"{route} is {width}px wide at a 320px viewport"
