"""Accounts against DynamoDB (moto): register, log in, refresh, staff, one account per email."""

from __future__ import annotations

import json
import threading
import time
import uuid

import jwt
import pytest
from chalice.test import Client

from chalicelib.errors import EmailTaken, Forbidden, Unauthorized
from chalicelib.wiring import Container, reset_container
from tests.support.tables import bound, make_settings, provision


@pytest.fixture(scope="module")
def shared_container(moto_endpoint) -> Container:
    """One set of tables for the module: every test registers emails of its own."""
    settings = make_settings(moto_endpoint)
    provision(settings)
    return Container(settings)


@pytest.fixture
def container(shared_container) -> Container:
    return bound(shared_container)


@pytest.fixture
def accounts(container):
    return container.accounts


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def test_registered_user_logs_in_and_the_access_token_names_them(accounts):
    email = _email()
    user = accounts.register(email, "correct-horse-1")
    tokens = accounts.login(email, "correct-horse-1")
    assert set(tokens) == {"access", "refresh"}
    assert accounts.authenticate(tokens["access"]) == user.id
    me = accounts.user(user.id)
    assert (me.email, me.is_staff) == (email, False)


def test_password_is_stored_hashed(accounts):
    user = accounts.register(_email(), "correct-horse-1")
    assert "correct-horse-1" not in accounts.user(user.id).password_hash


def test_email_is_case_insensitive_for_login(accounts):
    email = _email()
    accounts.register(email.upper(), "correct-horse-1")
    assert accounts.login(email, "correct-horse-1")["access"]


def test_second_registration_of_an_email_in_any_case_is_email_taken(accounts):
    email = _email()
    accounts.register(email, "correct-horse-1")
    with pytest.raises(EmailTaken):
        accounts.register(email.upper(), "another-password")
    assert accounts.login(email, "correct-horse-1")  # the first account is untouched


def test_concurrent_registrations_of_one_email_create_exactly_one_account(accounts):
    email = _email()
    outcomes: list[str] = []
    start = threading.Barrier(6)

    def attempt(i: int) -> None:
        start.wait()
        try:
            accounts.register(email, f"password-{i}-xxxx")
            outcomes.append("created")
        except EmailTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["created"] + ["taken"] * 5


def test_wrong_password_is_unauthorized(accounts):
    email = _email()
    accounts.register(email, "correct-horse-1")
    with pytest.raises(Unauthorized):
        accounts.login(email, "correct-horse-2")


def test_unknown_email_is_unauthorized_with_the_same_message_as_a_wrong_password(accounts):
    email = _email()
    accounts.register(email, "correct-horse-1")
    with pytest.raises(Unauthorized) as unknown:
        accounts.login(_email(), "correct-horse-1")
    with pytest.raises(Unauthorized) as wrong:
        accounts.login(email, "wrong-password")
    assert unknown.value.message == wrong.value.message


def test_refresh_token_gives_a_new_access_token_for_the_same_user(accounts):
    email = _email()
    user = accounts.register(email, "correct-horse-1")
    first = accounts.login(email, "correct-horse-1")
    refreshed = accounts.refresh(first["refresh"])
    assert set(refreshed) == {"access", "refresh"}  # rotated: the refresh token sent is spent
    assert refreshed["refresh"] != first["refresh"]
    assert accounts.authenticate(refreshed["access"]) == user.id


def test_access_token_cannot_be_used_to_refresh(accounts):
    email = _email()
    accounts.register(email, "correct-horse-1")
    with pytest.raises(Unauthorized):
        accounts.refresh(accounts.login(email, "correct-horse-1")["access"])


def test_refresh_token_cannot_be_used_as_access_token(accounts):
    email = _email()
    accounts.register(email, "correct-horse-1")
    with pytest.raises(Unauthorized):
        accounts.authenticate(accounts.login(email, "correct-horse-1")["refresh"])


def test_refresh_for_a_user_that_does_not_exist_is_unauthorized(accounts, container):
    config = container.token_config()
    now = int(time.time())
    forged = jwt.encode(
        {"sub": "ghost", "iat": now, "exp": now + 60, "iss": config.issuer, "aud": config.audience, "typ": "refresh"},
        config.secret,
        algorithm="HS256",
    )
    with pytest.raises(Unauthorized):
        accounts.refresh(forged)


def test_token_signed_with_another_deployments_secret_is_unauthorized(accounts, container):
    config = container.token_config()
    now = int(time.time())
    claims = {"sub": "x", "iat": now, "exp": now + 60, "iss": config.issuer, "aud": config.audience, "typ": "access"}
    with pytest.raises(Unauthorized):
        accounts.authenticate(jwt.encode(claims, "another-deployment-secret-0123456789", algorithm="HS256"))


def test_regular_user_is_forbidden_staff_actions(accounts):
    user = accounts.register(_email(), "correct-horse-1")
    with pytest.raises(Forbidden):
        accounts.require_staff(user.id)


def test_ensure_staff_account_creates_a_staff_account(accounts):
    email = _email()
    made = accounts.ensure_staff_account(email, "staff-password-1")
    staff = made.user
    assert made.outcome == "created" and staff.is_staff and accounts.require_staff(staff.id).id == staff.id
    assert accounts.authenticate(accounts.login(email, "staff-password-1")["access"]) == staff.id


def test_ensure_staff_account_refuses_an_existing_user_unless_told_to_reset_their_password(accounts):
    email = _email()
    user = accounts.register(email, "users-own-password")
    with pytest.raises(EmailTaken):
        accounts.ensure_staff_account(email.upper(), "a-different-password")
    assert not accounts.user(user.id).is_staff

    promoted = accounts.ensure_staff_account(email.upper(), "a-different-password", reset_existing=True)
    assert (promoted.user.id, promoted.user.is_staff, promoted.outcome) == (user.id, True, "promoted")
    assert accounts.login(email, "a-different-password")
    with pytest.raises(Unauthorized):
        accounts.login(email, "users-own-password")


def test_ensure_staff_account_is_idempotent(accounts):
    email = _email()
    first = accounts.ensure_staff_account(email, "staff-password-1")
    again = accounts.ensure_staff_account(email, "staff-password-1")
    assert (again.user.id, again.outcome) == (first.user.id, "already_staff")


# --- through the Chalice routes, with tokens forged using the deployment's own secret ----------------


@pytest.fixture
def api(shared_container, monkeypatch):
    """app.py's routes via chalice.test.Client, bound to this module's tables and JWT secret."""
    settings = shared_container.settings
    for name, value in {
        "AWS_ENDPOINT_URL": settings.dynamodb_endpoint,
        "AWS_REGION": settings.region,
        "TABLE_PREFIX": settings.table_prefix,
        "QUEUE_PREFIX": settings.queue_prefix,
        "JWT_SECRET": settings.jwt_secret,
        "PASSWORD_SCRYPT_N": str(settings.password_scrypt_n),
    }.items():
        monkeypatch.setenv(name, value)
    reset_container()
    import app

    with Client(app.app) as client:
        yield client
    reset_container()


@pytest.fixture
def user(shared_container):
    email = _email()
    return shared_container.accounts.register(email, "correct-horse-1")


def _session_of(shared_container, user_id: str) -> str:
    """A live session of the user (tokens carry their sign-in: a forged token needs a real one to pass)."""
    user = shared_container.accounts.user(user_id)
    access = shared_container.accounts.sessions.start(user)["access"]
    return jwt.decode(access, options={"verify_signature": False})["sid"]


def _forged(shared_container, user_id: str, *, algorithm: str = "HS256", **overrides) -> str:
    config = shared_container.token_config()
    now = int(time.time())
    claims = {
        "sid": _session_of(shared_container, user_id),
        "sub": user_id,
        "iat": now,
        "exp": now + 300,
        "iss": config.issuer,
        "aud": config.audience,
        "typ": "access",
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, config.secret, algorithm=algorithm)


def _me(api, token: str):
    return api.http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_token_forged_with_the_real_secret_and_every_claim_right_is_accepted(api, shared_container, user):
    """The control for the refusals below: the forging itself is correct."""
    response = _me(api, _forged(shared_container, user.id))
    assert response.status_code == 200
    assert json.loads(response.body)["id"] == user.id


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": None},
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"typ": "refresh"},
        {"typ": None},
        {"sub": None},
        {"exp": 1},
    ],
    ids=["no-exp", "wrong-iss", "wrong-aud", "refresh-typ", "no-typ", "no-sub", "expired"],
)
def test_token_with_a_wrong_or_missing_claim_is_401_even_with_the_real_secret(api, shared_container, user, overrides):
    response = _me(api, _forged(shared_container, user.id, **overrides))
    assert response.status_code == 401
    assert json.loads(response.body)["code"] == "unauthorized"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the fixture's secret is short
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_signed_with_another_algorithm_is_401_even_with_the_real_secret(api, shared_container, user, algorithm):
    assert _me(api, _forged(shared_container, user.id, algorithm=algorithm)).status_code == 401


def test_refresh_route_refuses_an_access_token_and_accepts_a_refresh_token(api, shared_container, user):
    def refresh(token: str):
        return api.http.post(
            "/api/token/refresh", headers={"Content-Type": "application/json"}, body=json.dumps({"refresh": token})
        )

    assert refresh(_forged(shared_container, user.id)).status_code == 401
    # A refresh token must be its session's current one: forging one without it is not enough.
    assert refresh(_forged(shared_container, user.id, typ="refresh")).status_code == 401
    issued = shared_container.accounts.sessions.start(shared_container.accounts.user(user.id))
    accepted = refresh(issued["refresh"])
    assert accepted.status_code == 200 and set(json.loads(accepted.body)) == {"access", "refresh"}
