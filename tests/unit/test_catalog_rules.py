"""Pure catalog rules: showtime identity, start times, the public ticket view, page cursors."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import ShowtimeRecord, TicketRecord
from chalicelib.errors import BadRequest
from chalicelib.services.catalog import (
    _generate_tickets,
    showtime_id_for,
    starts_at_iso,
    theater_key,
    ticket_view,
)
from chalicelib.storage.catalog import decode_cursor, encode_cursor

NOW = 1_900_000_000


def _ticket(**overrides) -> TicketRecord:
    values = dict(
        showtime_id="st1", ticket_id="st1-A1", row="A", number=1, price="12.00", currency="USD", status="available"
    )
    values.update(overrides)
    return TicketRecord(**values)


# --- showtime identity ----------------------------------------------------------------------


@pytest.mark.parametrize("theater", ["Hall 1", "hall 1", "HALL 1", "  Hall   1 ", "Hall\t1"])
def test_same_event_date_and_theater_in_any_case_or_spacing_is_one_showtime(theater):
    assert showtime_id_for("ev1", "2030-01-01", theater) == showtime_id_for("ev1", "2030-01-01", "Hall 1")


@pytest.mark.parametrize(
    ("event", "date", "theater"),
    [("ev2", "2030-01-01", "Hall 1"), ("ev1", "2030-01-02", "Hall 1"), ("ev1", "2030-01-01", "Hall 2")],
)
def test_another_event_date_or_theater_is_another_showtime(event, date, theater):
    assert showtime_id_for(event, date, theater) != showtime_id_for("ev1", "2030-01-01", "Hall 1")


def test_showtime_ids_are_url_safe_and_short():
    showtime_id = showtime_id_for("ev1", "2030-01-01", "Salle Étoile")
    assert showtime_id.isalnum() and len(showtime_id) == 20


def test_theater_key_ignores_case_and_runs_of_whitespace():
    assert theater_key("  Grand\u00a0 HALL  ") == "grand hall"


# --- start times ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("19:30", "2030-01-01T19:30:00Z"),
        ("07:05:09", "2030-01-01T07:05:09Z"),
        ("2030-01-01T20:00:00Z", "2030-01-01T20:00:00Z"),
        ("2030-01-01T20:00:00+02:00", "2030-01-01T18:00:00Z"),
        ("2030-01-01T23:30:00-01:00", "2030-01-02T00:30:00Z"),
        ("2030-01-01T20:00:00.999Z", "2030-01-01T20:00:00Z"),
        ("2030-01-01T20:00", "2030-01-01T20:00:00Z"),
    ],
)
def test_start_time_is_normalised_to_utc_iso(text, expected):
    assert starts_at_iso(dt.date(2030, 1, 1), text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7",
        "25:00",
        "19:60",
        "noon",
        "2030-13-01T10:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_unusable_start_time_is_bad_request_naming_starts_at(text):
    with pytest.raises(BadRequest) as caught:
        starts_at_iso(dt.date(2030, 1, 1), text)
    assert caught.value.message.startswith("starts_at: ")


@given(st.text(max_size=40))
def test_any_start_time_text_is_either_normalised_or_bad_request(text):
    try:
        result = starts_at_iso(dt.date(2030, 1, 1), text)
    except BadRequest:
        return
    assert result.endswith("Z") and dt.datetime.fromisoformat(result[:-1])


# --- generated seats ------------------------------------------------------------------------


def _showtime(rows: int, seats: int) -> ShowtimeRecord:
    return ShowtimeRecord(
        id="st9",
        event_id="ev",
        date="2030-01-01",
        theater="Hall",
        starts_at="x",
        rows=rows,
        seats_per_row=seats,
        price="9.50",
        currency="EUR",
        tickets_count=rows * seats,
    )


def test_showtime_generates_rows_times_seats_available_tickets():
    tickets = list(_generate_tickets(_showtime(8, 10)))
    assert len(tickets) == 80
    assert len({t.ticket_id for t in tickets}) == 80
    assert {t.status for t in tickets} == {"available"}
    assert (tickets[0].ticket_id, tickets[-1].ticket_id) == ("st9-A1", "st9-H10")
    assert {t.price for t in tickets} == {"9.50"} and {t.currency for t in tickets} == {"EUR"}


def test_large_halls_get_distinct_row_labels_past_z():
    rows = {t.row for t in _generate_tickets(_showtime(28, 1))}
    assert len(rows) == 28 and {"Z", "AA", "AB"} <= rows


# --- what a viewer sees ---------------------------------------------------------------------


def test_available_ticket_view_has_every_contract_field():
    view = ticket_view(_ticket(), viewer="u1", now=NOW)
    assert view == {
        "ticket_id": "st1-A1",
        "showtime_id": "st1",
        "seat": "A1",
        "row": "A",
        "number": 1,
        "price": "12.00",
        "currency": "USD",
        "status": "available",
        "mine": False,
    }


def test_live_hold_is_mine_only_for_its_holder():
    held = _ticket(status="held", holder="u1", hold_expires_at=NOW + 60)
    assert ticket_view(held, viewer="u1", now=NOW)["mine"] is True
    assert ticket_view(held, viewer="u2", now=NOW)["mine"] is False
    assert ticket_view(held, viewer=None, now=NOW)["mine"] is False
    assert ticket_view(held, viewer="u2", now=NOW)["status"] == "held"


def test_held_ticket_shows_when_the_hold_ends():
    view = ticket_view(_ticket(status="held", holder="u1", hold_expires_at=NOW + 60), viewer=None, now=NOW)
    assert view["expires_at"] == dt.datetime.fromtimestamp(NOW + 60, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_expired_hold_reads_available_and_not_mine():
    expired = _ticket(status="held", holder="u1", hold_expires_at=NOW)
    view = ticket_view(expired, viewer="u1", now=NOW)
    assert (view["status"], view["mine"]) == ("available", False)
    assert "expires_at" not in view


def test_ticket_in_checkout_reads_held_and_stays_mine():
    checkout = _ticket(status="checkout", holder="u1", hold_expires_at=NOW + 900, order_id="o1")
    assert ticket_view(checkout, viewer="u1", now=NOW)["status"] == "held"
    assert ticket_view(checkout, viewer="u1", now=NOW)["mine"] is True


def test_sold_ticket_is_mine_for_its_owner_only():
    sold = _ticket(status="sold", holder="u1", order_id="o1")
    assert (ticket_view(sold, "u1", NOW)["status"], ticket_view(sold, "u1", NOW)["mine"]) == ("sold", True)
    assert ticket_view(sold, "u2", NOW)["mine"] is False


# --- page cursors ---------------------------------------------------------------------------


def _raw_cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_cursor_round_trips_the_position():
    position = {"id": "ev-1", "created_at": "2024-01-01T00:00:00.000000Z"}
    assert decode_cursor(encode_cursor(position), ("id", "created_at")) == position


def test_no_position_means_no_cursor():
    assert encode_cursor(None) is None and decode_cursor(None, ("id",)) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "zzz",
        "!!!!",
        "",
        _raw_cursor(["id"]),
        _raw_cursor({}),
        _raw_cursor({"id": {"S": "x"}}),  # a raw DynamoDB key is not accepted from clients
        _raw_cursor({"id": 1}),
        _raw_cursor({"id": ""}),
        _raw_cursor({"id": "x" * 300}),
        _raw_cursor({"id": "x", "extra": "y"}),
        _raw_cursor({"created_at": "x"}),
        base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_malformed_cursor_is_bad_request_naming_cursor(cursor):
    with pytest.raises(BadRequest) as caught:
        decode_cursor(cursor, ("id",))
    assert caught.value.message == "cursor: malformed cursor"


def test_cursor_of_the_unfiltered_listing_does_not_fit_a_category_listing():
    with pytest.raises(BadRequest):
        decode_cursor(encode_cursor({"id": "ev-1"}), ("id", "created_at"))


@given(st.text(max_size=200))
def test_any_cursor_text_is_either_a_position_of_plain_strings_or_bad_request(text):
    try:
        position = decode_cursor(text, ("id",))
    except BadRequest:
        return
    assert set(position) == {"id"} and isinstance(position["id"], str) and position["id"]
