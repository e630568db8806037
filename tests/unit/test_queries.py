"""The catalogue reads' query parameters (chalicelib.queries) answer exactly as their documented models do."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from chalicelib import errors, queries, schemas
from chalicelib.http import parse_query

EVENTS_CASES = [
    None,
    {},
    {"limit": "1"},
    {"limit": "100"},
    {"limit": "020"},
    {"limit": "0"},
    {"limit": "101"},
    {"limit": "1000"},
    {"limit": "-1"},
    {"limit": "2.0"},
    {"limit": ""},
    {"limit": " 5"},
    {"category": "drama", "cursor": "abc", "utm_source": "mail"},
    {"category": "x" * 64},
    {"category": "x" * 65},
    {"category_name": "é" * 64},
    {"category_name": "é" * 65},
    {"cursor": "c" * 2048},
    {"cursor": "c" * 2049},
    {"category": "x" * 65, "limit": "0"},
]

TICKETS_CASES = [
    None,
    {},
    {"date": "2026-12-24"},
    {"date": "2026-02-30"},
    {"date": "2026-12-24T20:00:00"},
    {"date": "1766534400"},
    {"date": "26-12-24"},
    {"date": ""},
    {"theater": ""},
    {"theater": "Hall 1", "date": "2026-12-24"},
    {"theater": "t" * 100},
    {"theater": "t" * 101},
    {"theater": "t" * 101, "date": "nope"},
    {"page": "2"},
]


def _outcome(parse):
    try:
        return ("ok", parse())
    except errors.BadRequest as exc:
        return ("bad", exc.message)


@pytest.mark.parametrize("params", EVENTS_CASES)
def test_events_filter_answers_as_the_documented_model(params):
    fast = _outcome(lambda: queries.events_filter(params)._asdict())
    documented = _outcome(lambda: parse_query(params, schemas.EventsQuery).model_dump())
    assert fast == documented


@pytest.mark.parametrize("params", TICKETS_CASES)
def test_tickets_filter_answers_as_the_documented_model(params):
    fast = _outcome(lambda: queries.tickets_filter(params)._asdict())
    documented = _outcome(lambda: parse_query(params, schemas.TicketsQuery).model_dump())
    assert fast == documented


def test_the_values_a_route_reads():
    assert queries.events_filter({"limit": "7", "category": "drama"}) == queries.EventsFilter(
        category="drama", category_name=None, cursor=None, limit=7
    )
    assert queries.tickets_filter({"date": "2026-12-24", "theater": "Hall 1"}) == queries.TicketsFilter(
        date=dt.date(2026, 12, 24), theater="Hall 1"
    )


def test_a_bad_parameter_is_named_in_the_answer():
    with pytest.raises(errors.BadRequest, match=r"^date: not a calendar date \(YYYY-MM-DD\)$"):
        queries.tickets_filter({"date": "2026-02-30"})
    with pytest.raises(errors.BadRequest, match=r"^limit: must be a whole number from 1 to 100$"):
        queries.events_filter({"limit": "0"})


def test_the_module_never_imports_pydantic():
    """The point of the module: a cold REST container answers the catalogue reads without pydantic."""
    code = "import sys, chalicelib.queries; sys.exit('pydantic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
