"""Body / query parsing and the one map from domain errors to HTTP responses (chalicelib.http)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field, field_validator

from chalicelib import errors, schemas
from chalicelib.http import MAX_BODY_BYTES, endpoint, parse_body, parse_query, status_for

JSON = "application/json"


class Sample(schemas.Strict):
    name: str = Field(min_length=1, max_length=10)
    count: int = Field(ge=0)

    @field_validator("name")
    @classmethod
    def _no_x(cls, value: str) -> str:
        if "x" in value:
            raise ValueError("must not contain x")
        return value


def _bad_request(raw, content_type=JSON, model=Sample) -> str:
    with pytest.raises(errors.BadRequest) as caught:
        parse_body(raw, content_type, model)
    return caught.value.message


# --- bodies ---------------------------------------------------------------------------------


def test_valid_json_object_becomes_the_model():
    parsed = parse_body(b'{"name": "ok", "count": 2}', JSON, Sample)
    assert (parsed.name, parsed.count) == ("ok", 2)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"]
)
def test_json_content_types_are_accepted(content_type):
    assert parse_body(b'{"name": "ok", "count": 1}', content_type, Sample).count == 1


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        None,
        "",
    ],
)
def test_non_json_content_type_is_unsupported_media_type(content_type):
    with pytest.raises(errors.UnsupportedMediaType) as caught:
        parse_body(b'{"name": "ok", "count": 1}', content_type, Sample)
    assert status_for(caught.value) == 415


@pytest.mark.parametrize(
    "raw",
    [b"{bad", b'{"name": "ok",}', b"\xff\xfe{}", b'{"name": "ok", "count": NaN}', b'{"count": Infinity, "name": "a"}'],
)
def test_malformed_json_is_bad_request_about_the_body(raw):
    assert _bad_request(raw).startswith("body: ")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"42", b"null", b"true", b"", b"   "])
def test_body_that_is_not_a_json_object_is_bad_request(raw):
    assert _bad_request(raw) == "body: a JSON object is required"


def test_deeply_nested_json_within_the_size_limit_is_bad_request_not_a_crash():
    raw = b"[" * 30_000 + b"]" * 30_000
    assert len(raw) <= MAX_BODY_BYTES
    assert _bad_request(raw) == "body: JSON nested too deeply"


def test_body_over_64_kb_is_payload_too_large():
    raw = json.dumps({"name": "a" * MAX_BODY_BYTES, "count": 1}).encode()
    with pytest.raises(errors.PayloadTooLarge) as caught:
        parse_body(raw, JSON, Sample)
    assert status_for(caught.value) == 413


def test_body_of_exactly_64_kb_is_parsed():
    padding = MAX_BODY_BYTES - len(b'{"name": "ok", "count": 1, "pad": ""}')
    raw = b'{"name": "ok", "count": 1, "pad": "' + b" " * padding + b'"}'
    assert len(raw) == MAX_BODY_BYTES

    class Padded(Sample):
        pad: str

    assert parse_body(raw, JSON, Padded).name == "ok"


def test_missing_field_is_named():
    assert _bad_request(b'{"name": "ok"}') == "count: Field required"


def test_invalid_field_is_named():
    message = _bad_request(b'{"name": "ok", "count": -1}')
    assert message.startswith("count: ")
    assert "greater than or equal to 0" in message


def test_wrong_type_is_named():
    assert _bad_request(b'{"name": 5, "count": 1}').startswith("name: ")


def test_unknown_body_field_is_named():
    assert _bad_request(b'{"name": "ok", "count": 1, "admin": true}') == "admin: unknown field"


def test_own_validator_message_names_the_field_without_pydantic_prefix():
    assert _bad_request(b'{"name": "xx", "count": 1}') == "name: must not contain x"


def test_str_body_is_parsed_like_bytes():
    assert parse_body('{"name": "é", "count": 1}', JSON, Sample).name == "é"


# --- query parameters -----------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", " 5", "1e2", "٣"])
def test_bad_limit_is_bad_request_naming_limit(limit):
    with pytest.raises(errors.BadRequest) as caught:
        parse_query({"limit": limit}, schemas.EventsQuery)
    assert caught.value.message == "limit: must be a whole number from 1 to 100"


@pytest.mark.parametrize(("raw", "expected"), [(None, 20), ("1", 1), ("100", 100), ("007", 7)])
def test_limit_defaults_to_20_and_accepts_1_to_100(raw, expected):
    params = {} if raw is None else {"limit": raw}
    assert parse_query(params, schemas.EventsQuery).limit == expected


def test_unknown_query_parameters_are_ignored():
    query = parse_query({"category": "drama", "_": "1700000000"}, schemas.EventsQuery)
    assert query.category == "drama"


@pytest.mark.parametrize(
    "date", ["2024-1-1", "20240101", "2024-02-30", "1700000000", "2024-01-01T00:00:00", "tomorrow", ""]
)
def test_bad_date_is_bad_request_naming_date(date):
    with pytest.raises(errors.BadRequest) as caught:
        parse_query({"date": date}, schemas.TicketsQuery)
    assert caught.value.message.startswith("date: ")


def test_valid_date_parses():
    assert parse_query({"date": "2024-02-29"}, schemas.TicketsQuery).date.isoformat() == "2024-02-29"


def test_query_parameter_over_its_length_is_named():
    with pytest.raises(errors.BadRequest) as caught:
        parse_query({"cursor": "a" * 5000}, schemas.EventsQuery)
    assert caught.value.message.startswith("cursor: ")


# --- the error map and the view boundary ----------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.BadRequest(), 400, "bad_request"),
        (errors.Unauthorized(), 401, "unauthorized"),
        (errors.Forbidden(), 403, "forbidden"),
        (errors.NotFound(), 404, "not_found"),
        (errors.EmailTaken(), 409, "email_taken"),
        (errors.AlreadyExists(), 409, "already_exists"),
        (errors.PayloadTooLarge(), 413, "payload_too_large"),
        (errors.UnsupportedMediaType(), 415, "unsupported_media_type"),
        (errors.PaymentDeclined(), 422, "payment_declined"),
        (errors.RateLimited(), 429, "rate_limited"),
        (errors.PaymentProviderUnavailable(), 503, "payment_provider_unavailable"),
    ],
)
def test_domain_error_becomes_its_status_and_contract_body(error, status, code):
    def view():
        raise error

    response = endpoint()(view)()
    assert response.status_code == status
    assert response.body == {"code": code, "message": error.message}
    assert response.headers["Content-Type"] == "application/json"


def test_unexpected_exception_becomes_500_without_internal_detail():
    def view():
        raise KeyError("secret-table-name")

    response = endpoint()(view)()
    assert response.status_code == 500
    assert response.body["code"] == "internal_error"
    assert "secret" not in json.dumps(response.body)


def test_view_result_is_json_with_the_declared_status():
    response = endpoint(status=201)(lambda: {"id": "1"})()
    assert (response.status_code, response.body) == (201, {"id": "1"})


def test_every_contract_error_code_is_snake_case():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    for cls in subclasses(errors.DomainError):
        assert cls.code.replace("_", "").isalpha() and cls.code == cls.code.lower(), cls


class _Nested(BaseModel):
    inner: Sample


def test_nested_field_is_named_with_its_path():
    with pytest.raises(errors.BadRequest) as caught:
        parse_body(b'{"inner": {"name": "ok"}}', JSON, _Nested)
    assert caught.value.message == "inner.count: Field required"
