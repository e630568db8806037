"""Check-ins and revocations over moto: a check-in is one conditional write on the seat (admitted once, refunded
and voided seats refused by the same write), and the revocation list's cursor never skips a late write."""

from __future__ import annotations

import pytest

from chalicelib import etickets, holds
from chalicelib.storage.checkins import CheckinRepository, RevocationRecord
from chalicelib.storage.models import Ticket
from chalicelib.wiring import Container
from tests.support.clock import Clock
from tests.support.tables import bound, make_settings, provision

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def world(moto_endpoint):
    settings = make_settings(moto_endpoint)
    provision(settings)
    clock = Clock(NOW)
    return Container(settings, clock=clock), clock


def seat(showtime: str, ticket: str, status: str, order: str | None) -> None:
    Ticket(showtime, ticket, row="A", number=1, price="9.00", currency="USD", status=status, order_id=order).save()


def test_a_seat_is_checked_in_once_and_refused_when_refunded_or_void(world):
    container, _ = world
    bound(container)
    repo = CheckinRepository()
    seat("st-c", "st-c-A-1", holds.SOLD, "o1")
    assert repo.admit("st-c", "st-c-A-1", "o1", now=100, door="north", by="staff") is None
    again = repo.admit("st-c", "st-c-A-1", "o1", now=200, door="south", by="staff")
    assert (again.status, again.checked_in_at, again.door) == (holds.SOLD, 100, "north")
    seat("st-c", "st-c-A-2", holds.AVAILABLE, None)  # refunded: back on sale
    assert repo.admit("st-c", "st-c-A-2", "o1", now=100, door="north", by="staff").status == holds.AVAILABLE
    seat("st-c", "st-c-A-3", holds.SOLD, "o2")  # refunded, then sold to someone else
    assert repo.admit("st-c", "st-c-A-3", "o1", now=100, door="north", by="staff").order_id == "o2"
    seat("st-c", "st-c-A-4", holds.VOID, "o1")
    assert repo.admit("st-c", "st-c-A-4", "o1", now=100, door="north", by="staff").status == holds.VOID
    assert repo.admit("st-c", "st-c-A-9", "o1", now=100, door="north", by="staff").status is None


def test_the_revocation_cursor_stays_a_minute_behind_so_a_late_write_is_never_skipped(world):
    container, clock = world
    bound(container)
    repo = CheckinRepository()
    at = int(NOW * 1000)
    repo.add_revocations([RevocationRecord("st-r", "st-r-A-1", "o1", "refunded", at - 120_000)])
    repo.add_revocations([RevocationRecord("st-r", "st-r-A-2", "o2", "void", at - 5_000)])
    clock.now = NOW
    first = container.etickets.revocations("st-r", None)
    assert [r["ticket_id"] for r in first["results"]] == ["st-r-A-1", "st-r-A-2"]
    assert first["cursor"] == f"{at - 120_000:013d}.st-r-A-1"  # past the settled one only
    # A handler that dated its write a moment earlier lands now: the next call still lists it.
    repo.add_revocations([RevocationRecord("st-r", "st-r-A-3", "o3", "refunded", at - 10_000)])
    second = container.etickets.revocations("st-r", first["cursor"])
    assert [r["ticket_id"] for r in second["results"]] == ["st-r-A-3", "st-r-A-2"]
    clock.now = NOW + 120
    third = container.etickets.revocations("st-r", second["cursor"])
    assert third["cursor"] == f"{at - 5_000:013d}.st-r-A-2" and not third["more"]
    assert container.etickets.revocations("st-r", third["cursor"])["results"] == []


def test_a_backdated_offline_scan_cannot_let_a_ticket_in_after_its_showing(world):
    container, clock = world
    bound(container)
    seat("st-b", "st-b-A-1", holds.SOLD, "o9")
    keys = container.ticket_keyset()
    starts = int(NOW) - 3 * 24 * 3600  # the showing was three days ago
    valid_from, valid_until = etickets.window(starts)
    code = etickets.sign(
        keys,
        etickets.Claims("st-b-A-1", "st-b", "o9", "Row A, seat 1", valid_from, valid_until, keys.current),
    )
    clock.now = NOW
    with pytest.raises(etickets.TicketExpired):
        # "Scanned offline during the showing": more than a day back, so judged a day ago, when it had expired.
        container.etickets.check_in("staff", code, "st-b", "north", scanned_at=starts + 600)
    # Within a day, the time it happened counts: a scan synced 2 h after a showing that ended 1 h ago is admitted.
    recent_start = int(NOW) - 8 * 3600
    seat("st-b", "st-b-A-2", holds.SOLD, "o9")
    recent = etickets.sign(
        keys, etickets.Claims("st-b-A-2", "st-b", "o9", "Row A, seat 2", *etickets.window(recent_start), keys.current)
    )
    admitted = container.etickets.check_in("staff", recent, "st-b", "north", scanned_at=recent_start + 600)
    assert admitted["result"] == "admitted"
