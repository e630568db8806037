"""Sessions that end, over the running stack: a stolen refresh token replayed, sign-out closing its sockets,
single-use WebSocket tickets, and a password change."""

from __future__ import annotations

import json
import urllib.parse

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.support import payflow

TIMEOUT = 10.0


def post(stack, path: str, token: str | None = None, body: dict | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(stack.api(path), json=body, headers=headers, timeout=TIMEOUT)


def ticket(stack, access: str) -> str:
    answer = post(stack, "auth/ws-ticket/", access)
    assert answer.status_code == 201, answer.text
    assert answer.json()["expires_in"] == 30
    return answer.json()["ticket"]


def room_url(stack, showtime_id: str, **credentials: str) -> str:
    return f"{stack.ws_url}?{urllib.parse.urlencode({'showtime_id': showtime_id, **credentials})}"


@pytest.fixture
def showtime_id(stack) -> str:
    from local.seed import THEATERS

    return next(s.showtime_id for s in payflow.showtimes(stack) if s.theater in THEATERS)


def test_a_stolen_refresh_token_replayed_after_the_owner_refreshed_ends_the_session(stack):
    user = stack.register()
    owner = requests.post(stack.api("token/refresh/"), json={"refresh": user["refresh"]}, timeout=TIMEOUT).json()
    assert set(owner) == {"access", "refresh"}
    import time

    time.sleep(11)  # past the moment two tabs of the owner may both present the same token
    thief = requests.post(stack.api("token/refresh/"), json={"refresh": user["refresh"]}, timeout=TIMEOUT)
    assert thief.status_code == 401
    # The whole family ended: the owner's newer tokens stop working as well.
    assert (
        requests.post(stack.api("token/refresh/"), json={"refresh": owner["refresh"]}, timeout=TIMEOUT).status_code
        == 401
    )


def test_signing_out_ends_the_tokens_and_closes_the_sessions_socket(stack, showtime_id):
    user = stack.register()
    with ws_connect(room_url(stack, showtime_id, ticket=ticket(stack, user["access"])), open_timeout=TIMEOUT) as ws:
        assert post(stack, "auth/logout/", user["access"]).json() == {"status": "signed_out"}
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=TIMEOUT)
    me = requests.get(stack.api("auth/me/"), headers={"Authorization": f"Bearer {user['access']}"}, timeout=TIMEOUT)
    assert me.status_code == 401
    refreshed = requests.post(stack.api("token/refresh/"), json={"refresh": user["refresh"]}, timeout=TIMEOUT)
    assert refreshed.status_code == 401


def test_a_websocket_ticket_opens_one_connection_and_a_token_in_the_url_still_works(stack, showtime_id):
    user = stack.register()
    one = ticket(stack, user["access"])
    with ws_connect(room_url(stack, showtime_id, ticket=one), open_timeout=TIMEOUT) as ws:
        ws.send(json.dumps({"action": "snapshot"}))
        assert json.loads(ws.recv(timeout=TIMEOUT))["type"] in ("snapshot", "ticket_status")
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(room_url(stack, showtime_id, ticket=one), open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 401
    with ws_connect(room_url(stack, showtime_id, token=user["access"]), open_timeout=TIMEOUT):
        pass  # older clients


def test_a_password_change_ends_every_other_session(stack):
    user = stack.register()
    other = stack.login(user["email"], user["password"])
    changed = post(
        stack,
        "auth/password/",
        user["access"],
        {"current_password": user["password"], "new_password": "brand-new-pass-9"},
    )
    assert changed.status_code == 200, changed.text
    for token in (other["access"], user["access"]):
        me = requests.get(stack.api("auth/me/"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
        assert me.status_code == 401
    me = requests.get(
        stack.api("auth/me/"), headers={"Authorization": f"Bearer {changed.json()['access']}"}, timeout=TIMEOUT
    )
    assert me.status_code == 200
    wrong = post(
        stack, "auth/password/", changed.json()["access"], {"current_password": "nope-nope-1", "new_password": "x" * 9}
    )
    assert wrong.status_code == 401
