"""The local moto server: serialized table requests, the TransactWriteItems patch, streams, SQS long polls.

Most tests talk to a real server process over HTTP; the patch internals are also checked in-process
against moto's own backend (mock_aws), where copies can be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import http.client
import json
import logging
import os
import random
import select
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local import moto_server
from local.moto_server import MotoProcess

REGION = "us-east-1"
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
FAILED = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}


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


def client(service: str, endpoint: str) -> Any:
    config = Config(max_pool_connections=64, retries={"max_attempts": 1})
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, config=config)


def create_table(dynamodb: Any, name: str, *, sort_key: str | None = None, **extra: Any) -> None:
    keys = [("pk", "HASH")] + ([(sort_key, "RANGE")] if sort_key else [])
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": kind} for key, kind in keys],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key, _ in keys],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def seed(dynamodb: Any, table: str, *keys: str) -> None:
    for key in keys:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": key}, "status": {"S": "available"}})


def update(table: str, key: str, expression: str, condition: str | None = None, **values: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "TableName": table,
        "Key": {"pk": {"S": key}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {f":{name}": {"S": value} for name, value in values.items()},
    }
    if condition:
        op["ConditionExpression"] = condition
        op["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Update": op}


def hold(table: str, key: str, status: str = "held") -> dict[str, Any]:
    """An Update moving an available item to `status` (ALL_OLD if it is not available)."""
    return update(table, key, "SET #s = :new", "#s = :available", new=status, available="available")


def statuses(dynamodb: Any, table: str) -> dict[str, str]:
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["pk"]["S"]: item["status"]["S"] for item in items}


def latest_iterator(streams: Any, dynamodb: Any, table: str) -> str:
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    return streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]


# --------------------------------------------------------------------------------------
# Process lifecycle
# --------------------------------------------------------------------------------------


def test_server_answers_after_start_and_refuses_after_stop(
    dummy_credentials: None,
) -> None:
    moto = MotoProcess()
    url = moto.start()
    assert url == moto.endpoint and url.startswith("http://127.0.0.1:")
    assert client("sts", url).get_caller_identity()["Account"]

    moto.stop()
    moto.stop()  # idempotent

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/moto-api/config", timeout=2)
    with pytest.raises(RuntimeError):
        _ = moto.endpoint


def test_server_refuses_to_bind_beyond_loopback() -> None:
    with pytest.raises(ValueError):
        MotoProcess().start(host="0.0.0.0")


# --------------------------------------------------------------------------------------
# Serialization
# --------------------------------------------------------------------------------------


def test_each_item_is_granted_exactly_once_under_concurrent_conditional_writes(
    endpoint: str,
) -> None:
    dynamodb = client("dynamodb", endpoint)
    create_table(dynamodb, "race")
    # Five fresh tickets per round: a race can only happen while a ticket is still available.
    rounds = [[f"round-{r}-ticket-{n}" for n in range(5)] for r in range(4)]
    seed(dynamodb, "race", *(key for keys in rounds for key in keys))
    # A hold writes several attributes; the longer update also widens moto's window between checking the
    # condition and writing, which is what makes a missing lock show up (it did in 5 runs out of 5).
    expression = "SET #s = :held, holder = :me, " + ", ".join(f"detail{n} = :x" for n in range(20))
    grants: list[str] = []
    barrier = threading.Barrier(40)

    def grab(worker: int) -> None:
        for keys in rounds:
            barrier.wait()
            for _ in range(2):
                key = random.choice(keys)
                try:
                    dynamodb.update_item(
                        TableName="race",
                        Key={"pk": {"S": key}},
                        UpdateExpression=expression,
                        ConditionExpression="#s = :available",
                        ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={
                            ":held": {"S": "held"},
                            ":available": {"S": "available"},
                            ":me": {"S": f"worker-{worker}"},
                            ":x": {"S": "x"},
                        },
                    )
                except dynamodb.exceptions.ConditionalCheckFailedException:
                    continue
                grants.append(key)  # list.append is atomic; a Counter's += is not

    with ThreadPoolExecutor(max_workers=40) as pool:
        list(pool.map(grab, range(40)))  # re-raises any worker's unexpected error

    granted = Counter(grants)
    assert {key: granted[key] for keys in rounds for key in keys} == {key: 1 for keys in rounds for key in keys}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.UpdateItem"}, "tables"),
        ({"HTTP_X_AMZ_TARGET": "DynamoDBStreams_20120810.GetRecords"}, "tables"),
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, "queues"),
        (
            {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/sqs/aws4_request"},
            "queues",
        ),
        ({"HTTP_X_AMZ_TARGET": "AmazonSSM.GetParameter"}, "others"),
        ({"PATH_INFO": "/moto-api/reset"}, "all"),
    ],
)
def test_requests_are_serialized_per_service_family(environ: dict[str, str], expected: str) -> None:
    families = {
        "tables": (moto_server._TABLES_LOCK,),
        "queues": (moto_server._QUEUES_LOCK,),
        "others": (moto_server._OTHERS_LOCK,),
        "all": moto_server._ALL_LOCKS,
    }

    assert moto_server.locks_for(environ) == families[expected]


# --------------------------------------------------------------------------------------
# TransactWriteItems over HTTP
# --------------------------------------------------------------------------------------


def test_cancelled_transaction_changes_nothing_and_reports_reasons_per_item(
    endpoint: str,
) -> None:
    dynamodb = client("dynamodb", endpoint)
    create_table(dynamodb, "cancel", StreamSpecification=STREAM)
    seed(dynamodb, "cancel", "a", "b")
    dynamodb.put_item(TableName="cancel", Item={"pk": {"S": "b"}, "status": {"S": "sold"}})

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                hold("cancel", "a"),
                hold("cancel", "b"),
            ]
        )

    response = raised.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException"
    assert response["CancellationReasons"] == [
        {"Code": "None"},
        {**FAILED, "Item": {"pk": {"S": "b"}, "status": {"S": "sold"}}},
    ]
    assert statuses(dynamodb, "cancel") == {"a": "available", "b": "sold"}


def test_successful_transaction_applies_every_item(endpoint: str) -> None:
    dynamodb = client("dynamodb", endpoint)
    create_table(dynamodb, "commit")
    seed(dynamodb, "commit", "a", "b")

    dynamodb.transact_write_items(
        TransactItems=[
            hold("commit", "a"),
            hold("commit", "b"),
            {
                "Put": {
                    "TableName": "commit",
                    "Item": {"pk": {"S": "c"}, "status": {"S": "new"}},
                }
            },
        ]
    )

    assert statuses(dynamodb, "commit") == {"a": "held", "b": "held", "c": "new"}


def test_two_operations_on_one_item_are_rejected_like_moto_does(endpoint: str) -> None:
    dynamodb = client("dynamodb", endpoint)
    create_table(dynamodb, "twice")
    seed(dynamodb, "twice", "a")

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                update("twice", "a", "SET #s = :held", held="held"),
                update("twice", "a", "SET #s = :sold", sold="sold"),
            ]
        )

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "multiple operations on one item" in raised.value.response["Error"]["Message"]
    assert statuses(dynamodb, "twice") == {"a": "available"}


def test_stream_carries_committed_transactions_only_and_survives_a_cancelled_one(
    endpoint: str,
) -> None:
    dynamodb = client("dynamodb", endpoint)
    streams = client("dynamodbstreams", endpoint)
    create_table(dynamodb, "stream", StreamSpecification=STREAM)
    seed(dynamodb, "stream", "a", "b")
    iterator = latest_iterator(streams, dynamodb, "stream")  # opened before the cancelled transaction

    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                update("stream", "a", "SET #s = :held", held="held"),
                update(
                    "stream",
                    "b",
                    "SET #s = :held",
                    "#s = :sold",
                    held="held",
                    sold="sold",
                ),
            ]
        )
    dynamodb.transact_write_items(
        TransactItems=[
            hold("stream", "a"),
            hold("stream", "b", "sold"),
        ]
    )

    records = streams.get_records(ShardIterator=iterator)["Records"]
    changes = [
        (
            r["eventName"],
            r["dynamodb"]["OldImage"]["status"]["S"],
            r["dynamodb"]["NewImage"]["status"]["S"],
        )
        for r in records
    ]
    assert changes == [("MODIFY", "available", "held"), ("MODIFY", "available", "sold")]


# --------------------------------------------------------------------------------------
# SQS long polls stay out of every other request's way
# --------------------------------------------------------------------------------------


def test_sqs_long_poll_does_not_delay_a_table_read(endpoint: str) -> None:
    dynamodb, sqs = client("dynamodb", endpoint), client("sqs", endpoint)
    create_table(dynamodb, "poll")
    seed(dynamodb, "poll", "a")
    queue = sqs.create_queue(QueueName="empty")["QueueUrl"]
    finished: list[str] = []

    def long_poll() -> None:
        sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)
        finished.append("long poll")

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.3)  # let the poll reach the server; the assertion below is about order, not time
    dynamodb.get_item(TableName="poll", Key={"pk": {"S": "a"}})
    finished.append("get item")
    poller.join()

    assert finished == ["get item", "long poll"]


def test_sqs_long_poll_is_woken_by_a_concurrent_send(endpoint: str) -> None:
    sqs = client("sqs", endpoint)
    queue = sqs.create_queue(QueueName="wake")["QueueUrl"]
    received: list[list[dict[str, Any]]] = []

    def long_poll() -> None:
        received.append(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10).get("Messages", []))

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.3)
    sqs.send_message(QueueUrl=queue, MessageBody="hello")  # would wait out the poll if it held a lock
    poller.join()

    assert [message["Body"] for message in received[0]] == ["hello"]


# --------------------------------------------------------------------------------------
# The patch in-process, against moto's own backend
# --------------------------------------------------------------------------------------


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

    monkeypatch.setattr(moto_server, "_VALIDATED_SHAPES", set())
    monkeypatch.setattr(moto_server, "_REHEARSED", set())
    for owner, name, replacement in moto_server.moto_patches():
        moto_originals[owner, name] = vars(owner).get(name)
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        yield dynamodb, dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]


def test_transaction_never_deep_copies_a_table(patched_moto: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.table import StreamShard, Table

    dynamodb, backend = patched_moto
    create_table(dynamodb, "big", StreamSpecification=STREAM)
    seed(dynamodb, "big", *(f"t{n}" for n in range(200)))
    table, shard = backend.tables["big"], backend.tables["big"].stream_shard
    copied: list[type] = []
    real_deepcopy = copy.deepcopy

    def counting_deepcopy(value: Any, *args: Any) -> Any:
        copied.append(type(value))
        return real_deepcopy(value, *args)

    monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)
    dynamodb.transact_write_items(TransactItems=[update("big", "t1", "SET #s = :held", held="held")])
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[update("big", "t2", "SET #s = :x", "#s = :sold", x="x", sold="sold")]
        )

    assert copied  # the hook works: moto copies single items while updating them
    assert not {Table, StreamShard} & set(copied)
    assert backend.tables["big"] is table and table.stream_shard is shard  # nothing swapped on cancel


def test_validation_error_in_a_later_item_leaves_earlier_items_untouched(
    patched_moto: tuple[Any, Any],
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "atomic")
    seed(dynamodb, "atomic", "a", "b")
    adding_to_a_string = {
        "Update": {
            "TableName": "atomic",
            "Key": {"pk": {"S": "b"}},
            "UpdateExpression": "SET #s = #s + :one",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                update("atomic", "a", "SET #s = :held", held="held"),
                adding_to_a_string,
            ]
        )

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert statuses(dynamodb, "atomic") == {"a": "available", "b": "available"}


def test_too_many_items_are_rejected_like_moto_does(
    patched_moto: tuple[Any, Any],
) -> None:
    from moto.dynamodb.exceptions import TooManyTransactionsException

    _, backend = patched_moto
    with pytest.raises(TooManyTransactionsException):
        moto_server.transact_write_items(backend, [{"ConditionCheck": {}}] * 101)


def test_missing_item_and_put_conditions_report_moto_reasons(
    patched_moto: tuple[Any, Any],
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "reasons")
    seed(dynamodb, "reasons", "a")

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": "reasons",
                        "Item": {"pk": {"S": "a"}, "status": {"S": "new"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": "reasons",
                        "Key": {"pk": {"S": "missing"}},
                        "ConditionExpression": "attribute_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {"Delete": {"TableName": "reasons", "Key": {"pk": {"S": "other"}}}},
            ]
        )

    assert raised.value.response["CancellationReasons"] == [
        {**FAILED, "Item": {"pk": {"S": "a"}, "status": {"S": "available"}}},
        FAILED,  # no old item to return for an item that does not exist
        {"Code": "None"},
    ]
    assert statuses(dynamodb, "reasons") == {"a": "available"}


# --------------------------------------------------------------------------------------
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
    monkeypatch.setattr(moto_server, "STREAM_RECORDS_KEPT", 10)
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

    moto_server.expire_iterators(iterators, created_before=5.0)

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
    monkeypatch.setattr(moto_server, "STREAM_ITERATOR_LIFETIME_SECONDS", -1.0)

    with pytest.raises(JsonRESTError) as raised:
        patched_streams.get_records(iterator, 100)

    assert raised.value.error_type == "ExpiredIteratorException"
    assert not patched_streams.shard_iterators  # forgotten, not just refused


# --------------------------------------------------------------------------------------
# Per-shape caches and the plain-JSON GetRecords answer
# --------------------------------------------------------------------------------------


def inprocess_streams_client() -> Any:
    """A DynamoDB Streams client that mock_aws answers: for calls carrying a StreamArn, botocore picks an
    account-based host ({account}.streams-ddb...) that moto does not route, so name moto's host outright."""
    return boto3.client(
        "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
    )


@contextlib.contextmanager
def local_timezone(tz: str) -> Iterator[None]:
    """Run with the process's local timezone set to a POSIX TZ string (e.g. "EST+5": no tz database needed)."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()


def stream_pages(streams: Any, dynamodb: Any, table: str, limit: int) -> list[tuple[list[dict[str, Any]], bool]]:
    """Every GetRecords page from a fresh TRIM_HORIZON iterator up to the first empty one:
    (records as boto3 parsed them, whether the page carried a NextShardIterator)."""
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    pages: list[tuple[list[dict[str, Any]], bool]] = []
    while iterator is not None and len(pages) < 20:
        page = streams.get_records(ShardIterator=iterator, Limit=limit)
        iterator = page.get("NextShardIterator")
        pages.append((page["Records"], iterator is not None))
        if not page["Records"]:
            break
    return pages


def read_stream_both_ways(
    dynamodb: Any,
    table: str,
    moto_originals: dict[tuple[Any, str], Any],
    monkeypatch: pytest.MonkeyPatch,
    limit: int = 2,
) -> tuple[list[tuple[list[dict[str, Any]], bool]], list[tuple[list[dict[str, Any]], bool]]]:
    """The table's stream read through the patched GetRecords, then through moto's own (serializer and all)."""
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    streams = inprocess_streams_client()
    patched = stream_pages(streams, dynamodb, table, limit)
    monkeypatch.setattr(DynamoDBStreamsHandler, "get_records", moto_originals[DynamoDBStreamsHandler, "get_records"])
    by_moto = stream_pages(streams, dynamodb, table, limit)
    return patched, by_moto


RICH_ITEM = {
    "pk": {"S": "a"},
    "status": {"S": "available"},
    "price": {"N": "12.50"},
    "seats": {"L": [{"M": {"row": {"S": "A"}, "n": {"N": "1"}}}, {"BOOL": True}, {"NULL": True}]},
    "meta": {
        "M": {
            "tags": {"SS": ["x", "y"]},
            "counts": {"NS": ["1", "2"]},
            "empty": {"S": ""},
            "note": {"S": "Grand Budapest \u00fc \u2713"},
            "nested": {"M": {"deep": {"L": [{"N": "-3.5"}, {"L": []}, {"M": {}}]}}},
        }
    },
    "flag": {"BOOL": False},
}


def write_every_kind_of_stream_record(dynamodb: Any, table: str) -> None:
    """INSERT, MODIFY (UpdateItem, a transaction, an overwriting put) and REMOVE records of nested items."""
    dynamodb.put_item(TableName=table, Item=RICH_ITEM)
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "b"}, "status": {"S": "available"}, "n": {"N": "0"}})
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET meta.nested.deep[0] = :n, price = price + :p REMOVE flag ADD meta.counts :more",
        ExpressionAttributeValues={":n": {"N": "7"}, ":p": {"N": "0.25"}, ":more": {"NS": ["3"]}},
    )
    dynamodb.transact_write_items(TransactItems=[update(table, "b", "SET #s = :held", held="held")])
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "a"}})
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "b"}, "status": {"S": "sold"}, "tags": {"SS": ["z"]}})


def test_stream_pages_through_the_patch_equal_moto_serialized_pages(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "wire", StreamSpecification=STREAM)
    write_every_kind_of_stream_record(dynamodb, "wire")

    # UTC here: the local-timezone case has a test of its own below.
    with local_timezone("UTC0"):
        patched, by_moto = read_stream_both_ways(dynamodb, "wire", moto_originals, monkeypatch)

    # The same stored records both ways: equal down to eventID, SequenceNumber and the millisecond-truncated
    # ApproximateCreationDateTime (moto's serializer follows Smithy's rule; AWS itself sends whole seconds).
    assert patched == by_moto
    assert [len(records) for records, _ in patched] == [2, 2, 2, 0]
    assert all(has_next for _, has_next in patched)  # even the empty page, as on AWS: the shard is open
    records = [record for page, _ in patched for record in page]
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "MODIFY", "MODIFY", "REMOVE", "MODIFY"]
    assert records[0]["dynamodb"]["NewImage"] == RICH_ITEM
    assert records[0]["dynamodb"]["Keys"] == {"pk": {"S": "a"}}
    assert records[2]["dynamodb"]["NewImage"]["meta"]["M"]["nested"]["M"]["deep"]["L"][0] == {"N": "7"}
    assert "NewImage" not in records[4]["dynamodb"] and records[4]["dynamodb"]["OldImage"]["pk"] == {"S": "a"}
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence_numbers == sorted(sequence_numbers) and len(set(sequence_numbers)) == len(records)
    assert all(isinstance(r["dynamodb"]["ApproximateCreationDateTime"], dt.datetime) for r in records)


def test_stream_record_creation_time_is_moto_instant_whatever_the_local_timezone(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "zoned", StreamSpecification=STREAM)
    seed(dynamodb, "zoned", "a")

    with local_timezone("EST+5"):  # five hours behind UTC, like a developer's laptop in New York
        patched, by_moto = read_stream_both_ways(dynamodb, "zoned", moto_originals, monkeypatch)

    assert patched == by_moto


def test_stream_records_with_binary_attributes_equal_moto_serialized_ones(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "binary", StreamSpecification=STREAM)
    item = {"pk": {"S": "a"}, "blob": {"B": b"\x00\xffqr"}, "blobs": {"BS": [b"x", b"\x01"]}}
    dynamodb.put_item(TableName="binary", Item=item)

    with local_timezone("UTC0"):
        patched, by_moto = read_stream_both_ways(dynamodb, "binary", moto_originals, monkeypatch)

    assert patched == by_moto
    assert patched[0][0][0]["dynamodb"]["NewImage"] == item


def transact_error(dynamodb: Any, *items: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=list(items))
    return raised.value.response["Error"]


def assert_shape_validated(*items: dict[str, Any]) -> None:
    """The precondition of the tests below: the next request with these shapes skips moto's validation."""
    assert {moto_server._item_shape(item) for item in items} <= moto_server._VALIDATED_SHAPES


def test_cached_transaction_shape_still_rejects_an_unused_attribute_name(
    patched_moto: tuple[Any, Any],
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "unused")
    seed(dynamodb, "unused", "a", "b", "c")
    dynamodb.transact_write_items(TransactItems=[hold("unused", "a")])
    assert_shape_validated(hold("unused", "a"))
    same_text_one_more_name = hold("unused", "b")
    same_text_one_more_name["Update"]["ExpressionAttributeNames"]["#unused"] = "holder"

    errors = [
        transact_error(dynamodb, same_text_one_more_name),
        transact_error(dynamodb, same_text_one_more_name),
        transact_error(dynamodb, hold("unused", "c"), same_text_one_more_name),  # behind a cached shape
    ]

    expected = {
        "Code": "ValidationException",
        "Message": "Value provided in ExpressionAttributeNames unused in expressions: keys: {#unused}",
    }
    assert errors == [expected, expected, expected]
    assert statuses(dynamodb, "unused") == {"a": "held", "b": "available", "c": "available"}


def test_invalid_update_expression_is_rejected_the_same_way_every_time(
    patched_moto: tuple[Any, Any],
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "syntax")
    seed(dynamodb, "syntax", "a")
    dynamodb.transact_write_items(TransactItems=[hold("syntax", "a")])  # a valid shape is cached meanwhile
    broken = update("syntax", "a", "SET #s = :new,, holder = :new", new="sold")

    in_transactions = [transact_error(dynamodb, broken) for _ in range(2)]
    in_update_items = []
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            dynamodb.update_item(**broken["Update"])
        in_update_items.append(raised.value.response["Error"])

    assert in_transactions[0]["Code"] == "ValidationException"
    assert "Invalid UpdateExpression: Syntax error" in in_transactions[0]["Message"]
    assert in_transactions[1] == in_transactions[0]
    assert in_update_items[0]["Code"] == "ValidationException"
    assert in_update_items[1] == in_update_items[0]
    assert statuses(dynamodb, "syntax") == {"a": "held"}


def test_two_set_clauses_are_refused_every_time_while_one_passes(patched_moto: tuple[Any, Any]) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "clauses")
    seed(dynamodb, "clauses", "a")
    two_sets = update("clauses", "a", "SET #s = :new SET holder = :new", new="sold")["Update"]
    one_set = update("clauses", "a", "SET #s = :new, holder = :new", new="held")["Update"]

    errors = []
    for _ in range(2):  # the second time from the parse cache
        with pytest.raises(ClientError) as raised:
            dynamodb.update_item(**two_sets)
        errors.append(raised.value.response["Error"])
        dynamodb.update_item(**one_set)

    assert errors[0]["Code"] == "ValidationException"
    assert 'The "SET" section can only be used once in an update expression' in errors[0]["Message"]
    assert errors[1] == errors[0]
    assert statuses(dynamodb, "clauses") == {"a": "held"}


@pytest.mark.parametrize(
    "with_empty_key",
    [
        pytest.param(lambda table, key: hold(table, key), id="update"),
        pytest.param(
            lambda table, key: {"Put": {"TableName": table, "Item": {"pk": {"S": key}, "status": {"S": "new"}}}},
            id="put",
        ),
    ],
)
def test_cached_transaction_shape_still_rejects_an_empty_key_with_moto_message(
    patched_moto: tuple[Any, Any], with_empty_key: Any
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "empty")
    seed(dynamodb, "empty", "a")
    uncached = transact_error(dynamodb, with_empty_key("empty", ""))  # moto's own validation answers this one

    dynamodb.transact_write_items(TransactItems=[with_empty_key("empty", "a")])
    assert_shape_validated(with_empty_key("empty", ""))
    cached = [transact_error(dynamodb, with_empty_key("empty", "")) for _ in range(2)]

    assert uncached["Code"] == "ValidationException" and uncached["Message"].endswith("Key: pk")
    assert cached == [uncached, uncached]
    assert sorted(statuses(dynamodb, "empty")) == ["a"]


def test_shape_first_seen_in_a_cancelled_transaction_applies_on_its_next_use(
    patched_moto: tuple[Any, Any],
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "retry")
    seed(dynamodb, "retry", "a", "b", "c")
    dynamodb.put_item(TableName="retry", Item={"pk": {"S": "b"}, "status": {"S": "sold"}})

    error = transact_error(dynamodb, hold("retry", "a"), hold("retry", "b"))
    assert error["Code"] == "TransactionCanceledException"
    assert_shape_validated(hold("retry", "a"))
    dynamodb.transact_write_items(TransactItems=[hold("retry", "a", "mine"), hold("retry", "c", "yours")])

    assert statuses(dynamodb, "retry") == {"a": "mine", "b": "sold", "c": "yours"}


COUNTER_UPDATE = "SET #s = :s, #v = #v + :one"
LIST_UPDATE = "SET #l = list_append(if_not_exists(#l, :empty), :add), #c = if_not_exists(#c, :first) REMOVE #gone"


def test_one_update_expression_text_applies_each_requests_own_values(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any]
) -> None:
    import pickle

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    dynamodb, _ = patched_moto
    create_table(dynamodb, "trees")
    keys = [f"k{n}" for n in range(6)]
    for key in keys:
        dynamodb.put_item(TableName="trees", Item={"pk": {"S": key}, "v": {"N": "0"}, "gone": {"S": "x"}})

    def send(key: str, expression: str, names: dict[str, str], values: dict[str, Any], in_transaction: bool) -> None:
        op = {
            "TableName": "trees",
            "Key": {"pk": {"S": key}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if in_transaction:
            dynamodb.transact_write_items(TransactItems=[{"Update": op}])
        else:
            dynamodb.update_item(**op)

    snapshots: dict[str, bytes] = {}
    for turn in range(3):
        for n, key in enumerate(keys):
            in_transaction = (n + turn) % 2 == 1
            send(
                key,
                COUNTER_UPDATE,
                {"#s": "status", "#v": "v"},
                {":s": {"S": f"{key}-turn-{turn}"}, ":one": {"N": str(10**turn * (n + 1))}},
                in_transaction,
            )
            send(
                key,
                LIST_UPDATE,
                {"#l": "log", "#c": "first", "#gone": "gone"},
                {
                    ":empty": {"L": []},
                    ":add": {"L": [{"S": f"{key}-{turn}"}]},
                    ":first": {"N": str(100 * n + turn)},
                },
                in_transaction,
            )
            if not snapshots:
                snapshots = {
                    text: pickle.dumps(UpdateExpressionParser.make(text)) for text in (COUNTER_UPDATE, LIST_UPDATE)
                }

    items = {item["pk"]["S"]: item for item in dynamodb.scan(TableName="trees")["Items"]}
    assert items == {
        key: {
            "pk": {"S": key},
            "status": {"S": f"{key}-turn-2"},
            "v": {"N": str(111 * (n + 1))},
            "log": {"L": [{"S": f"{key}-{turn}"} for turn in range(3)]},
            "first": {"N": str(100 * n)},
        }
        for n, key in enumerate(keys)
    }
    # The trees every request shared are as parsed: each request's values went into a copy only.
    original_make = moto_originals[UpdateExpressionParser, "make"].__func__
    for text, snapshot in snapshots.items():
        tree = UpdateExpressionParser.make(text)
        assert tree is UpdateExpressionParser.make(text)  # the cached one, not a re-parse
        assert pickle.dumps(tree) == snapshot
        as_parsed = original_make(UpdateExpressionParser, text)
        as_parsed._clause_counts_ok = True  # the verdict the cache records with the tree
        assert tree._pickled == pickle.dumps(as_parsed)


def test_one_condition_text_is_evaluated_with_each_requests_own_values(
    patched_moto: tuple[Any, Any],
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "conditions")
    condition = "attribute_not_exists(pk) OR (#s = :expected AND #v < :limit)"

    def put(status: str, version: int, expected: str, limit: int) -> bool:
        try:
            dynamodb.put_item(
                TableName="conditions",
                Item={"pk": {"S": "a"}, "status": {"S": status}, "v": {"N": str(version)}},
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status", "#v": "v"},
                ExpressionAttributeValues={":expected": {"S": expected}, ":limit": {"N": str(limit)}},
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def move(status: str, to: str, low: int, high: int) -> bool:
        try:
            dynamodb.update_item(
                TableName="conditions",
                Key={"pk": {"S": "a"}},
                UpdateExpression="SET #s = :to",
                ConditionExpression="#s = :from AND #v BETWEEN :low AND :high",
                ExpressionAttributeNames={"#s": "status", "#v": "v"},
                ExpressionAttributeValues={
                    ":from": {"S": status},
                    ":to": {"S": to},
                    ":low": {"N": str(low)},
                    ":high": {"N": str(high)},
                },
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    outcomes = [
        put("red", 1, expected="nothing", limit=0),  # the item does not exist yet
        put("green", 5, expected="red", limit=2),  # red and 1 < 2
        put("blue", 9, expected="red", limit=99),  # it is green now
        put("blue", 9, expected="green", limit=5),  # 5 < 5 fails
        put("blue", 9, expected="green", limit=6),
        move("blue", "cyan", low=10, high=20),  # v is 9
        move("green", "cyan", low=0, high=20),  # it is blue
        move("blue", "cyan", low=9, high=9),
    ]

    assert outcomes == [True, True, False, False, True, False, False, True]
    item = dynamodb.get_item(TableName="conditions", Key={"pk": {"S": "a"}})["Item"]
    assert (item["status"]["S"], item["v"]["N"]) == ("cyan", "9")


def test_one_condition_text_in_transactions_reports_each_items_own_outcome(
    patched_moto: tuple[Any, Any],
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "txconditions")
    seed(dynamodb, "txconditions", "a", "b", "c")
    dynamodb.put_item(TableName="txconditions", Item={"pk": {"S": "b"}, "status": {"S": "sold"}})

    def sell(key: str, expected: str) -> dict[str, Any]:
        return update("txconditions", key, "SET #s = :sold", "#s = :expected", sold="sold", expected=expected)

    reasons = []
    for _ in range(2):  # moto validates the first; the second is a cached shape
        with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as raised:
            dynamodb.transact_write_items(
                TransactItems=[sell("a", "available"), sell("b", "available"), sell("c", "sold")]
            )
        reasons.append(raised.value.response["CancellationReasons"])
    assert statuses(dynamodb, "txconditions") == {"a": "available", "b": "sold", "c": "available"}
    dynamodb.transact_write_items(TransactItems=[sell("a", "available"), sell("b", "sold"), sell("c", "available")])

    expected = [
        {"Code": "None"},
        {**FAILED, "Item": {"pk": {"S": "b"}, "status": {"S": "sold"}}},
        {**FAILED, "Item": {"pk": {"S": "c"}, "status": {"S": "available"}}},
    ]
    assert reasons == [expected, expected]
    assert statuses(dynamodb, "txconditions") == {"a": "sold", "b": "sold", "c": "sold"}


def test_query_filter_and_key_conditions_use_each_requests_own_values(
    patched_moto: tuple[Any, Any],
) -> None:
    dynamodb, _ = patched_moto
    create_table(dynamodb, "seats", sort_key="sk")
    for hall in ("h1", "h2"):
        for n in range(6):
            status = "held" if n % 2 else "available"
            item = {"pk": {"S": hall}, "sk": {"S": f"A{n}"}, "status": {"S": status}, "price": {"N": str(n)}}
            dynamodb.put_item(TableName="seats", Item=item)

    def seats(hall: str, prefix: str, status: str, low: int, high: int) -> list[str]:
        items = dynamodb.query(
            TableName="seats",
            KeyConditionExpression="pk = :hall AND begins_with(sk, :prefix)",
            FilterExpression="#s = :status AND price BETWEEN :low AND :high",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":hall": {"S": hall},
                ":prefix": {"S": prefix},
                ":status": {"S": status},
                ":low": {"N": str(low)},
                ":high": {"N": str(high)},
            },
        )["Items"]
        return [f"{item['pk']['S']}:{item['sk']['S']}" for item in items]

    assert seats("h1", "A", "available", 0, 5) == ["h1:A0", "h1:A2", "h1:A4"]
    assert seats("h2", "A", "held", 0, 5) == ["h2:A1", "h2:A3", "h2:A5"]
    assert seats("h1", "A", "held", 2, 4) == ["h1:A3"]
    assert seats("h2", "B", "held", 0, 5) == []
    assert seats("h2", "A", "available", 4, 4) == ["h2:A4"]


def test_cached_moto_lookups_answer_what_moto_computes(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any]
) -> None:
    from moto import backends
    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.sqs.responses import SQSResponse

    moto_modules = list(moto_originals[backends, "list_of_moto_modules"]())
    moto_method_names = moto_originals[responses, "method_names_from_class"]

    for _ in range(2):  # the second answer comes from the cache
        assert list(backends.list_of_moto_modules()) == moto_modules
        for handler in (DynamoHandler, DynamoDBStreamsHandler, SQSResponse):
            assert responses.method_names_from_class(handler) == moto_method_names(handler)
    assert {"dynamodb", "dynamodbstreams", "sqs"} <= set(moto_modules)
    # The patched actions are still found for dispatch.
    assert "transact_write_items" in responses.method_names_from_class(DynamoHandler)
    assert "get_records" in responses.method_names_from_class(DynamoDBStreamsHandler)


# --------------------------------------------------------------------------------------
# The aiohttp front: WsgiBridge's environ, kept-alive connections, response headers,
# JsonTargetShortcut against moto's Flask route, stopping with a long poll in flight
# --------------------------------------------------------------------------------------


def signed_for(service: str) -> str:
    """An Authorization header moto routes by its credential scope (moto checks no signature)."""
    return (
        f"AWS4-HMAC-SHA256 Credential=testing/20250101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )


def port_of(endpoint: str) -> int:
    port = urllib.parse.urlsplit(endpoint).port
    assert port is not None
    return port


def server_side_connections(port: int) -> dict[int, int]:
    """Every established IPv4 TCP connection a server on `port` accepted, from the kernel's table:
    {client port: bytes received that the server has not read yet}."""
    connections = {}
    with open("/proc/net/tcp") as table:
        next(table)  # the column names
        for line in table:
            _, local, remote, state, queues, *_ = line.split()
            if state == "01" and int(local.rpartition(":")[2], 16) == port:  # 01: ESTABLISHED
                connections[int(remote.rpartition(":")[2], 16)] = int(queues.partition(":")[2], 16)
    return connections


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def exchange(port: int, request: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    """One raw HTTP request on a fresh connection: (the parsed answer, its body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock, method=request.split(b" ", 1)[0].decode())
        response.begin()
        return response, response.read()


# What moto's code reads from a WSGI environ (Request, DomainDispatcherApplication, locks_for, Flask routing);
# every HTTP_* key is compared too.
MOTO_READS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "RAW_URI",
    "REQUEST_URI",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_PROTOCOL",
    "wsgi.url_scheme",
)
BODY_SEEN = "test.body"


def moto_view(environ: dict[str, Any]) -> dict[str, Any]:
    from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY

    view = {key: environ.get(key) for key in MOTO_READS}
    view.update((key, value) for key, value in environ.items() if key.startswith("HTTP_"))
    # moto reads the preserved names as `environ.get(key) or {}`: absent and empty are the same to it.
    view[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = environ.get(PRESERVED_HEADER_NAMES_ENVIRON_KEY) or {}
    # werkzeug leaves CONTENT_LENGTH out for a request without a body, the bridge says "0"; both read as an
    # empty body, and moto's own in-process requests say "0" too (Request.from_primitives).
    view["CONTENT_LENGTH"] = environ.get("CONTENT_LENGTH") or "0"
    view[BODY_SEEN] = environ[BODY_SEEN]
    return view


@pytest.fixture(scope="module")
def environs_for() -> Iterator[Callable[[bytes], tuple[dict[str, Any], dict[str, Any]]]]:
    """Send the same raw request to werkzeug's development server with moto's MotoRequestHandler (what moto
    was served from before) and to aiohttp serving through WsgiBridge.handle (as `_serve` routes it), both
    running one WSGI app that records its environ: (werkzeug's environ, the bridge's environ)."""
    from aiohttp import web
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    seen: list[dict[str, Any]] = []

    def recording_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        seen.append({**environ, BODY_SEEN: environ["wsgi.input"].read(length)})
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    werkzeug_server = make_server("127.0.0.1", 0, recording_app, request_handler=MotoRequestHandler)
    werkzeug_thread = threading.Thread(target=werkzeug_server.serve_forever, daemon=True)
    werkzeug_thread.start()

    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    bridge = moto_server.WsgiBridge(recording_app, "127.0.0.1", 0)

    async def start() -> tuple[Any, int]:
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", bridge.handle)
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, bridge_port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    def environs(request: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        seen.clear()
        for port in (werkzeug_server.server_port, bridge_port):
            response, body = exchange(port, request)
            assert (response.status, body) == (200, b"ok")
        werkzeug_environ, bridge_environ = seen
        return werkzeug_environ, bridge_environ

    try:
        yield environs
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(10)
        loop.close()
        bridge.shutdown()
        werkzeug_server.shutdown()
        werkzeug_server.server_close()


def raw_http(request_line: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [request_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


ENVIRON_CASES = [
    pytest.param(
        raw_http(
            "GET /bucket-one/a%2Fb/%E2%9C%93%20caf%C3%A9%2B1?list-type=2&prefix=a%2Fb%2F&marker=%C3%BC+x HTTP/1.1",
            [
                ("Host", "127.0.0.1:5000"),
                ("X-Amz-Date", "20250101T000000Z"),
                ("X-Repeated", "one"),
                ("x-repeated", "two"),
                ("Accept-Encoding", "identity"),
                ("Authorization", signed_for("s3")),
            ],
        ),
        id="encoded-slash-and-unicode-path-query-repeated-header",
    ),
    pytest.param(
        raw_http(
            "POST / HTTP/1.1",
            [
                ("Host", "localhost:5000"),
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "DynamoDB_20120810.GetItem"),
                ("Authorization", signed_for("dynamodb")),
                ("Content-Length", "25"),
            ],
            b'{"TableName": "t\\u00fc1"}',
        ),
        id="json-target-post",
    ),
    pytest.param(
        raw_http(
            "PUT /bucket-one/my%20key.txt?x-id=PutObject HTTP/1.1",
            [
                ("Host", "localhost:5000"),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Amz-Meta-My_Key", "underscored"),
                ("X-Amz-Meta-Plain", "dashed"),
                ("Content-Length", "5"),
            ],
            b"hello",
        ),
        id="s3-metadata-header-with-underscore",
    ),
    pytest.param(
        raw_http(
            "POST / HTTP/1.1",
            [
                ("Host", "localhost:5000"),
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("Authorization", signed_for("sqs")),
                ("Content-Length", "36"),
            ],
            b"Action=ListQueues&Version=2012-11-05",
        ),
        id="query-protocol-form-post",
    ),
]


@pytest.mark.parametrize("request_bytes", ENVIRON_CASES)
def test_bridge_environ_matches_what_werkzeug_builds_for_the_same_request(
    environs_for: Callable[[bytes], tuple[dict[str, Any], dict[str, Any]]], request_bytes: bytes
) -> None:
    werkzeug_environ, bridge_environ = environs_for(request_bytes)

    method, target, _ = request_bytes.split(b"\r\n", 1)[0].decode().split(" ")
    assert (werkzeug_environ["REQUEST_METHOD"], werkzeug_environ["RAW_URI"]) == (method, target)  # not vacuous
    assert moto_view(bridge_environ) == moto_view(werkzeug_environ)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            raw_http(
                "PUT /bucket-one/key HTTP/1.1",
                [
                    ("Host", "localhost:5000"),
                    ("X-Amz-Meta-My-Key", "dashed"),
                    ("x-amz-meta-my_key", "underscored"),
                    ("Content-Length", "0"),
                ],
            ),
            id="dashed-and-underscored-spelling-of-one-metadata-key",
        ),
        pytest.param(
            raw_http("GET /moto-api/ HTTP/1.1", [("Host", "localhost:5000"), ("x_custom", "underscored")]),
            id="underscored-header-outside-metadata",
        ),
    ],
)
def test_bridge_drops_underscored_headers_like_werkzeug(
    environs_for: Callable[[bytes], tuple[dict[str, Any], dict[str, Any]]], request_bytes: bytes
) -> None:
    werkzeug_environ, bridge_environ = environs_for(request_bytes)

    assert moto_view(bridge_environ) == moto_view(werkzeug_environ)


def test_sequential_boto3_calls_reuse_one_kept_alive_connection(endpoint: str) -> None:
    port = port_of(endpoint)
    others = set(server_side_connections(port))  # earlier tests' pooled connections
    dynamodb = client("dynamodb", endpoint)

    create_table(dynamodb, "keepalive")
    opened = set(server_side_connections(port)) - others
    for n in range(30):
        dynamodb.put_item(TableName="keepalive", Item={"pk": {"S": f"k{n}"}, "status": {"S": "available"}})
        dynamodb.get_item(TableName="keepalive", Key={"pk": {"S": f"k{n}"}})

    # A server closing connections would have made botocore open a new one (a new client port) per call.
    assert len(opened) == 1
    assert set(server_side_connections(port)) - others == opened


def dynamodb_request(target: str, body: dict[str, Any]) -> tuple[str, str, bytes, dict[str, str]]:
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"DynamoDB_20120810.{target}",
        "Authorization": signed_for("dynamodb"),
    }
    return "POST", "/", json.dumps(body).encode(), headers


def test_answers_carry_one_content_length_matching_the_body_on_a_kept_alive_connection(endpoint: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port_of(endpoint), timeout=10)
    requests = [
        dynamodb_request("DescribeTable", {"TableName": "no-such-table"}),
        ("GET", "/moto-api/", b"", {}),
        (
            "POST",
            "/",
            b"Action=ListQueues&Version=2012-11-05",
            {"Content-Type": "application/x-www-form-urlencoded", "Authorization": signed_for("sqs")},
        ),
    ]
    statuses: list[int] = []
    sockets: list[Any] = []
    try:
        for method, path, body, headers in requests:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            statuses.append(response.status)
            sockets.append(connection.sock)  # http.client drops the socket after a `Connection: close` answer
            assert response.msg.get_all("Content-Length") == [str(len(payload))]
            assert response.msg.get_all("Transfer-Encoding") is None
            assert len(response.msg.get_all("Connection") or []) <= 1
    finally:
        connection.close()

    assert statuses == [400, 200, 200]
    assert sockets[0] is not None and all(sock is sockets[0] for sock in sockets)  # one kept-alive connection


def test_boto3_parses_answers_with_a_single_content_length(endpoint: str) -> None:
    dynamodb = client("dynamodb", endpoint)
    create_table(dynamodb, "lengths")
    found = dynamodb.describe_table(TableName="lengths")
    with pytest.raises(ClientError) as missing:
        dynamodb.describe_table(TableName="no-such-table")

    for metadata in (found["ResponseMetadata"], missing.value.response["ResponseMetadata"]):
        headers = metadata["HTTPHeaders"]  # botocore joins a repeated header's values with ", "
        assert headers["content-length"].isdigit()
        assert "transfer-encoding" not in headers
        assert headers["x-amzn-requestid"] == metadata["RequestId"]
    assert found["Table"]["TableName"] == "lengths"
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_head_request_is_answered_without_a_body(endpoint: str) -> None:
    port = port_of(endpoint)
    # Read to EOF: whatever follows the headers would be a body.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"HEAD /moto-api/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, after_headers = answer.partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 200 ")
    assert after_headers == b""
    # And a kept-alive connection goes on to the next answer cleanly after a HEAD.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("HEAD", "/moto-api/")
        assert connection.getresponse().read() == b""
        connection.request("GET", "/moto-api/config")
        config = connection.getresponse()
        assert config.status < 300 and isinstance(json.loads(config.read()), dict)
    finally:
        connection.close()


def test_head_object_reports_the_stored_object_length(endpoint: str) -> None:
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket="head-lengths")
    s3.put_object(Bucket="head-lengths", Key="k", Body=b"hello world")

    assert s3.head_object(Bucket="head-lengths", Key="k").get("ContentLength") == 11


# JsonTargetShortcut against moto's own Flask route, in-process


@pytest.fixture
def moto_apps(patched_moto: tuple[Any, Any]) -> tuple[Any, Any, list[str]]:
    """moto's own server app and JsonTargetShortcut in front of it, on patched_moto's backends:
    (moto's app, the shortcut, the paths the shortcut passed on to moto's app)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    dynamodb, _ = patched_moto
    create_table(dynamodb, "shortcut", sort_key="sk", StreamSpecification=STREAM)
    dynamodb.put_item(TableName="shortcut", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "status": {"S": "held"}})
    moto_app = DomainDispatcherApplication(create_backend_app)
    passed_on: list[str] = []

    def behind_the_shortcut(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        passed_on.append(environ["PATH_INFO"])
        return moto_app(environ, start_response)

    return moto_app, moto_server.JsonTargetShortcut(behind_the_shortcut), passed_on


def answer_of(app: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    from werkzeug.test import Client

    response = Client(app).open(path, method=method, data=body, headers={"Host": "localhost:5000", **headers})
    return response.status_code, {name.lower(): value for name, value in response.headers.items()}, response.data


def streams_request(target: str, body: dict[str, Any]) -> tuple[str, str, bytes, dict[str, str]]:
    method, path, data, headers = dynamodb_request(target, body)
    return method, path, data, {**headers, "X-Amz-Target": f"DynamoDBStreams_20120810.{target}"}


SHORTCUT_CASES = [
    pytest.param(
        dynamodb_request("DescribeTable", {"TableName": "no-such-table"}),
        400,
        "ResourceNotFoundException",
        id="describe-missing-table",
    ),
    pytest.param(
        dynamodb_request("GetItem", {"TableName": "shortcut", "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}}}),
        200,
        None,
        id="get-item",
    ),
    pytest.param(
        dynamodb_request("GetItem", {"TableName": "shortcut", "Key": {"pk": {"S": "a"}}}),
        400,
        "ValidationException",
        id="get-item-missing-range-key",
    ),
    pytest.param(
        dynamodb_request(
            "Query",
            {
                "TableName": "shortcut",
                "KeyConditionExpression": "nope = :v",
                "ExpressionAttributeValues": {":v": {"S": "a"}},
            },
        ),
        400,
        "ValidationException",
        id="query-key-condition-on-a-non-key",
    ),
    pytest.param(
        dynamodb_request(
            "Query",
            {
                "TableName": "shortcut",
                "KeyConditionExpression": "pk BETWEEN :v",
                "ExpressionAttributeValues": {":v": {"S": "a"}},
            },
        ),
        400,
        "ValidationException",
        id="query-key-condition-unsupported-operator",
    ),
    pytest.param(streams_request("ListStreams", {"TableName": "shortcut"}), 200, None, id="streams-list-streams"),
    pytest.param(
        streams_request("DescribeStream", {"StreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/y"}),
        400,
        "ResourceNotFoundException",
        id="streams-describe-missing-stream",
    ),
]


@pytest.mark.parametrize(("request_parts", "status", "error"), SHORTCUT_CASES)
def test_json_target_shortcut_answers_what_moto_flask_route_answers(
    moto_apps: tuple[Any, Any, list[str]],
    request_parts: tuple[str, str, bytes, dict[str, str]],
    status: int,
    error: str | None,
) -> None:
    moto_app, shortcut, passed_on = moto_apps

    by_shortcut = answer_of(shortcut, *request_parts)
    by_moto = answer_of(moto_app, *request_parts)

    assert passed_on == []  # the shortcut answered it itself
    assert by_shortcut[0] == by_moto[0] == status
    assert json.loads(by_shortcut[2]) == json.loads(by_moto[2])
    if error is not None:
        assert json.loads(by_moto[2])["__type"].endswith(f"#{error}")
    if request_parts[3]["X-Amz-Target"].startswith("DynamoDB_"):
        assert "x-amz-crc32" in by_moto[1]  # DynamoDB's answers carry one (Streams' do not): compared below
    for headers in (by_shortcut[1], by_moto[1]):
        assert {"x-amzn-requestid", "content-type", "content-length"} <= set(headers)
        headers["x-amzn-requestid"] = "random per request"
    # CORS headers (flask_cors in moto's Flask app) have a test of their own below.
    assert without_cors(by_shortcut[1]) == without_cors(by_moto[1])


def without_cors(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if not name.startswith("access-control-") and name != "vary"}


@pytest.mark.parametrize("origin", [None, "http://localhost:8000"])
def test_json_target_shortcut_answers_cors_headers_like_moto(
    moto_apps: tuple[Any, Any, list[str]], origin: str | None
) -> None:
    moto_app, shortcut, _ = moto_apps
    method, path, body, headers = dynamodb_request("DescribeTable", {"TableName": "shortcut"})
    if origin is not None:
        headers["Origin"] = origin

    by_shortcut = answer_of(shortcut, method, path, body, headers)
    by_moto = answer_of(moto_app, method, path, body, headers)

    assert by_moto[1]["access-control-allow-origin"] == (origin or "*")  # what moto's app answers
    assert by_shortcut[1].get("access-control-allow-origin") == by_moto[1]["access-control-allow-origin"]


@pytest.mark.parametrize(
    "request_parts",
    [
        pytest.param(("GET", "/moto-api/", b"", {}), id="moto-api-dashboard"),
        pytest.param(
            (
                "POST",
                "/",
                b"Action=ListQueues&Version=2012-11-05",
                {"Content-Type": "application/x-www-form-urlencoded", "Authorization": signed_for("sqs")},
            ),
            id="sqs-query-protocol-post",
        ),
        pytest.param(
            ("GET", *dynamodb_request("ListTables", {})[1:]),
            id="dynamodb-target-on-a-get",
        ),
        pytest.param(
            ("POST", "/elsewhere", *dynamodb_request("ListTables", {})[2:]),
            id="dynamodb-target-on-another-path",
        ),
        pytest.param(
            (
                "POST",
                "/",
                b"{}",
                {
                    "Content-Type": "application/x-amz-json-1.0",
                    "X-Amz-Target": "AmazonSQS.ListQueues",
                    "Authorization": signed_for("sqs"),
                },
            ),
            id="sqs-json-target",
        ),
    ],
)
def test_json_target_shortcut_passes_every_other_request_to_moto(
    moto_apps: tuple[Any, Any, list[str]], request_parts: tuple[str, str, bytes, dict[str, str]]
) -> None:
    moto_app, shortcut, passed_on = moto_apps

    by_shortcut = answer_of(shortcut, *request_parts)
    by_moto = answer_of(moto_app, *request_parts)

    assert passed_on == [request_parts[1]]
    assert by_shortcut[0] == by_moto[0]


# Stopping


def test_sigterm_stops_the_server_promptly_with_an_sqs_long_poll_in_flight(
    dummy_credentials: None, caplog: pytest.LogCaptureFixture
) -> None:
    moto = MotoProcess()
    endpoint = moto.start()
    port = port_of(endpoint)
    queue = client("sqs", endpoint).create_queue(QueueName="stop-while-polling")["QueueUrl"]
    poll = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AmazonSQS.ReceiveMessage",
        "Authorization": signed_for("sqs"),
    }
    try:
        poll.request("POST", "/", body=json.dumps({"QueueUrl": queue, "WaitTimeSeconds": 0}), headers=headers)
        empty = poll.getresponse()
        assert (empty.status, json.loads(empty.read())) == (200, {})  # the request is routed to SQS as sent
        poll.request("POST", "/", body=json.dumps({"QueueUrl": queue, "WaitTimeSeconds": 20}), headers=headers)
        client_port = poll.sock.getsockname()[1]
        wait_for(lambda: server_side_connections(port).get(client_port) == 0, "the server to read the long poll")
        assert select.select([poll.sock], [], [], 0)[0] == []  # and it is still waiting: no answer yet
        caplog.set_level(logging.WARNING, logger=moto_server.__name__)

        moto.stop(timeout=5)  # SIGTERM; after 5 s it kills the server and logs a warning saying so
    finally:
        moto.stop(timeout=1)
        poll.close()
    warnings = [record for record in caplog.records if record.name == moto_server.__name__]
    assert [record.getMessage() for record in warnings if record.levelno >= logging.WARNING] == []
