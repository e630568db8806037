"""Correctness fix: TransactWriteItems that checks every item, then applies them all, without copying tables.

Upstream behaviour fixed: moto 5.2.5's `DynamoDBBackend.transact_write_items` (moto/dynamodb/models/__init__.py)
deep-copies every table it touches, stream history included, on every call (52 ms on average, 3 s at worst on
this machine, growing with the data), and on a cancelled transaction swaps the copies in, which orphans open
stream iterators (a stream reader then never sees later changes). Drop this when moto stops copying
(`patches.check_transactions` warns when the installed moto no longer does).
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

TRANSACT_ITEMS_MAX = 100

_WRITES = ("Put", "Update", "Delete")
_OPERATIONS = ("ConditionCheck", *_WRITES)
_PASSED: tuple[None, None, None] = (None, None, None)


@dataclass(frozen=True)
class _Checked:
    """One TransactItem after the check phase; `reason` is moto's (code, message, old item) triple."""

    op_type: str
    op: dict[str, Any]
    key: dict[str, Any] | None
    reason: tuple[Any, Any, Any]


def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """Check every item against the current state, then apply them all; never copy a table.

    Raises what moto raises: TooManyTransactionsException, TransactWriteSingleOpException,
    MultipleTransactionsException and other ValidationExceptions as themselves, and
    TransactionCanceledException with one reason per item when any check fails.
    """
    from moto.dynamodb.exceptions import (
        TooManyTransactionsException,
        TransactionCanceledException,
    )

    if len(transact_items) > TRANSACT_ITEMS_MAX:
        raise TooManyTransactionsException()
    claimed: set[tuple[str, str]] = set()
    checked = [_check(backend, entry, claimed) for entry in transact_items]
    if any(item.reason[0] is not None for item in checked):
        raise TransactionCanceledException([item.reason for item in checked])
    _apply(backend, checked)


def _check(backend: Any, entry: dict[str, Any], claimed: set[tuple[str, str]]) -> _Checked:
    """Condition and rehearse one item, in the order moto's own loop does."""
    from moto.dynamodb.exceptions import (
        MockValidationException,
        TransactWriteSingleOpException,
    )

    if len(entry) > 1:
        raise TransactWriteSingleOpException()
    op_type, op = next(iter(entry.items()))
    key = None
    try:
        key = _key_of(backend, op_type, op)
        _claim(claimed, op["TableName"], key)
        current = backend.get_item(op["TableName"], key)
        reason = _condition_failure(op, current)
        if reason is None and op_type in _WRITES and _needs_rehearsal(op_type, op):
            _rehearse(backend, op_type, op, key, current)
            if REHEARSED is not None:
                REHEARSED.add(_rehearsal_key(op_type, op))
        return _Checked(op_type, op, key, reason or _PASSED)
    except MockValidationException:
        raise
    except Exception as error:  # moto makes any other failure that item's cancellation reason
        return _Checked(op_type, op, key, (type(error).__name__, str(error), None))


def _key_of(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type not in _OPERATIONS:
        raise ValueError("Unsupported transaction operation")
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _claim(claimed: set[tuple[str, str]], table_name: str, key: dict[str, Any]) -> None:
    from moto.dynamodb.exceptions import MultipleTransactionsException

    item = (str(table_name), str(dict(sorted(key.items()))))
    if item in claimed:
        raise MultipleTransactionsException()
    claimed.add(item)


def _condition_failure(op: dict[str, Any], current: Any) -> tuple[str, str, Any] | None:
    """None when the item's condition holds (or it has none), else moto's ConditionalCheckFailed reason."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    expression = op.get("ConditionExpression")
    if expression is None:
        return None
    condition = get_filter_expression(
        expression,
        op.get("ExpressionAttributeNames"),
        op.get("ExpressionAttributeValues"),
    )
    if condition.expr(current):
        return None
    old_item = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        old_item = current.to_json()["Attributes"]
    return ("ConditionalCheckFailed", str(ConditionalCheckFailed().message), old_item)


class _ScratchBackend:
    """Just enough of a DynamoDBBackend for moto's write methods to run against one scratch table."""

    def __init__(self, backend: Any, table: Any) -> None:
        self._backend = backend
        self._table = table

    def get_table(self, table_name: str) -> Any:
        return self._table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


# Update shapes (expression text, names, value types) that already passed a rehearsal, when the speed work is
# on (local/moto/speed): None rehearses every write. The app sends the same few shapes over and over;
# rehearsing each was about a sixth of moto's time per transaction. A new shape, or the same text with other
# value types, is still rehearsed before anything is applied.
REHEARSED: set[tuple] | None = None
_REHEARSED_MAX = 4096


def _rehearsal_key(op_type: str, op: dict[str, Any]) -> tuple:
    values = op.get("ExpressionAttributeValues") or {}
    value_types = tuple(sorted((name, next(iter(value)) if value else "") for name, value in values.items()))
    names = tuple(sorted((op.get("ExpressionAttributeNames") or {}).items()))
    return (op_type, op.get("TableName"), op.get("UpdateExpression"), names, value_types)


def _needs_rehearsal(op_type: str, op: dict[str, Any]) -> bool:
    if op_type != "Update" or REHEARSED is None:
        return True  # puts and deletes are cheap to rehearse and carry whole items
    if len(REHEARSED) > _REHEARSED_MAX:
        REHEARSED.clear()
    return _rehearsal_key(op_type, op) not in REHEARSED


def _rehearse(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any], current: Any) -> None:
    """Run moto's own write against a throwaway table holding a copy of just this item.

    moto validates much of a write only while applying it (update expression operand types, item size, key
    types...). Failing here, before anything is applied, keeps the transaction all-or-nothing.
    """
    scratch = _ScratchBackend(backend, _scratch_table(backend.get_table(op["TableName"]), current))
    _write(scratch, op_type, op, key)


def _scratch_table(table: Any, current: Any) -> Any:
    # Shallow: the live items and stream shard are replaced just below.
    scratch = copy.copy(table)
    scratch.items = defaultdict(dict)
    scratch.stream_shard = None
    if current is not None:
        # One item (moto's Item.__deepcopy__ is cheap), never the table.
        item = copy.deepcopy(current)
        if current.range_key is None:
            scratch.items[current.hash_key] = item
        else:
            scratch.items[current.hash_key][current.range_key] = item
    return scratch


def _apply(backend: Any, checked: list[_Checked]) -> None:
    applied = 0
    try:
        for item in checked:
            if item.op_type in _WRITES:
                _write(backend, item.op_type, item.op, item.key)
                applied += 1
    except Exception:
        # Only reachable if the rehearsal missed a check moto makes: say loudly that atomicity was lost.
        logger.exception("TransactWriteItems failed after applying %d write(s)", applied)
        raise


def _write(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any] | None) -> None:
    """One Put/Update/Delete through moto's own backend methods, so stream records are produced as usual.

    Called unbound so `backend` may be the real backend or a _ScratchBackend; the arguments are the ones
    moto's own transact_write_items passes.
    """
    from moto.dynamodb.models import DynamoDBBackend

    table_name = op["TableName"]
    expression = {
        # The condition was already evaluated in _check, under the same table lock: parsing and
        # evaluating it again here (for the rehearsal and again for the write) was a third of the cost.
        "condition_expression": None,
        "expression_attribute_names": op.get("ExpressionAttributeNames"),
        "expression_attribute_values": op.get("ExpressionAttributeValues"),
    }
    if op_type == "Put":
        DynamoDBBackend.put_item(backend, table_name, op["Item"], **expression)
    elif op_type == "Delete":
        DynamoDBBackend.delete_item(backend, table_name, key, **expression)
    else:
        DynamoDBBackend.update_item(
            backend,
            table_name,
            key,
            update_expression=op["UpdateExpression"],
            **expression,
        )


def patches() -> list[tuple[Any, str, Any]]:
    from moto.dynamodb.models import DynamoDBBackend

    return [(DynamoDBBackend, "transact_write_items", transact_write_items)]
