"""TransactWriteItems without table copies: all or nothing, moto's own reasons and errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.moto import transactions
from tests.integration.moto.common import (
    FAILED,
    STREAM,
    client,
    create_table,
    hold,
    latest_iterator,
    seed,
    statuses,
    update,
)

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
        transactions.transact_write_items(backend, [{"ConditionCheck": {}}] * 101)


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


def test_stock_moto_copies_the_table_and_swaps_it_on_cancel(
    stock_moto: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What transactions.py fixes: the same two transactions on moto as released."""
    from moto.dynamodb.models.table import Table

    dynamodb, backend = stock_moto
    create_table(dynamodb, "big", StreamSpecification=STREAM)
    seed(dynamodb, "big", *(f"t{n}" for n in range(20)))
    table = backend.tables["big"]
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

    assert Table in copied
    assert backend.tables["big"] is not table  # the copy swapped in: open stream iterators point at the old one
