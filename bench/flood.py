"""`flood_select_ack_ms`: one flooding account must not slow other users' select acks (issue 12).

K ordinary users, each its own account and connection, select and unselect their own tickets at a human pace,
first alone (baseline), then while one attacker account holds every socket its per-room cap allows (and tries
more) and sends snapshots and select/unselect toggles as fast as it can, never waiting for an answer.

The figure runs on a stack of its own: the bench's other figures run with every limit off (their clients
loop far faster than a person clicks), while this one needs the WebSocket limits on, at their defaults. The
per-source limits stay off: every bench client comes from 127.0.0.1, and they do not bear on one account's flood.

The attacker runs in a process of its own, so its send loop cannot delay the ordinary clients' readers: a
latency measured here is the stack's, not this process's event loop's.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import websockets

from bench import stats
from bench.clients import Client, Reply, close_all, open_all
from bench.memory import total_mib
from bench.phases import LoopResult, cpu_window, cycle, log, make_clients
from bench.world import Room, User
from chalicelib.config import load_settings

SLICE_S = 2.0  # the flood window's p99 per slice: shows whether a backlog builds up over the window


@dataclass(frozen=True)
class FloodPlan:
    """The figure's sizes; the full plan keeps it near a minute, its stack's start and stop included."""

    users: int = 20
    baseline_window: float = 6.0
    window: float = 10.0
    # One select + unselect per user at most every 0.6 s: 34 messages per 10 s window, under the default
    # per-connection limit (40), so no ordinary user is ever refused for its own pace.
    cycle: float = 0.6
    extra_sockets: int = 4  # attempts past the per-room socket cap
    reply_timeout: float = 5.0  # far above the target (about 100-200 ms), short so a drowned stack's window ends
    grace: float = 3.0  # how long the attacker waits for the answers still coming after it stopped sending


def stack_env() -> dict[str, str]:
    """The WebSocket limits at their defaults (tests.support.stack turns every limit off unless told)."""
    limits = load_settings({}).limits
    return {
        "LIMIT_WS_WINDOW_SECONDS": str(limits.ws_window_seconds),
        "LIMIT_WS_MESSAGES_PER_USER": str(limits.ws_messages_per_user),
        "LIMIT_WS_MESSAGES_PER_CONNECTION": str(limits.ws_messages_per_connection),
        "LIMIT_WS_SNAPSHOTS_PER_USER": str(limits.ws_snapshots_per_user),
        "MAX_SOCKETS_PER_USER_PER_ROOM": str(limits.sockets_per_user_per_room),
    }


# --- the attacker (its own process) -------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    url: str
    tickets: tuple[str, ...]
    sockets: int  # how many to try
    grace: float


@dataclass
class Tally:
    sent: int = 0
    answers: Counter = field(default_factory=Counter)  # reply type, or the error code
    broadcasts: int = 0  # ticket_status frames (other users' changes and its own)
    retry_after: Counter = field(default_factory=Counter)
    refused_sockets: Counter = field(default_factory=Counter)  # handshake HTTP status

    def on_frame(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "ticket_status":
            self.broadcasts += 1
            return
        self.answers[message.get("code") if kind == "error" else kind] += 1
        if "retry_after" in message:
            self.retry_after[message["retry_after"]] += 1


def attacker_process(attack: Attack, go, stop, results) -> None:
    """Entry point of the attacker's process: waits for `go`, floods until `stop`, sends its tally. At the lowest
    CPU priority: on AWS the attacker's own CPU is not ours, here it shares 2 cores with the stack, and a client
    spinning on send() would otherwise take a core from the stack and measure this machine, not the server."""
    os.nice(19)
    results.send(asyncio.run(_attack(attack, go, stop, results)))


async def _attack(attack: Attack, go, stop, results) -> dict:
    await asyncio.to_thread(go.wait)
    tally = Tally()
    sockets = await _open_sockets(attack, tally)
    results.send({"accepted": len(sockets)})
    readers = [asyncio.create_task(_read(ws, tally)) for ws in sockets]
    cpu, started = time.process_time(), time.perf_counter()
    senders = [
        asyncio.create_task(_flood(ws, attack.tickets[i % len(attack.tickets)], tally)) for i, ws in enumerate(sockets)
    ]
    await asyncio.to_thread(stop.wait)
    for sender in senders:
        sender.cancel()  # a sender may be waiting for the socket's buffer to drain: a flag would wait too
    await asyncio.gather(*senders, return_exceptions=True)
    flood_s = time.perf_counter() - started
    sent_at_stop = tally.sent
    await _settle(tally, attack.grace)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    await asyncio.gather(*readers, return_exceptions=True)
    answered = sum(tally.answers.values())
    return {
        "sockets_tried": attack.sockets,
        "sockets_accepted": len(sockets),
        "sockets_refused": sum(tally.refused_sockets.values()),
        "refused_http_status": {str(k): v for k, v in tally.refused_sockets.items()},
        "frames_sent": sent_at_stop,
        "frames_per_s": stats.rate(sent_at_stop, flood_s),
        "answers": answered,
        "answers_by_kind": dict(tally.answers.most_common()),
        "unanswered_at_close": sent_at_stop - answered,
        "retry_after_s": {str(k): v for k, v in sorted(tally.retry_after.items())},
        "broadcasts_received": tally.broadcasts,
        "flood_s": round(flood_s, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
    }


async def _open_sockets(attack: Attack, tally: Tally) -> list:
    """One at a time, so the cap decides deterministically which attempts are refused."""
    sockets = []
    for _ in range(attack.sockets):
        try:
            # close_timeout: a drowned server answers a close handshake late, and nobody needs its answer.
            sockets.append(
                await websockets.connect(
                    attack.url,
                    compression=None,
                    ping_interval=None,
                    open_timeout=30,
                    max_size=2**22,
                    close_timeout=1,
                )
            )
        except websockets.InvalidStatus as exc:
            tally.refused_sockets[exc.response.status_code] += 1
    return sockets


async def _read(ws, tally: Tally) -> None:
    try:
        async for raw in ws:
            tally.on_frame(raw)
    except websockets.ConnectionClosed:
        pass


async def _flood(ws, ticket_id: str, tally: Tally) -> None:
    """Snapshot, select, unselect, again, never waiting for an answer."""
    frames = [
        json.dumps({"action": "snapshot"}),
        json.dumps({"action": "select", "ticket_id": ticket_id}),
        json.dumps({"action": "unselect", "ticket_id": ticket_id}),
    ]
    index = 0
    try:
        while True:
            await ws.send(frames[index % len(frames)])
            tally.sent += 1
            index += 1
            # send() returns without yielding while the socket's buffer has room: yield, or one socket would
            # starve the others and the readers.
            await asyncio.sleep(0)
    except websockets.ConnectionClosed:
        pass


async def _settle(tally: Tally, limit: float, still: float = 1.0) -> None:
    """Wait until every frame sent was answered, or nothing came for `still` seconds, at most `limit`."""
    deadline = time.perf_counter() + limit
    last, quiet_since = -1, time.perf_counter()
    while time.perf_counter() < deadline:
        answered = sum(tally.answers.values())
        if answered >= tally.sent:
            return
        if answered != last:
            last, quiet_since = answered, time.perf_counter()
        elif time.perf_counter() - quiet_since >= still:
            return
        await asyncio.sleep(0.1)


class AttackerProcess:
    """The parent's handle on the attacker: start it early (a spawned interpreter takes a second to import),
    release it when the flood window begins, stop it when the window ends."""

    def __init__(self, attack: Attack) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process running threads and a loop
        self._go, self._stop = context.Event(), context.Event()
        self._results, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=attacker_process, args=(attack, self._go, self._stop, child_end), name="bench-attacker", daemon=True
        )
        self._process.start()
        child_end.close()

    async def begin(self, timeout: float = 60.0) -> dict:
        """Opens the attacker's sockets; returns {"accepted": n} once it floods."""
        self._go.set()
        return await self._receive(timeout)

    async def end(self, timeout: float) -> dict:
        self._stop.set()
        result = await self._receive(timeout)
        await asyncio.to_thread(self._process.join, 10)
        return result

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()

    async def _receive(self, timeout: float) -> dict:
        def receive() -> dict:
            if not self._results.poll(timeout):
                raise RuntimeError(f"the attacker process did not answer within {timeout:.0f}s")
            return self._results.recv()

        return await asyncio.to_thread(receive)


# --- the ordinary users ---------------------------------------------------------------------------------


async def paced_loop(
    client: Client, tickets: list[str], start: float, deadline: float, every: float, replies: list[Reply]
) -> None:
    """select, wait for it, unselect, wait for it; the next cycle starts `every` seconds after this one, or at
    once when this one took longer (never in a burst to catch up: that would trip the per-connection limit).

    A lost select is not followed by an unselect (phases.cycle's rule): waiting out a second timeout would only
    stretch the window, and a hold left behind is harmless here (a repeated select of one's own hold succeeds,
    two tickets stay under the per-user limit, and this stack is thrown away)."""
    next_at, index = start, 0
    while next_at < deadline:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        ticket_id = tickets[index % len(tickets)]
        index += 1
        selected = await client.request("select", ticket_id)
        replies.append(selected)
        if selected.kind == "selected":
            replies.append(await client.request("unselect", ticket_id))
        next_at = max(next_at + every, time.perf_counter())


async def ordinary_window(
    clients: list[Client],
    assigned: list[list[str]],
    started: float,
    window: float,
    every: float,
    stack_cpu: Callable[[], dict[str, float]],
) -> tuple[list[Reply], float, dict]:
    """Every client's paced loop for `window` seconds, starts spread over one cycle (people do not click in step).

    Returns the replies, the wall time until the last loop ended, and the CPU figures of that time."""
    replies: list[Reply] = []
    stop_cpu = cpu_window(stack_cpu)
    offset = every / len(clients)
    await asyncio.gather(
        *(
            paced_loop(c, t, started + i * offset, started + window, every, replies)
            for i, (c, t) in enumerate(zip(clients, assigned, strict=True))
        )
    )
    elapsed = time.perf_counter() - started
    ops = sum(1 for r in replies if r.kind in ("selected", "unselected"))
    return replies, elapsed, stop_cpu(ops)


def percentiles(samples: list[float]) -> dict:
    """n, p50, p95, p99, max, mean (ms, one decimal; None when empty)."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "n": len(samples),
        "p50": rounded(stats.percentile(samples, 50)),
        "p95": rounded(stats.percentile(samples, 95)),
        "p99": rounded(stats.percentile(samples, 99)),
        "max": rounded(max(samples) if samples else None),
        "mean": rounded(sum(samples) / len(samples) if samples else None),
    }


def summarize(replies: list[Reply], elapsed: float, late: int) -> dict:
    """The ordinary users' side of one window: select -> `selected` percentiles, rates, lost and refused."""
    acked = [r.latency_ms or 0.0 for r in replies if r.action == "select" and r.kind == "selected"]
    unselects = [r.latency_ms or 0.0 for r in replies if r.kind == "unselected"]
    errors = [f"{r.action}:{r.code}" for r in replies if r.kind == "error"]
    timeouts = sum(r.lost for r in replies)
    unselect = percentiles(unselects)
    return {
        **percentiles(acked),
        "selects_per_s": stats.rate(len(acked), elapsed),
        "unselect_ack_ms": {"p50": unselect["p50"], "p99": unselect["p99"], "n": unselect["n"]},
        "window_s": round(elapsed, 2),
        "lost_replies": timeouts - late,
        "late_replies": late,
        "errors": stats.count_codes(errors),
    }


def p99_by_slice(replies: list[Reply], started: float, width: float = SLICE_S) -> list[float | None]:
    """p99 of acked selects by when they were sent, per `width` seconds of the window."""
    slices: dict[int, list[float]] = {}
    for reply in replies:
        if reply.action == "select" and reply.kind == "selected":
            slices.setdefault(int((reply.sent_at - started) // width), []).append(reply.latency_ms or 0.0)
    if not slices:
        return []
    return [
        None if i not in slices else round(stats.percentile(slices[i], 99) or 0.0, 1) for i in range(max(slices) + 1)
    ]


def verdict(baseline: dict, flood: dict) -> dict:
    """p99 under flood <= 2 x baseline p99 + 50 ms, and every ordinary request answered, in time, without error."""
    if baseline["p99"] is None:
        return {"target": None, "meets_target": False}
    allowed = round(2 * baseline["p99"] + 50, 1)
    met = (
        flood["p99"] is not None
        and flood["p99"] <= allowed
        and flood["lost_replies"] == 0
        and flood["late_replies"] == 0
        and not flood["errors"]
    )
    target = {"flood_p99_max_ms": allowed, "lost_replies": 0, "late_replies": 0, "errors": 0}
    return {"target": target, "meets_target": met}


# --- the figure -----------------------------------------------------------------------------------------


async def measure(
    ws_url: str,
    room: Room,
    users: list[User],
    attacker: User,
    plan: FloodPlan,
    stack_cpu: Callable[[], dict[str, float]],
    stack_pid: int,
) -> dict:
    """The figure: a baseline window, then the same window beside the attacker (see the module docstring)."""
    limits = {name: int(value) for name, value in stack_env().items()}
    cap = limits["MAX_SOCKETS_PER_USER_PER_ROOM"]
    attack = Attack(
        url=Client.room_url(ws_url, room.showtime_id, attacker.access),
        tickets=room.tickets[2 * len(users) :],
        sockets=cap + plan.extra_sockets,
        grace=plan.grace,
    )
    process = AttackerProcess(attack)
    clients = make_clients(ws_url, room, users, "ordinary")
    for client in clients:
        client.reply_timeout = plan.reply_timeout
    try:
        return await _measure(clients, room, process, plan, stack_cpu, stack_pid, limits)
    finally:
        process.kill()
        await close_all(clients)


async def _measure(
    clients: list[Client],
    room: Room,
    process: AttackerProcess,
    plan: FloodPlan,
    stack_cpu: Callable[[], dict[str, float]],
    stack_pid: int,
    limits: dict[str, int],
) -> dict:
    await open_all(clients)
    assigned = [list(room.tickets[2 * i : 2 * i + 2]) for i in range(len(clients))]
    # One untimed cycle per client first (warm caches), then a pause so the warm-up's messages do not count
    # much in the first limit window.
    await asyncio.gather(*(cycle(c, t[0], LoopResult()) for c, t in zip(clients, assigned, strict=True)))
    await asyncio.sleep(plan.cycle)

    log(f"flood: baseline, {len(clients)} users, {plan.baseline_window}s")
    baseline, _ = await _timed_window(clients, assigned, plan, plan.baseline_window, stack_cpu)

    opened = await process.begin()
    log(f"flood: the attacker floods on {opened['accepted']} sockets; {len(clients)} users, {plan.window}s")
    flood, rss_after_flood, attacker = await _timed_window(
        clients, assigned, plan, plan.window, stack_cpu, lambda: _stop_attack(process, plan, stack_pid)
    )
    return {
        "figure": "flood_select_ack_ms",
        "users": len(clients),
        "user_cycle_s": plan.cycle,
        "limits": limits,
        "reply_timeout_s": plan.reply_timeout,
        "baseline": baseline,
        "flood": flood,
        "attacker": attacker,
        "p99_flood_over_baseline": None if flood["p99"] is None else stats.ratio(flood["p99"], baseline["p99"]),
        "stack_rss_mib_after_flood": rss_after_flood,
        **verdict(baseline, flood),
    }


async def _stop_attack(process: AttackerProcess, plan: FloodPlan, stack_pid: int) -> tuple[float, dict]:
    rss = total_mib(stack_pid)  # before the attacker's sockets close: the backlog it left is still there
    return rss, await process.end(timeout=plan.grace + 30)


async def _timed_window(
    clients: list[Client],
    assigned: list[list[str]],
    plan: FloodPlan,
    window: float,
    stack_cpu: Callable[[], dict[str, float]],
    at_end: Callable[[], Awaitable[tuple]] | None = None,
) -> tuple:
    """One window of the ordinary users; `at_end()` (if any) runs when the window ends, while the requests still
    in flight finish; then the wait for late replies. Returns (summary, *what at_end() returned)."""
    unmatched_before = sum(c.counters.unmatched_replies for c in clients)
    started = time.perf_counter()
    ending = asyncio.create_task(_at(started + window, at_end)) if at_end is not None else None
    replies, elapsed, cpu = await ordinary_window(clients, assigned, started, window, plan.cycle, stack_cpu)
    # A reply may still come (late, not lost): wait for it while the attacker winds down.
    late_wait = asyncio.sleep(plan.reply_timeout if any(r.lost for r in replies) else 0)
    extra, _ = await asyncio.gather(ending if ending is not None else _nothing(), late_wait)
    late = sum(c.counters.unmatched_replies for c in clients) - unmatched_before
    summary = {
        **summarize(replies, elapsed, late),
        f"select_p99_by_{SLICE_S:g}s_ms": p99_by_slice(replies, started),
        "cpu": cpu,
    }
    return (summary, *extra)


async def _at(when: float, action: Callable[[], Awaitable[tuple]]) -> tuple:
    await asyncio.sleep(max(0.0, when - time.perf_counter()))
    return await action()


async def _nothing() -> tuple:
    return (None,)
