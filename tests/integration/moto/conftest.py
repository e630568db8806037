"""Fixtures of the moto server's tests: a server process per module, and moto in-process with the patches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.moto import MotoProcess, patches, transactions
from local.moto.speed import validation
from tests.integration.moto.common import REGION


@pytest.fixture(scope="module", autouse=True)
def dummy_credentials() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_SESSION_TOKEN", "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        yield


@pytest.fixture(scope="module")
def endpoint(dummy_credentials: None) -> Iterator[str]:
    with MotoProcess() as moto:
        yield moto.endpoint


@pytest.fixture
def moto_originals() -> dict[tuple[Any, str], Any]:
    """What `patched_moto` replaced, keyed (owner, attribute name), as moto itself defines it."""
    return {}


@pytest.fixture
def patched_moto(
    monkeypatch: pytest.MonkeyPatch, moto_originals: dict[tuple[Any, str], Any]
) -> Iterator[tuple[Any, Any]]:
    """moto in-process with this server's patches applied (and undone afterwards): (client, backend).

    Every cache starts empty, as in a freshly started server: the parse caches live in the closures
    moto_patches() builds, the module-level shape sets are swapped for fresh ones here.
    """
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    monkeypatch.setattr(validation, "_VALIDATED_SHAPES", set())
    monkeypatch.setattr(transactions, "REHEARSED", set())
    for owner, name, replacement in [*patches.correctness_patches(), *patches.speed_patches()]:
        moto_originals[owner, name] = vars(owner).get(name)
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        yield dynamodb, dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]


@pytest.fixture
def stock_moto() -> Iterator[tuple[Any, Any]]:
    """moto in-process exactly as released, none of this server's patches: (client, backend).

    The tests of each correctness fix show the failure here, so they would fail if the fix were dropped.
    """
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        yield dynamodb, dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
