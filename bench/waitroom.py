"""`waitroom`: a guarded on-sale (issue 14), driven through the waiting-room service on a simulated clock.

5,000 people join in the minute before opening, a steady stream arrives after it, a share of each never comes back
(they vanish), and everyone else polls as the server tells them (`poll_after_seconds`: the poll is the heartbeat).
The ticker steps every 2 simulated seconds as on AWS and admits at the sale's rate. The service, its repository
and the moto server (serialized, with the transaction fixes) are the real ones; only time is simulated, so a
sale of several minutes runs in about a minute and its figures do not depend on this machine's speed.

Figures:
- how closely admissions follow the rate (per 10-second window, and over the whole sale);
- whether the pre-opening draw is fair: where each of the 5,000 lands against the order they joined in
  (Spearman's rho, and a chi-square test of join decile against draw decile);
- whether arrivals after opening are admitted in arrival order (inversions must be 0);
- admitted twice (must be 0), vanished people passed over, people admitted after being silent for longer than the
  heartbeat timeout (must be 0; someone silent for less still holds their place);
- DynamoDB requests and capacity units per person, counted at the transport, and API requests per person;
- the cost of 10,000 people queued on AWS (us-east-1 prices, docs/waiting-room.md).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.httpsession import URLLib3Session

from bench.phases import log

# us-east-1 list prices (docs/waiting-room.md).
API_GATEWAY_REST_PER_MILLION = 3.50
LAMBDA_REQUEST_PER_MILLION = 0.20
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_SECONDS_PER_REQUEST = 0.02  # a poll: one read and a signature, warm (measured locally: 2-4 ms of CPU)
LAMBDA_GB = 0.5
WRU_PER_MILLION = 0.625
RRU_PER_MILLION = 0.125
INDEX_KEYS = ("draw_pk", "arrival_pk", "lapse_pk", "active")
# Chi-square critical value at p = 0.001 for 81 degrees of freedom (a 10 x 10 table).
CHI2_81_999 = 126.0


@dataclass(frozen=True)
class WaitPlan:
    early: int = 5000  # join in the minute before opening
    later_per_second: float = 4.0  # a steady stream after opening
    later_seconds: int = 120
    rate_per_minute: int = 2400
    vanish_share: float = 0.05  # never poll after joining
    step_seconds: int = 2
    workers: int = 8


class Units:
    """DynamoDB requests and capacity units this process sends, from each request's own body: one unit per item
    read or written (every item here is under 1 KB), plus one write unit per index key a write sets or removes."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.rru = 0.0
        self.wru = 0.0

    def record(self, target: str, body: dict[str, Any]) -> None:
        operation = target.rsplit(".", 1)[-1]
        self.requests[operation] += 1
        if operation in ("GetItem", "Query", "Scan"):
            # A Query here reads keys-only index entries: well under 4 KB a page.
            self.rru += 1.0 if body.get("ConsistentRead") else 0.5
        elif operation == "BatchGetItem":
            items = sum(len(spec.get("Keys", [])) for spec in body.get("RequestItems", {}).values())
            consistent = all(spec.get("ConsistentRead") for spec in body.get("RequestItems", {}).values())
            self.rru += items * (1.0 if consistent else 0.5)
        elif operation == "BatchWriteItem":
            for requests in body.get("RequestItems", {}).values():
                for request in requests:
                    item = request.get("PutRequest", {}).get("Item", {})
                    size_kb = len(json.dumps(item)) / 1024
                    self.wru += max(1, math.ceil(size_kb))
        elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
            touched = set((body.get("ExpressionAttributeNames") or {}).values()) | set(body.get("Item", {}))
            self.wru += 1 + sum(1 for key in INDEX_KEYS if key in touched)

    @contextmanager
    def watching(self):
        units = self
        original = URLLib3Session.send

        def counting(session: Any, request: Any) -> Any:
            target = request.headers.get("X-Amz-Target")
            target = target.decode() if isinstance(target, bytes) else target
            if target and target.startswith("DynamoDB_"):
                raw = request.body.decode() if isinstance(request.body, bytes) else (request.body or "{}")
                units.record(target, json.loads(raw or "{}"))
            return original(session, request)

        URLLib3Session.send = counting  # type: ignore[method-assign]
        try:
            yield
        finally:
            URLLib3Session.send = original  # type: ignore[method-assign]


def spearman(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    rx = {v: i for i, v in enumerate(sorted(xs))}
    ry = {v: i for i, v in enumerate(sorted(ys))}
    d2 = sum((rx[x] - ry[y]) ** 2 for x, y in zip(xs, ys, strict=True))
    return 1 - 6 * d2 / (n * (n * n - 1))


def decile_chi_square(join_rank: list[int], draw_rank: list[int]) -> float:
    n = len(join_rank)
    table = Counter((10 * j // n, 10 * d // n) for j, d in zip(join_rank, draw_rank, strict=True))
    expected = n / 100
    return sum((table[(a, b)] - expected) ** 2 / expected for a in range(10) for b in range(10))


class Sim:
    """The clock and the crowd."""

    def __init__(self, container: Any, clock: Any, showtime_id: str, plan: WaitPlan, rng: random.Random) -> None:
        self.c = container
        self.clock = clock
        self.showtime_id = showtime_id
        self.plan = plan
        self.rng = rng
        self.next_poll: dict[str, float] = {}  # live waiting users -> when they poll next
        self.vanishing: set[str] = set()
        self.api_requests = 0
        self.admitted_at: dict[str, float] = {}
        self.pool = ThreadPoolExecutor(plan.workers)

    def join(self, users: list[str]) -> None:
        answers = list(self.pool.map(lambda u: self.c.waitroom.join(u, self.showtime_id), users))
        self.api_requests += len(users)
        for user, answer in zip(users, answers, strict=True):
            if self.rng.random() < self.plan.vanish_share:
                self.vanishing.add(user)
            else:
                self.next_poll[user] = self.clock.now + answer["poll_after_seconds"]

    def poll_due(self) -> None:
        due = [u for u, at in self.next_poll.items() if at <= self.clock.now]
        answers = list(self.pool.map(lambda u: self.c.waitroom.status(u, self.showtime_id), due))
        self.api_requests += len(due)
        for user, answer in zip(due, answers, strict=True):
            if answer["state"] == "admitted":
                self.admitted_at[user] = self.clock.now
                del self.next_poll[user]
            elif answer["state"] == "waiting":
                self.next_poll[user] = self.clock.now + answer["poll_after_seconds"]
            else:
                del self.next_poll[user]


def run(plan: WaitPlan, endpoint: str) -> dict:
    from chalicelib.storage.catalog import CatalogRepository
    from chalicelib.wiring import Container
    from tests.support.clock import Clock
    from tests.support.tables import make_settings, provision

    rng = random.Random(14)
    settings = make_settings(endpoint, WAITROOM_DRAW_GRACE_SECONDS="2", WAITROOM_TICK_SECONDS=str(plan.step_seconds))
    provision(settings)
    opening = dt.datetime(2031, 5, 1, 18, 0, tzinfo=dt.UTC)
    clock = Clock(opening.timestamp() - 60)
    container = Container(settings, clock=clock)
    CatalogRepository().put_category("drama", "Drama")
    event = container.catalog.create_event(
        title="Bench premiere", description="", category="drama", duration_minutes=120
    )
    showtime = container.catalog.create_showtime(
        event["id"],
        date=dt.date(2031, 5, 2),
        theater="Hall W",
        starts_at="20:00",
        rows=1,
        seats_per_row=10,
        price=Decimal("10.00"),
        currency="USD",
    )
    showtime_id = showtime["showtime_id"]
    container.waitroom.configure(
        showtime_id, on_sale_at=opening, guarded=True, rate_per_minute=plan.rate_per_minute, max_shopping=0
    )
    sim = Sim(container, clock, showtime_id, plan, rng)
    units = Units()
    started = time.perf_counter()
    early = [f"early-{i:05d}" for i in range(plan.early)]
    later: list[str] = []
    tick_cpu: list[float] = []
    with units.watching():
        # The minute before opening: 5,000 joins spread over 60 s, polling as told.
        per_step = math.ceil(plan.early / (60 / plan.step_seconds))
        for start in range(0, plan.early, per_step):
            sim.join(early[start : start + per_step])
            clock.now += plan.step_seconds
            sim.poll_due()
        log(f"waitroom: {plan.early} joined before opening in {time.perf_counter() - started:.0f}s")
        clock.now = opening.timestamp()
        arrivals_left = plan.later_per_second * plan.later_seconds
        carry = 0.0
        deadline = opening.timestamp() + 3600
        while clock.now < deadline:
            clock.now += plan.step_seconds
            if arrivals_left > 0:
                carry += plan.later_per_second * plan.step_seconds
                batch = [f"later-{len(later) + i:05d}" for i in range(int(carry))]
                carry -= len(batch)
                arrivals_left -= len(batch)
                later.extend(batch)
                sim.join(batch)
            sim.poll_due()
            cpu = time.process_time()
            container.waitroom.tick(showtime_id)
            tick_cpu.append(time.process_time() - cpu)
            if arrivals_left <= 0 and not sim.next_poll:
                break
    wall = time.perf_counter() - started
    return _figures(plan, container, showtime_id, opening.timestamp(), sim, units, early, later, tick_cpu, wall)


def _figures(plan, container, showtime_id, opening, sim, units, early, later, tick_cpu, wall) -> dict:
    repo = container.waitroom.repo
    sale = repo.sale(showtime_id, consistent=True, counts=True)
    everyone = early + later
    places = {}
    for start in range(0, len(everyone), 100):
        places.update(repo.places(showtime_id, everyone[start : start + 100]))
    admitted = {u: p for u, p in places.items() if p.admitted_at is not None}
    # The rate: admissions per 10 s window from the first admission on.
    times = sorted(p.admitted_at for p in admitted.values())
    first, last = times[0], times[-1]
    windows = Counter(int((t - first) // 10) for t in times)
    full_windows = [windows[w] for w in range(int((last - first) // 10))]  # the last, partial one left out
    per_window = plan.rate_per_minute / 6
    # The draw: join order against the draw's order, for the pre-opening entrants.
    order = []
    for page in range(sale.draw_pages):
        order.extend(repo.draw_page(showtime_id, page))
    draw_rank = {u: i for i, u in enumerate(order)}
    join_ranks = list(range(len(early)))
    draws = [draw_rank[u] for u in early]
    # Arrivals after opening: admitted in arrival order, which is the order of their counter numbers (a step's
    # arrivals join concurrently here, as on AWS); ties within one step allowed.
    later_admitted = sorted((u for u in later if u in admitted), key=lambda u: admitted[u].seq or 0)
    inversions = sum(
        1
        for a, b in zip(later_admitted, later_admitted[1:], strict=False)
        if admitted[a].admitted_at > admitted[b].admitted_at
    )
    early_admitted = sorted((draw_rank[u], admitted[u].admitted_at) for u in early if u in admitted)
    draw_inversions = sum(1 for (_, a), (_, b) in zip(early_admitted, early_admitted[1:], strict=False) if a > b)
    last_early = max((admitted[u].admitted_at for u in early if u in admitted), default=0)
    first_later = min((admitted[u].admitted_at for u in later if u in admitted), default=math.inf)
    # Someone silent for less than the heartbeat timeout still holds their place; longer, never.
    timeout = container.settings.waitroom.heartbeat_timeout_seconds
    silent_admitted = [u for u in sim.vanishing if u in admitted]
    silent_too_long = [u for u in silent_admitted if admitted[u].admitted_at - admitted[u].joined_at > timeout]
    people = len(everyone)
    per_person_rru = units.rru / people
    per_person_wru = units.wru / people
    per_person_api = sim.api_requests / people
    cost = {
        "api_gateway": per_person_api * API_GATEWAY_REST_PER_MILLION / 1e6,
        "lambda": per_person_api
        * (LAMBDA_REQUEST_PER_MILLION / 1e6 + LAMBDA_SECONDS_PER_REQUEST * LAMBDA_GB * LAMBDA_GB_SECOND),
        "dynamodb_writes": per_person_wru * WRU_PER_MILLION / 1e6,
        "dynamodb_reads": per_person_rru * RRU_PER_MILLION / 1e6,
    }
    waits = [p.admitted_at - max(p.joined_at, opening) for p in admitted.values()]
    return {
        "figure": "waitroom",
        "people": people,
        "joined_before_opening": len(early),
        "joined_after_opening": len(later),
        "rate_per_minute": plan.rate_per_minute,
        "admitted": len(admitted),
        "admitted_twice": sale.admitted - len(admitted),
        "vanished_passed_over": sale.vanished,
        "silent_admitted_within_timeout": len(silent_admitted) - len(silent_too_long),
        "silent_admitted_past_timeout": len(silent_too_long),
        "never_polled": len(sim.vanishing),
        "admissions_per_10s": {
            "target": round(per_window, 1),
            "mean": round(sum(full_windows) / len(full_windows), 1) if full_windows else None,
            "min": min(full_windows, default=None),
            "max": max(full_windows, default=None),
        },
        "sale_seconds": round(last - first, 1),
        "overall_rate_per_minute": round(60 * (len(times) - 1) / (last - first), 1) if last > first else None,
        "draw": {
            "spearman_rho_join_vs_draw": round(spearman(join_ranks, draws), 4),
            "rho_bound_3_over_sqrt_n": round(3 / math.sqrt(len(early)), 4),
            "chi_square_deciles": round(decile_chi_square(join_ranks, draws), 1),
            "chi_square_critical_p001": CHI2_81_999,
            "admitted_out_of_draw_order": draw_inversions,
        },
        "later_arrivals": {
            "admitted_out_of_arrival_order": inversions,
            "first_admitted_after_last_of_draw": first_later >= last_early,
        },
        "wait_seconds": {
            "p50": round(sorted(waits)[len(waits) // 2]),
            "max": round(max(waits)),
        },
        "per_person": {
            "api_requests": round(per_person_api, 2),
            "dynamodb_requests": round(sum(units.requests.values()) / people, 2),
            "read_units": round(per_person_rru, 2),
            "write_units": round(per_person_wru, 2),
        },
        "dynamodb_requests_by_operation": dict(sorted(units.requests.items())),
        "cost_per_10000_people_usd": {name: round(v * 10_000, 4) for name, v in cost.items()}
        | {"total": round(sum(cost.values()) * 10_000, 4)},
        "ticker_step_cpu_ms": {
            "p50": round(1000 * sorted(tick_cpu)[len(tick_cpu) // 2], 1),
            "max": round(1000 * max(tick_cpu), 1),
        },
        "wall_seconds": round(wall, 1),
        "states": dict(Counter(p.state for p in places.values())),
        "fair": abs(spearman(join_ranks, draws)) < 3 / math.sqrt(len(early))
        and decile_chi_square(join_ranks, draws) < CHI2_81_999,
    }
