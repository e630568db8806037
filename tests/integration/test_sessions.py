"""Sessions that can end: rotating refresh tokens with reuse detection, sign-out, password change, WebSocket
tickets, against the serialized moto server."""

from __future__ import annotations

import uuid

import jwt
import pytest

from chalicelib.errors import RateLimited, Unauthorized
from chalicelib.wiring import Container
from tests.support.clock import Clock
from tests.support.tables import make_settings, provision

PASSWORD = "correct-horse-1"


@pytest.fixture(scope="module")
def settings(moto_endpoint):
    settings = make_settings(moto_endpoint, PASSWORD_SCRYPT_N="1024", REFRESH_REUSE_GRACE_SECONDS="10")
    provision(settings)
    return settings


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def container(settings, clock) -> Container:
    return Container(settings, clock=clock)


@pytest.fixture
def account(container):
    email = f"s-{uuid.uuid4().hex[:8]}@example.com"
    user = container.accounts.register(email, PASSWORD)
    return user, email


def sid(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sid"]


def test_each_refresh_rotates_and_the_old_refresh_token_is_spent(container, clock, account):
    user, email = account
    accounts = container.accounts
    first = accounts.login(email, PASSWORD)
    second = accounts.refresh(first["refresh"])
    third = accounts.refresh(second["refresh"])
    assert len({first["refresh"], second["refresh"], third["refresh"]}) == 3
    assert sid(first["access"]) == sid(third["access"])  # one session, three tokens
    assert accounts.authenticate(third["access"]) == user.id


def test_a_stolen_refresh_token_used_after_its_owner_ends_the_whole_session(container, clock, account):
    _, email = account
    accounts = container.accounts
    stolen = accounts.login(email, PASSWORD)
    owner = accounts.refresh(stolen["refresh"])  # the owner refreshed; the thief still has the old one
    clock.now += 60
    with pytest.raises(Unauthorized, match="used from somewhere else"):
        accounts.refresh(stolen["refresh"])
    # The family is revoked: the owner's current tokens stop working too (the thief may hold them as well).
    with pytest.raises(Unauthorized):
        accounts.refresh(owner["refresh"])
    container.accounts.sessions._live.clear()  # another container, or this one after its cache time
    with pytest.raises(Unauthorized):
        accounts.authenticate(owner["access"])


def test_two_tabs_refreshing_at_once_both_get_the_current_tokens(container, clock, account):
    _, email = account
    accounts = container.accounts
    shared = accounts.login(email, PASSWORD)
    first_tab = accounts.refresh(shared["refresh"])
    clock.now += 2
    second_tab = accounts.refresh(shared["refresh"])  # within the grace moment: not a theft
    assert second_tab["refresh"] == first_tab["refresh"]
    assert accounts.refresh(second_tab["refresh"])["access"]


def test_signing_out_ends_the_access_and_refresh_tokens_of_that_session_only(container, account):
    user, email = account
    accounts = container.accounts
    phone, laptop = accounts.login(email, PASSWORD), accounts.login(email, PASSWORD)
    accounts.logout(phone["access"])
    with pytest.raises(Unauthorized):
        accounts.authenticate(phone["access"])
    with pytest.raises(Unauthorized):
        accounts.refresh(phone["refresh"])
    assert accounts.authenticate(laptop["access"]) == user.id
    assert accounts.refresh(laptop["refresh"])["access"]


def test_a_password_change_ends_every_other_session_and_keeps_the_caller_signed_in(container, account):
    user, email = account
    accounts = container.accounts
    elsewhere, here = accounts.login(email, PASSWORD), accounts.login(email, PASSWORD)
    fresh = accounts.change_password(here["access"], PASSWORD, "a-new-password-2")
    for token in (elsewhere["access"], here["access"]):
        with pytest.raises(Unauthorized):
            accounts.authenticate(token)
    with pytest.raises(Unauthorized, match="password was changed"):
        accounts.refresh(elsewhere["refresh"])
    assert accounts.authenticate(fresh["access"]) == user.id
    with pytest.raises(Unauthorized):
        accounts.login(email, PASSWORD)
    assert accounts.login(email, "a-new-password-2")["access"]


def test_a_password_change_needs_the_current_password_and_counts_wrong_guesses(container, account):
    _, email = account
    accounts = container.accounts
    here = accounts.login(email, PASSWORD)
    refusals = []
    for _ in range(6):
        try:
            accounts.change_password(here["access"], "not-my-password", "a-new-password-2")
        except (Unauthorized, RateLimited) as exc:
            refusals.append(type(exc).__name__)
    assert refusals[0] == "Unauthorized" and refusals[-1] == "RateLimited"


def test_tokens_without_a_session_are_refused(container, account):
    user, _ = account
    config = container.token_config()
    from chalicelib import auth

    legacy = auth.issue_token(config, user.id, "access")
    with pytest.raises(Unauthorized, match="too old"):
        container.accounts.authenticate(legacy)


def test_a_websocket_ticket_opens_one_connection_once(container, clock, account):
    user, email = account
    accounts = container.accounts
    tokens = accounts.login(email, PASSWORD)
    claims = accounts.sessions.authenticate(tokens["access"])
    ticket = accounts.sessions.ws_ticket(claims)["ticket"]
    assert accounts.sessions.take_ws_ticket(ticket) == (user.id, claims.session_id)
    with pytest.raises(Unauthorized):
        accounts.sessions.take_ws_ticket(ticket)  # single use
    late = accounts.sessions.ws_ticket(claims)["ticket"]
    clock.now += 31
    with pytest.raises(Unauthorized):
        accounts.sessions.take_ws_ticket(late)


def test_signing_out_closes_the_sessions_sockets_and_only_them(container, account):
    from chalicelib.domain import ConnectionRecord

    user, email = account
    accounts = container.accounts
    out, stay = accounts.login(email, PASSWORD), accounts.login(email, PASSWORD)
    closed: list[str] = []
    container.broadcaster.close = closed.append  # what reaches the Management API
    for name, tokens in (("out", out), ("stay", stay)):
        container.connections.add(
            ConnectionRecord(
                connection_id=f"{name}-{uuid.uuid4().hex[:6]}",
                room="room",
                user_id=user.id,
                connected_at=int(container.clock()),
                session_id=sid(tokens["access"]),
            )
        )
    accounts.logout(out["access"])
    assert [c.split("-")[0] for c in closed] == ["out"]
