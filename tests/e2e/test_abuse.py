"""On-sale day under attack, against the running stack with its limits on: a hoarding bot farm, password
guessing, a WebSocket flood beside a normal buyer, and bad frames.

Clients come from distinct loopback addresses (Linux routes all of 127.0.0.0/8 to the loopback interface), so
per-source limits see a bot farm and real buyers apart, as API Gateway's `sourceIp` would."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from requests.adapters import HTTPAdapter
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.support import payflow
from tests.support.stack import running_stack

pytestmark = pytest.mark.slow

TIMEOUT = 10.0
BOTS_SOURCE = "127.0.0.2"
HOLD, BUDGET = 5, 8
WS_WINDOW = 10
HOLDS_WINDOW = 600


class _SourceAdapter(HTTPAdapter):
    def __init__(self, source: str) -> None:
        self._source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):  # noqa: ANN002, ANN003 - requests' signature
        kwargs["source_address"] = (self._source, 0)
        return super().init_poolmanager(*args, **kwargs)


def session_from(source: str) -> requests.Session:
    """HTTP from one loopback address."""
    session = requests.Session()
    session.mount("http://", _SourceAdapter(source))
    return session


class Visitor:
    """A user of the stack coming from `source`: registers, logs in, opens the room's WebSocket from there."""

    def __init__(self, stack, source: str) -> None:
        self.stack, self.source = stack, source
        self.http = session_from(source)
        self.email = f"v-{uuid.uuid4().hex[:10]}@example.com"
        created = self.http.post(stack.api("auth/register/"), json={"email": self.email, "password": "correct-horse-1"})
        assert created.status_code == 201, created.text
        self.token = self.http.post(
            stack.api("token/"), json={"email": self.email, "password": "correct-horse-1"}
        ).json()["access"]

    def room(self, showtime_id: str):
        host, port = self.stack.base_url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)), timeout=TIMEOUT, source_address=(self.source, 0))
        query = urllib.parse.urlencode({"showtime_id": showtime_id, "token": self.token})
        return ws_connect(f"{self.stack.ws_url}?{query}", sock=sock, open_timeout=TIMEOUT, close_timeout=2)


def answer(ws, ticket_id: str | None = None, kind: str | None = None, timeout: float = TIMEOUT) -> dict:
    """The next reply (not a broadcast) to this connection."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("type") == "ticket_status":
            continue
        if ticket_id is None or message.get("ticket_id") == ticket_id:
            if kind is None or message.get("type") == kind:
                return message


def try_hold(ws, ticket_id: str, timeout: float = TIMEOUT) -> dict:
    ws.send(json.dumps({"action": "select", "ticket_id": ticket_id}))
    return answer(ws, ticket_id, timeout=timeout)


@pytest.fixture(scope="module")
def guarded():
    env = {
        "LIMIT_REGISTER_PER_SOURCE": "25/3600",
        "LIMIT_LOGIN_PER_SOURCE": "200/600",
        "LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "5/900",
        "LIMIT_HOLDS_PER_SOURCE": f"40/{HOLDS_WINDOW}",
        "LIMIT_WS_MESSAGES_PER_USER": "60",
        "LIMIT_WS_MESSAGES_PER_CONNECTION": "40",
        "LIMIT_WS_SNAPSHOTS_PER_USER": "5",
        "MAX_SOCKETS_PER_USER_PER_ROOM": "4",
        "LIMIT_WS_WINDOW_SECONDS": str(WS_WINDOW),
        "HOLD_SECONDS": str(HOLD),
        "HOLD_BUDGET_SECONDS": str(BUDGET),
        "SWEEP_INTERVAL_SECONDS": "1",
    }
    with running_stack(env=env) as stack:
        yield stack


def full_room(stack) -> tuple[str, list[str]]:
    """A seeded 80-seat showtime nobody has touched."""
    from local.seed import THEATERS

    for showtime in payflow.showtimes(stack):
        tickets = payflow.tickets(stack, showtime)
        if showtime.theater in THEATERS and all(t["status"] == "available" for t in tickets.values()):
            return showtime.showtime_id, sorted(tickets)
    raise AssertionError("no untouched 80-seat showtime left")


def start_of_a_window(window: int = WS_WINDOW, needed: float = 6.0) -> None:
    """Wait, if need be, so that `needed` seconds of the current fixed rate window remain (limits count per window,
    and a test straddling two would see two allowances)."""
    left = window - time.time() % window
    if left < needed:
        time.sleep(left + 0.05)


def test_a_bot_farm_of_20_accounts_leaves_most_of_an_80_seat_hall_to_real_buyers(guarded):
    showtime_id, seats = full_room(guarded)
    assert len(seats) == 80
    with ThreadPoolExecutor(10) as pool:
        bots = list(pool.map(lambda _: Visitor(guarded, BOTS_SOURCE), range(20)))
    start_of_a_window(HOLDS_WINDOW, needed=90)  # the whole farm within one window of the per-source limit

    def hoard(bot: Visitor, rounds: int) -> int:
        """Try every seat, round after round, keeping up to the per-user limit; returns the holds won."""
        won = 0
        try:
            with bot.room(showtime_id) as ws:
                for _ in range(rounds):
                    for seat in seats:
                        try:
                            won += try_hold(ws, seat, timeout=0.5).get("type") == "selected"
                        except TimeoutError:
                            continue  # past its first rate_limited in a window a refused frame gets no reply
                    time.sleep(1)
        except (ConnectionClosed, InvalidStatus):
            pass  # closed for flooding, or refused a new socket while blocked: the bot holds nothing more
        return won

    with ThreadPoolExecutor(20) as pool:
        first = list(pool.map(lambda bot: hoard(bot, 1), bots))
    # One address gets at most its per-source share of holds, whatever the number of accounts.
    assert sum(first) <= 40

    time.sleep(BUDGET + 1)  # every bot hold has ended: none outlives its holder's budget
    with ThreadPoolExecutor(20) as pool:
        again = list(pool.map(lambda bot: hoard(bot, 2), bots))
    assert sum(again) == 0  # budgets spent, the address's share used: the farm holds nothing more

    buyers = [Visitor(guarded, f"127.0.0.{10 + i}") for i in range(20)]
    taken: list[str] = []
    for buyer in buyers:
        with buyer.room(showtime_id) as ws:
            mine = 0
            for seat in seats:
                if seat in taken or mine == 4:
                    continue
                if try_hold(ws, seat).get("type") == "selected":
                    taken.append(seat)
                    mine += 1
    assert len(taken) >= 76, f"real buyers got {len(taken)} of 80 seats"


def test_password_guessing_is_locked_out_with_retry_after_and_the_right_password_waits_too(guarded):
    victim = Visitor(guarded, "127.0.0.40")
    attacker = session_from("127.0.0.41")
    answers = [
        attacker.post(guarded.api("token/"), json={"email": victim.email, "password": f"guess-{n:04d}"})
        for n in range(6)
    ]
    assert [a.status_code for a in answers] == [401] * 5 + [429]
    assert answers[-1].json()["code"] == "rate_limited"
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 900
    right = attacker.post(guarded.api("token/"), json={"email": victim.email, "password": "correct-horse-1"})
    assert right.status_code == 429


def test_a_flooding_socket_is_told_once_then_closed_and_another_buyers_select_is_still_answered(guarded):
    showtime_id, seats = full_room(guarded)
    flooder, buyer = Visitor(guarded, "127.0.0.50"), Visitor(guarded, "127.0.0.51")
    start_of_a_window()
    with flooder.room(showtime_id) as flood, buyer.room(showtime_id) as ws:
        for _ in range(300):
            flood.send(json.dumps({"action": "snapshot"}))
        started = time.monotonic()
        reply = try_hold(ws, seats[0])
        assert reply["type"] == "selected", reply
        assert time.monotonic() - started < 2.0
        answers = []
        with pytest.raises(ConnectionClosed):  # the server closes the flooding socket
            while True:
                answers.append(json.loads(flood.recv(timeout=TIMEOUT)))
        kinds = [a.get("code") or a.get("type") for a in answers if a.get("type") != "ticket_status"]
        # Told once; the rest cost no reply. (Frames run concurrently: an allowed snapshot's answer may come
        # after the refusal, or not at all once the socket is closed.)
        assert kinds.count("rate_limited") == 1 and set(kinds) <= {"snapshot", "rate_limited"}
        assert kinds.count("snapshot") <= 5
    with pytest.raises(InvalidStatus) as refused:  # and it cannot come straight back
        flooder.room(showtime_id)
    assert refused.value.response.status_code == 429


def test_a_json_frame_nested_thousands_deep_is_a_bad_request_and_the_socket_stays_usable(guarded):
    showtime_id, seats = full_room(guarded)
    visitor = Visitor(guarded, "127.0.0.60")
    with visitor.room(showtime_id) as ws:
        ws.send("[" * 5000 + "]" * 5000)
        assert answer(ws)["code"] == "bad_request"
        assert try_hold(ws, seats[-1])["type"] == "selected"


def test_a_binary_frame_is_a_bad_request_not_silence(guarded):
    showtime_id, seats = full_room(guarded)
    visitor = Visitor(guarded, "127.0.0.61")
    with visitor.room(showtime_id) as ws:
        ws.send(json.dumps({"action": "select", "ticket_id": seats[-2]}).encode())  # the right JSON, as bytes
        reply = answer(ws)
        assert (reply["type"], reply["code"]) == ("error", "bad_request")
        assert "binary" in reply["message"]
        assert try_hold(ws, seats[-2])["type"] == "selected"


def test_an_authorization_header_with_non_latin1_bytes_is_401_json(guarded):
    host, port = guarded.base_url.removeprefix("http://").split(":")
    request = (
        b"GET /api/auth/me/ HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() + b"\r\n"
        b"Authorization: Bearer \xff\xfe\xe2\x80\xae.e30.x\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"401", head
    assert json.loads(body)["code"] == "unauthorized"
