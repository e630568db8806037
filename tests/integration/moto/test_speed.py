"""The speed work answers what moto answers: per-shape caches, plain-JSON GetRecords, cached lookups."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local.moto.speed import answers, validation
from tests.integration.moto.common import FAILED, REGION, STREAM, create_table, hold, seed, statuses, update

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
    assert {validation._item_shape(item) for item in items} <= validation._VALIDATED_SHAPES


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


# Plain-JSON Query and GetItem
# --------------------------------------------------------------------------------------


def read_items_both_ways(
    dynamodb: Any, read: Callable[[], list[dict[str, Any]]], moto_originals: dict, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What `read` answers through the plain-JSON actions and the direct projection, then through moto's own.
    The patched actions must not reach moto's serializer at all (else the patch is only a detour)."""
    from moto.core.serialize import ResponseSerializer
    from moto.dynamodb.responses import DynamoHandler

    serialized: list[str] = []
    original_serialize = ResponseSerializer.serialize

    def counting_serialize(self: Any, *args: Any, **kwargs: Any) -> Any:
        serialized.append(type(self).__name__)
        return original_serialize(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ResponseSerializer, "serialize", counting_serialize)
        patched = read()
    assert serialized == [], "an action answered through moto's serializer, not as plain JSON"
    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.dynamo_type import Item

    for name in answers.ACTIONS:
        monkeypatch.setattr(DynamoHandler, name, moto_originals[DynamoHandler, name])
    for owner, name in ((Item, "project"), (table_module, "copy"), (table_module.Table, "query")):
        monkeypatch.setattr(owner, name, moto_originals[owner, name])
    return patched, read()


def without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in answer.items() if name != "ResponseMetadata"}


def test_query_and_get_item_through_the_patch_equal_moto_serialized_answers(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb, _ = patched_moto
    dynamodb.create_table(
        TableName="rooms",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "room", "connection_id")
        ],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_room",
                "KeySchema": [
                    {"AttributeName": "room", "KeyType": "HASH"},
                    {"AttributeName": "connection_id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    for index in range(7):
        item = {**RICH_ITEM, "pk": {"S": f"c{index}"}, "sk": {"S": "x"}, "room": {"S": "r1"}}
        dynamodb.put_item(TableName="rooms", Item={**item, "connection_id": {"S": f"c{index}"}, "blob": {"B": b"\x00"}})

    def read() -> list[dict[str, Any]]:
        answers = []
        start: dict[str, Any] = {}
        while True:  # pages of 3 from the index: LastEvaluatedKey present, then absent
            page = dynamodb.query(
                TableName="rooms",
                IndexName="by_room",
                KeyConditionExpression="room = :r",
                ExpressionAttributeValues={":r": {"S": "r1"}},
                Limit=3,
                **start,
            )
            answers.append(without_metadata(page))
            if "LastEvaluatedKey" not in page:
                break
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        key = {"pk": {"S": "c2"}, "sk": {"S": "x"}}
        answers.append(
            without_metadata(
                dynamodb.query(
                    TableName="rooms",
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "c2"}},
                    ReturnConsumedCapacity="TOTAL",
                )
            )
        )
        answers.append(without_metadata(dynamodb.get_item(TableName="rooms", Key=key, ConsistentRead=True)))
        answers.append(
            without_metadata(dynamodb.get_item(TableName="rooms", Key=key, ProjectionExpression="meta.tags"))
        )
        answers.append(
            without_metadata(dynamodb.get_item(TableName="rooms", Key={"pk": {"S": "no"}, "sk": {"S": "x"}}))
        )
        return answers

    patched, by_moto = read_items_both_ways(dynamodb, read, moto_originals, monkeypatch)

    assert patched == by_moto
    assert [len(answer.get("Items", ())) for answer in patched[:3]] == [3, 3, 1]
    assert patched[3]["Items"][0]["meta"] == RICH_ITEM["meta"] and patched[3]["Items"][0]["blob"] == {"B": b"\x00"}
    assert patched[-1] == {}  # no such item: no Item member at all


def test_writes_through_the_patch_answer_what_moto_serializes(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same writes on two like tables, the first answered as plain JSON, the second by moto's serializer."""
    dynamodb, _ = patched_moto
    for table in ("plain", "moto"):
        create_table(dynamodb, table)
    tables = iter(("plain", "moto"))

    def write() -> list[dict[str, Any]]:
        table = next(tables)
        key = {"pk": {"S": "a"}}
        calls: list[dict[str, Any]] = [
            dynamodb.put_item(TableName=table, Item=RICH_ITEM, ReturnConsumedCapacity="TOTAL"),
            dynamodb.put_item(TableName=table, Item={**RICH_ITEM, "flag": {"BOOL": True}}, ReturnValues="ALL_OLD"),
        ]
        for returned in ("ALL_NEW", "UPDATED_NEW", "UPDATED_OLD", "ALL_OLD", "NONE"):
            calls.append(
                dynamodb.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET price = price + :p, meta.note = :n",
                    ExpressionAttributeValues={":p": {"N": "1"}, ":n": {"S": returned}},
                    ReturnValues=returned,
                )
            )
        calls.append(
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {"pk": {"S": "b"}, "status": {"S": "held"}}}},
                    {
                        "Update": {
                            "TableName": table,
                            "Key": key,
                            "UpdateExpression": "REMOVE flag",
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                ]
            )
        )
        calls.append(
            dynamodb.batch_write_item(
                RequestItems={
                    table: [
                        {"PutRequest": {"Item": {"pk": {"S": "c"}, "status": {"S": "available"}}}},
                        {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}},
                    ]
                }
            )
        )
        calls.append(
            dynamodb.batch_get_item(RequestItems={table: {"Keys": [key, {"pk": {"S": "c"}}], "ConsistentRead": True}})
        )
        calls.append(dynamodb.scan(TableName=table, Limit=1))
        calls.append(dynamodb.delete_item(TableName=table, Key={"pk": {"S": "c"}}, ReturnValues="ALL_OLD"))
        calls.append(dynamodb.delete_item(TableName=table, Key={"pk": {"S": "none"}}))
        # The table's name is in some answers (ConsumedCapacity, Responses): compare them as if one table.
        return [json.loads(json.dumps(without_metadata(call), default=repr).replace(table, "T")) for call in calls]

    plain, by_moto = read_items_both_ways(dynamodb, write, moto_originals, monkeypatch)

    assert plain == by_moto
    assert plain[2]["Attributes"]["meta"]["M"]["note"] == {"S": "ALL_NEW"}  # answers carry their items
    assert [len(plain[i].get("Attributes", {})) > 0 for i in range(2, 7)] == [True, True, True, True, False]
    assert len(plain[9]["Responses"]["T"]) == 2 and len(plain[10]["Items"]) == 1


def test_a_refused_write_is_still_moto_own_error(patched_moto: tuple[Any, Any]) -> None:
    """A condition that fails raises inside the action: moto serializes that error, item and reasons included."""
    dynamodb, _ = patched_moto
    create_table(dynamodb, "refusals")
    dynamodb.put_item(TableName="refusals", Item={"pk": {"S": "a"}, "status": {"S": "held"}})

    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(
            TableName="refusals",
            Item={"pk": {"S": "a"}, "status": {"S": "sold"}},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert refused.value.response["Item"] == {"pk": {"S": "a"}, "status": {"S": "held"}}


def test_projection_onto_names_equals_moto_projection(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any]
) -> None:
    """Item.project onto top-level names copies them; anything else is still moto's own projection."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    item = Item(DynamoType({"S": "a"}), None, {**RICH_ITEM, "blob": {"B": b"\x00\x01"}, "n": {"N": "12.50"}})
    by_moto = moto_originals[Item, "project"]
    cases = [
        [["pk"], ["status"]],  # an index's keys
        [["pk"], ["missing"], ["n"], ["blob"], ["meta"], ["seats"], ["flag"]],
        [["pk"], ["pk"]],
        [],
        [["meta", "tags"], ["pk"]],  # a nested path: moto's way
        [["seats[0]"]],  # a list element: moto's way
    ]
    for paths in cases:
        projected = item.project(paths)
        # As plain Python (sets as sets): moto's round trip through a set may reorder a set's members.
        assert projected.to_regular_json() == by_moto(item, paths).to_regular_json(), paths
        assert (projected.hash_key, projected.range_key) == (item.hash_key, item.range_key)
    copied = item.project([["meta"]])
    copied.attrs["meta"].value["note"] = DynamoType({"S": "changed"})
    assert item.attrs["meta"].value["note"] == DynamoType({"S": "Grand Budapest \u00fc \u2713"})  # a copy


def test_a_projecting_index_query_answers_copies_and_an_unknown_index_is_still_refused(
    patched_moto: tuple[Any, Any], moto_originals: dict[tuple[Any, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without moto's copy before projecting, what a query answers still shares nothing with the table's items."""
    from moto.dynamodb.models import table as table_module

    dynamodb, backend = patched_moto
    dynamodb.create_table(
        TableName="people",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "room")],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": name,
                "KeySchema": [{"AttributeName": "room", "KeyType": "HASH"}],
                "Projection": projection,
            }
            for name, projection in (
                ("keys", {"ProjectionType": "KEYS_ONLY"}),
                ("some", {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["meta"]}),
                ("all", {"ProjectionType": "ALL"}),
            )
        ],
    )
    dynamodb.put_item(TableName="people", Item={**RICH_ITEM, "pk": {"S": "p1"}, "room": {"S": "r"}})
    table = backend.get_table("people")
    stored = table.get_item(DynamoType_of("p1"))

    for index, names in (("keys", {"pk", "room"}), ("some", {"pk", "room", "meta"}), ("all", set(stored.attrs))):
        (item,), _, _ = table.query(
            None, None, [], None, None, True, None, index_name=index, hash_key_conditions=[("room", DynamoType_of("r"))]
        )
        assert set(item.attrs) == names
        for name in names:
            assert item.attrs[name] == stored.attrs[name] and item.attrs[name] is not stored.attrs[name]
    (item,), _, _ = table.query(
        None, None, [], None, None, True, None, index_name="some", hash_key_conditions=[("room", DynamoType_of("r"))]
    )
    item.attrs["meta"].value["note"] = DynamoType_of("changed")
    assert stored.attrs["meta"].value["note"] == DynamoType_of("Grand Budapest \u00fc \u2713")

    def unknown_index() -> dict[str, Any]:
        with pytest.raises(ClientError) as refused:
            dynamodb.query(
                TableName="people",
                IndexName="nope",
                KeyConditionExpression="room = :r",
                ExpressionAttributeValues={":r": {"S": "r"}},
            )
        return refused.value.response["Error"]

    patched = unknown_index()
    monkeypatch.setattr(table_module.Table, "query", moto_originals[table_module.Table, "query"])
    assert patched == unknown_index()  # moto's own refusal, whatever it is


def DynamoType_of(text: str) -> Any:  # noqa: N802 - reads as the moto type it builds
    from moto.dynamodb.models.dynamo_type import DynamoType

    return DynamoType({"S": text})
