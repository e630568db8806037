"""Every REST error is {"code","message"} JSON with its contract status, never a 500 or a stack trace."""

from __future__ import annotations

import pytest
import requests
from openapi_spec_validator import validate

TIMEOUT = 30
LEAKS = ("Traceback", 'File "', "botocore", "pynamodb", "chalicelib", "Exception")


def _assert_error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code and body["message"]
    assert not any(leak in response.text for leak in LEAKS), response.text
    return body["message"]


def _register_raw(stack, data: bytes | str, content_type: str | None = "application/json") -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(stack.api("auth/register/"), data=data, headers=headers, timeout=TIMEOUT)


# --- 404 / 405 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/nope", "/api/nope/", "/api", "/api/", "/api/events/demo-dune/nope/", "/api/auth", "/api/payment"]
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_path_is_404_json(stack, path, method):
    response = requests.request(method, stack.base_url + path, json={}, timeout=TIMEOUT)
    _assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "health/"),
        ("PUT", "events/"),
        ("PATCH", "auth/me"),
        ("GET", "auth/register/"),
        ("GET", "token/"),
        ("DELETE", "events/demo-dune/"),
    ],
)
def test_unsupported_method_is_405_json(stack, method, path):
    _assert_error(requests.request(method, stack.api(path), timeout=TIMEOUT), 405, "method_not_allowed")


# --- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_non_json_body_is_415_json(stack, content_type):
    response = _register_raw(stack, '{"email": "a@example.com", "password": "correct-horse-1"}', content_type)
    _assert_error(response, 415, "unsupported_media_type")


def test_body_over_64_kb_is_413_json(stack):
    body = '{"email": "a@example.com", "password": "' + "x" * (64 * 1024) + '"}'
    _assert_error(_register_raw(stack, body), 413, "payload_too_large")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"email": "a@example.com",}',
        b"\xff\xfe\x00",
        b'{"email": NaN, "password": "correct-horse-1"}',
        b"[" * 20_000 + b"]" * 20_000,
    ],
)
def test_malformed_json_is_400_about_the_body(stack, body):
    assert _assert_error(_register_raw(stack, body), 400, "bad_request").startswith("body: ")


@pytest.mark.parametrize("body", [b"[]", b'["a@example.com", "correct-horse-1"]', b'"text"', b"42", b"null", b""])
def test_json_that_is_not_an_object_is_400(stack, body):
    assert _assert_error(_register_raw(stack, body), 400, "bad_request") == "body: a JSON object is required"


@pytest.mark.parametrize(
    "body",
    [
        '{"email": 5, "password": "correct-horse-1"}',
        '{"email": ["a@example.com"], "password": "correct-horse-1"}',
        '{"email": {"$ne": null}, "password": "correct-horse-1"}',
    ],
)
def test_field_of_the_wrong_type_is_400_naming_it(stack, body):
    assert _assert_error(_register_raw(stack, body), 400, "bad_request").startswith("email: ")


def test_json_body_without_a_content_type_is_415(stack):
    # no Content-Type is no promise of JSON: a browser's cross-site "simple" request can send a body without one
    response = _register_raw(
        stack, '{"email": "no-type@example.com", "password": "correct-horse-1"}', content_type=None
    )
    _assert_error(response, 415, "unsupported_media_type")


# --- ids with unusual characters ------------------------------------------------------------


@pytest.mark.parametrize("event_id", ["%20", "a%20b", "%C3%BC", "a.b", "~", "%2525", "a%23b", "a%3Fb"])
def test_event_id_with_unusual_characters_is_404_json(stack, event_id):
    _assert_error(requests.get(stack.api(f"events/{event_id}/"), timeout=TIMEOUT), 404, "not_found")


@pytest.mark.parametrize("event_id", ["%0A", "a%0Ab", "%3B"])
def test_event_id_with_a_newline_or_semicolon_is_404_json(stack, event_id):
    _assert_error(requests.get(stack.api(f"events/{event_id}/"), timeout=TIMEOUT), 404, "not_found")


# --- the schema -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["schema/", "schema"])
def test_served_schema_is_a_valid_openapi_document(stack, path):
    response = requests.get(stack.api(path), timeout=TIMEOUT)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert {"/api/events", "/api/auth/register", "/api/events/{event_id}/tickets"} <= set(document["paths"])
