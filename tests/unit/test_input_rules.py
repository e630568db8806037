"""Bad input that used to get the wrong answer (issue 12): each case here passed, or crashed, before its rule."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from chalicelib import auth
from chalicelib.errors import BadRequest, Unauthorized
from chalicelib.schemas import Credentials, EventIn, LoginIn, ShowtimeIn
from chalicelib.services.catalog import starts_at_iso
from chalicelib.services.refunds import parse_event

EVENT = {"title": "Dune", "description": "", "category": "scifi", "duration_minutes": 155}
SHOWTIME = {
    "date": "2030-01-01",
    "theater": "Hall 1",
    "starts_at": "19:30",
    "rows": 5,
    "seats_per_row": 8,
    "price": "12.50",
}


def _refused(model, body: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return str(caught.value)


# --- integers are integers -------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, "100", 90.0, "1e2"])
def test_duration_must_be_a_json_integer(value):
    assert "duration_minutes" in _refused(EventIn, {**EVENT, "duration_minutes": value})


@pytest.mark.parametrize("field", ["rows", "seats_per_row"])
@pytest.mark.parametrize("value", [True, "5", 5.0])
def test_hall_size_must_be_json_integers(field, value):
    assert field in _refused(ShowtimeIn, {**SHOWTIME, field: value})


def test_plain_integers_still_pass():
    assert EventIn.model_validate(EVENT).duration_minutes == 155
    showtime = ShowtimeIn.model_validate(SHOWTIME)
    assert (showtime.rows, showtime.seats_per_row, showtime.price) == (5, 8, Decimal("12.50"))


# --- text that lies about itself ---------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u202e", "\u202d", "\u2066", "\u2069"])
def test_control_and_bidi_override_characters_are_refused_in_titles_descriptions_and_theaters(char):
    assert "title" in _refused(EventIn, {**EVENT, "title": f"Dune{char}gpj.exe"})
    assert "description" in _refused(EventIn, {**EVENT, "description": f"Sand{char}worms"})
    assert "theater" in _refused(ShowtimeIn, {**SHOWTIME, "theater": f"Hall{char}1"})


def test_titles_are_one_line_but_descriptions_keep_their_paragraphs():
    assert "title" in _refused(EventIn, {**EVENT, "title": "Dune\nPart Two"})
    event = EventIn.model_validate({**EVENT, "description": "Part one.\n\n\tPart two.", "title": "Dune — Part Two"})
    assert event.description == "Part one.\n\n\tPart two."


def test_ordinary_right_to_left_and_accented_text_is_kept():
    title = "שלום Amélie 東京物語"
    assert EventIn.model_validate({**EVENT, "title": title}).title == title


# --- one spelling per email ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("ＡＬＩＣＥ@example.com", "alice@example.com"),  # full-width letters
        ("alice@ｅｘａｍｐｌｅ.com", "alice@example.com"),
        ("ﬁona@example.com", "fiona@example.com"),  # the "fi" ligature
        ("Alice@Example.COM", "alice@example.com"),
    ],
)
def test_look_alike_spellings_of_an_email_are_one_address(typed, stored):
    assert Credentials.model_validate({"email": typed, "password": "correct-horse-1"}).email == stored
    assert LoginIn.model_validate({"email": typed, "password": "x"}).email == stored


# --- a showtime starts on its own date --------------------------------------------------------


@pytest.mark.parametrize("starts_at", ["2030-01-02T19:30:00Z", "2029-12-31T23:00:00Z", "2030-01-02T00:30:00+01:00"])
def test_start_on_another_date_than_the_showtimes_is_refused(starts_at):
    with pytest.raises(BadRequest) as caught:
        starts_at_iso(dt.date(2030, 1, 1), starts_at)
    assert caught.value.message.startswith("starts_at: falls on ")


def test_late_local_start_on_the_date_is_kept_even_when_utc_is_the_next_day():
    assert starts_at_iso(dt.date(2030, 1, 1), "2030-01-01T23:30:00-05:00") == "2030-01-02T04:30:00Z"


# --- passwords at a higher cost ------------------------------------------------------------


def test_a_hash_made_at_a_higher_scrypt_cost_verifies():
    # N=2^17 needs 128 MiB and a little more; the fixed cap of 128 MiB refused it, so raising the cost broke logins
    stored = auth.hash_password("correct-horse-1", n=2**17)
    assert stored.startswith("scrypt$131072$")
    assert auth.verify_password("correct-horse-1", stored)
    assert not auth.verify_password("wrong-horse-1", stored)


# --- tokens with bytes no JWT has ----------------------------------------------------------


@pytest.mark.parametrize("token", ["\udcff\udcfe.e30.x", "ey\u00e9.e30.sig", "a.b.c\x00", "a b.c.d"])
def test_token_with_non_ascii_or_undecodable_characters_is_unauthorized(token):
    config = auth.TokenConfig(
        secret="s" * 40, issuer="tickets", audience="tickets-api", access_seconds=300, refresh_seconds=86400
    )
    with pytest.raises(Unauthorized):
        auth.verify_token(config, token, "access")


# --- webhook bodies ------------------------------------------------------------------------


def test_webhook_body_nested_too_deeply_is_bad_request():
    with pytest.raises(BadRequest) as caught:
        parse_event(b"[" * 60_000 + b"]" * 60_000)
    assert caught.value.message == "body: JSON nested too deeply"


def test_webhook_body_of_ordinary_depth_parses():
    assert (
        parse_event(
            json.dumps({"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {"a": [[[1]]]}}).encode()
        )["id"]
        == "WH-1"
    )
