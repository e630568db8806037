"""e2e fixtures: the real local stack (`python -m local`) as a subprocess on a free port."""

from __future__ import annotations

import random

import pytest

from tests.support import payflow
from tests.support.payflow import Emulator
from tests.support.stack import running_stack


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack():
    # A 1 s draw grace (30 s on AWS): waiting-room tests open a sale a few seconds ahead.
    with running_stack(env={"SWEEP_INTERVAL_SECONDS": "1", "WAITROOM_DRAW_GRACE_SECONDS": "1"}) as running:
        yield running


# --- payments ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def showtimes(stack) -> list[payflow.Showtime]:
    # The demo seed's full-size rooms only: tests create small showtimes of their own (e.g. test_refunds'
    # "Late Hall"), and picking one of those at random ran out of free seats now and then.
    from local.seed import THEATERS

    return [s for s in payflow.showtimes(stack) if s.theater in THEATERS]


@pytest.fixture
def showtime(showtimes) -> payflow.Showtime:
    return random.choice(showtimes)


@pytest.fixture
def emulator(stack) -> Emulator:
    emulator = Emulator(f"{stack.base_url}/paypal")
    emulator.clear_faults()
    yield emulator
    emulator.clear_faults()


@pytest.fixture
def quiet_paypal(stack, emulator) -> Emulator:
    """The emulator without webhooks: only what the test does reaches the backend."""
    emulator.set_webhook_url(None)
    yield emulator
    emulator.set_webhook_url(f"{stack.base_url}/api/payment/webhook")
