"""Demo data for the local stack: categories, events, showtimes from tomorrow on, a staff account.

Idempotent: fixed event ids and deterministic showtime ids, so a restart adds nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from chalicelib.domain import EventRecord
from chalicelib.errors import AlreadyExists, EmailTaken
from chalicelib.storage.catalog import CatalogRepository
from chalicelib.wiring import Container

log = logging.getLogger("local.seed")

CATEGORIES = (("drama", "Drama"), ("sci-fi", "Science Fiction"), ("comedy", "Comedy"))
EVENTS = (
    ("demo-dune", "Dune: Part Two", "Paul Atreides unites with the Fremen.", "sci-fi", 166),
    ("demo-arrival", "Arrival", "A linguist works to talk with alien visitors.", "sci-fi", 116),
    ("demo-whiplash", "Whiplash", "A drummer and his relentless teacher.", "drama", 106),
    ("demo-grand-budapest", "The Grand Budapest Hotel", "A concierge and his lobby boy.", "comedy", 99),
)
THEATERS = ("Hall 1", "Hall 2")
DAYS = 3
ROWS, SEATS = 8, 10
PRICES = {"Hall 1": Decimal("12.00"), "Hall 2": Decimal("9.50")}
START_TIMES = {"Hall 1": "19:30", "Hall 2": "21:00"}


def seed(
    container: Container,
    *,
    staff_email: str,
    staff_password: str,
    today: dt.date | None = None,
    days: int = DAYS,
) -> None:
    repo = CatalogRepository()
    for slug, name in CATEGORIES:
        repo.put_category(slug, name)
    names = dict(CATEGORIES)
    created_at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for index, (event_id, title, description, category, minutes) in enumerate(EVENTS):
        try:
            repo.create_event(
                EventRecord(
                    id=event_id,
                    title=title,
                    description=description,
                    category=category,
                    category_name=names[category],
                    duration_minutes=minutes,
                    created_at=(created_at + dt.timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                )
            )
        except AlreadyExists:
            pass
    first_day = (today or dt.date.today()) + dt.timedelta(days=1)
    for event_id, *_ in EVENTS:
        for offset in range(days):
            for theater in THEATERS:
                _showtime(container, event_id, first_day + dt.timedelta(days=offset), theater)
    try:
        container.accounts.ensure_staff_account(staff_email, staff_password)
    except EmailTaken:
        log.warning("%s is registered and not staff: it is not made staff (python -m tools.create_staff)", staff_email)
    log.info("demo data ready")


def _showtime(container: Container, event_id: str, day: dt.date, theater: str) -> None:
    try:
        container.catalog.create_showtime(
            event_id,
            date=day,
            theater=theater,
            starts_at=START_TIMES[theater],
            rows=ROWS,
            seats_per_row=SEATS,
            price=PRICES[theater],
            currency="USD",
        )
    except AlreadyExists:
        pass
