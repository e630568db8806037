"""`make bench`: live seat selection against a fresh local stack, one JSON line per figure on stdout.

    .venv/bin/python -m bench            # the full run (about 4-9 minutes on 2 cores)
    .venv/bin/python -m bench --quick    # a smoke run of every figure with small numbers (< 1 minute)
    .venv/bin/python -m bench --only flood    # one figure: flood_select_ack_ms (its own stack, limits on)
    .venv/bin/python -m bench --only rush     # one figure: premiere_rush (its own stack, AWS's post delay and rate)
    .venv/bin/python -m bench --only rush --slice-size 250    # the same with the room posted in 4 slices
    .venv/bin/python -m bench --only waitroom  # one figure: waitroom (a guarded on-sale, simulated clock)

Human progress goes to stderr. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import resource
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The in-process seat service (AWS request counts) must stay silent on stdout and find credentials.
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "local"),
    ("AWS_SECRET_ACCESS_KEY", "local"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("POWERTOOLS_METRICS_DISABLED", "true"),
    ("POWERTOOLS_TRACE_DISABLED", "true"),
    ("POWERTOOLS_LOG_LEVEL", "ERROR"),
):
    os.environ.setdefault(_name, _value)

from bench import awscount, flood, phases, rush, stats, waitroom  # noqa: E402
from bench.clients import Client  # noqa: E402
from bench.memory import (  # noqa: E402
    RssSampler,
    load_average,
    total_mib,
    tree_cpu_seconds,
    tree_rss_by_label,
)
from bench.phases import log  # noqa: E402
from bench.world import Rooms, Tables, aws_endpoint, register_users  # noqa: E402
from local.processes import calm_gc, use_uvloop  # noqa: E402
from tests.support.stack import running_stack  # noqa: E402

RSS_TARGET_MIB = 1024
MAX_HOLDS = 4  # the stack's default MAX_TICKETS_PER_USER


@dataclass(frozen=True)
class Plan:
    clients: tuple[int, ...] = (1, 10, 50, 200)
    windows: tuple[float, ...] = (5.0, 8.0, 10.0, 12.0)
    repeat_clients: int = 50  # this phase runs `repeats` times; the stack's RSS is printed after each
    repeats: int = 3
    burst_clients: int = 50
    bursts: int = 6  # 1,200 timed selects: a p99 of a dozen samples
    race_clients: int = 50
    race_seats: int = 4
    race_rounds: int = 20
    race_window: float = 8.0
    viewer_counts: tuple[int, ...] = (50, 200)
    visibility_samples: int = 20
    fan_out_connections: int = 1000
    fan_out_samples: int = 5
    rush_selectors: int = 50
    rush_viewers: int = 50
    rush_window: float = 8.0
    warm_calls: int = 20
    idle_window: float = 5.0
    settle: float = 2.0  # pause before an RSS sample, so closed connections are gone
    flood: flood.FloodPlan = flood.FloodPlan()
    premiere: rush.RushPlan = rush.RushPlan()
    waitroom: waitroom.WaitPlan = waitroom.WaitPlan()


QUICK = Plan(
    clients=(1, 10),
    windows=(1.5, 1.5),
    repeat_clients=10,
    repeats=2,
    burst_clients=10,
    bursts=1,
    race_clients=10,
    race_rounds=4,
    race_window=1.5,
    viewer_counts=(10,),
    visibility_samples=3,
    fan_out_connections=100,
    fan_out_samples=2,
    rush_selectors=10,
    rush_viewers=10,
    rush_window=1.5,
    warm_calls=3,
    idle_window=1.0,
    settle=0.5,
    flood=flood.FloodPlan(users=5, baseline_window=2.0, window=3.0, grace=2.0),
    premiere=rush.RushPlan(viewers=100, buyers=20, arrival_s=5.0, seats=120, settle_s=2.0),
    waitroom=waitroom.WaitPlan(early=500, later_seconds=20, rate_per_minute=600),
)


def environment(when: str) -> dict:
    """Where the figures come from: other users' load on these 2 cores moves every latency."""
    return {
        "figure": "environment",
        "when": when,
        "cpus": os.cpu_count(),
        "load_average_1_5_15": load_average(),
        "python": platform.python_version(),
        "client": "websockets asyncio, one process, same machine",
    }


def emit(figure: dict) -> None:
    print(json.dumps(figure, separators=(", ", ": ")), flush=True)


def raise_fd_limit(needed: int) -> None:
    """1,000 client sockets here and 1,000 in the stack (which inherits this limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        log(f"raised the open-files soft limit from {soft} to {wanted}")


async def aws_requests(stack, endpoint: str, tables: Tables, room, user, other, warm_calls: int) -> dict:
    """Requests per select / unselect through the real seat service code, cold and warm."""
    client = Client("aws", user.id, Client.room_url(stack.ws_url, room.showtime_id, user.access))
    rival = Client("aws-rival", other.id, Client.room_url(stack.ws_url, room.showtime_id, other.access))
    await client.open()
    await rival.open()
    taken = room.tickets[-1]
    await rival.request("select", taken)  # so a refused select can be measured
    (connection_id,) = await asyncio.to_thread(tables.connection_ids, user.id)
    settings = awscount._settings(endpoint, stack.base_url)
    first, second = room.tickets[0], room.tickets[1]

    def measure_all() -> dict:
        # Two fresh containers (each client creation loads botocore's service model: seconds on a busy
        # machine). pynamodb models are bound per process, so a container's calls go through the clients
        # of the latest container: the second one answers the cold unselect and then the warm calls.
        cold_select = awscount.InProcessSeats(settings, connection_id).cost("select", first)
        warm = awscount.InProcessSeats(settings, connection_id)
        cold_unselect = warm.cost("unselect", first)
        warm.cost("select", second)
        warm.cost("unselect", second)
        selects, unselects = [], []
        for _ in range(warm_calls):
            selects.append(warm.cost("select", second))
            unselects.append(warm.cost("unselect", second))
        refused, after_refusal = [], []
        for _ in range(refusals):
            refused.append(warm.cost("select", taken))
            after_refusal.append(warm.cost("select", second))  # a refusal drops the cached cart
            warm.cost("unselect", second)
        return {
            "select_cold": cold_select,
            "unselect_cold": cold_unselect,
            "select_warm": awscount.mean_cost(selects),
            "unselect_warm": awscount.mean_cost(unselects),
            "select_refused_warm": awscount.mean_cost(refused),
            "select_after_refusal_warm": awscount.mean_cost(after_refusal),
        }

    refusals = max(2, warm_calls // 4)
    costs = await asyncio.to_thread(measure_all)
    calls = 4 + 2 * warm_calls + 3 * refusals  # every handle_message call posts one reply to the real socket
    await phases.until([client], lambda c: c.counters.unmatched_replies >= calls, limit=10)
    replies = [m.get("type") if m.get("type") != "error" else m.get("code") for m in client.counters.unmatched]
    await rival.request("unselect", taken)
    await phases.close_all([client, rival])
    return {
        "figure": "aws_requests_per_call",
        **{name: cost for name, cost in costs.items()},
        "replies_seen_by_client": stats.count_codes(replies),
        "note": "in-process SeatService.handle_message on a fresh Container; the reply post is a real "
        "Management API request to the stack's gateway",
    }


def start_stack(exits: ExitStack, attempts: int = 3, env: dict[str, str] | None = None):
    """A running stack whose real `ready` line was printed and which answers, and its AWS endpoint.

    The endpoint is read at once: the stack's output is kept in a bounded buffer that later log lines
    push the ready line out of.

    tests.support.stack treats any output line containing "ready" as the ready line, so an early failure such
    as "address already in use" (a free port taken by someone else in between) looks like a start.
    """
    for attempt in range(1, attempts + 1):
        inner = ExitStack()
        try:
            stack = inner.enter_context(running_stack(env=env or {}))
            deadline = time.monotonic() + 90
            while (endpoint := aws_endpoint(stack)) is None:
                if stack.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the stack stopped before its ready line:\n" + "\n".join(stack.output))
                time.sleep(0.2)
            requests.get(stack.api("health/"), timeout=10).raise_for_status()
        except (RuntimeError, requests.RequestException) as exc:
            inner.close()
            log(f"the stack did not start (attempt {attempt}/{attempts}): {exc}")
            continue
        exits.enter_context(inner)
        return stack, endpoint
    raise SystemExit("the local stack did not start; see the messages above")


async def run(plan: Plan) -> None:
    raise_fd_limit(plan.fan_out_connections * 2 + 1024)
    started = time.perf_counter()
    log("starting the local stack")
    with ExitStack() as exits:
        stack, endpoint = await asyncio.to_thread(start_stack, exits)
        log(f"stack ready in {time.perf_counter() - started:.1f}s at {stack.base_url}")
        emit(environment("start"))
        sampler = RssSampler(stack.process.pid)
        sampler.start()
        stack_cpu = lambda: tree_cpu_seconds(stack.process.pid)  # noqa: E731
        tables = Tables(endpoint)
        selectors_needed = max(
            *plan.clients, plan.repeat_clients, plan.burst_clients, plan.race_clients, plan.rush_selectors
        )
        t = time.perf_counter()
        users = await asyncio.to_thread(register_users, stack, selectors_needed + 1, "selector")
        viewer = users.pop()
        log(f"registered {selectors_needed + 1} users in {time.perf_counter() - t:.1f}s")
        rooms = await asyncio.to_thread(Rooms, stack)
        make = lambda name, n: asyncio.to_thread(rooms.create, name, n)  # noqa: E731
        rss_after_start = sampler.sample()

        stop_idle = phases.cpu_window(stack_cpu)
        await asyncio.sleep(plan.idle_window)
        emit({"figure": "stack_idle_cpu", "note": "no client activity: pollers and timers only", **stop_idle()})

        aws_room = await make("aws", 10)
        emit(await aws_requests(stack, endpoint, tables, aws_room, users[0], users[1], plan.warm_calls))

        disjoint = await make("disjoint", 2 * selectors_needed)
        repeat_rss: list[float] = []
        runs = [(k, w, None) for k, w in zip(plan.clients, plan.windows, strict=True) if k != plan.repeat_clients]
        window_of = dict(zip(plan.clients, plan.windows, strict=True))
        repeat_window = window_of.get(plan.repeat_clients, plan.windows[-1])
        runs += [(plan.repeat_clients, repeat_window, i + 1) for i in range(plan.repeats)]
        runs.sort(key=lambda r: (r[0], r[2] or 0))
        for k, window, run_no in runs:
            log(f"select->ack: {k} clients, {window}s" + (f" (run {run_no})" if run_no else ""))
            figure = await phases.throughput(stack.ws_url, disjoint, users[:k], window, stack_cpu, run=run_no)
            if run_no is not None:
                await asyncio.sleep(plan.settle)
                figure["stack_rss_mib_after"] = sampler.sample()
                figure["stack_rss_mib_after_by_process"] = tree_rss_by_label(stack.process.pid)
                repeat_rss.append(figure["stack_rss_mib_after"])
            emit(figure)

        log(f"select-only bursts: {plan.burst_clients} clients x {MAX_HOLDS} tickets")
        burst_room = await make("bursts", plan.burst_clients * MAX_HOLDS)
        emit(
            await phases.bursts(
                stack.ws_url, burst_room, users[: plan.burst_clients], plan.bursts, MAX_HOLDS, stack_cpu
            )
        )

        log(f"contention: {plan.race_clients} clients on {plan.race_seats} seats")
        race_room = await make("race", plan.race_seats + 6)
        race, doubles = await phases.contended(
            stack.ws_url,
            race_room,
            users[: plan.race_clients],
            plan.race_seats,
            plan.race_rounds,
            plan.race_window,
            tables,
            stack_cpu,
        )
        emit(race)

        for count in plan.viewer_counts:
            log(f"visibility: {count} viewers")
            room = await make(f"viewers-{count}", 12)
            emit(await phases.visibility(stack.ws_url, room, users[0], viewer, count, plan.visibility_samples))

        log(f"rush: {plan.rush_selectors} selectors, {plan.rush_viewers} viewers")
        rush_room = await make("rush", plan.rush_selectors + 2)
        emit(
            await phases.rush(
                stack.ws_url,
                rush_room,
                users[: plan.rush_selectors],
                viewer,
                plan.rush_viewers,
                plan.rush_window,
                stack_cpu,
            )
        )

        log(f"fan-out: {plan.fan_out_connections} connections")
        fan_room = await make("fan-out", 12)
        emit(
            await phases.fan_out(
                stack.ws_url, fan_room, users[0], viewer, plan.fan_out_connections, plan.fan_out_samples, stack_cpu
            )
        )

        # Consistency of every bench room once all clients are gone: no hold left, carts agree.
        await asyncio.sleep(plan.settle)
        now = time.time()
        checks = {"live_holds": 0, "cart_mismatches": 0}
        for room in (disjoint, burst_room, race_room, rush_room):
            tickets = await asyncio.to_thread(tables.room_tickets, room.showtime_id)
            carts = await asyncio.to_thread(tables.room_carts, room.showtime_id)
            for key, value in stats.hold_consistency(tickets, carts, now).items():
                checks[key] += value
        doubles["after_run"] = checks
        emit(doubles)

        await asyncio.sleep(plan.settle)
        after = sampler.sample()
        growth = round(repeat_rss[-1] - repeat_rss[0], 1) if len(repeat_rss) > 1 else None
        # "Not growing": the last repeat within 5 % of the first (allocator noise and bounded caches).
        growth_allowed = round(0.05 * repeat_rss[0], 1) if repeat_rss else 0.0
        sampler.stop()
        emit(
            {
                "figure": "stack_rss_mib",
                "peak": sampler.peak_mib,
                "after_start": rss_after_start,
                "after_run": after,
                "after_run_by_process": tree_rss_by_label(stack.process.pid),
                f"after_each_k{plan.repeat_clients}_run": repeat_rss,
                "growth_across_repeats": growth,
                "samples": sampler.samples,
                "target": {"after_run_max": RSS_TARGET_MIB, "growth_across_repeats_max": growth_allowed},
                "meets_target": after < RSS_TARGET_MIB and growth is not None and growth <= growth_allowed,
            }
        )
        total = total_mib(stack.process.pid)
        log(f"done in {time.perf_counter() - started:.0f}s (stack RSS {total} MiB); stopping the stack")


async def run_flood(plan: flood.FloodPlan) -> None:
    """flood_select_ack_ms on a stack of its own: the WebSocket limits on (every other figure runs without)."""
    started = time.perf_counter()
    log("flood: starting a second stack, WebSocket limits on at their defaults")
    with ExitStack() as exits:
        stack, _ = await asyncio.to_thread(start_stack, exits, env=flood.stack_env())
        users = await asyncio.to_thread(register_users, stack, plan.users + 1, "flood")
        attacker = users.pop()
        room = await asyncio.to_thread(Rooms(stack).create, "flood", 2 * plan.users + MAX_HOLDS)
        stack_cpu = lambda: tree_cpu_seconds(stack.process.pid)  # noqa: E731
        emit(await flood.measure(stack.ws_url, room, users, attacker, plan, stack_cpu, stack.process.pid))
        log(f"flood: done in {time.perf_counter() - started:.0f}s; stopping its stack")


async def run_rush(plan: rush.RushPlan) -> None:
    """premiere_rush on a stack of its own: AWS's post delay and connection rate on, the abuse limits off."""
    started = time.perf_counter()
    log(f"rush: starting a stack, post delay {plan.post_delay_ms} ms, fan-out slice size {plan.slice_size}")
    raise_fd_limit(2 * (plan.viewers + plan.buyers) + 1024)
    with ExitStack() as exits:
        stack, endpoint = await asyncio.to_thread(start_stack, exits, env=rush.stack_env(plan))
        stack_cpu = lambda: tree_cpu_seconds(stack.process.pid)  # noqa: E731
        emit(await rush.run(stack, Tables(endpoint), plan, stack_cpu))
        log(f"rush: done in {time.perf_counter() - started:.0f}s; stopping its stack")


def run_waitroom(plan: waitroom.WaitPlan) -> None:
    """waitroom: the waiting-room service on a moto server of its own, time simulated (bench/waitroom.py)."""
    from local.moto import MotoProcess

    started = time.perf_counter()
    log(f"waitroom: {plan.early} joiners before opening, {plan.rate_per_minute} admissions a minute")
    with MotoProcess() as server:
        emit(waitroom.run(plan, server.endpoint))
    log(f"waitroom: done in {time.perf_counter() - started:.0f}s")


async def run_all(plan: Plan, only: str | None) -> None:
    if only is None:
        await run(plan)
    else:
        emit(environment("start"))
    if only in (None, "flood"):
        await run_flood(plan.flood)
    if only in (None, "rush"):
        await run_rush(plan.premiere)
    if only in (None, "waitroom"):
        await asyncio.to_thread(run_waitroom, plan.waitroom)
    emit(environment("end"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every figure with small numbers")
    parser.add_argument("--only", choices=("flood", "rush", "waitroom"), help="run one figure (with its own stack)")
    parser.add_argument("--slice-size", type=int, help="premiere_rush: FANOUT_SLICE_SIZE of its stack")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.slice_size is not None:
        plan = dataclasses.replace(plan, premiere=dataclasses.replace(plan.premiere, slice_size=args.slice_size))
    use_uvloop()  # the client's loop: 1,200 sockets in the rush, its own CPU counted as "bench_client"
    calm_gc()  # a client's collection would be counted as the stack's lag
    asyncio.run(run_all(plan, args.only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
