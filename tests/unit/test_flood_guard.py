"""FloodGuard: what to do with a frame refused for rate (answer once, then drop, close at the threshold)."""

from __future__ import annotations

from chalicelib.limits import FloodGuard
from tests.support.clock import Clock


def test_the_first_refusal_is_answered_the_next_dropped_and_the_threshold_closes_once():
    clock = Clock(1_000.0)
    guard = FloodGuard(window=10, close_after=4, clock=clock)
    verdicts = [guard.refused("c1") for _ in range(7)]
    assert verdicts == ["answer", "drop", "drop", "close", "drop", "drop", "drop"]


def test_connections_are_counted_apart():
    guard = FloodGuard(window=10, close_after=3, clock=Clock(1_000.0))
    assert [guard.refused("a"), guard.refused("b"), guard.refused("a")] == ["answer", "answer", "drop"]


def test_a_new_window_starts_over_and_forget_clears_a_connection():
    clock = Clock(1_000.0)
    guard = FloodGuard(window=10, close_after=3, clock=clock)
    guard.refused("c1")
    guard.refused("c1")
    clock.now += 10
    assert guard.refused("c1") == "answer"
    guard.forget("c1")
    assert guard.refused("c1") == "answer"
