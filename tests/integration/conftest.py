"""Integration fixtures: one serialized moto server process for the session, tables from the code's own
definitions, and a Container bound to them (the same composition root the Lambdas use)."""

from __future__ import annotations

import os

import pytest

from chalicelib.wiring import Container
from local.moto import MotoProcess
from tests.support.tables import make_settings, provision


@pytest.fixture(scope="session")
def moto_endpoint():
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with MotoProcess() as server:
        yield server.endpoint


@pytest.fixture
def settings_factory(moto_endpoint):
    def build(**overrides: str):
        settings = make_settings(moto_endpoint, **overrides)
        provision(settings)
        return settings

    return build


@pytest.fixture
def container(settings_factory) -> Container:
    return Container(settings_factory())


# --- payment workers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(moto_endpoint):
    from tests.support.payflow import PaymentLab, standalone_emulator

    with standalone_emulator() as emulator:
        # A 1 s visibility timeout: a failed message is redelivered within a second, as locally.
        yield PaymentLab(moto_endpoint, emulator, visibility_seconds=1)


@pytest.fixture
def shop(lab):
    lab.emulator.clear_faults()
    yield lab.shop()
    lab.emulator.clear_faults()


@pytest.fixture
def app_module(lab):
    """app.py with its process-wide container pointed at the lab's tables and emulator."""
    import app
    from chalicelib import wiring

    previous = wiring._container
    wiring._container = lab.default
    yield app
    wiring._container = previous
