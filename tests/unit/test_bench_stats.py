"""The benchmark's own arithmetic: percentiles, rates, the double-hold checks, /proc parsing."""

from __future__ import annotations

import pytest

from bench import stats


def test_percentile_is_nearest_rank_of_sorted_samples():
    samples = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert stats.percentile(samples, 50) == 50
    assert stats.percentile(samples, 99) == 99
    assert stats.percentile(samples, 100) == 100
    assert stats.percentile(samples, 1) == 1


def test_p99_of_a_small_sample_is_its_maximum():
    assert stats.percentile([5.0, 1.0, 9.0, 3.0], 99) == 9.0


def test_percentile_of_one_sample_is_that_sample():
    assert stats.percentile([7.5], 50) == 7.5
    assert stats.percentile([7.5], 99) == 7.5


def test_percentile_of_nothing_is_none():
    assert stats.percentile([], 50) is None


@pytest.mark.parametrize("pct", [0, -1, 100.5])
def test_percentile_outside_0_to_100_is_refused(pct):
    with pytest.raises(ValueError):
        stats.percentile([1.0], pct)


def test_summary_rounds_and_reports_every_field():
    summary = stats.summarize([1.0, 2.0, 3.0, 4.0, 100.04])
    assert summary == {"n": 5, "p50": 3.0, "p90": 100.0, "p99": 100.0, "max": 100.0, "mean": 22.0}


def test_summary_of_no_samples_has_none_fields():
    assert stats.summarize([]) == {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}


def test_rate_counts_per_second_and_is_zero_for_an_empty_window():
    assert stats.rate(150, 10.0) == 15.0
    assert stats.rate(1, 3.0) == 0.3
    assert stats.rate(5, 0.0) == 0.0


def test_ratio_is_none_when_nothing_was_counted_below():
    assert stats.ratio(50, 200) == 0.25
    assert stats.ratio(3, 0) is None


def _round(asked, winners, number=0):
    return stats.RoundOutcome(number, frozenset(asked), winners)


def test_one_winner_per_raced_seat_is_a_clean_race():
    rounds = [_round({"A1", "A2"}, {"A1": ("u1",), "A2": ("u7",)}), _round({"A1"}, {"A1": ("u3",)}, 1)]
    assert stats.race_verdict(rounds) == {"seats_raced": 3, "double_holds": 0, "unclaimed_seats": 0}


def test_two_users_acked_the_same_seat_in_one_round_is_a_double_hold():
    verdict = stats.race_verdict([_round({"A1", "A2"}, {"A1": ("u1", "u2"), "A2": ("u3",)})])
    assert verdict["double_holds"] == 1


def test_the_same_user_acked_twice_is_not_a_double_hold():
    verdict = stats.race_verdict([_round({"A1"}, {"A1": ("u1", "u1")})])
    assert verdict["double_holds"] == 0


def test_a_raced_seat_nobody_won_is_reported_unclaimed():
    verdict = stats.race_verdict([_round({"A1", "A2"}, {"A1": ("u1",)})])
    assert verdict == {"seats_raced": 2, "double_holds": 0, "unclaimed_seats": 1}


def test_back_to_back_holds_of_one_ticket_do_not_overlap():
    intervals = [("A1", "u1", 0.0, 1.0), ("A1", "u2", 1.0, 2.0), ("A1", "u3", 2.5, 3.0)]
    assert stats.overlapping_holds(intervals) == 0


def test_holds_of_one_ticket_by_two_users_at_once_are_counted():
    intervals = [("A1", "u1", 0.0, 2.0), ("A1", "u2", 1.0, 3.0), ("A1", "u3", 1.5, 1.6)]
    assert stats.overlapping_holds(intervals) == 3


def test_a_long_hold_overlapping_a_later_one_is_found_past_a_short_one():
    intervals = [("A1", "u1", 0.0, 10.0), ("A1", "u2", 1.0, 2.0), ("A1", "u3", 5.0, 6.0)]
    assert stats.overlapping_holds(intervals) == 2


def test_overlaps_count_only_within_one_ticket_and_between_users():
    intervals = [("A1", "u1", 0.0, 2.0), ("A2", "u2", 1.0, 3.0), ("A3", "u4", 0.0, 2.0), ("A3", "u4", 1.0, 3.0)]
    assert stats.overlapping_holds(intervals) == 0


def test_error_codes_are_counted_most_common_first():
    assert list(stats.count_codes(["a", "b", "b", "c", "b", "a"]).items()) == [("b", 3), ("a", 2), ("c", 1)]


NOW = 1_700_000_000


def test_holds_listed_in_their_holders_carts_are_consistent():
    tickets = [
        {"ticket_id": "A1", "status": "held", "holder": "u1", "hold_expires_at": NOW + 60},
        {"ticket_id": "A2", "status": "available"},
        {"ticket_id": "A3", "status": "held", "holder": "u2", "hold_expires_at": NOW - 1},  # expired
    ]
    carts = [{"user_id": "u1", "holds": {"A1": NOW + 60}}, {"user_id": "u2", "holds": {"A3": NOW - 1}}]
    assert stats.hold_consistency(tickets, carts, NOW) == {"live_holds": 1, "cart_mismatches": 0}


def test_a_hold_missing_from_its_cart_and_a_stale_cart_entry_are_mismatches():
    tickets = [
        {"ticket_id": "A1", "status": "held", "holder": "u1", "hold_expires_at": NOW + 60},
        {"ticket_id": "A2", "status": "available"},
    ]
    carts = [{"user_id": "u1", "holds": {}}, {"user_id": "u2", "holds": {"A2": NOW + 60}}]
    assert stats.hold_consistency(tickets, carts, NOW) == {"live_holds": 1, "cart_mismatches": 2}


def test_vmrss_is_read_from_proc_status_text():
    text = "Name:\tpython\nVmPeak:\t  900000 kB\nVmRSS:\t  123456 kB\nThreads:\t4\n"
    assert stats.parse_status_kib(text) == 123456
    assert stats.parse_status_kib("Name:\tzombie\n") is None


def test_parent_pid_is_read_past_a_command_name_with_spaces_and_parentheses():
    assert stats.parse_ppid("4242 (python (moto) x) S 4100 4242 4242 0 -1") == 4100


def test_descendants_are_the_whole_subtree_and_nothing_else():
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert stats.descendants(10, parents) == [10, 11, 12, 13]
    assert stats.descendants(13, parents) == [13]
