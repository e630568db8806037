"""moto's server in its own process, made safe for the seat-lock tests.

Why a separate process: one Python process uses one core, and moto is the busiest component of the local
stack. Why the locks and patches: moto's backends are not atomic under threads, and moto 5.2.5's
TransactWriteItems deep-copies whole tables on every call (see DESIGN.md, "Pitfalls measured on this machine").
The rest is speed, measured under `make bench` (README "Performance"): served from aiohttp (WsgiBridge),
DynamoDB requests past Flask (JsonTargetShortcut), and per-request work moto repeats for the same few
expression shapes done once; every one answers what moto itself answers (tests/integration/test_moto_server.py).

Everything moto-specific is imported lazily, so the process that only spawns and stops the server
(`MotoProcess`) never pays for importing moto.

Run it in the foreground for debugging: `python -m local.moto_server --host 127.0.0.1 --port 5000`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import http.client
import inspect
import io
import ipaddress
import itertools
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from multidict import CIMultiDict

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.synchronize import Event as ProcessEvent


logger = logging.getLogger(__name__)

# The moto versions whose internals the patches below were read against: [low, high).
MOTO_VERSIONS_CHECKED = ((5, 2), (5, 3))
# Per stream shard. moto keeps every record forever; a long `make run` would only grow. The pollers read
# within milliseconds; 3,000 changes is over ten seconds of a rush. A reader further behind than that is
# told TrimmedDataAccessException and goes on from the oldest kept record (local/pollers.py logs it).
STREAM_RECORDS_KEPT = 3_000
# What AWS documents for a shard iterator; moto keeps them forever too (one per GetRecords call).
STREAM_ITERATOR_LIFETIME_SECONDS = 15 * 60
TRANSACT_ITEMS_MAX = 100

_DYNAMODB_TARGETS = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")
_SQS_TARGET = "AmazonSQS."
# Query-protocol SQS clients send no X-Amz-Target; their signature still names the service.
_SQS_SIGNING_SCOPE = "/sqs/aws4_request"
_PROBE_PATH = "/moto-api/config"
_LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# --------------------------------------------------------------------------------------
# Locks: one request at a time per service family.
# --------------------------------------------------------------------------------------

# Tables and their streams share one lock: a stream read must never see half of a transaction.
_TABLES_LOCK = threading.Lock()
# SQS gets its own lock so a long poll never stalls a table call; moto rebuilds its message lists without
# locking (delete_message racing send_message can lose a message), hence a lock at all.
_QUEUES_LOCK = threading.Lock()
# Everything else (sts, ssm, secretsmanager...): rare and cheap, but just as thread-unsafe.
_OTHERS_LOCK = threading.Lock()
# Always acquired in this order, and only /moto-api takes more than one: no deadlock.
_ALL_LOCKS = (_TABLES_LOCK, _QUEUES_LOCK, _OTHERS_LOCK)
# Lets the SQS long-poll patch know whether this request thread holds _QUEUES_LOCK.
_held = threading.local()


def locks_for(environ: dict[str, Any]) -> tuple[threading.Lock, ...]:
    """The locks a request must hold for its whole handling."""
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return _ALL_LOCKS  # reset and the dashboard touch every backend
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith(_DYNAMODB_TARGETS):
        return (_TABLES_LOCK,)
    if target.startswith(_SQS_TARGET) or _SQS_SIGNING_SCOPE in environ.get("HTTP_AUTHORIZATION", ""):
        return (_QUEUES_LOCK,)
    return (_OTHERS_LOCK,)


@contextlib.contextmanager
def _holding(locks: tuple[threading.Lock, ...]) -> Iterator[None]:
    for lock in locks:
        lock.acquire()
    _held.queues = _QUEUES_LOCK in locks
    try:
        yield
    finally:
        _held.queues = False
        for lock in reversed(locks):
            lock.release()


class SerializedApp:
    """WSGI wrapper running each request, response body included, under its service's lock."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # wsgi.input is already in memory (WsgiBridge reads the whole body first): no slow client can
        # hold a lock.
        with _holding(locks_for(environ)):
            return [_drain(self._app(environ, start_response))]


def _drain(result: Iterable[bytes]) -> bytes:
    """Consume and close a WSGI response: a lazy body would otherwise run moto code after the lock is gone."""
    try:
        return b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


# --------------------------------------------------------------------------------------
# TransactWriteItems without table copies.
#
# DROP THIS PATCH when moto stops deep-copying tables in DynamoDBBackend.transact_write_items
# (moto/dynamodb/models/__init__.py; 5.2.5 copies every touched table, stream history included, and swaps the
# copy in on cancellation, which orphans open stream iterators). `install_patches` logs a warning when the
# installed moto no longer copies.
# --------------------------------------------------------------------------------------

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
            _REHEARSED.add(_rehearsal_key(op_type, op))
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


# Update shapes (expression text, names, value types) that already passed a rehearsal. The app sends the
# same few shapes over and over; rehearsing each was about a sixth of moto's time per transaction. A new
# shape, or the same text with other value types, is still rehearsed before anything is applied.
_REHEARSED: set[tuple] = set()
_REHEARSED_MAX = 4096


def _rehearsal_key(op_type: str, op: dict[str, Any]) -> tuple:
    values = op.get("ExpressionAttributeValues") or {}
    value_types = tuple(sorted((name, next(iter(value)) if value else "") for name, value in values.items()))
    names = tuple(sorted((op.get("ExpressionAttributeNames") or {}).items()))
    return (op_type, op.get("TableName"), op.get("UpdateExpression"), names, value_types)


def _needs_rehearsal(op_type: str, op: dict[str, Any]) -> bool:
    if op_type != "Update":
        return True  # puts and deletes are cheap to rehearse and carry whole items
    if len(_REHEARSED) > _REHEARSED_MAX:
        _REHEARSED.clear()
    return _rehearsal_key(op_type, op) not in _REHEARSED


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


# --------------------------------------------------------------------------------------
# Stream memory: bounded records, expiring iterators.
# --------------------------------------------------------------------------------------


def trim_stream_shard(shard: Any, keep: int) -> None:
    """Drop a shard's oldest records once it holds a tenth more than `keep` (amortised, not per record).

    moto numbers a record `starting_sequence_number + its list index` and reads by that difference, so
    advancing the start by the number dropped keeps every sequence number, and every open iterator's
    position, meaning the same record. TRIM_HORIZON then starts at the oldest record kept, as on AWS.
    """
    excess = len(shard.items) - keep
    if excess < max(1, keep // 10):
        return
    del shard.items[:excess]
    shard.starting_sequence_number += excess


def expire_iterators(iterators: dict[str, Any], created_before: float) -> None:
    """Forget shard iterators created before the cutoff.

    moto inserts each iterator when it creates it, so dict order is age order: stop at the first young one.
    """
    stale = list(
        itertools.takewhile(
            lambda arn: getattr(iterators[arn], "created_at", 0.0) < created_before,
            iterators,
        )
    )
    for arn in stale:
        del iterators[arn]


def _streams_error(code: str, message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError(code, message)


def _trimming_add(original: Callable[..., None]) -> Callable[..., None]:
    def add(shard: Any, old: Any, new: Any) -> None:
        original(shard, old, new)
        trim_stream_shard(shard, STREAM_RECORDS_KEPT)

    return add


def _horizon_checked_get(
    original: Callable[..., list[Any]],
) -> Callable[..., list[Any]]:
    def get(shard: Any, start: int, quantity: int) -> list[Any]:
        # moto would fail an assert (HTTP 500); AWS answers this for an iterator behind the trim horizon.
        if start < shard.starting_sequence_number:
            raise _streams_error(
                "TrimmedDataAccessException",
                "The requested records are beyond the trim horizon; get a new shard iterator.",
            )
        return original(shard, start, quantity)

    return get


def _timestamped_init(original: Callable[..., None]) -> Callable[..., None]:
    def __init__(iterator: Any, *args: Any, **kwargs: Any) -> None:
        original(iterator, *args, **kwargs)
        iterator.created_at = time.monotonic()

    return __init__


def _expiring_get_records(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_records(backend: Any, iterator_arn: str, limit: int) -> Any:
        expire_iterators(backend.shard_iterators, time.monotonic() - STREAM_ITERATOR_LIFETIME_SECONDS)
        # moto itself would raise KeyError (HTTP 500) for an iterator it does not know.
        if iterator_arn not in backend.shard_iterators:
            raise _streams_error(
                "ExpiredIteratorException",
                "Iterator expired; get a new shard iterator.",
            )
        return original(backend, iterator_arn, limit)

    return get_records


# moto's BaseModel appends every instance it ever creates to a class-level list, only for the /moto-api
# dashboard. For these services that is every item version, query result copy, stream record, shard
# iterator and received message: trimming streams would free nothing while those lists hold them.
_UNTRACKED_SERVICES = frozenset({"dynamodb", "dynamodbstreams", "sqs"})


def _selectively_tracked_new(base: type) -> Callable[..., Any]:
    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance = super(base, cls).__new__(cls)  # type: ignore[misc]
        # The same service key moto's InstanceTrackerMeta files classes under.
        if cls.__module__.split(".")[1] not in _UNTRACKED_SERVICES:
            cls.instances_tracked.append(instance)  # type: ignore[attr-defined]
        return instance

    return __new__


# --------------------------------------------------------------------------------------
# SQS long polls: never hold a lock while waiting.
# --------------------------------------------------------------------------------------


def _wait_outside_queue_lock(original: Callable[..., None]) -> Callable[..., None]:
    """moto's ReceiveMessage waits in Queue.wait_for_messages (a Condition, up to 1 s per round) until
    messages arrive or WaitTimeSeconds pass: release the SQS lock meanwhile, so a SendMessage can get in
    and wake the poll, and take it back before moto touches the queue again."""

    def wait_for_messages(queue: Any, timeout: int) -> None:
        if not getattr(_held, "queues", False):
            return original(queue, timeout)
        _QUEUES_LOCK.release()
        try:
            return original(queue, timeout)
        finally:
            _QUEUES_LOCK.acquire()

    return wait_for_messages


# --------------------------------------------------------------------------------------
# Work moto repeats on every request for the same few expression shapes.
#
# The app sends a handful of expression texts over and over; moto parses each one twice per request (once
# to validate the request, once to apply it) and re-serializes stream records through a generic,
# shape-walking serializer. Each cache below keys on everything its result depends on, and a miss runs
# moto's own code, so errors and results stay moto's.
# --------------------------------------------------------------------------------------

_PARSE_CACHE_MAX = 2048


def _cached_update_parser(original: Callable[[str], Any]) -> Any:
    """UpdateExpressionParser.make by text. Callers only read the tree: moto's Validator works on its own
    copy of it (made by `_copy_tree` below from the pickle kept here, about 5x cheaper than deepcopy)."""
    import pickle

    trees: dict[str, Any] = {}

    def make(cls: type, expression_str: str) -> Any:
        tree = trees.get(expression_str)
        if tree is None:
            tree = original(expression_str)  # moto's own error for a bad expression: nothing cached
            # Copies made from the pickle carry the verdict; see _counting_clauses_once.
            tree._clause_counts_ok = _clause_counts_ok(tree)
            tree._pickled = pickle.dumps(tree)
            if len(trees) >= _PARSE_CACHE_MAX:
                trees.clear()
            trees[expression_str] = tree
        return tree

    return classmethod(make)


def _clause_counts_ok(tree: Any) -> bool:
    """Whether moto's ActionCountValidator accepts this tree (at most one SET/REMOVE/ADD clause)."""
    import pickle

    from moto.dynamodb.exceptions import TooManyClauses
    from moto.dynamodb.parsing.validators import ActionCountValidator

    try:
        ActionCountValidator().traverse(pickle.loads(pickle.dumps(tree)))  # it may rewrite: a copy
    except TooManyClauses:
        return False
    return True


def _counting_clauses_once(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """ActionCountValidator.traverse: its verdict depends only on the tree's clause structure, i.e. on the
    expression text, and moto ran it on every node of every request (a quadratic search, a quarter of an
    update's CPU). A copy of a cached tree that passed skips it; anything else is checked by moto."""

    def traverse(validator: Any, root: Any) -> Any:
        if getattr(root, "_clause_counts_ok", False):
            return root
        return original(validator, root)

    return traverse


def _copy_tree(tree: Any, memo: Any = None) -> Any:
    """The `deepcopy` moto's Validator makes of an update expression tree before rewriting it."""
    import pickle

    blob = getattr(tree, "_pickled", None)
    if blob is None or memo is not None:
        return copy.deepcopy(tree, memo)
    return pickle.loads(blob)


def _cached_condition_lexer(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """ConditionExpressionParser._lex_condition_expression by text: the tokens depend on nothing else.
    Names and values are still resolved by moto for every request."""
    from collections import deque

    tokens: dict[str, tuple[Any, ...]] = {}

    def lex(parser: Any) -> Any:
        text = parser.condition_expression
        cached = tokens.get(text)
        if cached is None:
            nodes = original(parser)
            if len(tokens) >= _PARSE_CACHE_MAX:
                tokens.clear()
            tokens[text] = cached = tuple(nodes)
        # Fresh children lists: later parsing stages must never share a list between requests.
        return deque(node._replace(children=[]) for node in cached)

    return lex


def _traverse_with_one_map(traverser: Any, root: Any) -> Any:
    """DepthFirstTraverser.traverse: the same depth-first walk and node replacement, with each node type's
    processor looked up once per walk (moto rebuilt the processing map twice per node and matched every
    node against abstract base classes; ten processors walk every update expression tree). First match in
    the map's order wins, as in moto's `process`. About a fifth of an update_item's CPU."""
    return _Walk(traverser).visit(root, -1)


class _Walk:
    def __init__(self, traverser: Any) -> None:
        from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

        processing = traverser._processing_map()
        self._processes = list(processing.values())  # bound to this traverser
        # Which entry of the map (in its order) handles a node type: the map's keys are the same for every
        # instance of a processor class, so this is learnt once per class, not per walk.
        self._kinds = _KINDS.setdefault((type(traverser), tuple(processing)), {})
        self._kinds_in_order = tuple(processing)
        self._before_child = traverser.pre_processing_of_child
        if type(traverser).pre_processing_of_child is DepthFirstTraverser.pre_processing_of_child:
            self._before_child = None  # the default hook does nothing

    def _kind_of(self, node_type: type) -> int:
        if not _is_node(node_type):
            kind = _NOT_A_NODE
        else:
            kind = next(
                (index for index, kind in enumerate(self._kinds_in_order) if issubclass(node_type, kind)),
                _UNPROCESSED,
            )
        self._kinds[node_type] = kind
        return kind

    def visit(self, node: Any, child_id: int) -> Any:
        kind = self._kinds.get(type(node))
        if kind is None:
            kind = self._kind_of(type(node))
        if kind == _NOT_A_NODE:
            return node
        parent = node.parent
        if node.children is not None:
            before_child = self._before_child
            for index, child in enumerate(node.children):
                if before_child is not None:
                    before_child(node, index)
                self.visit(child, index)
        if kind >= 0:
            node = self._processes[kind](node)
            node.parent = parent
            if parent:
                parent.children[child_id] = node
        return node


_NOT_A_NODE, _UNPROCESSED = -2, -1
# (processor class, its map's node types) -> {node type: index of the map entry, or one of the two above}
_KINDS: dict[tuple[type, tuple[type, ...]], dict[type, int]] = {}


_NODE_TYPES: dict[type, bool] = {}


def _is_node(node_type: type) -> bool:
    """issubclass(node_type, moto's Node), remembered per type (Node is an ABC: each check is slow)."""
    known = _NODE_TYPES.get(node_type)
    if known is None:
        from moto.dynamodb.parsing.ast_nodes import Node

        known = _NODE_TYPES[node_type] = issubclass(node_type, Node)
    return known


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


def _validating_each_shape_once(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
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
    if len(_VALIDATED_SHAPES) + len(shapes) > _PARSE_CACHE_MAX:
        _VALIDATED_SHAPES.clear()
    _VALIDATED_SHAPES.update(shapes)


def _listed(original: Callable[[], Iterable[str]]) -> Callable[[], tuple[str, ...]]:
    def listed() -> tuple[str, ...]:
        return tuple(original())

    return listed


def _json_get_records(handler: Any) -> tuple[int, dict[str, str], str]:
    """DynamoDBStreamsHandler.get_records answering with plain JSON: stream records are already in the wire
    shape (DynamoDB JSON images), and moto's shape-walking serializer cost a fifth of its CPU under load."""
    import json

    limit = handler._get_param("Limit")
    result = handler.backend.get_records(handler._get_param("ShardIterator"), 1000 if limit is None else limit)
    body = json.dumps(result, default=_wire_value, separators=(",", ":"))
    return 200, {"Content-Type": "application/x-amz-json-1.0"}, body


def _wire_value(value: Any) -> Any:
    """What moto's JSON serializer writes for the non-JSON values a stream record holds."""
    import base64
    import calendar
    import datetime as dt

    if isinstance(value, dt.datetime):
        # Epoch seconds, truncated to milliseconds; moto's datetimes are naive UTC (parse_to_aware_datetime).
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        seconds = calendar.timegm(value.timetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")  # B and BS attribute values
    raise TypeError(f"{type(value).__name__} in a stream record")


# --------------------------------------------------------------------------------------
# Installing the patches (server process only).
# --------------------------------------------------------------------------------------

_installed = False


def moto_patches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for every moto patch this server applies; tests apply them reversibly."""
    from moto import backends as moto_backends
    from moto.core import responses as moto_responses
    from moto.core import utils as moto_utils
    from moto.core.common_models import BaseModel
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodb.parsing import validators as moto_validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.validators import ActionCountValidator
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.sqs.models import Queue

    return [
        (DynamoDBBackend, "transact_write_items", transact_write_items),
        (StreamShard, "add", _trimming_add(StreamShard.add)),
        (StreamShard, "get", _horizon_checked_get(StreamShard.get)),
        (ShardIterator, "__init__", _timestamped_init(ShardIterator.__init__)),
        (
            DynamoDBStreamsBackend,
            "get_records",
            _expiring_get_records(DynamoDBStreamsBackend.get_records),
        ),
        (Queue, "wait_for_messages", _wait_outside_queue_lock(Queue.wait_for_messages)),
        (UpdateExpressionParser, "make", _cached_update_parser(UpdateExpressionParser.make)),
        (moto_validators, "deepcopy", _copy_tree),
        (DepthFirstTraverser, "traverse", _traverse_with_one_map),
        (ActionCountValidator, "traverse", _counting_clauses_once(_traverse_with_one_map)),
        (
            ConditionExpressionParser,
            "_lex_condition_expression",
            _cached_condition_lexer(ConditionExpressionParser._lex_condition_expression),
        ),
        (DynamoHandler, "transact_write_items", _validating_each_shape_once(DynamoHandler.transact_write_items)),
        (DynamoDBStreamsHandler, "get_records", _json_get_records),
        # Both listed moto's package directory, or inspected a class, on every request.
        (moto_backends, "list_of_moto_modules", functools.cache(_listed(moto_backends.list_of_moto_modules))),
        (moto_responses, "method_names_from_class", functools.cache(moto_utils.method_names_from_class)),
        (BaseModel, "__new__", staticmethod(_selectively_tracked_new(BaseModel))),
    ]


def install_patches() -> None:
    """Patch moto in this process (idempotent). Only the server process should call this."""
    global _installed
    if _installed:
        return
    _warn_if_moto_changed()
    for owner, name, replacement in moto_patches():
        setattr(owner, name, replacement)
    _installed = True


def _warn_if_moto_changed() -> None:
    import moto
    from moto.dynamodb.models import DynamoDBBackend

    version = tuple(int(part) for part in re.findall(r"\d+", moto.__version__)[:3])
    low, high = MOTO_VERSIONS_CHECKED
    if not low <= version < high:
        logger.warning(
            "moto %s is outside the range local/moto_server.py's patches were checked against (%s to before %s)",
            moto.__version__,
            ".".join(map(str, low)),
            ".".join(map(str, high)),
        )
    with contextlib.suppress(OSError, TypeError):  # no source shipped: nothing to tell
        if "deepcopy" not in inspect.getsource(DynamoDBBackend.transact_write_items):
            logger.warning(
                "moto's transact_write_items no longer copies tables: drop its patch in local/moto_server.py"
            )


# --------------------------------------------------------------------------------------
# Serving.
# --------------------------------------------------------------------------------------


def build_app() -> SerializedApp:
    """moto's own server app (the one ThreadedMotoServer serves) behind the service locks."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        create_backend_app,
    )

    return SerializedApp(JsonTargetShortcut(DomainDispatcherApplication(create_backend_app)))


class JsonTargetShortcut:
    """WSGI middleware: DynamoDB and DynamoDB Streams requests (POST / with an X-Amz-Target) go straight to
    the handler moto's Flask route would call, with the request class moto's app uses; everything else goes
    to moto's app. Finding the backend and running Flask's request machinery cost about a sixth of moto's
    CPU per table operation; the handler, and so every answer and error, is the same."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        from moto.dynamodb.responses import DynamoHandler
        from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

        self._app = app
        self._dispatchers: dict[str, Callable[..., Any]] = {
            "DynamoDB_20120810": DynamoHandler.dispatch,
            "DynamoDBStreams_20120810": DynamoDBStreamsHandler.dispatch,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        dispatch = None
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/":
            dispatch = self._dispatchers.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0])
        if dispatch is None:
            return self._app(environ, start_response)
        return self._direct(dispatch, environ, start_response)

    @staticmethod
    def _direct(
        dispatch: Callable[..., Any], environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        # What moto.core.utils.convert_to_flask_response does around the handler.
        from botocore.exceptions import ClientError
        from moto.moto_api import recorder
        from moto.moto_server.werkzeug_app import BackendRequest
        from werkzeug.wrappers import Response

        request = BackendRequest(environ)
        try:
            recorder._record_request(request)
            result = dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, body = result if len(result) == 3 else (200, {}, result)
        response = Response(response=body, status=status, headers=headers)
        # What flask_cors adds to every answer of moto's app (its defaults: any origin).
        response.headers["Access-Control-Allow-Origin"] = environ.get("HTTP_ORIGIN") or "*"
        return response(environ, start_response)


class WsgiBridge:
    """Serves a WSGI app (moto's, behind SerializedApp) from aiohttp.

    werkzeug's development server spent about a fifth of moto's CPU per request (a thread and a TCP
    connection per request, header parsing in Python); aiohttp parses HTTP in C and keeps connections
    alive, so botocore's pooled connections are reused. Table requests run on the event loop's own thread
    (they are CPU-only and serialized anyway: no thread hand-offs); everything else (SQS long polls
    included) on a pool.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], host: str, port: int) -> None:
        self._app = app
        self._host, self._port = host, port
        self._others = ThreadPoolExecutor(max_workers=32, thread_name_prefix="moto-others")

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()  # whole, before any lock is taken
        environ = self.environ_for(request, body)
        if locks_for(environ) == (_TABLES_LOCK,):
            # Table requests are CPU-only and serialized anyway: run them right here, on the loop's
            # thread, without two thread hand-offs per request.
            status, headers, payload = self._call(environ)
        else:
            status, headers, payload = await asyncio.get_running_loop().run_in_executor(
                self._others, self._call, environ
            )
        code, _, reason = status.partition(" ")
        # A HEAD answer has no body to measure: keep moto's Content-Length (the size of what GET returns).
        dropped = _HOP_BY_HOP - {"content-length"} if request.method == "HEAD" else _HOP_BY_HOP
        response_headers = CIMultiDict((k, v) for k, v in headers if k.lower() not in dropped)
        return web.Response(status=int(code), reason=reason or None, headers=response_headers, body=payload)

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            started[:] = [status, headers]
            return _no_write

        body = b"".join(self._app(environ, start_response))
        return started[0], started[1], body

    def environ_for(self, request: Any, body: bytes) -> dict[str, Any]:
        """The WSGI environ werkzeug's server would build (moto reads RAW_URI for the undecoded path)."""
        from urllib.parse import unquote_to_bytes

        raw_path, _, query = request.raw_path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": request.raw_path,
            "REQUEST_URI": request.raw_path,
            "SERVER_NAME": self._host,
            "SERVER_PORT": str(self._port),
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "REMOTE_ADDR": request.remote or "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        preserved = {}
        dashed = {name.upper().replace("-", "_") for name in request.headers if "_" not in name}
        for name, value in request.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_LENGTH":
                continue
            if "_" in name:
                # werkzeug drops these (X_Foo would spoof X-Foo); moto's handler keeps S3 metadata keys
                # spelled with underscores, unless a dashed spelling of the same header came too.
                if not name.lower().startswith("x-amz-meta-") or key in dashed:
                    continue
                preserved[f"HTTP_{key}"] = name
            if key != "CONTENT_TYPE":
                key = f"HTTP_{key}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        if preserved:
            from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY

            environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved
        return environ

    def shutdown(self) -> None:
        self._others.shutdown(wait=False, cancel_futures=True)


_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


def _no_write(data: bytes) -> None:
    raise NotImplementedError("moto never uses WSGI's write()")


def serve(
    host: str,
    port: int,
    ready: ProcessEvent | threading.Event | None = None,
    *,
    on_bound: Callable[[int], None] | None = None,
) -> None:
    """Serve moto on a loopback host:port until SIGTERM/SIGINT, or until the parent process dies.

    Patches moto first. Call from the main thread of the process that will run moto. `port=0` binds a free
    port; `on_bound` receives the bound port, and `ready` is set, once the socket listens. Raises ValueError
    for a non-loopback host.
    """
    _require_loopback(host)
    install_patches()
    asyncio.run(_serve(host, port, ready, on_bound))


async def _serve(
    host: str,
    port: int,
    ready: ProcessEvent | threading.Event | None,
    on_bound: Callable[[int], None] | None,
) -> None:
    from aiohttp import web

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop() -> None:
        loop.call_soon_threadsafe(stopping.set)

    application = web.Application(client_max_size=64 * 1024 * 1024)
    bridge = WsgiBridge(build_app(), host, port)
    application.router.add_route("*", "/{tail:.*}", bridge.handle)
    # shutdown_timeout: an SQS long poll in flight must not hold the stop up for its full wait.
    runner = web.AppRunner(application, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        bridge._port = bound_port
        _stop_on_signals(loop, stop)
        _stop_when_parent_dies(stop)
        if on_bound is not None:
            on_bound(bound_port)
        if ready is not None:
            ready.set()
        logger.info("moto listening on %s", endpoint_url(host, bound_port))
        await stopping.wait()
    finally:
        await runner.cleanup()
        bridge.shutdown()
        logger.info("moto stopped")


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; the caller stops us then
    loop.add_signal_handler(signal.SIGTERM, stop)
    # A MotoProcess child ignores Ctrl-C on purpose: the parent stops it last, after its own shutdown calls.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        loop.add_signal_handler(signal.SIGINT, stop)


def _stop_when_parent_dies(stop: Callable[[], None]) -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return  # run from a terminal: the terminal's Ctrl-C stops us

    def watch() -> None:
        # The sentinel closes when the parent exits; the ppid check covers a sentinel a grandchild inherited.
        while parent.is_alive() and os.getppid() == parent.pid:
            parent.join(timeout=1.0)
        logger.warning("parent process %s is gone: stopping moto", parent.pid)
        stop()

    threading.Thread(target=watch, name="moto-parent-watch", daemon=True).start()


def _require_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    if not address.is_loopback:
        raise ValueError(f"moto must bind to a loopback address only, not {host!r}")


def endpoint_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# --------------------------------------------------------------------------------------
# The parent side.
# --------------------------------------------------------------------------------------


def _child_main(host: str, port: int, port_sender: Any) -> None:
    """Entry point of the spawned server process."""
    from local.event_sources import name_process

    name_process("moto-server")
    # The parent decides when we stop: last, after its own shutdown calls.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format=_LOG_FORMAT)

    def report(bound_port: int) -> None:
        port_sender.send(bound_port)
        port_sender.close()

    serve(host, port, on_bound=report)
    _exit_now()


def _exit_now() -> None:
    """Leave without joining the request pool: an SQS long poll in flight would hold the exit up for the
    rest of its WaitTimeSeconds (the answer could not be sent anyway). The state is in memory only."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while spawning, so the child inherits SIG_IGN from its very first instruction.

    Python keeps an inherited SIG_IGN instead of installing its KeyboardInterrupt handler, which closes the
    window before _child_main runs (a Ctrl-C reaches the whole foreground process group).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may touch handlers; _child_main still ignores SIGINT early on
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class MotoProcess:
    """moto's server in a spawned child process; stop it last so other components' shutdown calls reach it."""

    def __init__(self) -> None:
        self._process: BaseProcess | None = None
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        """The server's URL, e.g. http://127.0.0.1:PORT. Raises RuntimeError before start()."""
        if self._endpoint is None:
            raise RuntimeError("MotoProcess is not started")
        return self._endpoint

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0) -> str:
        """Spawn the server and wait until it answers HTTP; return its URL.

        Raises ValueError for a non-loopback host, RuntimeError if already started or if the child exits,
        TimeoutError if it does not answer within `timeout` seconds.
        """
        if self._process is not None:
            raise RuntimeError("MotoProcess is already started")
        _require_loopback(host)
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        # daemon: if the owner forgets stop(), multiprocessing terminates us at its exit instead of hanging.
        process = context.Process(
            target=_child_main,
            args=(host, port, sender),
            name="moto-server",
            daemon=True,
        )
        with _sigint_ignored():
            process.start()
        self._process = process
        sender.close()  # only the child holds it now, so its death reads as EOF below
        deadline = time.monotonic() + timeout
        try:
            bound_port = _receive_port(receiver, process, deadline)
            _wait_until_answering(host, bound_port, process, deadline)
        except BaseException:
            self.stop()
            raise
        finally:
            receiver.close()
        self._endpoint = endpoint_url(host, bound_port)
        logger.info("moto server (pid %s) answering on %s", process.pid, self._endpoint)
        return self._endpoint

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server, then kill it if it has not exited within `timeout` seconds. Idempotent."""
        process, self._process, self._endpoint = self._process, None, None
        if process is None:
            return
        if process.is_alive():
            process.terminate()
            process.join(timeout)
        if process.is_alive():
            logger.warning(
                "moto server (pid %s) ignored SIGTERM for %.1f s: killing it",
                process.pid,
                timeout,
            )
            process.kill()
            process.join()
        process.close()

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _receive_port(receiver: Any, process: BaseProcess, deadline: float) -> int:
    if not receiver.poll(max(0.0, deadline - time.monotonic())):
        raise TimeoutError("moto server did not bind its port in time")
    try:
        return int(receiver.recv())
    except EOFError:
        process.join(1.0)
        raise RuntimeError(f"moto server exited before binding (exit code {process.exitcode})") from None


def _wait_until_answering(host: str, port: int, process: BaseProcess, deadline: float) -> None:
    while True:
        try:
            _probe(host, port)
            return
        except (OSError, http.client.HTTPException):
            if not process.is_alive():
                raise RuntimeError(f"moto server exited (exit code {process.exitcode})") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"moto server did not answer on {host}:{port} in time") from None
            time.sleep(0.05)


def _probe(host: str, port: int) -> None:
    """Any HTTP answer will do: it proves the server accepts and handles requests."""
    connection = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        connection.request("GET", _PROBE_PATH)
        connection.getresponse().read()
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the local moto server in the foreground.")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to bind (default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=5000,
        help="port to bind, 0 for any free one (default 5000)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
    _exit_now()
