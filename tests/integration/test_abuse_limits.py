"""What a client may spend, against the serialized moto server: hoarding rules (seat cooldown, hold budget),
per-source and per-account limits, WebSocket message and socket limits. Time is the container's clock."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from decimal import Decimal

import pytest

from chalicelib.domain import ConnectionRecord
from chalicelib.errors import HoldBudgetSpent, RateLimited, SeatCooldown, TicketUnavailable, Unauthorized
from chalicelib.limits import Limit
from chalicelib.storage.catalog import CatalogRepository
from chalicelib.wiring import Container
from tests.support.clock import Clock
from tests.support.tables import make_settings, provision

HOLD, COOLDOWN, BUDGET, RENEW = 60, 300, 90, 900
T0 = 1_900_000_000


@pytest.fixture(scope="module")
def settings(moto_endpoint):
    settings = make_settings(
        moto_endpoint,
        HOLD_SECONDS=str(HOLD),
        HOLD_COOLDOWN_SECONDS=str(COOLDOWN),
        HOLD_BUDGET_SECONDS=str(BUDGET),
        HOLD_BUDGET_RENEW_SECONDS=str(RENEW),
        LIMIT_REGISTER_PER_SOURCE="2/3600",
        LIMIT_LOGIN_PER_SOURCE="6/600",
        LIMIT_LOGIN_FAILURES_PER_ACCOUNT="3/900",
        LIMIT_HOLDS_PER_SOURCE="5/600",
        LIMIT_WS_WINDOW_SECONDS="10",
        LIMIT_WS_MESSAGES_PER_USER="8",
        LIMIT_WS_MESSAGES_PER_CONNECTION="5",
        LIMIT_WS_SNAPSHOTS_PER_USER="2",
        MAX_SOCKETS_PER_USER_PER_ROOM="2",
        PASSWORD_SCRYPT_N="1024",
    )
    provision(settings)
    Container(settings)  # binds the models to these tables
    CatalogRepository().put_category("drama", "Drama")
    return settings


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + uuid.uuid4().int % 10**6 * 1000)  # each test in windows of its own


@pytest.fixture
def container(settings, clock) -> Container:
    return Container(settings, clock=clock)


@pytest.fixture
def room(container) -> list[str]:
    event = container.catalog.create_event(title="Abuse", description="", category="drama", duration_minutes=90)
    created = container.catalog.create_showtime(
        event["id"],
        date=dt.date(2031, 1, 1),
        theater=f"Hall {uuid.uuid4().hex[:8]}",
        starts_at="19:30",
        rows=1,
        seats_per_row=8,
        price=Decimal("10.00"),
        currency="USD",
    )
    return [t.ticket_id for t in CatalogRepository().list_tickets(created["showtime_id"], consistent=True)]


def showtime_of(ticket_id: str) -> str:
    return ticket_id.rsplit("-", 1)[0]


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


# --- the seat cooldown ----------------------------------------------------------------------------------------


def test_a_holder_whose_hold_ran_out_cannot_take_that_seat_again_during_the_cooldown(container, clock, room):
    repo, seat, alice, bob = container.seats.repo, room[0], user(), user()
    repo.select(alice, showtime_of(seat), seat, clock.now)
    clock.now += HOLD

    with pytest.raises(SeatCooldown) as refused:
        repo.select(alice, showtime_of(seat), seat, clock.now)
    assert refused.value.retry_after == COOLDOWN
    # The seat is free for everyone else at once.
    assert repo.select(bob, showtime_of(seat), seat, clock.now) == clock.now + HOLD


def test_the_cooldown_survives_the_sweep_and_ends_on_time(container, clock, room):
    repo, seat, alice = container.seats.repo, room[1], user()
    repo.select(alice, showtime_of(seat), seat, clock.now)
    clock.now += HOLD + 1
    assert container.seats.sweep() >= 1  # released, with alice's cooldown kept on the ticket

    with pytest.raises(SeatCooldown) as refused:
        repo.select(alice, showtime_of(seat), seat, clock.now)
    assert refused.value.retry_after == COOLDOWN - 1
    clock.now += COOLDOWN
    # Past the cooldown, alice may hold it (with a budget of her own again: the first one started long ago).
    clock.now += RENEW
    assert repo.select(alice, showtime_of(seat), seat, clock.now) == clock.now + HOLD


def test_letting_go_of_a_seat_has_no_cooldown(container, clock, room):
    repo, seat, alice = container.seats.repo, room[2], user()
    repo.select(alice, showtime_of(seat), seat, clock.now)
    repo.unselect(alice, showtime_of(seat), seat, clock.now + 1)
    assert repo.select(alice, showtime_of(seat), seat, clock.now + 2) == clock.now + 2 + HOLD


# --- the hold budget ------------------------------------------------------------------------------------------


def test_holds_end_within_the_budget_of_the_first_one_and_then_selects_are_refused(container, clock, room):
    repo, alice, showtime = container.seats.repo, user(), showtime_of(room[0])
    start = int(clock.now)
    assert repo.select(alice, showtime, room[0], clock.now) == start + HOLD
    clock.now += 50
    # A later hold never outlasts the budget: 90 s from the first, not 60 s from now.
    assert repo.select(alice, showtime, room[1], clock.now) == start + BUDGET
    clock.now = start + BUDGET

    with pytest.raises(HoldBudgetSpent) as refused:
        repo.select(alice, showtime, room[2], clock.now)
    assert refused.value.retry_after == RENEW - BUDGET
    # Another buyer is not concerned, and the budget renews.
    assert repo.select(user(), showtime, room[2], clock.now)
    clock.now = start + RENEW
    assert repo.select(alice, showtime, room[3], clock.now) == clock.now + HOLD


def test_a_bot_farm_re_holding_seats_gives_up_every_seat_once_its_budgets_are_spent(container, clock, room):
    """Three accounts hold the whole room, then keep trying to re-hold anything: after one budget, nothing."""
    repo, showtime = container.seats.repo, showtime_of(room[0])
    bots = [user() for _ in range(3)]
    for i, seat in enumerate(room[:8]):
        try:
            repo.select(bots[i % 3], showtime, seat, clock.now)
        except Exception:  # noqa: BLE001 - the per-user limit stops the fourth seat of a bot
            pass
    held_at_start = sum(1 for t in CatalogRepository().list_tickets(showtime, consistent=True) if t.holder)
    assert held_at_start >= 6

    for _ in range(6):  # a minute at a time, each bot tries every seat again (swapping seats between bots)
        clock.now += 60
        for bot in bots:
            for seat in room:
                try:
                    repo.select(bot, showtime, seat, clock.now)
                except (HoldBudgetSpent, SeatCooldown, TicketUnavailable, Exception):  # noqa: BLE001
                    pass
    clock.now += 1
    buyer = user()
    bought = 0
    for seat in room[:4]:
        repo.select(buyer, showtime, seat, clock.now)
        bought += 1
    assert bought == 4


# --- accounts -------------------------------------------------------------------------------------------------


def test_registrations_from_one_source_are_limited_per_window(container):
    accounts = container.accounts
    for _ in range(2):
        accounts.register(f"{uuid.uuid4().hex[:8]}@example.com", "correct-horse-1", source="203.0.113.7")
    with pytest.raises(RateLimited) as refused:
        accounts.register(f"{uuid.uuid4().hex[:8]}@example.com", "correct-horse-1", source="203.0.113.7")
    assert 0 < refused.value.retry_after <= 3600
    # Another source is not concerned.
    accounts.register(f"{uuid.uuid4().hex[:8]}@example.com", "correct-horse-1", source="203.0.113.8")


def test_an_account_with_too_many_failed_logins_refuses_even_the_right_password_until_the_window_ends(container, clock):
    accounts, email = container.accounts, f"{uuid.uuid4().hex[:8]}@example.com"
    accounts.register(email, "correct-horse-1")
    for _ in range(3):
        with pytest.raises(Unauthorized):
            accounts.login(email, "wrong-password", source=f"198.51.100.{uuid.uuid4().int % 200}")
    with pytest.raises(RateLimited) as locked:
        accounts.login(email.upper(), "correct-horse-1", source="198.51.100.250")
    assert 0 < locked.value.retry_after <= 900
    clock.now += 900
    assert accounts.login(email, "correct-horse-1", source="198.51.100.250")["access"]


def test_login_attempts_from_one_source_are_limited_whatever_the_accounts(container):
    accounts = container.accounts
    for _ in range(6):
        with pytest.raises(Unauthorized):
            accounts.login(f"{uuid.uuid4().hex[:8]}@example.com", "whatever1", source="192.0.2.9")
    with pytest.raises(RateLimited):
        accounts.login(f"{uuid.uuid4().hex[:8]}@example.com", "whatever1", source="192.0.2.9")


# --- the WebSocket --------------------------------------------------------------------------------------------


class Replies:
    """The Broadcaster's send, recording what each connection was told."""

    def __init__(self, seats) -> None:
        self.sent: list[tuple[str, dict]] = []
        seats._broadcaster.send = lambda connection_id, message: self.sent.append((connection_id, message)) or True

    def last(self) -> dict:
        return self.sent[-1][1]


def connected(container, room: list[str], user_id: str, source: str = "192.0.2.1") -> ConnectionRecord:
    record = ConnectionRecord(
        connection_id=f"c-{uuid.uuid4().hex[:10]}",
        room=showtime_of(room[0]),
        user_id=user_id,
        connected_at=int(container.clock()),
        source_ip=source,
    )
    container.connections.add(record)
    return record


def send(container, connection: ConnectionRecord, message: dict) -> None:
    container.seats.handle_message(connection.connection_id, json.dumps(message))


def test_a_flooding_connection_is_told_rate_limited_with_when_to_retry(container, room):
    replies = Replies(container.seats)
    flooder = connected(container, room, user())
    for _ in range(5):
        send(container, flooder, {"action": "unselect", "ticket_id": room[7]})
    assert replies.last()["code"] == "not_holder"
    send(container, flooder, {"action": "unselect", "ticket_id": room[7]})
    assert replies.last()["code"] == "rate_limited"
    assert 1 <= replies.last()["retry_after"] <= 10
    # Another user's connection is not concerned.
    other = connected(container, room, user())
    send(container, other, {"action": "select", "ticket_id": room[6]})
    assert replies.last()["type"] == "selected"


def test_a_connection_that_keeps_flooding_is_answered_once_then_closed_and_its_user_cannot_reconnect(
    container, clock, room
):
    replies = Replies(container.seats)
    closed: list[str] = []
    container.seats._broadcaster.close = lambda connection_id: closed.append(connection_id) or True
    clock.now = time.time()  # the access token is checked against the real clock
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    flooder_id = container.accounts.register(email, "correct-horse-1").id
    query = {"showtime_id": showtime_of(room[0]), "token": container.accounts.login(email, "correct-horse-1")["access"]}
    flooder = container.seats.connect(f"flood-{flooder_id}", query)

    for _ in range(20):  # 2 snapshots allowed to a user, then 18 refusals
        send(container, flooder, {"action": "snapshot"})

    codes = [m.get("code") for c, m in replies.sent if c == flooder.connection_id and m["type"] == "error"]
    assert codes == ["rate_limited"]  # one answer: later refusals cost no reply post
    assert closed == [flooder.connection_id]  # closed once, at 5 refusals (a window's allowance)
    # Its user cannot replace it until the window ends, whichever container runs $connect.
    fresh = Container(container.settings, clock=clock)
    with pytest.raises(RateLimited) as refused:
        fresh.seats.connect(f"again-{flooder_id}", query)
    assert 1 <= refused.value.retry_after <= 10
    clock.now += 10
    assert fresh.seats.connect(f"later-{flooder_id}", query).user_id == flooder_id


def test_snapshots_are_limited_per_user_across_their_sockets(container, room):
    replies = Replies(container.seats)
    viewer = user()
    first, second = connected(container, room, viewer), connected(container, room, viewer)
    send(container, first, {"action": "snapshot"})
    send(container, second, {"action": "snapshot"})
    assert replies.last()["type"] == "snapshot"
    send(container, connected(container, room, viewer), {"action": "snapshot"})  # a third socket changes nothing
    assert replies.last()["code"] == "rate_limited"


def test_holds_from_one_source_are_limited_across_accounts(container, room):
    replies = Replies(container.seats)
    for i in range(5):
        send(
            container,
            connected(container, room, user(), source="192.0.2.77"),
            {"action": "select", "ticket_id": room[i]},
        )
        assert replies.last()["type"] == "selected"
    send(container, connected(container, room, user(), source="192.0.2.77"), {"action": "select", "ticket_id": room[5]})
    assert (replies.last()["code"], replies.last()["ticket_id"]) == ("rate_limited", room[5])


def test_a_user_opens_at_most_the_cap_of_sockets_in_a_room_and_a_closed_one_frees_its_place(container, clock, room):
    clock.now = time.time()  # the access token is checked against the real clock
    seats, email = container.seats, f"{uuid.uuid4().hex[:8]}@example.com"
    alice = container.accounts.register(email, "correct-horse-1").id
    query = {"showtime_id": showtime_of(room[0]), "token": container.accounts.login(email, "correct-horse-1")["access"]}
    first = seats.connect("sock-1-" + alice, query)
    seats.connect("sock-2-" + alice, query)
    with pytest.raises(RateLimited):
        seats.connect("sock-3-" + alice, query)
    seats.disconnect(first.connection_id)
    assert seats.connect("sock-3-" + alice, query).user_id == alice


def test_the_limiter_fails_open_when_its_table_cannot_be_written(container):
    class Broken:
        def add(self, *args, **kwargs):
            raise ConnectionError("no table")

    container.limiter._repo = Broken()
    container.limiter.check("anything", "someone", {"hits": Limit(1, 10)})
    container.limiter.check("anything", "someone", {"hits": Limit(1, 10)})  # never refused: not counted
