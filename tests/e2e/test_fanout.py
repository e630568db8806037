"""A room bigger than FANOUT_SLICE_SIZE is posted in slices through the FIFO fan-out queue and the parallel
fanout pollers of the running stack (docs/broadcasts.md): every viewer sees every change, each ticket's
changes in order."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.rooms import clients, new_room, run, url_for, wait_until
from tests.support.stack import running_stack

VIEWERS = 7
SLICE = 2  # 8 connections: 4 slices


@pytest.fixture(scope="module")
def sliced_stack():
    with running_stack(env={"FANOUT_SLICE_SIZE": str(SLICE), "LOCAL_WS_POST_DELAY_MS": "5"}) as running:
        yield running


def _updates_of(client, seat: str) -> list[dict]:
    """Every update of the seat this client received, in arrival order (nothing taken away)."""
    return [u for raw in client.raw_status for u in json.loads(raw)["updates"] if u["ticket_id"] == seat]


def test_every_viewer_of_a_sliced_room_sees_each_change_once_in_order(sliced_stack):
    stack = sliced_stack
    room = new_room(stack)
    buyer, *viewers = (stack.register() for _ in range(VIEWERS + 1))
    seat, other = room["tickets"][0], room["tickets"][1]

    async def scenario():
        urls = [url_for(stack, room, user) for user in (buyer, *viewers)]
        async with clients(*urls) as (selector, *watching):
            for _ in range(3):
                assert (await selector.request({"action": "select", "ticket_id": seat}))["type"] == "selected"
                assert (await selector.request({"action": "unselect", "ticket_id": seat}))["type"] == "unselected"
            assert (await selector.request({"action": "select", "ticket_id": other}))["type"] == "selected"
            for viewer in watching:
                await viewer.seen(other, "held")
            return watching

    for viewer in run(scenario()):
        updates = _updates_of(viewer, seat)
        # The room's creation may be broadcast after the viewer connected: an `available` without a hold before it.
        while updates and updates[0]["status"] == "available":
            updates.pop(0)
        assert [u["status"] for u in updates] == ["held", "available"] * 3
        seqs = [int(u["seq"]) for u in updates]
        assert seqs == sorted(set(seqs)), seqs
    # The slices went through the queue, to more than one of the parallel fanout pollers.
    # (The event sources report their pollers once a second.)
    wait_until(lambda: len(_fanout_pollers_that_worked(stack)) >= 2, what="two fanout pollers to report work")


def _fanout_pollers_that_worked(stack) -> list[str]:
    pollers = requests.get(stack.api("health/"), timeout=10).json()["parts"]["event_sources"]["pollers"]
    return [name for name, report in pollers.items() if "fanout" in name and report.get("invocations")]
