"""Reserved concurrency: a REST flood can neither starve the workers nor take the whole account."""

from __future__ import annotations

import pytest

from infra.settings import (
    DEFAULTS,
    MIN_UNRESERVED_CONCURRENCY,
    QUEUE_WORKERS,
    RESERVED_CONCURRENCY,
    STAGES,
    stage_settings,
)
from tests.infra.cfn import Template, references

pytestmark = pytest.mark.slow

WORKERS = ("PurchaseWorker", "RefundWorker", "EmailWorker", "TicketsChanged")


def _reserved(template: Template, function: str) -> int | None:
    return template.props(function).get("ReservedConcurrentExecutions")


def test_each_function_reserves_what_its_stage_sets_and_nothing_otherwise(template):
    settings = DEFAULTS[template.stage]
    for name in template.functions:
        expected = settings.reserved_concurrency(name)
        # 0 would stop the function altogether: "no reservation" is the property's absence.
        assert _reserved(template, name) == (expected or None), name


def test_the_workers_and_the_stream_consumer_hold_their_own_concurrency(template):
    for name in WORKERS:
        assert (_reserved(template, name) or 0) >= 1, name


def test_the_rest_and_websocket_message_handlers_are_capped(template):
    settings = DEFAULTS[template.stage]
    for name in ("APIHandler", "WebsocketMessage"):
        reserved = _reserved(template, name)
        assert reserved, name
        # What the account keeps for everything unreserved (connect, disconnect, the deploy-time functions).
        assert reserved <= settings.account_concurrency - MIN_UNRESERVED_CONCURRENCY, name


def test_queue_consumers_never_poll_past_their_reservation(template):
    sources = template.event_sources("SQS")
    assert {function for function, _, _ in sources} == set(QUEUE_WORKERS)
    for function, _, props in sources:
        reserved = _reserved(template, function)
        # Equal to the reservation: pollers never get throttled, so no message is received (and counted towards
        # maxReceiveCount) only to be refused for lack of concurrency.
        assert props["ScalingConfig"] == {"MaximumConcurrency": reserved}, function
        assert 2 <= reserved <= 1000, function
        (queue,) = references(props["Queue"])
        timeout = template.props(function)["Timeout"]
        # A batch that is throttled anyway (a deploy, an account limit) reappears after the visibility timeout.
        assert template.props(queue)["VisibilityTimeout"] >= 6 * timeout, function


def test_the_stream_consumer_reads_one_batch_per_shard_within_its_reservation(template):
    (source,) = template.event_sources("DynamoDB")
    function, _, props = source
    # One concurrent batch per shard (no ParallelizationFactor): the reservation must cover the table's shards.
    assert props.get("ParallelizationFactor", 1) == 1
    assert _reserved(template, function) >= 2


def test_both_stages_fit_one_account_with_the_minimum_left_unreserved():
    # Two stages may share an account (every name carries the stage): their reservations add up there.
    total = sum(DEFAULTS[stage].reserved_concurrency(name) for stage in STAGES for name in RESERVED_CONCURRENCY)
    assert total <= DEFAULTS["prod"].account_concurrency - MIN_UNRESERVED_CONCURRENCY
    assert DEFAULTS["prod"].account_concurrency == 1000  # Lambda's default quota per region


def test_reservations_that_leave_too_little_unreserved_are_refused():
    with pytest.raises(ValueError, match="prod:account_concurrency"):
        stage_settings("prod", {"prod:api_concurrency": "900"}.get)
    assert stage_settings("prod", {"prod:account_concurrency": "3000", "prod:api_concurrency": "900"}.get)


@pytest.mark.parametrize("key, value", [("dev:purchase_concurrency", "1"), ("dev:stream_concurrency", "-1")])
def test_invalid_concurrency_settings_are_refused_naming_the_setting(key, value):
    with pytest.raises(ValueError, match=key):
        stage_settings("dev", {key: value}.get)


def test_zero_means_no_reservation():
    settings = stage_settings("dev", {"dev:api_concurrency": "0"}.get)
    assert settings.reserved_concurrency("APIHandler") == 0
    assert settings.reserved_concurrency("WebsocketConnect") == 0  # no setting: shares the unreserved pool
