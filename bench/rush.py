"""`premiere_rush`: an on-sale opening on one showtime, with AWS's network time and connection quota (issue 13).

Viewers open the seat map at no more than the gateway's new-connection rate (the stack enforces
`LOCAL_WS_CONNECT_RATE`, 500/s as on AWS; a refused handshake is retried after a jittered pause, as the web app
does), then buyers arrive over `arrival_s` seconds (an on-sale minute compressed): each opens its socket, picks
1-4 seats that look free on its own map, selects them one by one at a quick person's pace, and checks out
(create the PayPal order, approve it at the emulator's control endpoint, execute, wait for `paid`). Every
Management API call waits `post_delay_ms` in the gateway (AWS publishes no latency for PostToConnection; 15-40 ms
from a Lambda in the same region is what is commonly measured: 25 ms is used).

Figures: select->ack (won and refused), the lag from a select's ack to the first and the last viewer that saw the
seat held, the spread of each `sold` over the viewers, lost replies, lost broadcasts (a change some viewer never
saw), double holds (a seat acked to two buyers, a ticket in two paid orders, a live hold not in its holder's
cart), checkouts, the stack's peak memory and CPU, the machine's load.

The stack runs with the abuse limits off (every client comes from 127.0.0.1 and the viewers share one account).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from websockets.exceptions import InvalidStatus

from bench import stats
from bench.clients import Client, Reply, close_all
from bench.memory import RssSampler, load_average, tree_rss_by_label
from bench.phases import cpu_window, log
from bench.world import Room, Rooms, Tables, User, register_users
from tests.support.payflow import Emulator

POST_DELAY_MS = 25  # docs/broadcasts.md: a PostToConnection from a Lambda in the same region
CONNECT_RATE = 500  # API Gateway's default new connections per second per account and region


@dataclass(frozen=True)
class RushPlan:
    viewers: int = 1000
    buyers: int = 200
    arrival_s: float = 20.0
    seats: int = 900
    slice_size: int = 2000  # FANOUT_SLICE_SIZE (the default): the room is posted inline; smaller sizes use the queue
    post_delay_ms: int = POST_DELAY_MS
    connect_rate: int = CONNECT_RATE
    open_concurrency: int = 50  # handshakes in flight from this client
    think_s: tuple[float, float] = (0.2, 0.6)  # between one buyer's clicks
    reply_timeout: float = 10.0
    paid_timeout: float = 60.0
    settle_s: float = 30.0  # at most, after the last buyer, for every viewer to see every change


def stack_env(plan: RushPlan) -> dict[str, str]:
    return {
        "LOCAL_WS_POST_DELAY_MS": str(plan.post_delay_ms),
        "LOCAL_WS_CONNECT_RATE": str(plan.connect_rate),
        "FANOUT_SLICE_SIZE": str(plan.slice_size),
        # Memory only: a kept state is snapshotted every second under all of moto's locks (local/moto/snapshot.py),
        # a pause of every table request that AWS does not have.
        "LOCAL_STATE_DIR": "",
    }


class Sightings:
    """Per visible change (ticket, status): when the first viewer saw it, when the last one first did, and how
    many did. A seat going to checkout is broadcast `held` again (a new expiry): a viewer's first `held` counts."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], float] = {}
        self.last: dict[tuple[str, str], float] = {}
        self.viewers: defaultdict[tuple[str, str], set[int]] = defaultdict(set)

    def count(self, key: tuple[str, str]) -> int:
        return len(self.viewers.get(key, ()))

    def observe(self, client: Client, now: float, message: dict) -> None:
        for update in message.get("updates", ()):
            key = (update.get("ticket_id"), update.get("status"))
            if key[1] == "available":
                continue  # the room's creation, broadcast while viewers connect: not a rush change
            seen = self.viewers[key]
            if id(client) in seen:
                continue
            seen.add(id(client))
            self.first.setdefault(key, now)
            self.last[key] = now


@dataclass
class Buyer:
    user: User
    client: Client
    seen_taken: set[str]
    replies: list[Reply]
    won: list[str]
    order: dict | None = None
    paid: bool = False
    failure: str | None = None


async def open_paced(clients: list[Client], rate: float, concurrency: int) -> dict:
    """Open every client, starting at most `rate` handshakes a second; a 429 is retried after a jittered pause."""
    gate = asyncio.Semaphore(concurrency)
    refused = 0

    async def one(client: Client, start_at: float) -> None:
        nonlocal refused
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        for attempt in range(8):
            async with gate:
                try:
                    await client.open()
                    return
                except InvalidStatus as exc:
                    if exc.response.status_code != 429:
                        raise
                    refused += 1
            await asyncio.sleep(random.uniform(0.2, 0.5) * (attempt + 1))  # noqa: S311
        raise RuntimeError(f"{client.name}: refused 8 times")

    started = time.perf_counter()
    await asyncio.gather(*(one(c, started + i / rate) for i, c in enumerate(clients)))
    return {"seconds": round(time.perf_counter() - started, 1), "refused_429": refused}


def _checkout(stack, emulator: Emulator, buyer: Buyer, showtime_id: str, paid_timeout: float) -> None:
    """create -> approve -> execute -> paid, over REST as the web app does (blocking: run in a thread)."""
    headers = {"Authorization": f"Bearer {buyer.user.access}"}
    created = requests.post(
        stack.api("payment/create/"), json={"showtime_id": showtime_id}, headers=headers, timeout=30
    )
    if created.status_code != 201:
        buyer.failure = f"create {created.status_code} {created.json().get('code')}"
        return
    order = created.json()
    emulator.approve(order["paypal_order_id"])
    executed = requests.get(
        stack.api("payment/execute/"), params={"token": order["paypal_order_id"]}, headers=headers, timeout=30
    )
    if executed.status_code != 200:
        buyer.failure = f"execute {executed.status_code} {executed.json().get('code')}"
        return
    deadline = time.monotonic() + paid_timeout
    while time.monotonic() < deadline:
        current = requests.get(stack.api(f"orders/{order['order_id']}/"), headers=headers, timeout=30).json()
        if current["status"] == "paid":
            buyer.order, buyer.paid = current, True
            return
        if current["status"] not in ("created", "processing"):
            buyer.failure = f"order {current['status']}"
            return
        time.sleep(1.0)  # a buyer's page waits on its order; polling faster only loads the stack under test
    buyer.failure = "not paid in time"


async def _shop(buyer: Buyer, room: Room, plan: RushPlan, arrive_at: float, checkout) -> None:
    await asyncio.sleep(max(0.0, arrive_at - time.perf_counter()))
    await buyer.client.open()
    wanted = random.randint(1, 4)  # noqa: S311
    while len(buyer.won) < wanted:
        free = [t for t in room.tickets if t not in buyer.seen_taken]
        if not free:
            break
        ticket = random.choice(free)  # noqa: S311
        reply = await buyer.client.request("select", ticket)
        buyer.replies.append(reply)
        buyer.seen_taken.add(ticket)
        if reply.kind == "selected":
            buyer.won.append(ticket)
        elif reply.lost or len(buyer.replies) > 3 * wanted:
            break
        await asyncio.sleep(random.uniform(*plan.think_s))  # noqa: S311
    if buyer.won:
        await checkout(buyer)


def _buyer(user: User, ws_url: str, room: Room, plan: RushPlan) -> Buyer:
    taken: set[str] = set()

    def note(client: Client, now: float, message: dict) -> None:
        taken.update(u["ticket_id"] for u in message.get("updates", ()) if u.get("status") != "available")

    client = Client(
        f"buyer-{user.id[:6]}", user.id, Client.room_url(ws_url, room.showtime_id, user.access), plan.reply_timeout
    )
    client.observer = note
    return Buyer(user, client, taken, [], [])


def _pollers(stack) -> dict:
    return requests.get(stack.api("health/"), timeout=30).json()["parts"]["event_sources"]["pollers"]


def _pollers_work(stack, batches_before: int) -> dict:
    """Stream batches and records delivered (records per batch = how much the rush coalesced), fan-out slices,
    and for the batches since `batches_before` what Lambda reports for a stream mapping: IteratorAge (the oldest
    record's age when its batch's handler was called) and Duration (the handler's run), in ms."""
    pollers = _pollers(stack)
    stream = pollers.get("stream-poller", {})
    batches = stream.get("batches") or 0
    recent = stream.get("recent_batches_ms") or []
    rush = min(len(recent), batches - batches_before)  # the rush's batches are the newest ones
    since = recent[-rush:] if rush > 0 else []
    return {
        "stream_batches": batches,
        "stream_records": stream.get("records"),
        "fanout_invocations": sum(p.get("invocations", 0) for name, p in pollers.items() if "fanout" in name),
        "rush_batches": len(since),
        "iterator_age_ms": stats.summarize([age for age, _ in since], 0),
        "handler_duration_ms": stats.summarize([duration for _, duration in since], 0),
    }


def _double_holds(buyers: list[Buyer], tables: Tables, room: Room) -> dict:
    acked: defaultdict[str, set[str]] = defaultdict(set)
    for buyer in buyers:
        for reply in buyer.replies:
            if reply.kind == "selected":
                acked[reply.ticket_id].add(buyer.user.id)
    in_orders: defaultdict[str, int] = defaultdict(int)
    for buyer in buyers:
        for ticket in (buyer.order or {}).get("tickets", ()):
            in_orders[ticket["ticket_id"]] += 1
    tickets = tables.room_tickets(room.showtime_id)
    sold = {t["ticket_id"]: t.get("holder") or t.get("owner") for t in tickets if t.get("status") == "sold"}
    consistency = stats.hold_consistency(tickets, tables.room_carts(room.showtime_id), time.time())
    return {
        "seats_acked_to_two_buyers": sum(1 for users in acked.values() if len(users) > 1),
        "tickets_in_two_paid_orders": sum(1 for n in in_orders.values() if n > 1),
        "sold_in_table": len(sold),
        "sold_in_paid_orders": len(in_orders),
        **consistency,
    }


async def measure(
    stack, room: Room, viewer: User, buyers_users: list[User], plan: RushPlan, stack_cpu
) -> tuple[dict, list[Buyer]]:
    sightings = Sightings()
    viewers = [
        Client(f"viewer-{i}", viewer.id, Client.room_url(stack.ws_url, room.showtime_id, viewer.access), 15.0)
        for i in range(plan.viewers)
    ]
    for client in viewers:
        client.observer = sightings.observe
    sampler = RssSampler(stack.process.pid)
    sampler.start()
    stop_connect_cpu = cpu_window(stack_cpu)
    connected = await open_paced(viewers, min(plan.connect_rate, CONNECT_RATE), plan.open_concurrency)
    connected["cpu"] = stop_connect_cpu()
    log(f"rush: {plan.viewers} viewers open in {connected['seconds']} s ({connected['refused_429']} refused 429)")

    emulator = Emulator(stack.base_url + "/paypal")
    pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="checkout")
    loop = asyncio.get_running_loop()

    async def checkout(buyer: Buyer) -> None:
        await loop.run_in_executor(pool, _checkout, stack, emulator, buyer, room.showtime_id, plan.paid_timeout)

    buyers = [_buyer(u, stack.ws_url, room, plan) for u in buyers_users]
    batches_before = (await asyncio.to_thread(_pollers, stack)).get("stream-poller", {}).get("batches") or 0
    stop_cpu = cpu_window(stack_cpu)
    started = time.perf_counter()
    arrivals = sorted(random.uniform(0, plan.arrival_s) for _ in buyers)  # noqa: S311
    await asyncio.gather(
        *(_shop(b, room, plan, started + at, checkout) for b, at in zip(buyers, arrivals, strict=True))
    )
    shopping_s = time.perf_counter() - started
    settled = await _settle(sightings, buyers, plan)
    cpu = stop_cpu()
    pool.shutdown(wait=True)
    peak = sampler.peak_mib
    sampler.stop()
    rss = tree_rss_by_label(stack.process.pid)
    await close_all([b.client for b in buyers])
    await close_all(viewers)
    figure = _figure(plan, buyers, sightings, connected, shopping_s, cpu, peak, rss)
    figure["drained_after_s"] = settled
    figure["event_sources"] = await asyncio.to_thread(_pollers_work, stack, batches_before)
    return figure, buyers


async def _settle(sightings: Sightings, buyers: list[Buyer], plan: RushPlan) -> float:
    """Wait (up to settle_s) until every viewer saw every seat held and sold; a change still unseen then is lost."""
    started = time.perf_counter()
    keys = [(t, "held") for b in buyers for t in b.won]
    keys += [(t["ticket_id"], "sold") for b in buyers for t in (b.order or {}).get("tickets", ())]
    while time.perf_counter() - started < plan.settle_s:
        if all(sightings.count(key) >= plan.viewers for key in keys):
            break
        await asyncio.sleep(0.25)
    return round(time.perf_counter() - started, 1)


def _figure(plan, buyers, sightings, connected, shopping_s, cpu, peak, rss) -> dict:
    replies = [r for b in buyers for r in b.replies]
    won = [r for r in replies if r.kind == "selected"]
    refused = [r for r in replies if r.kind == "error"]
    last_lag, first_lag, missed = [], [], 0
    for reply in won:
        key = (reply.ticket_id, "held")
        seen = sightings.count(key)
        missed += max(0, plan.viewers - seen)
        if seen >= plan.viewers and reply.received_at is not None:
            last_lag.append((sightings.last[key] - reply.received_at) * 1000)
            first_lag.append((sightings.first[key] - reply.received_at) * 1000)
    sold_spread = []
    sold = [t["ticket_id"] for b in buyers for t in (b.order or {}).get("tickets", ())]
    for ticket in sold:
        key = (ticket, "sold")
        missed += max(0, plan.viewers - sightings.count(key))
        if key in sightings.first:
            sold_spread.append((sightings.last[key] - sightings.first[key]) * 1000)
    figure = {
        "figure": "premiere_rush",
        "viewers": plan.viewers,
        "buyers": plan.buyers,
        "arrival_s": plan.arrival_s,
        "post_delay_ms": plan.post_delay_ms,
        "fanout_slice_size": plan.slice_size,
        "connect": connected,
        "shopping_s": round(shopping_s, 1),
        "select_ack_ms": stats.summarize([r.latency_ms for r in won]),
        "refused_ack_ms": stats.summarize([r.latency_ms for r in refused]),
        "refused_codes": stats.count_codes(r.code or "" for r in refused),
        "lost_replies": sum(1 for r in replies if r.lost),
        "last_viewer_lag_ms": stats.summarize(last_lag),
        "first_viewer_lag_ms": stats.summarize(first_lag),
        "sold_first_to_last_ms": stats.summarize(sold_spread),
        "lost_broadcasts": missed,
        "checkouts": {
            "paid": sum(1 for b in buyers if b.paid),
            "failed": stats.count_codes(b.failure for b in buyers if b.failure),
            "buyers_without_a_seat": sum(1 for b in buyers if not b.won),
        },
        "stack_peak_rss_mib": peak,
        "stack_rss_mib_by_process": rss,
        "cpu": cpu,
        "load_average_1_5_15": load_average(),
    }
    figure["meets_target"] = bool(
        figure["last_viewer_lag_ms"].get("p99") is not None
        and figure["last_viewer_lag_ms"]["p99"] <= 1500
        and missed == 0
        and figure["lost_replies"] == 0
        and (figure["select_ack_ms"].get("p99") or 1e9) <= 500
    )
    return figure


async def run(stack, tables: Tables, plan: RushPlan, stack_cpu) -> dict:
    users = await asyncio.to_thread(register_users, stack, plan.buyers + 1, "rush")
    viewer = users.pop()
    room = await asyncio.to_thread(Rooms(stack).create, "premiere", plan.seats)
    figure, buyers = await measure(stack, room, viewer, users, plan, stack_cpu)
    figure["double_holds"] = await asyncio.to_thread(_double_holds, buyers, tables, room)
    doubles = figure["double_holds"]
    figure["meets_target"] = figure["meets_target"] and not (
        doubles["seats_acked_to_two_buyers"] or doubles["tickets_in_two_paid_orders"] or doubles["cart_mismatches"]
    )
    return figure
