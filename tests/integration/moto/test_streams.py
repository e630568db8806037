"""Stream memory: trimmed shards, expiring iterators, AWS's answers."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from local.moto import streams
from tests.integration.moto.common import REGION, STREAM, create_table, seed

# Stream memory
# --------------------------------------------------------------------------------------


@pytest.fixture
def patched_streams(patched_moto: tuple[Any, Any]) -> Any:
    """moto's in-process streams backend (mock_aws routes no dynamodbstreams client calls to it)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    return dynamodbstreams_backends[DEFAULT_ACCOUNT_ID][REGION]


def stream_keys(streams: Any, iterator_arn: str) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in streams.get_records(iterator_arn, 100)["Records"]]


def test_trimmed_stream_keeps_sequence_numbers_and_serves_new_iterators(
    patched_moto: tuple[Any, Any], patched_streams: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.exceptions import JsonRESTError

    dynamodb, backend = patched_moto
    monkeypatch.setattr(streams, "STREAM_RECORDS_KEPT", 10)
    create_table(dynamodb, "trim", StreamSpecification=STREAM)
    arn = dynamodb.describe_table(TableName="trim")["Table"]["LatestStreamArn"]
    shard_id = backend.tables["trim"].stream_shard.id

    def iterator(kind: str, sequence_number: str | None = None) -> str:
        return patched_streams.get_shard_iterator(arn, shard_id, kind, sequence_number).arn

    first = iterator("TRIM_HORIZON")
    seed(dynamodb, "trim", *(f"t{n}" for n in range(25)))
    latest = iterator("LATEST")
    seed(dynamodb, "trim", "after")

    oldest = patched_streams.get_records(iterator("TRIM_HORIZON"), 100)["Records"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in oldest] == [f"t{n}" for n in range(16, 25)] + ["after"]
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in oldest]
    assert numbers == list(range(numbers[0], numbers[0] + 10))  # still consecutive after the trims
    assert stream_keys(patched_streams, latest) == ["after"]
    assert stream_keys(patched_streams, iterator("AFTER_SEQUENCE_NUMBER", numbers[-2])) == ["after"]
    with pytest.raises(JsonRESTError) as raised:
        patched_streams.get_records(first, 100)  # it points behind the trim horizon
    assert raised.value.error_type == "TrimmedDataAccessException"


def test_table_and_stream_models_are_not_kept_for_the_dashboard(
    patched_moto: tuple[Any, Any],
) -> None:
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import StreamRecord, Table

    dynamodb, _ = patched_moto
    models = (Table, Item, StreamRecord)
    tracked_before = [len(model.instances_tracked) for model in models]

    create_table(dynamodb, "untracked", StreamSpecification=STREAM)
    seed(dynamodb, "untracked", *(f"t{n}" for n in range(20)))

    # Otherwise moto would hold every item version and stream record forever, trimmed or not.
    assert [len(model.instances_tracked) for model in models] == tracked_before


def test_expired_shard_iterators_are_forgotten_in_age_order() -> None:
    class Iterator:
        def __init__(self, created_at: float) -> None:
            self.created_at = created_at

    iterators = {
        "old": Iterator(1.0),
        "older-looking": Iterator(0.5),
        "young": Iterator(9.0),
        "late": Iterator(2.0),
    }

    streams.expire_iterators(iterators, created_before=5.0)

    # Age order is insertion order in moto; the scan stops at the first young iterator.
    assert list(iterators) == ["young", "late"]


def test_expired_shard_iterator_is_answered_like_aws(
    patched_moto: tuple[Any, Any], patched_streams: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.exceptions import JsonRESTError

    dynamodb, backend = patched_moto
    create_table(dynamodb, "expire", StreamSpecification=STREAM)
    arn = dynamodb.describe_table(TableName="expire")["Table"]["LatestStreamArn"]
    iterator = patched_streams.get_shard_iterator(arn, backend.tables["expire"].stream_shard.id, "LATEST").arn
    monkeypatch.setattr(streams, "STREAM_ITERATOR_LIFETIME_SECONDS", -1.0)

    with pytest.raises(JsonRESTError) as raised:
        patched_streams.get_records(iterator, 100)

    assert raised.value.error_type == "ExpiredIteratorException"
    assert not patched_streams.shard_iterators  # forgotten, not just refused


# --------------------------------------------------------------------------------------


def test_stock_moto_keeps_every_record_and_iterator_and_fails_an_unknown_iterator(stock_moto: tuple[Any, Any]) -> None:
    """What streams.py fixes, on moto as released."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    dynamodb, backend = stock_moto
    create_table(dynamodb, "stock", StreamSpecification=STREAM)
    seed(dynamodb, "stock", *(f"t{n}" for n in range(streams.STREAM_RECORDS_KEPT // 100)))
    arn = dynamodb.describe_table(TableName="stock")["Table"]["LatestStreamArn"]
    streams_backend = dynamodbstreams_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    shard = backend.tables["stock"].stream_shard
    for _ in range(streams.STREAM_ITERATORS_KEPT + 10):
        streams_backend.get_shard_iterator(arn, shard.id, "TRIM_HORIZON")

    assert len(streams_backend.shard_iterators) > streams.STREAM_ITERATORS_KEPT
    with pytest.raises(KeyError):  # an HTTP 500 through the server, where AWS answers ExpiredIteratorException
        streams_backend.get_records("no-such-iterator", 10)


def test_stock_moto_keeps_every_item_version_for_its_dashboard(stock_moto: tuple[Any, Any]) -> None:
    """What memory.py fixes, on moto as released."""
    from moto.dynamodb.models.dynamo_type import Item

    dynamodb, _ = stock_moto
    before = len(Item.instances_tracked)
    create_table(dynamodb, "tracked")
    seed(dynamodb, "tracked", *(f"t{n}" for n in range(20)))
    assert len(Item.instances_tracked) >= before + 20


def test_shard_iterators_beyond_the_cap_are_forgotten_oldest_first() -> None:
    class Iterator:
        def __init__(self, created_at: float) -> None:
            self.created_at = created_at

    iterators = {f"i{n}": Iterator(10.0 + n) for n in range(8)}
    streams.expire_iterators(iterators, created_before=5.0, keep=3)
    assert list(iterators) == ["i5", "i6", "i7"]


def test_stock_moto_remembers_every_deleted_receipt_handle_and_the_fix_only_recent_ones(
    dummy_credentials: None,
) -> None:
    """What memory.py's queue fix changes: moto's Queue.deleted_messages grows with every delete."""
    from moto import mock_aws

    from local.moto import memory

    def deleted_handles_after(deletes: int) -> int:
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            url = sqs.create_queue(QueueName="deletes")["QueueUrl"]
            for n in range(deletes):
                sqs.send_message(QueueUrl=url, MessageBody=str(n))
                handle = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
                sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)  # a retried delete still succeeds
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.sqs.models import sqs_backends

            return len(sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["deletes"].deleted_messages)

    assert deleted_handles_after(30) >= 30  # every handle of every deleted message
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory, "DELETED_HANDLES_KEPT", 10)
        for owner, name, replacement in memory.patches():
            patch.setattr(owner, name, replacement)
        assert deleted_handles_after(30) == 10
