"""The seat lock under real concurrency, against the serialized moto server over HTTP.

Threads stand in for Lambda invocations; each thread has its own SeatRepository (its own cart cache),
as separate containers would, so the version condition is what keeps carts honest.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from chalicelib import holds
from chalicelib.errors import (
    CheckoutInProgress,
    DomainError,
    LimitReached,
    NotFound,
    NotHolder,
    TicketUnavailable,
)
from chalicelib.storage.catalog import CatalogRepository
from chalicelib.storage.models import Ticket
from chalicelib.storage.seats import SeatRepository
from chalicelib.wiring import Container
from tests.support.tables import make_settings, provision

LIMIT = 4
HOLD = 600
T0 = 1_900_000_000  # a fixed "now": the repository takes time as an argument


@pytest.fixture(scope="module")
def seats(moto_endpoint):
    # One set of tables for the module (provisioning is the slow part); each test makes its own showtime.
    settings = make_settings(moto_endpoint, MAX_TICKETS_PER_USER=str(LIMIT))
    provision(settings)
    container = Container(settings)
    CatalogRepository().put_category("drama", "Drama")
    event = container.catalog.create_event(title="Lock test", description="", category="drama", duration_minutes=90)

    def showtime(seat_count: int, theater: str | None = None) -> list[str]:
        created = container.catalog.create_showtime(
            event["id"],
            date=dt.date(2031, 1, 1),
            theater=theater or f"Hall {uuid.uuid4().hex[:6]}",
            starts_at="19:30",
            rows=1 if seat_count <= 26 else (seat_count + 9) // 10,
            seats_per_row=seat_count if seat_count <= 26 else 10,
            price=Decimal("10.00"),
            currency="USD",
        )
        return [t.ticket_id for t in CatalogRepository().list_tickets(created["showtime_id"], consistent=True)]

    def new_repo() -> SeatRepository:
        return SeatRepository(hold_seconds=HOLD, limit=LIMIT, attempts=settings.select_attempts)

    return showtime, new_repo, settings


def room_of(ticket_id: str) -> str:
    return ticket_id.rsplit("-", 1)[0]


def ticket_state(ticket_id: str) -> Ticket:
    return Ticket.get(room_of(ticket_id), ticket_id, consistent_read=True)


def holders(room: str) -> dict[str, str]:
    """ticket -> holder of every held ticket of the room, as stored."""
    return {
        t.ticket_id: t.holder
        for t in CatalogRepository().list_tickets(room, consistent=True)
        if t.status == holds.HELD and t.holder
    }


def race(workers: list[tuple[str, list[str]]], room: str, new_repo) -> list[tuple[str, str, str]]:
    """Each worker (user, tickets to try) runs in its own thread with its own repository, all released at
    once. Returns (user, ticket, outcome) where outcome is "selected" or the error code."""
    barrier = threading.Barrier(len(workers))
    results: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    crashes: list[BaseException] = []

    def work(user: str, tickets: list[str]) -> None:
        repo = new_repo()
        try:
            barrier.wait(timeout=30)
            for ticket in tickets:
                try:
                    repo.select(user, room, ticket, T0)
                    outcome = "selected"
                except DomainError as exc:
                    outcome = exc.code
                with lock:
                    results.append((user, ticket, outcome))
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            crashes.append(exc)

    threads = [threading.Thread(target=work, args=worker) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not crashes, crashes
    assert not any(thread.is_alive() for thread in threads)
    return results


def assert_carts_equal_holds(room: str, users: list[str], new_repo, now: float = T0) -> dict[str, set[str]]:
    """The per-user counter (live cart entries) is exactly the set of tickets the user holds."""
    stored = holders(room)
    held_by: dict[str, set[str]] = defaultdict(set)
    for ticket, user in stored.items():
        held_by[user].add(ticket)
    repo = new_repo()
    for user in users:
        cart = repo.read_cart(user, room)
        assert set(holds.live_holds(cart.holds, now)) == held_by.get(user, set()), user
    return held_by


def test_many_users_racing_for_few_tickets_leave_exactly_one_holder_per_ticket(seats):
    showtime, new_repo, _ = seats
    tickets = showtime(5)
    room = room_of(tickets[0])
    users = [f"user-{i:02d}" for i in range(20)]
    # 20 users x 2 threads (two connections each), every thread trying every seat in its own order.
    workers = [(user, random.sample(tickets, len(tickets))) for user in users for _ in range(2)]

    results = race(workers, room, new_repo)

    stored = holders(room)
    assert set(stored) == set(tickets)  # every seat went to someone
    acknowledged: dict[str, set[str]] = defaultdict(set)
    for user, ticket, outcome in results:
        if outcome == "selected":
            acknowledged[ticket].add(user)
    for ticket in tickets:
        assert acknowledged[ticket] == {stored[ticket]}, ticket  # one winner, and the winner is the holder
    assert max(Counter(stored.values()).values()) <= LIMIT
    assert_carts_equal_holds(room, users, new_repo)
    outcomes = Counter(outcome for _, _, outcome in results)
    print("outcomes:", dict(outcomes))  # shown with -s: a figure for the report, not an assertion
    assert set(outcomes) <= {"selected", "ticket_unavailable", "limit_reached", "busy"}


def test_users_racing_across_many_seats_each_end_with_exactly_the_limit(seats):
    showtime, new_repo, _ = seats
    tickets = showtime(20)
    room = room_of(tickets[0])
    users = [f"user-{i}" for i in range(4)]
    workers = [(user, random.sample(tickets, len(tickets))) for user in users for _ in range(3)]

    results = race(workers, room, new_repo)

    held_by = assert_carts_equal_holds(room, users, new_repo)
    # Seats are plentiful (20 >= 4 x 4) and every thread tries them all: each user reaches the limit, never more.
    assert {user: len(held_by[user]) for user in users} == {user: LIMIT for user in users}
    for user, ticket, outcome in results:
        if outcome == "selected":
            assert ticket in held_by[user], (user, ticket)
    busy = sum(1 for *_, outcome in results if outcome == "busy")
    print("outcomes:", dict(Counter(outcome for *_, outcome in results)))
    assert busy <= len(results) * 0.05, f"{busy} busy of {len(results)} selects"


def test_concurrent_selects_of_one_user_never_exceed_the_limit(seats):
    showtime, new_repo, _ = seats
    tickets = showtime(20)
    room = room_of(tickets[0])
    user = "solo"
    # Six connections of one user, each clicking through the seats in its own order.
    workers = [(user, random.sample(tickets, 8)) for _ in range(6)]

    results = race(workers, room, new_repo)

    held_by = assert_carts_equal_holds(room, [user], new_repo)
    assert len(held_by[user]) == LIMIT
    selected = {ticket for _, ticket, outcome in results if outcome == "selected"}
    assert selected == held_by[user]
    outcomes = Counter(outcome for *_, outcome in results)
    print("outcomes:", dict(outcomes))
    assert set(outcomes) <= {"selected", "limit_reached", "busy"}
    assert outcomes["busy"] <= len(results) * 0.1, outcomes


def test_reselecting_a_held_ticket_returns_the_same_expiry_without_extending_it(seats):
    showtime, new_repo, _ = seats
    [ticket, *_] = showtime(3)
    repo = new_repo()
    first = repo.select("alice", room_of(ticket), ticket, T0)
    assert first == T0 + HOLD
    assert repo.select("alice", room_of(ticket), ticket, T0 + 100) == first
    # Through another container (no cached cart) too.
    assert new_repo().select("alice", room_of(ticket), ticket, T0 + 200) == first
    assert int(ticket_state(ticket).hold_expires_at) == first


def test_second_user_cannot_select_held_ticket(seats):
    showtime, new_repo, _ = seats
    [ticket, *_] = showtime(3)
    new_repo().select("alice", room_of(ticket), ticket, T0)
    with pytest.raises(TicketUnavailable):
        new_repo().select("bob", room_of(ticket), ticket, T0 + 1)
    assert ticket_state(ticket).holder == "alice"


def test_sold_ticket_is_unavailable(seats):
    showtime, new_repo, _ = seats
    [ticket, *_] = showtime(3)
    Ticket(room_of(ticket), ticket).update(actions=[Ticket.status.set(holds.SOLD), Ticket.holder.set("carol")])
    with pytest.raises(TicketUnavailable):
        new_repo().select("alice", room_of(ticket), ticket, T0)


def test_fifth_select_is_limit_reached_and_writes_nothing(seats):
    showtime, new_repo, _ = seats
    tickets = showtime(6)
    room = room_of(tickets[0])
    repo = new_repo()
    for ticket in tickets[:LIMIT]:
        repo.select("alice", room, ticket, T0)
    with pytest.raises(LimitReached):
        repo.select("alice", room, tickets[LIMIT], T0)
    with pytest.raises(LimitReached):
        new_repo().select("alice", room, tickets[LIMIT], T0)
    assert ticket_state(tickets[LIMIT]).status == holds.AVAILABLE


def test_limit_from_a_stale_cached_cart_is_confirmed_before_refusing(seats):
    showtime, new_repo, _ = seats
    tickets = showtime(6)
    room = room_of(tickets[0])
    first, second = new_repo(), new_repo()  # two Lambda containers
    for ticket in tickets[:LIMIT]:
        first.select("alice", room, ticket, T0)
    second.unselect("alice", room, tickets[0], T0 + 1)
    # `first` still caches four holds; the fresh read shows three.
    assert first.select("alice", room, tickets[LIMIT], T0 + 2) == T0 + 2 + HOLD
    assert_carts_equal_holds(room, ["alice"], new_repo, now=T0 + 2)


def test_reselect_through_a_stale_cached_cart_does_not_ack_a_seat_lost_meanwhile(seats):
    showtime, new_repo, _ = seats
    [ticket, *_] = showtime(3)
    room = room_of(ticket)
    first, second = new_repo(), new_repo()
    first.select("alice", room, ticket, T0)
    second.unselect("alice", room, ticket, T0 + 1)
    second.select("bob", room, ticket, T0 + 2)
    # `first` still caches alice's hold; acknowledging it would tell alice she holds bob's seat.
    with pytest.raises(TicketUnavailable):
        first.select("alice", room, ticket, T0 + 3)
    assert ticket_state(ticket).holder == "bob"


def test_unselect_by_holder_frees_the_seat_and_the_cart_entry(seats):
    showtime, new_repo, _ = seats
    [ticket, *_] = showtime(3)
    room = room_of(ticket)
    repo = new_repo()
    repo.select("alice", room, ticket, T0)
    repo.unselect("alice", room, ticket, T0 + 1)
    stored = ticket_state(ticket)
    assert (stored.status, stored.holder, stored.hold_expires_at, stored.sweep_shard) == (
        holds.AVAILABLE,
        None,
        None,
        None,
    )
    assert new_repo().read_cart("alice", room).holds == {}
    assert new_repo().select("bob", room, ticket, T0 + 2) == T0 + 2 + HOLD


def test_unselect_by_non_holder_is_not_holder(seats):
    showtime, new_repo, _ = seats
    first, second, *_ = showtime(3)
    room = room_of(first)
    new_repo().select("alice", room, first, T0)
    with pytest.raises(NotHolder):
        new_repo().unselect("bob", room, first, T0 + 1)
    with pytest.raises(NotHolder):
        new_repo().unselect("bob", room, second, T0 + 1)  # nobody holds it
    assert ticket_state(first).holder == "alice"


def test_unselect_of_a_ticket_in_checkout_is_checkout_in_progress(seats):
    showtime, new_repo, _ = seats
    [ticket, *_] = showtime(3)
    room = room_of(ticket)
    new_repo().select("alice", room, ticket, T0)
    Ticket(room, ticket).update(actions=[Ticket.status.set(holds.CHECKOUT), Ticket.sweep_shard.remove()])
    with pytest.raises(CheckoutInProgress):
        new_repo().unselect("alice", room, ticket, T0 + 1)
    with pytest.raises(NotHolder):
        new_repo().unselect("bob", room, ticket, T0 + 1)
    with pytest.raises(TicketUnavailable):
        new_repo().select("bob", room, ticket, T0 + 1)
    assert ticket_state(ticket).status == holds.CHECKOUT


def test_ticket_of_another_showtime_is_not_found(seats):
    showtime, new_repo, _ = seats
    [mine, *_] = showtime(3)
    [elsewhere, *_] = showtime(3)
    room = room_of(mine)
    with pytest.raises(NotFound):
        new_repo().select("alice", room, elsewhere, T0)
    with pytest.raises(NotFound):
        new_repo().select("alice", room, f"{room}-Z99", T0)
    with pytest.raises(NotFound):
        new_repo().unselect("alice", room, elsewhere, T0)
    assert ticket_state(elsewhere).status == holds.AVAILABLE
    assert new_repo().read_cart("alice", room).holds == {}


def test_expired_hold_is_selectable_by_another_user_at_once(seats):
    showtime, new_repo, _ = seats
    [ticket, *_] = showtime(3)
    room = room_of(ticket)
    new_repo().select("alice", room, ticket, T0)
    with pytest.raises(TicketUnavailable):
        new_repo().select("bob", room, ticket, T0 + HOLD - 1)
    # No sweep has run: the condition itself treats the hold as over.
    assert new_repo().select("bob", room, ticket, T0 + HOLD) == T0 + 2 * HOLD
    stored = ticket_state(ticket)
    assert (stored.holder, int(stored.hold_expires_at)) == ("bob", T0 + 2 * HOLD)
    with pytest.raises(NotHolder):
        new_repo().unselect("alice", room, ticket, T0 + HOLD + 1)


def test_expired_hold_stops_counting_toward_the_old_holders_limit_at_once(seats):
    showtime, new_repo, _ = seats
    tickets = showtime(8)
    room = room_of(tickets[0])
    repo = new_repo()
    repo.select("alice", room, tickets[0], T0)  # expires first
    for ticket in tickets[1:LIMIT]:
        repo.select("alice", room, ticket, T0 + 100)
    with pytest.raises(LimitReached):
        repo.select("alice", room, tickets[LIMIT], T0 + HOLD - 1)
    # The first hold ends: alice may take another seat at once, through a cached or a fresh cart.
    assert repo.select("alice", room, tickets[LIMIT], T0 + HOLD) == T0 + 2 * HOLD
    with pytest.raises(LimitReached):
        new_repo().select("alice", room, tickets[LIMIT + 1], T0 + HOLD)
    # Another user took nothing from her: the expired seat is still "held" by alice in the table, yet free.
    assert ticket_state(tickets[0]).holder == "alice"
    assert new_repo().select("bob", room, tickets[0], T0 + HOLD + 1) == T0 + HOLD + 1 + HOLD
    assert_carts_equal_holds(room, ["alice", "bob"], new_repo, now=T0 + HOLD + 1)


def test_select_after_a_collision_retries_instead_of_failing(seats):
    """One user's selects collide on the cart version; the loser retries with a fresh read and wins."""
    showtime, new_repo, settings = seats
    tickets = showtime(4)
    room = room_of(tickets[0])
    first, second = new_repo(), new_repo()
    first.read_cart("alice", room)  # caches version 0
    second.select("alice", room, tickets[0], T0)  # moves the cart to version 1
    assert first.select("alice", room, tickets[1], T0) == T0 + HOLD  # stale version: retried, not busy
    assert set(new_repo().read_cart("alice", room).holds) == {tickets[0], tickets[1]}
    assert settings.select_attempts >= LIMIT + 1
