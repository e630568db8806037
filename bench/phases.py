"""The measured phases. Each returns one figure (a dict printed as one JSON line)."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import stats
from bench.clients import Client, Reply, Watch, close_all, open_all
from bench.memory import machine_busy_seconds
from bench.world import Room, Tables, User

SEE_TIMEOUT = 15.0  # how long a viewer may take to see a change before it counts as missed


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_clients(ws_url: str, room: Room, users: list[User], label: str, observer=None) -> list[Client]:
    return [
        Client(
            name=f"{label}-{i}",
            user_id=u.id,
            url=Client.room_url(ws_url, room.showtime_id, u.access),
            observer=observer,
        )
        for i, u in enumerate(users)
    ]


@dataclass
class LoopResult:
    select_ms: list[float] = field(default_factory=list)  # acked `selected` only
    unselect_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)  # select answered with an error
    selected: int = 0
    unselected: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)
    intervals: list[tuple[str, str, float, float]] = field(default_factory=list)

    def record(self, reply: Reply) -> None:
        if reply.lost:
            self.lost += 1
        elif reply.kind == "selected":
            self.selected += 1
            self.select_ms.append(reply.latency_ms or 0.0)
        elif reply.kind == "unselected":
            self.unselected += 1
            self.unselect_ms.append(reply.latency_ms or 0.0)
        else:
            self.errors.append(f"{reply.action}:{reply.code}")
            if reply.action == "select":
                self.refused_ms.append(reply.latency_ms or 0.0)


async def cycle(client: Client, ticket_id: str, result: LoopResult) -> None:
    """select then unselect one ticket (unselect even after a lost select, so no hold is left over)."""
    selected = await client.request("select", ticket_id)
    result.record(selected)
    if selected.kind == "selected" or selected.lost:
        result.record(await client.request("unselect", ticket_id))


async def disjoint_loop(client: Client, tickets: list[str], deadline: float, result: LoopResult) -> None:
    index = 0
    while time.perf_counter() < deadline:
        await cycle(client, tickets[index % len(tickets)], result)
        index += 1


def cpu_window(stack_cpu: Callable[[], dict[str, float]]):
    """Returns stop(ops): cores used since the start by this process, each stack process, and everything
    else on the machine (other users' load competes for the same 2 cores and shows up in every figure),
    and the stack's CPU milliseconds per operation (select or unselect), which that load does not move."""
    own, stack_before, wall = time.process_time(), stack_cpu(), time.perf_counter()
    busy_before = machine_busy_seconds()

    def stop(ops: int = 0) -> dict:
        stack_after = stack_cpu()
        elapsed = time.perf_counter() - wall
        client = time.process_time() - own
        used = {name: stack_after.get(name, 0.0) - stack_before.get(name, 0.0) for name in stack_after}
        others = machine_busy_seconds() - busy_before - client - sum(used.values())
        figure: dict = {
            "wall_s": round(elapsed, 2),
            "cores": {
                "bench_client": stats.ratio(client, elapsed),
                **{name: stats.ratio(seconds, elapsed) for name, seconds in sorted(used.items())},
                "other_processes": stats.ratio(max(0.0, others), elapsed),
            },
        }
        if ops:
            figure["stack_cpu_ms_per_op"] = {
                name: round(seconds * 1000 / ops, 2) for name, seconds in sorted(used.items())
            }
        return figure

    return stop


# --- select -> ack with K clients on disjoint tickets ------------------------------------------------


async def throughput(
    ws_url: str, room: Room, users: list[User], window: float, stack_cpu, run: int | None = None
) -> dict:
    k = len(users)
    clients = make_clients(ws_url, room, users, f"k{k}")
    await open_all(clients)
    per_client = max(1, min(2, len(room.tickets) // k))
    assigned = [list(room.tickets[i * per_client : (i + 1) * per_client]) for i in range(k)]
    # One untimed select/unselect per client first: every cart and connection cache is warm, as in a
    # room that has been open for a while.
    await asyncio.gather(*(cycle(c, t[0], LoopResult()) for c, t in zip(clients, assigned, strict=True)))
    result = LoopResult()
    stop_cpu = cpu_window(stack_cpu)
    started = time.perf_counter()
    deadline = started + window
    await asyncio.gather(*(disjoint_loop(c, t, deadline, result) for c, t in zip(clients, assigned, strict=True)))
    elapsed = time.perf_counter() - started
    cpu = stop_cpu(result.selected + result.unselected)
    if result.lost:
        await asyncio.sleep(SEE_TIMEOUT)  # a reply may still come: late, not lost
    late = sum(c.counters.unmatched_replies for c in clients)
    await close_all(clients)
    figure = {
        "figure": "select_ack_latency_ms",
        "clients": k,
        "tickets": "disjoint",
        **({"run": run} if run is not None else {}),
        **_latency_fields(result.select_ms),
        "selects_per_s": stats.rate(result.selected, elapsed),
        "ops_per_s": stats.rate(result.selected + result.unselected, elapsed),
        "unselect_ack_ms": _short(result.unselect_ms),
        "selects": result.selected,
        "window_s": round(elapsed, 2),
        "lost_replies": result.lost - late,
        "late_replies": late,
        "reply_timeout_s": clients[0].reply_timeout,
        "errors": stats.count_codes(result.errors),
        "cpu": cpu,
    }
    figure.update(_targets(k, figure))
    return figure


def _latency_fields(samples: list[float]) -> dict:
    summary = stats.summarize(samples)
    return {key: summary[key] for key in ("p50", "p90", "p99", "max", "mean")}


def _short(samples: list[float]) -> dict:
    summary = stats.summarize(samples)
    return {"p50": summary["p50"], "p99": summary["p99"], "n": summary["n"]}


def _targets(k: int, figure: dict) -> dict:
    if k == 50:
        target = {"p99_max": 424, "selects_per_s_min": 142, "replaced_system": {"p99": 848, "selects_per_s": 71}}
        met = (
            figure["p99"] is not None
            and figure["p99"] <= target["p99_max"]
            and figure["selects_per_s"] >= target["selects_per_s_min"]
        )
        return {"target": target, "meets_target": met}
    if k == 200:
        met = figure["lost_replies"] == 0 and figure["late_replies"] == 0
        return {"target": {"lost_replies": 0}, "meets_target": met}
    return {}


# --- select-only bursts: every client takes its whole allowance at once -------------------------------


async def bursts(ws_url: str, room: Room, users: list[User], count: int, per_client: int, stack_cpu) -> dict:
    """Each client selects `per_client` tickets back to back (timed), then all are let go (untimed).

    No unselect traffic competes inside the timed part, so `selects_per_s` counts selects only.
    """
    clients = make_clients(ws_url, room, users, f"burst{len(users)}")
    await open_all(clients)
    owned = [list(room.tickets[i * per_client : (i + 1) * per_client]) for i in range(len(clients))]
    await asyncio.gather(*(cycle(c, t[0], LoopResult()) for c, t in zip(clients, owned, strict=True)))  # warm
    result, seconds, released = LoopResult(), 0.0, 0
    stop_cpu = cpu_window(stack_cpu)

    async def take(client: Client, tickets: list[str]) -> None:
        for ticket_id in tickets:
            result.record(await client.request("select", ticket_id))

    for _ in range(count):
        started = time.perf_counter()
        await asyncio.gather(*(take(c, t) for c, t in zip(clients, owned, strict=True)))
        seconds += time.perf_counter() - started
        release = LoopResult()
        await asyncio.gather(*(_release(c, t, release) for c, t in zip(clients, owned, strict=True)))
        released += release.unselected
    cpu = stop_cpu(result.selected + released)  # the CPU window covers the untimed releases too
    await close_all(clients)
    figure = {
        "figure": "select_ack_latency_ms",
        "clients": len(clients),
        "tickets": f"select-only bursts ({per_client} each, then released untimed)",
        **_latency_fields(result.select_ms),
        "selects_per_s": stats.rate(result.selected, seconds),
        "selects": result.selected,
        "bursts": count,
        "timed_s": round(seconds, 2),
        "lost_replies": result.lost,
        "errors": stats.count_codes(result.errors),
        "cpu": cpu,
    }
    # The K=50 target read as selects only (the loop above also spends half its time on unselects).
    figure.update(_targets(len(clients), figure))
    return figure


async def _release(client: Client, tickets: list[str], result: LoopResult) -> None:
    for ticket_id in tickets:
        result.record(await client.request("unselect", ticket_id))


# --- contention: everyone races for the same few seats -----------------------------------------------


async def contended(
    ws_url: str, room: Room, users: list[User], seats: int, rounds: int, window: float, tables: Tables, stack_cpu
) -> tuple[dict, dict]:
    """Lock-step rounds (each seat asked for must end with exactly one holder), then a free-running race."""
    clients = make_clients(ws_url, room, users, "race")
    await open_all(clients)
    hot = list(room.tickets[:seats])
    lockstep = await _race_rounds(clients, users, hot, rounds, tables, room.showtime_id)
    result = LoopResult()
    stop_cpu = cpu_window(stack_cpu)
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _race(c, u, hot, started + window, result, seed=i)
            for i, (c, u) in enumerate(zip(clients, users, strict=True))
        )
    )
    elapsed = time.perf_counter() - started
    cpu = stop_cpu(result.selected + result.unselected + len(result.refused_ms))
    await close_all(clients)
    overlaps = stats.overlapping_holds(result.intervals)
    race_figure = {
        "figure": "select_ack_latency_ms",
        "clients": len(clients),
        "tickets": f"contended ({seats} seats, free-running)",
        **_latency_fields(result.select_ms + result.refused_ms),
        "won_p99": stats.summarize(result.select_ms)["p99"],
        "refused_p99": stats.summarize(result.refused_ms)["p99"],
        "selects_per_s": stats.rate(result.selected, elapsed),
        "attempts_per_s": stats.rate(result.selected + len(result.refused_ms), elapsed),
        "selects": result.selected,
        "refused": len(result.refused_ms),
        "window_s": round(elapsed, 2),
        "lost_replies": result.lost,
        "errors": stats.count_codes(result.errors),
        "cpu": cpu,
    }
    clean = lockstep["double_holds"] == 0 and lockstep["db_holder_mismatches"] == 0 and overlaps == 0
    double_figure = {
        "figure": "double_holds",
        "clients": len(clients),
        "seats": seats,
        "rounds": rounds,
        **lockstep,
        "free_race_holds": len(result.intervals),
        "free_race_overlapping_holds": overlaps,
        "target": {"double_holds": 0},
        "meets_target": clean,
    }
    return race_figure, double_figure


async def _race_rounds(
    clients: list[Client], users: list[User], hot: list[str], rounds: int, tables: Tables, showtime_id: str
) -> dict:
    """Every client asks for one of the hot seats at once; winners are checked in the table, then let go."""
    outcomes: list[stats.RoundOutcome] = []
    round_ms: list[float] = []
    mismatches = lost = 0
    rng = random.Random(7)
    for round_no in range(rounds):
        picks = [hot[rng.randrange(len(hot))] for _ in clients]
        replies = await asyncio.gather(*(c.request("select", t) for c, t in zip(clients, picks, strict=True)))
        lost += sum(r.lost for r in replies)
        round_ms += [r.latency_ms for r in replies if r.latency_ms is not None]
        winners: dict[str, list[int]] = {}
        for index, reply in enumerate(replies):
            if reply.kind == "selected":
                winners.setdefault(reply.ticket_id, []).append(index)
        outcomes.append(
            stats.RoundOutcome(
                round_no, frozenset(picks), {t: tuple(users[i].id for i in w) for t, w in winners.items()}
            )
        )
        for ticket_id, won in winners.items():
            status, holder = await asyncio.to_thread(tables.holder, showtime_id, ticket_id)
            mismatches += len(won) != 1 or status != "held" or holder != users[won[0]].id
        # Winners let go; so does anyone whose answer was lost (they may hold the seat).
        release = [(i, t) for t, w in winners.items() for i in w] + [
            (i, r.ticket_id) for i, r in enumerate(replies) if r.lost
        ]
        await asyncio.gather(*(clients[i].request("unselect", t) for i, t in release))
    return {
        **stats.race_verdict(outcomes),
        "round_select_ms": _short(round_ms),
        "round_lost_replies": lost,
        "db_holder_mismatches": mismatches,
    }


async def _race(client: Client, user: User, hot: list[str], deadline: float, result: LoopResult, seed: int) -> None:
    """Select a random hot seat; on a win record the hold's client-side interval and let it go."""
    pick = random.Random(seed)
    while time.perf_counter() < deadline:
        ticket_id = hot[pick.randrange(len(hot))]
        reply = await client.request("select", ticket_id)
        result.record(reply)
        if reply.kind == "selected":
            result.intervals.append((ticket_id, user.id, reply.received_at or 0.0, time.perf_counter()))
        if reply.kind == "selected" or reply.lost:
            result.record(await client.request("unselect", ticket_id))


# --- visibility: from a select until the last viewer has seen it --------------------------------------


async def open_viewers(ws_url: str, room: Room, viewer: User, count: int, watch_factory) -> tuple[list[Client], Watch]:
    holder: dict[str, Watch] = {}

    def observe(client: Client, now: float, message: dict) -> None:
        holder["watch"].observe(client, now, message)

    viewers = make_clients(ws_url, room, [viewer] * count, f"viewer{count}", observer=observe)
    holder["watch"] = watch_factory(viewers)
    started = time.perf_counter()
    await open_all(viewers)
    log(f"opened {count} viewers in {time.perf_counter() - started:.1f}s")
    return viewers, holder["watch"]


async def visibility(ws_url: str, room: Room, selector: User, viewer: User, count: int, samples: int) -> dict:
    viewers, watch = await open_viewers(ws_url, room, viewer, count, Watch)
    (client,) = make_clients(ws_url, room, [selector], "selector")
    await client.open()
    await cycle(client, room.tickets[-1], LoopResult())  # warm
    seen_held, seen_free, first_ms, missed, ack_ms = [], [], [], 0, []
    for index in range(samples):
        ticket_id = room.tickets[index % (len(room.tickets) - 1)]
        for action, status, bucket in (("select", "held", seen_held), ("unselect", "available", seen_free)):
            watch.arm(ticket_id, status)
            reply = await client.request(action, ticket_id)
            if action == "select" and reply.latency_ms is not None:
                ack_ms.append(reply.latency_ms)
            first, last, _ = await watch.wait(SEE_TIMEOUT)
            if last is None:
                missed += 1
            else:
                bucket.append((last - reply.sent_at) * 1000)
            if first is not None:
                first_ms.append((first - reply.sent_at) * 1000)
    await close_all([client, *viewers])
    return {
        "figure": "select_seen_by_all_viewers_ms",
        "viewers": count,
        **_latency_fields(seen_held),
        "unselect_seen_by_all_ms": _short(seen_free),
        "first_viewer_ms": _short(first_ms),
        "select_ack_ms": _short(ack_ms),
        "samples": len(seen_held),
        "missed": missed,
    }


async def fan_out(ws_url: str, room: Room, selector: User, viewer: User, count: int, samples: int, stack_cpu) -> dict:
    started = time.perf_counter()
    viewers, watch = await open_viewers(ws_url, room, viewer, count, Watch)
    connect_s = time.perf_counter() - started
    (client,) = make_clients(ws_url, room, [selector], "selector")
    await client.open()
    stop_cpu = cpu_window(stack_cpu)
    last_ms, spread_ms, first_ms, missed = [], [], [], 0
    for index in range(samples):
        ticket_id = room.tickets[index]
        for action, status in (("select", "held"), ("unselect", "available")):
            watch.arm(ticket_id, status)
            reply = await client.request(action, ticket_id)
            first, last, seen = await watch.wait(SEE_TIMEOUT * 2)
            if last is None:
                missed += count - seen
                continue
            last_ms.append((last - reply.sent_at) * 1000)
            first_ms.append(((first or last) - reply.sent_at) * 1000)
            spread_ms.append((last - (first or last)) * 1000)
    cpu = stop_cpu(samples * 2)  # per batch: the select or unselect, its reply, one fan-out
    await close_all([client, *viewers])
    return {
        "figure": "fan_out_one_batch_ms",
        "connections": count,
        **_latency_fields(last_ms),
        "first_connection_ms": _short(first_ms),
        "first_to_last_ms": _short(spread_ms),
        "batches": len(last_ms),
        "missed_deliveries": missed,
        "connect_all_s": round(connect_s, 1),
        "cpu": cpu,
    }


# --- a rush: how many Management API posts each select costs ------------------------------------------


async def rush(
    ws_url: str, room: Room, users: list[User], viewer: User, viewers_count: int, window: float, stack_cpu
) -> dict:
    k = len(users)
    viewers, _ = await open_viewers(ws_url, room, viewer, viewers_count, Watch)
    selectors = make_clients(ws_url, room, users, "rush")
    await open_all(selectors)
    assigned = [[room.tickets[i]] for i in range(k)]
    warm = LoopResult()
    await asyncio.gather(*(cycle(c, t[0], warm) for c, t in zip(selectors, assigned, strict=True)))
    # Every viewer must have seen the warm-up's changes before counting starts (then a quiet second).
    await until(viewers, lambda c: c.counters.status_updates >= warm.selected + warm.unselected)
    await _quiet(viewers)
    everyone = viewers + selectors
    base = {id(c): (c.counters.frames, c.counters.status_frames, c.counters.status_updates) for c in everyone}
    result = LoopResult()
    stop_cpu = cpu_window(stack_cpu)
    started = time.perf_counter()
    deadline = started + window
    await asyncio.gather(*(disjoint_loop(c, t, deadline, result) for c, t in zip(selectors, assigned, strict=True)))
    elapsed = time.perf_counter() - started
    changes = result.selected + result.unselected
    await until(viewers, lambda c: c.counters.status_updates - base[id(c)][2] >= changes)
    await _quiet(viewers)
    cpu = stop_cpu(changes)

    def delta(group: list[Client], index: int) -> int:
        return sum(
            (c.counters.frames, c.counters.status_frames, c.counters.status_updates)[index] - base[id(c)][index]
            for c in group
        )

    await close_all(everyone)
    viewer_posts, viewer_updates = delta(viewers, 1), delta(viewers, 2)
    all_posts = delta(everyone, 0)
    return {
        "figure": "management_api_posts_per_select",
        "selectors": k,
        "viewers": viewers_count,
        "selects": result.selected,
        "changes": changes,
        "selects_per_s": stats.rate(result.selected, elapsed),
        "viewer_posts": viewer_posts,
        "viewer_posts_per_select": stats.ratio(viewer_posts, result.selected),
        "viewer_posts_per_select_uncoalesced": stats.ratio(viewers_count * changes, result.selected),
        "updates_per_post": stats.ratio(viewer_updates, viewer_posts),
        "viewer_updates_missing": max(0, viewers_count * changes - viewer_updates),
        "viewer_updates_extra": max(0, viewer_updates - viewers_count * changes),
        "all_posts": all_posts,
        "all_posts_per_select": stats.ratio(all_posts, result.selected),
        "all_posts_per_select_uncoalesced": stats.ratio((viewers_count + k) * changes + changes, result.selected),
        "lost_replies": result.lost,
        "errors": stats.count_codes(result.errors),
        "window_s": round(elapsed, 2),
        "cpu": cpu,
    }


async def until(clients: list[Client], predicate: Callable[[Client], bool], limit: float = 30.0) -> None:
    """Wait (up to `limit` seconds) until the predicate holds for every client."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline and not all(predicate(c) for c in clients):
        await asyncio.sleep(0.05)


async def _quiet(clients: list[Client], still: float = 1.0, limit: float = 20.0) -> None:
    """Wait until no client has received anything for `still` seconds (trailing broadcasts landed)."""
    deadline = time.perf_counter() + limit
    last = -1
    quiet_since = time.perf_counter()
    while time.perf_counter() < deadline:
        total = sum(c.counters.frames for c in clients)
        if total != last:
            last, quiet_since = total, time.perf_counter()
        elif time.perf_counter() - quiet_since >= still:
            return
        await asyncio.sleep(0.1)
