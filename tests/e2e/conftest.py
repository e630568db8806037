"""e2e fixtures: the real local stack (`python -m local`) as a subprocess on a free port."""

from __future__ import annotations

import pytest

from tests.stack import running_stack


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack():
    with running_stack(env={"SWEEP_INTERVAL_SECONDS": "1"}) as running:
        yield running
