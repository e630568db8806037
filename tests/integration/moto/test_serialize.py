"""Requests serialized per service family; SQS long polls out of every other request's way."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.moto import serialize
from tests.integration.moto.common import client, create_table, seed, signed_for

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
        "tables": (serialize.TABLES_LOCK,),
        "queues": (serialize.QUEUES_LOCK,),
        "others": (serialize.OTHERS_LOCK,),
        "all": serialize.ALL_LOCKS,
    }

    assert serialize.locks_for(environ) == families[expected]


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


# What serialize.py fixes, shown on moto's own app with and without it (in-process, forced interleaving)
# --------------------------------------------------------------------------------------


def _json_call(app: Any, service: str, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from werkzeug.test import Client

    answer = Client(app).post(
        "/",
        data=json.dumps(body),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": target,
            "Authorization": signed_for(service),
        },
    )
    return answer.status_code, json.loads(answer.get_data() or b"{}")


@pytest.fixture
def moto_app(dummy_credentials: None) -> Iterator[Any]:
    """moto's own server app, in this process, exactly as released (no patches); a fresh state per test."""
    from moto import mock_aws
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    with mock_aws():
        yield DomainDispatcherApplication(create_backend_app)


def _hold_twice_at_once(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Two conditional holds of one available item; both threads pass the condition before either writes,
    when nothing stops them. Returns the two HTTP statuses."""
    from moto.dynamodb import models

    _json_call(
        app,
        "dynamodb",
        "DynamoDB_20120810.CreateTable",
        {
            "TableName": "interleave",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    item = {"pk": {"S": "seat"}, "status": {"S": "available"}}
    _json_call(app, "dynamodb", "DynamoDB_20120810.PutItem", {"TableName": "interleave", "Item": item})
    both_checked = threading.Barrier(2, timeout=2.0)
    real_parser = models.create_condition_expression_parser

    def parser_waiting_after_the_check(*args: Any, **kwargs: Any) -> Any:
        parser = real_parser(*args, **kwargs)
        parse = parser.parse

        def parse_then_wait() -> Any:
            condition = parse()
            expr = condition.expr

            def checked(item: Any) -> bool:
                verdict = expr(item)
                try:
                    both_checked.wait()  # the other request checks too before either writes
                except threading.BrokenBarrierError:
                    pass  # it could not get in: serialized
                return verdict

            condition.expr = checked
            return condition

        parser.parse = parse_then_wait
        return parser

    monkeypatch.setattr(models, "create_condition_expression_parser", parser_waiting_after_the_check)
    hold = {
        "TableName": "interleave",
        "Key": {"pk": {"S": "seat"}},
        "UpdateExpression": "SET #s = :held",
        "ConditionExpression": "#s = :available",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":held": {"S": "held"}, ":available": {"S": "available"}},
    }
    with ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(_json_call, app, "dynamodb", "DynamoDB_20120810.UpdateItem", hold) for _ in range(2)]
        return sorted(call.result()[0] for call in calls)


def test_stock_moto_grants_one_item_to_two_concurrent_conditional_writes(
    moto_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _hold_twice_at_once(moto_app, monkeypatch) == [200, 200]


def test_serialized_moto_grants_the_item_once_under_the_same_interleaving(
    moto_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _hold_twice_at_once(serialize.SerializedApp(moto_app), monkeypatch) == [200, 400]


def _poll_then_send(app: Any) -> list[str]:
    """A 3 s long poll on an empty queue, and a send 0.3 s into it: which answers first, and what the poll got."""
    _, created = _json_call(app, "sqs", "AmazonSQS.CreateQueue", {"QueueName": "long-poll"})
    url = created["QueueUrl"]
    order: list[str] = []

    def poll() -> None:
        _, answer = _json_call(app, "sqs", "AmazonSQS.ReceiveMessage", {"QueueUrl": url, "WaitTimeSeconds": 3})
        order.append(f"poll got {len(answer.get('Messages', []))}")

    def send() -> None:
        time.sleep(0.3)
        _json_call(app, "sqs", "AmazonSQS.SendMessage", {"QueueUrl": url, "MessageBody": "wake up"})
        order.append("sent")

    threads = [threading.Thread(target=poll), threading.Thread(target=send)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return order


def test_stock_wait_holding_the_queue_lock_delays_a_send_until_the_poll_gives_up(
    moto_app: Any,
) -> None:
    # The queue lock alone (serialize.py's lock, without its long-poll release): the send waits out the poll.
    assert _poll_then_send(serialize.SerializedApp(moto_app)) == ["poll got 0", "sent"]


def test_a_long_poll_waits_outside_the_queue_lock_and_is_woken_by_the_send(
    moto_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for owner, name, replacement in serialize.patches():
        monkeypatch.setattr(owner, name, replacement)
    assert _poll_then_send(serialize.SerializedApp(moto_app)) == ["sent", "poll got 1"]
