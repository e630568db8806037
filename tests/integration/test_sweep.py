"""The expiry sweep against moto: it frees only expired plain holds, and the tickets stream says so."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from chalicelib import holds
from chalicelib.services.seats import SeatService, change_from_images
from chalicelib.storage.catalog import CatalogRepository
from chalicelib.storage.models import Ticket
from local.pollers import StreamPoller
from tests.support.clock import Clock
from tests.support.tables import stream_world

HOLD = 600
T0 = 1_900_000_000


@pytest.fixture(scope="module")
def world(moto_endpoint):
    # The tidy-up is tested on its own: a holder re-taking a seat at once (what the hoarding rules forbid) is how
    # a cart entry gets renewed under the sweeper, so the cooldown and the budget are off here.
    return stream_world(
        moto_endpoint, "Sweep test", HOLD_SECONDS=str(HOLD), HOLD_COOLDOWN_SECONDS="0", HOLD_BUDGET_SECONDS="1000000"
    )


@pytest.fixture
def room(world) -> list[str]:
    """A fresh showtime of 6 seats; returns its ticket ids."""
    created = world["container"].catalog.create_showtime(
        world["event"],
        date=dt.date(2031, 1, 1),
        theater=f"Hall {uuid.uuid4().hex[:8]}",
        starts_at="19:30",
        rows=1,
        seats_per_row=6,
        price=Decimal("10.00"),
        currency="USD",
    )
    return [t.ticket_id for t in CatalogRepository().list_tickets(created["showtime_id"], consistent=True)]


@pytest.fixture
def service(world):
    container = world["container"]
    clock = Clock(T0)
    seat_service = SeatService(
        repo=container.seats.repo,
        catalog=container.catalog,
        accounts=container.accounts,
        connections=container.connections,
        broadcaster=container.broadcaster,
        clock=clock,
    )
    return seat_service, clock


@pytest.fixture
def stream(world):
    """The tickets stream's visible changes from now on, as the stream handler sees them."""
    changes: list = []

    def handler(event, context):
        for record in event["Records"]:
            body = record["dynamodb"]
            change = change_from_images(body.get("OldImage"), body.get("NewImage"))
            if change is not None:
                changes.append(change)

    poller = StreamPoller(world["streams"], world["stream_arn"], handler, region="us-east-1", window=0)
    poller.prime()

    def read() -> list:
        """The visible changes since the last read."""
        while poller.poll_once():
            pass
        seen = list(changes)
        changes.clear()
        return seen

    return read


def room_of(ticket_id: str) -> str:
    return ticket_id.rsplit("-", 1)[0]


def stored(ticket_id: str) -> Ticket:
    return Ticket.get(room_of(ticket_id), ticket_id, consistent_read=True)


def test_sweep_releases_only_expired_holds_and_the_stream_shows_them_available(world, room, service, stream):
    seat_service, clock = service
    repo = seat_service.repo
    early_a, early_b, late, checkout, sold, untouched = room
    showtime = room_of(early_a)
    repo.select("alice", showtime, early_a, T0)
    repo.select("alice", showtime, early_b, T0)
    repo.select("bob", showtime, late, T0 + 300)
    repo.select("carol", showtime, checkout, T0)
    # What the checkout module does: the ticket leaves the plain-hold index and keeps its window.
    Ticket(showtime, checkout).update(
        actions=[Ticket.status.set(holds.CHECKOUT), Ticket.sweep_shard.remove(), Ticket.order_id.set("o-1")]
    )
    Ticket(showtime, sold).update(actions=[Ticket.status.set(holds.SOLD), Ticket.holder.set("dave")])
    stream()  # drop the set-up changes

    clock.now = T0 + HOLD
    assert seat_service.sweep() >= 2

    assert stored(early_a).status == stored(early_b).status == holds.AVAILABLE
    assert stored(early_a).holder is None and stored(early_a).sweep_shard is None
    assert (stored(late).status, stored(late).holder) == (holds.HELD, "bob")
    assert stored(checkout).status == holds.CHECKOUT  # the payment sweeper's business, even past its expiry
    assert stored(sold).status == holds.SOLD
    assert stored(untouched).status == holds.AVAILABLE
    # The old holder's cart is tidied; the other holder's is not touched.
    assert repo.read_cart("alice", showtime).holds == {}
    assert repo.read_cart("bob", showtime).holds == {late: T0 + 300 + HOLD}

    changes = [c for c in stream() if c.room == showtime]
    assert sorted((c.ticket_id, c.status, c.expires_at) for c in changes) == sorted(
        [(early_a, holds.AVAILABLE, None), (early_b, holds.AVAILABLE, None)]
    )

    clock.now = T0 + 300 + HOLD
    seat_service.sweep()
    assert stored(late).status == holds.AVAILABLE
    assert [(c.ticket_id, c.status) for c in stream() if c.room == showtime] == [(late, holds.AVAILABLE)]


def test_sweep_before_expiry_changes_nothing(world, room, service, stream):
    seat_service, clock = service
    showtime = room_of(room[0])
    seat_service.repo.select("alice", showtime, room[0], T0 + 10_000)
    stream()
    clock.now = T0 + 10_000 + HOLD - 1
    seat_service.sweep()
    assert (stored(room[0]).status, stored(room[0]).holder) == (holds.HELD, "alice")
    assert [c for c in stream() if c.room == showtime] == []


def test_sweep_never_frees_a_hold_retaken_after_it_was_listed(world, room, service):
    seat_service, _ = service
    repo = seat_service.repo
    ticket = room[0]
    showtime = room_of(ticket)
    repo.select("alice", showtime, ticket, T0 + 20_000)
    now = T0 + 20_000 + HOLD
    [listed] = [h for h in repo.expired_holds(now) if h.ticket_id == ticket]
    assert (listed.holder, listed.expires_at) == ("alice", T0 + 20_000 + HOLD)
    # Between the sweeper's query and its write, bob takes the expired seat.
    repo.select("bob", showtime, ticket, now)
    assert repo.release_expired(listed, now) is False
    assert (stored(ticket).holder, int(stored(ticket).hold_expires_at)) == ("bob", now + HOLD)


def test_sweep_tidy_keeps_a_cart_entry_the_old_holder_renewed(world, room, service):
    seat_service, _ = service
    repo = seat_service.repo
    ticket = room[0]
    showtime = room_of(ticket)
    repo.select("alice", showtime, ticket, T0 + 30_000)
    now = T0 + 30_000 + HOLD
    [listed] = [h for h in repo.expired_holds(now) if h.ticket_id == ticket]
    assert repo.release_expired(listed, now) is True
    repo.select("alice", showtime, ticket, now)  # alice takes it again before the tidy-up runs
    repo.forget_expired_cart_entry("alice", showtime, ticket, listed.expires_at)
    assert repo.read_cart("alice", showtime).holds == {ticket: now + HOLD}
    assert stored(ticket).holder == "alice"


def test_sweep_without_expired_holds_releases_nothing(world, room, service):
    seat_service, clock = service
    clock.now = T0 - 10**6  # before any hold of this module could expire
    assert seat_service.sweep() == 0
