"""The waiting room's service over moto (serialized server, real conditional writes): joining, the draw at
opening, admissions at the rate, the cap, vanished and leaving people, pausing, and the seat gate's admissions."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from chalicelib import waitroom as rules
from chalicelib.errors import NotFound
from chalicelib.storage.catalog import CatalogRepository
from chalicelib.wiring import Container
from tests.support.clock import Clock
from tests.support.tables import make_settings, provision

OPENING = dt.datetime(2031, 1, 1, 10, 0, tzinfo=dt.UTC)
GRACE = 5


@pytest.fixture(scope="module")
def world(moto_endpoint):
    settings = make_settings(
        moto_endpoint,
        WAITROOM_DRAW_GRACE_SECONDS=str(GRACE),
        WAITROOM_HEARTBEAT_TIMEOUT_SECONDS="60",
        WAITROOM_ADMISSION_SECONDS="300",
        WAITROOM_TICK_SECONDS="2",
    )
    provision(settings)
    clock = Clock(OPENING.timestamp() - 3600)
    container = Container(settings, clock=clock)
    CatalogRepository().put_category("drama", "Drama")
    event = container.catalog.create_event(title="Queue test", description="", category="drama", duration_minutes=90)
    return container, clock, event["id"]


@pytest.fixture
def sale(world):
    """A fresh guarded showtime opening at OPENING, the clock an hour before it."""
    container, clock, event_id = world
    clock.now = OPENING.timestamp() - 3600
    created = container.catalog.create_showtime(
        event_id,
        date=dt.date(2031, 1, 2),
        theater=f"Hall {uuid.uuid4().hex[:6]}",
        starts_at="19:30",
        rows=1,
        seats_per_row=10,
        price=Decimal("10.00"),
        currency="USD",
    )

    def configure(rate: int = 60, max_shopping: int = 0, guarded: bool = True) -> str:
        container.waitroom.configure(
            created["showtime_id"], on_sale_at=OPENING, guarded=guarded, rate_per_minute=rate, max_shopping=max_shopping
        )
        return created["showtime_id"]

    return container, clock, configure


def users(n: int) -> list[str]:
    return [f"u{uuid.uuid4().hex[:12]}" for _ in range(n)]


def open_and_draw(container: Container, clock: Clock, showtime_id: str) -> None:
    clock.now = OPENING.timestamp() + GRACE
    container.waitroom.tick(showtime_id)  # the draw
    assert container.waitroom.repo.sale(showtime_id, consistent=True).drawn is not None


def run(
    container: Container, clock: Clock, showtime_id: str, seconds: int, step: int = 2, alive=(), steps=None
) -> list[str]:
    """Tick for `seconds`, keeping `alive` polling; returns who was admitted, step by step (`steps`, when given,
    gets each one's step number: people admitted in one step are in no particular order here)."""
    admitted: list[str] = []
    service = container.waitroom
    for number in range(seconds // step):
        clock.now += step
        for user in alive:
            service.status(user, showtime_id)
        before = {u for u in alive if service.repo.place(showtime_id, u).state == rules.ADMITTED}
        service.tick(showtime_id)
        for user in alive:
            if user not in before and service.repo.place(showtime_id, user).state == rules.ADMITTED:
                admitted.append(user)
                if steps is not None:
                    steps[user] = number
    return admitted


def test_joining_twice_keeps_one_place(sale):
    container, clock, configure = sale
    showtime_id = configure()
    (user,) = users(1)
    first = container.waitroom.join(user, showtime_id)
    second = container.waitroom.join(user, showtime_id)
    assert first["state"] == second["state"] == "waiting"
    assert first["in_draw"] and first["position"] is None  # before opening: in the draw, no number yet
    assert container.waitroom.dashboard(showtime_id)["counts"]["joined"] == 1


def test_a_showtime_without_a_waiting_room_has_no_queue(sale):
    container, _, configure = sale
    showtime_id = configure(guarded=False)
    with pytest.raises(NotFound):
        container.waitroom.join(users(1)[0], showtime_id)


def test_the_draw_orders_early_joiners_and_later_arrivals_queue_behind_in_order(sale):
    container, clock, configure = sale
    showtime_id = configure(rate=30)
    early = users(12)
    for user in early:
        container.waitroom.join(user, showtime_id)
        clock.now += 1
    open_and_draw(container, clock, showtime_id)
    late = users(4)
    for user in late:
        container.waitroom.join(user, showtime_id)
        clock.now += 0.5
    positions = {u: container.waitroom.status(u, showtime_id)["position"] for u in early + late}
    assert sorted(positions[u] for u in early) == list(range(1, 13))
    assert [positions[u] for u in late] == [13, 14, 15, 16]
    steps: dict[str, int] = {}
    admitted = run(container, clock, showtime_id, 40, alive=early + late, steps=steps)  # 30/min for 40 s: 20
    assert len(admitted) == 16 and len(set(admitted)) == 16
    in_queue_order = [steps[u] for u in sorted(early + late, key=positions.__getitem__)]
    assert in_queue_order == sorted(in_queue_order)  # the draw's order, then arrivals, step by step
    assert max(steps[u] for u in early) <= min(steps[u] for u in late)


def test_admissions_follow_the_rate_and_pause_stops_them(sale):
    container, clock, configure = sale
    showtime_id = configure(rate=60)
    crowd = users(80)
    for user in crowd:
        container.waitroom.join(user, showtime_id)
    open_and_draw(container, clock, showtime_id)
    admitted = run(container, clock, showtime_id, 30, alive=crowd)
    assert 28 <= len(admitted) <= 31  # 60 a minute for 30 s
    container.waitroom.control(showtime_id, paused=True, rate_per_minute=None, max_shopping=None)
    assert run(container, clock, showtime_id, 20, alive=crowd) == []
    waiting = next(u for u in crowd if container.waitroom.repo.place(showtime_id, u).state == rules.WAITING)
    assert container.waitroom.status(waiting, showtime_id)["estimated_wait_seconds"] is None  # paused: no ETA
    container.waitroom.control(showtime_id, paused=False, rate_per_minute=120, max_shopping=None)
    resumed = run(container, clock, showtime_id, 10, alive=crowd)
    assert 18 <= len(resumed) <= 21  # no burst for the paused time: 120 a minute for 10 s
    board = container.waitroom.dashboard(showtime_id)
    assert board["counts"]["admitted"] == len(admitted) + len(resumed)
    assert board["rate_per_minute"] == 120 and board["wait_seconds"]["longest"] >= board["wait_seconds"]["average"]


def test_people_who_vanish_cost_nobody_a_turn(sale):
    container, clock, configure = sale
    showtime_id = configure(rate=60)
    crowd = users(20)
    for user in crowd:
        container.waitroom.join(user, showtime_id)
    open_and_draw(container, clock, showtime_id)
    alive, gone = crowd[::2], crowd[1::2]
    clock.now += 120  # nobody polled for two minutes, then only half come back
    for user in alive:
        container.waitroom.status(user, showtime_id)
    admitted = run(container, clock, showtime_id, 10, alive=alive)
    assert set(admitted) == set(alive)  # 10 s at 60/min: 10 admissions, all to people still there
    states = {container.waitroom.repo.place(showtime_id, u).state for u in gone}
    assert states <= {rules.VANISHED, rules.WAITING}
    assert container.waitroom.dashboard(showtime_id)["counts"]["vanished"] >= 1


def test_the_cap_admits_the_next_person_when_one_buys_or_leaves(sale):
    container, clock, configure = sale
    showtime_id = configure(rate=600, max_shopping=3)
    crowd = users(10)
    for user in crowd:
        container.waitroom.join(user, showtime_id)
    open_and_draw(container, clock, showtime_id)
    first = run(container, clock, showtime_id, 10, alive=crowd)
    assert len(first) == 3  # the cap, not the rate, holds the rest
    container.waitroom.bought(first[0], showtime_id)
    container.waitroom.leave(first[1], showtime_id)
    second = run(container, clock, showtime_id, 2, alive=crowd)
    assert len(second) == 2 and not set(second) & set(first)
    assert container.waitroom.dashboard(showtime_id)["counts"]["shopping"] == 3


def test_an_unused_admission_lapses_and_the_place_goes_on(sale):
    container, clock, configure = sale
    showtime_id = configure(rate=600, max_shopping=1)
    crowd = users(3)
    for user in crowd:
        container.waitroom.join(user, showtime_id)
    open_and_draw(container, clock, showtime_id)
    (first,) = run(container, clock, showtime_id, 2, alive=crowd)
    assert run(container, clock, showtime_id, 290, step=10, alive=[u for u in crowd if u != first]) == []
    later = run(container, clock, showtime_id, 20, step=10, alive=[u for u in crowd if u != first])
    assert len(later) == 1
    assert container.waitroom.status(first, showtime_id)["state"] == "lapsed"


def test_the_seat_gate(sale):
    container, clock, configure = sale
    showtime_id = configure(rate=600)
    me, other = users(2)
    gate = container.waitroom
    with pytest.raises(rules.NotOnSale):
        gate.check_select(me, showtime_id, None)  # before opening nobody selects
    for user in (me, other):
        gate.join(user, showtime_id)
    open_and_draw(container, clock, showtime_id)
    with pytest.raises(rules.AdmissionRequired):
        gate.check_select(me, showtime_id, None)
    run(container, clock, showtime_id, 2, alive=[me, other])
    mine = gate.status(me, showtime_id)["admission"]["token"]
    theirs = gate.status(other, showtime_id)["admission"]["token"]
    gate.check_select(me, showtime_id, mine)
    with pytest.raises(rules.AdmissionInvalid):
        gate.check_select(me, showtime_id, theirs)  # someone else's
    with pytest.raises(rules.AdmissionInvalid):
        gate.check_select(me, showtime_id, mine[:-4] + "AAAA")  # forged signature
    forged = rules.sign_admission(
        "not-our-secret-but-long-enough-32b",
        user_id=me,
        showtime_id=showtime_id,
        admission_id="x",
        expires_at=int(clock.now) + 60,
        issuer=container.settings.jwt_issuer,
    )
    with pytest.raises(rules.AdmissionInvalid):
        gate.check_select(me, showtime_id, forged)
    gate.leave(me, showtime_id)
    with pytest.raises(rules.AdmissionLapsed):
        gate.check_select(me, showtime_id, mine)  # left: the admission is spent
    rejoined = gate.join(me, showtime_id)
    assert rejoined["state"] == "waiting" and not rejoined["in_draw"]  # the back of the queue
    clock.now += 301
    with pytest.raises(rules.AdmissionLapsed):
        gate.check_select(other, showtime_id, theirs)
