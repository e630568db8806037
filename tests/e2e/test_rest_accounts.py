"""Accounts over real HTTP against the running stack: register, token, refresh, me, hand-crafted JWTs."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
import requests

TIMEOUT = 30


def _email() -> str:
    return f"acc-{uuid.uuid4().hex[:10]}@example.com"


def _post(stack, path: str, body) -> requests.Response:
    return requests.post(stack.api(path), json=body, timeout=TIMEOUT)


def _me(stack, token: str | None = None, header: str | None = None) -> requests.Response:
    headers = {"Authorization": header if header is not None else f"Bearer {token}"}
    return requests.get(stack.api("auth/me/"), headers=headers, timeout=TIMEOUT)


def _assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code and body["message"]
    return body


# --- register -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["auth/register/", "auth/register"])
def test_register_answers_201_with_id_and_email_with_or_without_slash(stack, path):
    email = _email()
    response = _post(stack, path, {"email": email, "password": "correct-horse-1"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "email"} and body["email"] == email and body["id"]


def test_register_stores_the_email_lowercased(stack):
    email = _email()
    assert (
        _post(stack, "auth/register/", {"email": email.upper(), "password": "correct-horse-1"}).json()["email"] == email
    )


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a@b",
        "@example.com",
        "a b@example.com",
        "a@@example.com",
        "a\u0000@example.com",
        "",
        "x" * 250 + "@example.com",
    ],
)
def test_register_with_an_invalid_email_is_400_naming_email(stack, email):
    body = _assert_error(
        _post(stack, "auth/register/", {"email": email, "password": "correct-horse-1"}), 400, "bad_request"
    )
    assert body["message"].startswith("email: ")


@pytest.mark.parametrize("password", ["", "7-chars", "x" * 1025])
def test_register_with_a_password_outside_8_to_1024_characters_is_400_naming_password(stack, password):
    body = _assert_error(_post(stack, "auth/register/", {"email": _email(), "password": password}), 400, "bad_request")
    assert body["message"].startswith("password: ")


@pytest.mark.parametrize("password", ["8-chars!", "p" * 1024, "ünïcødé✓"])
def test_register_accepts_passwords_of_8_to_1024_characters(stack, password):
    email = _email()
    assert _post(stack, "auth/register/", {"email": email, "password": password}).status_code == 201
    assert _post(stack, "token/", {"email": email, "password": password}).status_code == 200


@pytest.mark.parametrize(
    ("body", "missing"),
    [({"email": "a@example.com"}, "password"), ({"password": "correct-horse-1"}, "email"), ({}, "email")],
)
def test_register_with_a_missing_field_is_400_naming_it(stack, body, missing):
    message = _assert_error(_post(stack, "auth/register/", body), 400, "bad_request")["message"]
    assert message == f"{missing}: Field required"


def test_register_with_an_unknown_field_is_400_naming_it(stack):
    body = {"email": _email(), "password": "correct-horse-1", "is_staff": True}
    assert (
        _assert_error(_post(stack, "auth/register/", body), 400, "bad_request")["message"] == "is_staff: unknown field"
    )


def test_registering_a_taken_email_in_any_case_is_409_email_taken(stack):
    email = _email()
    assert _post(stack, "auth/register/", {"email": email, "password": "correct-horse-1"}).status_code == 201
    _assert_error(
        _post(stack, "auth/register/", {"email": email.upper(), "password": "other-password"}), 409, "email_taken"
    )


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["token/", "token"])
def test_login_answers_access_and_refresh_tokens(stack, path):
    user = stack.register()
    response = _post(stack, path, {"email": user["email"], "password": user["password"]})
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}


@pytest.mark.parametrize("field", ["email", "password"])
def test_login_with_wrong_credentials_is_401(stack, field):
    user = stack.register()
    body = {"email": user["email"], "password": user["password"], field: "wrong-" + user[field]}
    _assert_error(_post(stack, "token/", body), 401, "unauthorized")


def test_issued_tokens_are_hs256_jwts_with_the_contract_claims(stack):
    user = stack.register()
    for kind in ("access", "refresh"):
        token = user[kind]
        assert jwt.get_unverified_header(token)["alg"] == "HS256"
        claims = jwt.decode(token, options={"verify_signature": False})
        assert {"sub", "exp", "iat", "iss", "aud", "typ"} <= set(claims)
        assert (claims["sub"], claims["typ"]) == (user["id"], kind)


@pytest.mark.parametrize("path", ["token/refresh/", "token/refresh"])
def test_refresh_answers_a_new_access_token(stack, path):
    user = stack.register()
    response = _post(stack, path, {"refresh": user["refresh"]})
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}  # rotated: the refresh token sent is spent
    assert response.json()["refresh"] != user["refresh"]
    assert _me(stack, response.json()["access"]).json()["id"] == user["id"]


def test_refresh_with_an_access_token_is_401(stack):
    _assert_error(_post(stack, "token/refresh/", {"refresh": stack.register()["access"]}), 401, "unauthorized")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_refresh_with_an_invalid_token_is_401(stack, token):
    _assert_error(_post(stack, "token/refresh/", {"refresh": token}), 401, "unauthorized")


def test_refresh_without_the_field_is_400_naming_refresh(stack):
    assert _assert_error(_post(stack, "token/refresh/", {}), 400, "bad_request")["message"].startswith("refresh: ")


# --- me and hand-crafted tokens ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["auth/me/", "auth/me"])
def test_me_answers_the_callers_account(stack, path):
    user = stack.register()
    response = requests.get(stack.api(path), headers={"Authorization": f"Bearer {user['access']}"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"id": user["id"], "email": user["email"], "is_staff": False, "is_scanner": False}


def test_me_for_the_demo_staff_account_says_staff(stack):
    assert _me(stack, stack.staff_token()).json()["is_staff"] is True


def test_me_without_a_token_is_401(stack):
    _assert_error(requests.get(stack.api("auth/me/"), timeout=TIMEOUT), 401, "unauthorized")


def test_me_with_a_refresh_token_is_401(stack):
    _assert_error(_me(stack, stack.register()["refresh"]), 401, "unauthorized")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNzd29yZA==", "Bearer", "Token abc", ""])
def test_me_with_a_non_bearer_authorization_header_is_401(stack, header):
    _assert_error(_me(stack, header=header), 401, "unauthorized")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _real_claims(stack) -> dict:
    return jwt.decode(stack.register()["access"], options={"verify_signature": False})


def test_unsigned_alg_none_token_is_401(stack):
    claims = _real_claims(stack)
    _assert_error(_me(stack, f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."), 401, "unauthorized")


@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
def test_token_signed_with_a_guessed_secret_is_401(stack, algorithm):
    forged = jwt.encode(_real_claims(stack), "guessed-secret-" * 5, algorithm=algorithm)
    _assert_error(_me(stack, forged), 401, "unauthorized")


def test_token_with_a_payload_swapped_under_a_real_signature_is_401(stack):
    victim, attacker = stack.register(), stack.register()
    header, _, signature = attacker["access"].split(".")
    victim_claims = jwt.decode(victim["access"], options={"verify_signature": False})
    _assert_error(_me(stack, f"{header}.{_b64(victim_claims)}.{signature}"), 401, "unauthorized")


def test_token_with_its_expiry_pushed_back_is_401(stack):
    token = stack.register()["access"]
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) + 10 * 365 * 86400
    _assert_error(_me(stack, f"{header}.{_b64(claims)}.{signature}"), 401, "unauthorized")
