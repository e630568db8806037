"""Speed: a TransactWriteItems item shape that moto's request validation accepted once is not validated again.

moto's validation (expression syntax, reserved words, unused or missing names and values) depends only on each
item's shape; the checks that depend on values (empty key attributes) and on the tables still run every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_SHAPES_MAX = 2048

# moto's own message for an empty key in a transaction's Update (moto/dynamodb/responses.py).
_EMPTY_KEY_MESSAGE = (
    "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an "
    "empty string value. Key: {}"
)
# (op, table, condition, update, names, value placeholders and types) of items moto's validation accepted.
_VALIDATED_SHAPES: set[tuple] = set()


def _item_shape(entry: dict[str, Any]) -> tuple:
    op_type, op = next(iter(entry.items()))
    values = op.get("ExpressionAttributeValues")
    return (
        tuple(entry),
        op.get("TableName"),
        op.get("ConditionExpression"),
        op.get("UpdateExpression"),
        tuple(sorted((op.get("ExpressionAttributeNames") or {}).items())),
        # Value types too: moto rejects some operand types while validating (e.g. NULL in BETWEEN).
        None if values is None else tuple(sorted((name, tuple(value)) for name, value in values.items())),
    )


def validating_each_shape_once(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """DynamoHandler.transact_write_items: moto's request validation (expression syntax, reserved words,
    unused or missing names and values) depends only on each item's shape, so a shape it accepted once is
    not parsed for validation again. The checks that depend on values (empty key attributes) and on the
    tables still run every time."""

    def transact_write_items(handler: Any) -> Any:
        from moto.core.responses import ActionResult
        from moto.dynamodb.exceptions import TransactionCanceledException
        from moto.dynamodb.responses import validate_put_has_empty_keys

        items = handler.body["TransactItems"]
        shapes = [_item_shape(entry) for entry in items if len(entry) == 1]
        if len(shapes) != len(items) or not _VALIDATED_SHAPES.issuperset(shapes):
            try:
                result = original(handler)
            except TransactionCanceledException:
                _remember(shapes)  # validation passed, then a condition failed
                raise
            _remember(shapes)
            return result
        backend = handler.dynamodb_backend
        for entry in items:  # what moto's validation checks per request, in its order
            op_type, op = next(iter(entry.items()))
            if op_type == "Put":
                validate_put_has_empty_keys(op["Item"], backend.get_table(op["TableName"]))
            elif op_type == "Update":
                table = backend.get_table(op["TableName"])
                validate_put_has_empty_keys(op["Key"], table, custom_error_msg=_EMPTY_KEY_MESSAGE)
        backend.transact_write_items(items)
        return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})

    return transact_write_items


def _remember(shapes: list[tuple]) -> None:
    if len(_VALIDATED_SHAPES) + len(shapes) > _SHAPES_MAX:
        _VALIDATED_SHAPES.clear()
    _VALIDATED_SHAPES.update(shapes)
