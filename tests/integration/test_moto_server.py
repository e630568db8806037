"""The local moto server: serialized table requests, the TransactWriteItems patch, streams, SQS long polls.

Most tests talk to a real server process over HTTP; the patch internals are also checked in-process
against moto's own backend (mock_aws), where copies can be counted.
"""

from __future__ import annotations

import copy
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
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


def create_table(dynamodb: Any, name: str, **extra: Any) -> None:
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
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
def patched_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """moto in-process with this server's patches applied (and undone afterwards): (client, backend)."""
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    for owner, name, replacement in moto_server.moto_patches():
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
