"""Pure helpers of the benchmark: percentiles, summaries, rates, and the double-hold check.

No sockets, no clocks: everything takes plain values, so tests/unit/test_bench_stats.py covers it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: the smallest sample with at least pct % of samples at or below it.

    Conservative on small samples (p99 of fewer than 100 samples is the maximum); None when empty.
    """
    if not 0 < pct <= 100:
        raise ValueError(f"pct must be in (0, 100], got {pct}")
    if not samples:
        return None
    ordered = sorted(samples)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def summarize(samples_ms: Sequence[float], digits: int = 1) -> dict:
    """{"n", "p50", "p90", "p99", "max", "mean"} of latencies in milliseconds (None fields when empty)."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, digits)

    mean = sum(samples_ms) / len(samples_ms) if samples_ms else None
    return {
        "n": len(samples_ms),
        "p50": rounded(percentile(samples_ms, 50)),
        "p90": rounded(percentile(samples_ms, 90)),
        "p99": rounded(percentile(samples_ms, 99)),
        "max": rounded(max(samples_ms) if samples_ms else None),
        "mean": rounded(mean),
    }


def rate(count: int, seconds: float, digits: int = 1) -> float:
    """Events per second over a wall-clock window (0 for an empty window)."""
    if seconds <= 0:
        return 0.0
    return round(count / seconds, digits)


def ratio(numerator: float, denominator: float, digits: int = 2) -> float | None:
    """numerator / denominator, or None when nothing was counted below the line."""
    if not denominator:
        return None
    return round(numerator / denominator, digits)


@dataclass(frozen=True)
class RoundOutcome:
    """What one contended round produced: the seats asked for and who got a `selected` for each."""

    round_no: int
    asked: frozenset[str]
    winners: Mapping[str, tuple[str, ...]]  # ticket id -> user ids that received `selected`


def race_verdict(rounds: Iterable[RoundOutcome]) -> dict:
    """Count double holds (a seat acked to two different users in one round) and unclaimed seats.

    Every seat of a round starts available, so each seat asked for must end with exactly one holder:
    more than one is a double hold (the bug this bench must never find), none means every racer was
    refused a free seat (a lost lock, as bad for users though not for money).
    """
    double = unclaimed = seats = 0
    for outcome in rounds:
        for ticket_id in outcome.asked:
            seats += 1
            holders = set(outcome.winners.get(ticket_id, ()))
            if len(holders) > 1:
                double += 1
            elif not holders:
                unclaimed += 1
    return {"seats_raced": seats, "double_holds": double, "unclaimed_seats": unclaimed}


def overlapping_holds(intervals: Iterable[tuple[str, str, float, float]]) -> int:
    """Pairs of holds of one ticket by different users whose [start, end) intervals overlap.

    Each interval is (ticket_id, user_id, start, end) as seen by a client: start when `selected` arrived,
    end when the unselect was sent. Both sit inside the server's real hold, so an overlap here is a real
    double hold (the check can miss one, it never invents one).
    """
    by_ticket: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for ticket_id, user_id, start, end in intervals:
        by_ticket[ticket_id].append((start, end, user_id))
    found = 0
    for holds in by_ticket.values():
        holds.sort()  # by start: a later interval overlaps this one iff it starts before this one ends
        for index, (_start, end, user) in enumerate(holds):
            for other_start, _other_end, other_user in holds[index + 1 :]:
                if other_start >= end:
                    break
                if other_user != user:
                    found += 1
    return found


def count_codes(codes: Iterable[str]) -> dict[str, int]:
    """Error codes by frequency, most common first (stable for JSON output)."""
    return dict(Counter(codes).most_common())


# --- /proc parsing (the stack's memory) ---------------------------------------------------------


def parse_status_kib(text: str, field: str = "VmRSS") -> int | None:
    """The value in KiB of one field of /proc/<pid>/status (None when absent, e.g. a zombie)."""
    for line in text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            return int(parts[1]) if len(parts) >= 2 else None
    return None


def parse_ppid(stat_text: str) -> int:
    """The parent pid from /proc/<pid>/stat (the command name may hold spaces and parentheses)."""
    after_name = stat_text[stat_text.rindex(")") + 2 :]
    return int(after_name.split()[1])


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """root and every process below it, given pid -> parent pid."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return sorted(tree)


def hold_consistency(tickets: Iterable[Mapping], carts: Iterable[Mapping], now: float) -> dict:
    """Compare a room's tickets with its carts: every live hold sits in its holder's cart and back.

    tickets: rows with status / holder / hold_expires_at; carts: rows with user_id / holds
    (ticket id -> expiry). A mismatch is a ticket held without a cart entry (the limit would not see
    it) or a live cart entry for a seat that user does not hold (the limit would over-count).
    """
    held = {
        t["ticket_id"]: t.get("holder")
        for t in tickets
        if t.get("status") in ("held", "checkout") and float(t.get("hold_expires_at") or 0) > now
    }
    listed = {
        (ticket_id, c["user_id"])
        for c in carts
        for ticket_id, expiry in (c.get("holds") or {}).items()
        if float(expiry) > now
    }
    mismatches = len(set(held.items()) ^ listed)
    return {"live_holds": len(held), "cart_mismatches": mismatches}
