"""Pure seat-hold rules: what viewers see, what counts toward the limit, how rows are named."""

from __future__ import annotations

import pytest

from chalicelib import holds, tables

NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("status", "expires_at", "shown"),
    [
        (holds.AVAILABLE, None, holds.AVAILABLE),
        (holds.HELD, NOW + 1, holds.HELD),
        (holds.HELD, NOW, holds.AVAILABLE),  # at expires_at the hold is over
        (holds.HELD, NOW - 1, holds.AVAILABLE),
        (holds.HELD, None, holds.AVAILABLE),  # a held ticket without expiry never blocks anyone
        (holds.CHECKOUT, NOW + 900, holds.HELD),
        (holds.CHECKOUT, NOW - 900, holds.HELD),  # a lapsed checkout waits for the payment sweeper
        (holds.SOLD, None, holds.SOLD),
        (holds.SOLD, NOW - 1, holds.SOLD),
    ],
)
def test_public_status_hides_checkout_and_expired_holds(status, expires_at, shown):
    assert holds.public_status(status, expires_at, NOW) == shown


def test_public_view_carries_expiry_only_for_held():
    assert holds.public_view(holds.HELD, NOW + 60, NOW) == (holds.HELD, NOW + 60)
    assert holds.public_view(holds.CHECKOUT, NOW + 900, NOW) == (holds.HELD, NOW + 900)
    assert holds.public_view(holds.HELD, NOW - 1, NOW) == (holds.AVAILABLE, None)
    assert holds.public_view(holds.SOLD, NOW + 60, NOW) == (holds.SOLD, None)
    assert holds.public_view(holds.AVAILABLE, None, NOW) == (holds.AVAILABLE, None)


def test_expiry_is_exclusive_of_its_own_second():
    assert not holds.is_expired(NOW + 1, NOW + 0.999)
    assert holds.is_expired(NOW + 1, NOW + 1)
    assert holds.is_expired(None, NOW)


def test_live_holds_drop_expired_entries_only():
    cart = {"t1": NOW + 10, "t2": NOW, "t3": NOW - 5, "t4": NOW + 1}
    assert holds.live_holds(cart, NOW) == {"t1": NOW + 10, "t4": NOW + 1}


def test_expired_entries_stop_counting_toward_the_limit_at_once():
    cart = {"t1": NOW + 10, "t2": NOW + 10, "t3": NOW + 10, "t4": NOW + 5}
    assert holds.at_limit(cart, NOW, limit=4)
    assert not holds.at_limit(cart, NOW + 5, limit=4)


def test_live_holds_normalise_decimal_expiries_to_int():
    from decimal import Decimal

    assert holds.live_holds({"t1": Decimal(NOW + 10)}, NOW) == {"t1": NOW + 10}
    assert isinstance(holds.live_holds({"t1": Decimal(NOW + 10)}, NOW)["t1"], int)


@pytest.mark.parametrize(
    ("index", "label"),
    [(0, "A"), (7, "H"), (25, "Z"), (26, "AA"), (27, "AB"), (51, "AZ"), (52, "BA"), (701, "ZZ"), (702, "AAA")],
)
def test_row_labels_continue_past_z(index, label):
    assert holds.row_label(index) == label


def test_row_labels_are_distinct_for_large_halls():
    labels = [holds.row_label(i) for i in range(2000)]
    assert len(set(labels)) == len(labels)


def test_seat_label_joins_row_and_number():
    assert holds.seat_label("B", 7) == "B7"


def test_iso_is_utc_with_z_suffix():
    assert holds.iso(0) == "1970-01-01T00:00:00Z"
    assert holds.iso(NOW + 0.9) == "2023-11-14T22:13:20Z"


def test_sweep_shard_is_stable_and_in_range():
    shards = {holds.sweep_shard(f"show-{row}{n}") for row in "ABCDEFGH" for n in range(1, 11)}
    assert shards <= {str(s) for s in range(tables.SWEEP_SHARDS)}
    assert len(shards) > 1  # the seats of one hall spread over several shards
    assert holds.sweep_shard("show-A1") == holds.sweep_shard("show-A1")
