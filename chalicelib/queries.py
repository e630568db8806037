"""The query parameters of the public catalogue reads, checked without pydantic.

`GET /api/events/` and `GET /api/events/{id}/tickets` are what a premiere's crowd calls first, so they are what
new REST containers answer first when Lambda scales out. Validating their two or four parameters with the
pydantic models would import pydantic and build every request model of `chalicelib.schemas` on that first call:
about 70 ms of a cold start whose floor (`import boto3`, a client, one call) is under 200 ms
(`python -m bench.coldstart`). The rules live here; `schemas.EventsQuery` and `schemas.TicketsQuery` use them and
remain what the OpenAPI document shows, and tests/unit/test_queries.py holds both to the same answers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import NamedTuple

from chalicelib.errors import BadRequest

DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
LIMIT = re.compile(r"^[0-9]{1,3}$")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
CATEGORY_MAX = 64
CURSOR_MAX = 2048
THEATER_MAX = 100


class EventsFilter(NamedTuple):
    category: str | None
    category_name: str | None
    cursor: str | None
    limit: int


class TicketsFilter(NamedTuple):
    date: dt.date | None
    theater: str | None


def parse_date(value: object) -> object:
    """Only YYYY-MM-DD (a lenient parser would also take datetimes and epoch numbers). Raises ValueError."""
    if isinstance(value, str):
        if not DATE.match(value):
            raise ValueError("use YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("not a calendar date (YYYY-MM-DD)") from exc
    if isinstance(value, dt.date):
        return value
    raise ValueError("use YYYY-MM-DD")


def parse_limit(value: object) -> object:
    """A page size from a query string: 1..MAX_LIMIT, digits only. Raises ValueError."""
    if isinstance(value, str):
        if not LIMIT.match(value) or not 1 <= int(value) <= MAX_LIMIT:
            raise ValueError(f"must be a whole number from 1 to {MAX_LIMIT}")
        return int(value)
    return value


def events_filter(params: Mapping[str, str] | None) -> EventsFilter:
    """The parameters of `GET /api/events/`; unknown ones are ignored. Raises BadRequest naming the parameter."""
    params = params or {}
    limit = params.get("limit")
    return EventsFilter(
        category=_text(params, "category", CATEGORY_MAX),
        category_name=_text(params, "category_name", CATEGORY_MAX),
        cursor=_text(params, "cursor", CURSOR_MAX),
        limit=DEFAULT_LIMIT if limit is None else _checked("limit", parse_limit, limit),
    )


def tickets_filter(params: Mapping[str, str] | None) -> TicketsFilter:
    """The parameters of `GET /api/events/{id}/tickets`. Raises BadRequest naming the parameter."""
    params = params or {}
    date = params.get("date")
    return TicketsFilter(
        date=None if date is None else _checked("date", parse_date, date),
        theater=_text(params, "theater", THEATER_MAX),
    )


def _text(params: Mapping[str, str], name: str, max_length: int) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > max_length:
        raise BadRequest(f"{name}: String should have at most {max_length} characters")
    return value


def _checked(name: str, check, value: str):
    try:
        return check(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from exc
