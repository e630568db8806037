"""The catalog against DynamoDB (moto): categories, paginated events, showtimes and their seats."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest

from chalicelib.errors import AlreadyExists, BadRequest, NotFound
from chalicelib.storage.catalog import CatalogRepository, encode_cursor
from chalicelib.wiring import Container
from tests.support.tables import bound, make_settings, provision

DAY = dt.date(2031, 3, 14)
CATEGORIES = (("drama", "Drama"), ("sci-fi", "Science Fiction"), ("comedy", "Comedy"))


def _with_categories(container: Container) -> Container:
    for slug, name in CATEGORIES:
        CatalogRepository().put_category(slug, name)
    return container


@pytest.fixture(scope="module")
def shared_container(moto_endpoint) -> Container:
    """One set of tables for the module: provisioning is the slow part, and these tests only add
    events of their own, so they do not see each other."""
    settings = make_settings(moto_endpoint)
    provision(settings)
    return _with_categories(Container(settings))


@pytest.fixture
def container(shared_container) -> Container:
    return bound(shared_container)


@pytest.fixture
def catalog(container):
    return container.catalog


@pytest.fixture
def empty_catalog(settings_factory):
    """Tables of its own, for the tests that list every event."""
    return _with_categories(Container(settings_factory())).catalog


def _category() -> str:
    slug = f"c-{uuid.uuid4().hex[:10]}"
    CatalogRepository().put_category(slug, slug.upper())
    return slug


def _event(catalog, title="Film", category="drama") -> dict:
    return catalog.create_event(title=title, description=f"About {title}", category=category, duration_minutes=100)


def _showtime(catalog, event_id, theater="Hall 1", date=DAY, rows=2, seats=3, price="12.00") -> dict:
    return catalog.create_showtime(
        event_id,
        date=date,
        theater=theater,
        starts_at="19:30",
        rows=rows,
        seats_per_row=seats,
        price=Decimal(price),
        currency="USD",
    )


def _walk(catalog, *, category=None, limit) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = catalog.events(category=category, limit=limit, cursor=cursor)
        pages.append([e["id"] for e in page["results"]])
        cursor = page["next"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not terminate"


# --- categories and events ------------------------------------------------------------------


def test_categories_are_listed_by_name(empty_catalog):
    assert empty_catalog.categories() == {
        "results": [
            {"slug": "comedy", "name": "Comedy"},
            {"slug": "drama", "name": "Drama"},
            {"slug": "sci-fi", "name": "Science Fiction"},
        ]
    }


def test_created_event_is_returned_with_its_category(catalog):
    created = _event(catalog, "Whiplash")
    assert created["category"] == {"slug": "drama", "name": "Drama"}
    detail = catalog.event_detail(created["id"])
    assert {k: detail[k] for k in created} == created and detail["showtimes"] == []


def test_event_in_an_unknown_category_is_bad_request_naming_category(catalog):
    with pytest.raises(BadRequest, match="^category: "):
        _event(catalog, category="westerns")


@pytest.mark.parametrize("event_id", ["missing", "", "x" * 65, "a/b", "a b", "ü"])
def test_unknown_or_implausible_event_is_not_found(catalog, event_id):
    with pytest.raises(NotFound):
        catalog.event_detail(event_id)


@pytest.mark.parametrize("limit", [1, 3, 7, 100])
def test_walking_every_page_returns_each_event_once(empty_catalog, limit):
    expected = {_event(empty_catalog, f"Film {i}", ("drama", "comedy")[i % 2])["id"] for i in range(7)}
    pages = _walk(empty_catalog, limit=limit)
    seen = [event_id for page in pages for event_id in page]
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert all(0 < len(page) <= limit for page in pages), "no empty or oversized page"


@pytest.mark.parametrize("limit", [1, 2, 4, 5])
def test_walking_a_category_returns_each_of_its_events_once_newest_first(catalog, limit):
    mine, other = _category(), _category()
    created = []
    for i in range(4):
        created.append(_event(catalog, f"Mine {i}", mine)["id"])
        _event(catalog, f"Other {i}", other)
    seen = [event_id for page in _walk(catalog, category=mine, limit=limit) for event_id in page]
    assert seen == list(reversed(created))


def test_last_page_has_no_next_cursor_when_it_is_exactly_full(catalog):
    category = _category()
    for i in range(4):
        _event(catalog, f"Film {i}", category)
    assert [len(p) for p in _walk(catalog, category=category, limit=2)] == [2, 2]
    assert [len(p) for p in _walk(catalog, category=category, limit=4)] == [4]


def test_full_listing_last_page_has_no_next_cursor_when_it_is_exactly_full(empty_catalog):
    for i in range(4):
        _event(empty_catalog, f"Film {i}")
    assert [len(p) for p in _walk(empty_catalog, limit=2)] == [2, 2]


def test_empty_category_lists_nothing(catalog):
    assert catalog.events(category=_category(), limit=20, cursor=None) == {"results": [], "next": None}


@pytest.mark.parametrize("cursor", ["zzz", encode_cursor({"id": "x", "created_at": "y"})])
def test_malformed_cursor_for_the_full_listing_is_bad_request(catalog, cursor):
    with pytest.raises(BadRequest, match="^cursor: "):
        catalog.events(category=None, limit=5, cursor=cursor)


def test_cursor_of_the_full_listing_is_bad_request_for_a_category(catalog):
    with pytest.raises(BadRequest, match="^cursor: "):
        catalog.events(category="drama", limit=5, cursor=encode_cursor({"id": "x"}))


@pytest.mark.parametrize("position", [{"id": "no-such-event"}, {"id": "\u0000"}, {"id": "é" * 60}])
def test_forged_but_well_formed_cursor_never_fails_the_listing(catalog, position):
    _event(catalog)
    page = catalog.events(category=None, limit=5, cursor=encode_cursor(position))
    assert isinstance(page["results"], list)


def test_forged_category_cursor_never_fails_the_listing(catalog):
    _event(catalog)
    forged = encode_cursor({"id": "nope", "created_at": "not-a-date"})
    assert isinstance(catalog.events(category="drama", limit=5, cursor=forged)["results"], list)


# --- showtimes and seats --------------------------------------------------------------------


def test_new_showtime_reports_its_generated_tickets(catalog):
    event = _event(catalog)
    created = _showtime(catalog, event["id"], rows=3, seats=4, price="9.5")
    assert created["tickets"] == 12 and created["available"] == 12
    assert (created["price"], created["currency"], created["theater"]) == ("9.50", "USD", "Hall 1")
    assert created["starts_at"] == "2031-03-14T19:30:00Z"


def test_same_event_date_and_theater_in_another_case_is_already_exists(catalog):
    event = _event(catalog)
    _showtime(catalog, event["id"], theater="Hall 1")
    with pytest.raises(AlreadyExists):
        _showtime(catalog, event["id"], theater="  hALL   1")


def test_same_theater_on_another_day_is_a_new_showtime(catalog):
    event = _event(catalog)
    _showtime(catalog, event["id"])
    assert _showtime(catalog, event["id"], date=DAY + dt.timedelta(days=1))["tickets"] == 6


def test_showtime_for_an_unknown_event_is_not_found(catalog):
    with pytest.raises(NotFound):
        _showtime(catalog, "missing")


def test_event_detail_lists_showtimes_in_start_order_with_availability(catalog):
    event = _event(catalog)
    later = _showtime(catalog, event["id"], date=DAY + dt.timedelta(days=1))
    first = _showtime(catalog, event["id"], theater="Hall 2")
    detail = catalog.event_detail(event["id"])
    assert [s["showtime_id"] for s in detail["showtimes"]] == [first["showtime_id"], later["showtime_id"]]
    assert detail["showtimes"][0] == {
        "showtime_id": first["showtime_id"],
        "date": DAY.isoformat(),
        "theater": "Hall 2",
        "starts_at": "2031-03-14T19:30:00Z",
        "available": 6,
    }


def test_seats_are_listed_row_by_row_with_contract_fields(catalog):
    event = _event(catalog)
    showtime = _showtime(catalog, event["id"], rows=2, seats=10)
    seats = catalog.tickets(event["id"], date=None, theater=None, viewer=None)["results"]
    assert [t["seat"] for t in seats][:11] == [f"A{n}" for n in range(1, 11)] + ["B1"]
    assert seats[0] == {
        "ticket_id": f"{showtime['showtime_id']}-A1",
        "showtime_id": showtime["showtime_id"],
        "seat": "A1",
        "row": "A",
        "number": 1,
        "price": "12.00",
        "currency": "USD",
        "status": "available",
        "mine": False,
    }


def test_seat_listing_filters_by_date_and_theater_in_any_case(catalog):
    event = _event(catalog)
    hall1 = _showtime(catalog, event["id"], theater="Hall 1")
    _showtime(catalog, event["id"], theater="Hall 2")
    _showtime(catalog, event["id"], theater="Hall 1", date=DAY + dt.timedelta(days=1))

    def showtimes(**filters):
        seats = catalog.tickets(event["id"], viewer=None, **filters)["results"]
        return {t["showtime_id"] for t in seats}

    assert showtimes(date=DAY.isoformat(), theater="hall 1") == {hall1["showtime_id"]}
    assert showtimes(date=DAY.isoformat(), theater="HALL  1 ") == {hall1["showtime_id"]}
    assert len(showtimes(date=None, theater="Hall 1")) == 2
    assert len(showtimes(date=DAY.isoformat(), theater=None)) == 2
    assert showtimes(date="2040-01-01", theater=None) == set()
    assert showtimes(date=None, theater="Hall 9") == set()


def test_held_seat_is_mine_only_for_its_holder_and_lowers_availability(catalog, container):
    event = _event(catalog)
    showtime = _showtime(catalog, event["id"])
    ticket_id = f"{showtime['showtime_id']}-A2"
    container.seats.repo.select("holder-1", showtime["showtime_id"], ticket_id, time.time())

    def seat(viewer):
        seats = catalog.tickets(event["id"], date=None, theater=None, viewer=viewer)["results"]
        return next(t for t in seats if t["ticket_id"] == ticket_id)

    assert (seat("holder-1")["status"], seat("holder-1")["mine"]) == ("held", True)
    assert (seat("someone-else")["status"], seat("someone-else")["mine"]) == ("held", False)
    assert seat(None)["mine"] is False
    assert "expires_at" in seat(None)
    assert catalog.event_detail(event["id"])["showtimes"][0]["available"] == 5


def test_expired_hold_reads_available_before_any_sweep(catalog, container):
    event = _event(catalog)
    showtime = _showtime(catalog, event["id"])
    ticket_id = f"{showtime['showtime_id']}-B3"
    long_ago = time.time() - container.seats.repo.hold_seconds - 60
    container.seats.repo.select("holder-1", showtime["showtime_id"], ticket_id, long_ago)
    seats = catalog.tickets(event["id"], date=None, theater=None, viewer="holder-1")["results"]
    seat = next(t for t in seats if t["ticket_id"] == ticket_id)
    assert (seat["status"], seat["mine"]) == ("available", False)
    assert catalog.event_detail(event["id"])["showtimes"][0]["available"] == 6


def test_recreating_a_showtime_never_resets_a_held_seat(catalog, container):
    """A retried creation (same id) is refused before it touches any seat."""
    event = _event(catalog)
    showtime = _showtime(catalog, event["id"])
    ticket_id = f"{showtime['showtime_id']}-A1"
    container.seats.repo.select("holder-1", showtime["showtime_id"], ticket_id, time.time())
    with pytest.raises(AlreadyExists):
        _showtime(catalog, event["id"])
    seats = catalog.tickets(event["id"], date=None, theater=None, viewer="holder-1")["results"]
    assert next(t for t in seats if t["ticket_id"] == ticket_id)["mine"] is True
