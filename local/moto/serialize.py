"""Correctness fix: one request at a time per service family, and SQS long polls that wait outside the lock.

Upstream behaviour fixed: moto's in-memory backends are plain Python objects mutated without any locking
(moto/dynamodb/models, moto/sqs/models in 5.2.5), and its server handles requests on many threads. Two
conditional writes to one item can both evaluate their condition before either applies, so both "succeed": a
seat held twice. moto's SQS Queue also rebuilds its message list without a lock, so a DeleteMessage racing a
SendMessage can lose a message. Locks make each request atomic, as DynamoDB's conditional writes are.

Tables and their streams share one lock (a stream read must never see half of a transaction); SQS has its own,
released while a ReceiveMessage long poll waits (`Queue.wait_for_messages`), because a 5 s wait inside the
table lock delayed every table call behind it. Keep this for as long as moto's server is threaded.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DYNAMODB_TARGETS = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")
_SQS_TARGET = "AmazonSQS."
# Query-protocol SQS clients send no X-Amz-Target; their signature still names the service.
_SQS_SIGNING_SCOPE = "/sqs/aws4_request"

TABLES_LOCK = threading.Lock()
# SQS gets its own lock so a long poll never stalls a table call.
QUEUES_LOCK = threading.Lock()
# Everything else (rare and cheap, but just as thread-unsafe).
OTHERS_LOCK = threading.Lock()
# Always acquired in this order, and only /moto-api and snapshots take more than one: no deadlock.
ALL_LOCKS = (TABLES_LOCK, QUEUES_LOCK, OTHERS_LOCK)
# Lets the SQS long-poll patch know whether this request thread holds QUEUES_LOCK.
_held = threading.local()


def locks_for(environ: dict[str, Any]) -> tuple[threading.Lock, ...]:
    """The locks a request must hold for its whole handling."""
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return ALL_LOCKS  # reset and the dashboard touch every backend
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith(_DYNAMODB_TARGETS):
        return (TABLES_LOCK,)
    if target.startswith(_SQS_TARGET) or _SQS_SIGNING_SCOPE in environ.get("HTTP_AUTHORIZATION", ""):
        return (QUEUES_LOCK,)
    return (OTHERS_LOCK,)


def is_mutation(environ: dict[str, Any]) -> bool:
    """Whether a request may change state (what a snapshot must follow): anything but a known read."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    operation = target.partition(".")[2]
    return not operation.startswith(_READS)


_READS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet")


@contextlib.contextmanager
def holding(locks: tuple[threading.Lock, ...]) -> Iterator[None]:
    for lock in locks:
        lock.acquire()
    _held.queues = QUEUES_LOCK in locks
    try:
        yield
    finally:
        _held.queues = False
        for lock in reversed(locks):
            lock.release()


class SerializedApp:
    """WSGI wrapper running each request, response body included, under its service's lock.

    `on_mutation` (if given) is called, under the lock, for every request that may change state.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], on_mutation: Callable[[], None] | None = None) -> None:
        self._app = app
        self._on_mutation = on_mutation

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # wsgi.input is already in memory (the server reads the whole body first): no slow client can
        # hold a lock.
        with holding(locks_for(environ)):
            if self._on_mutation is not None and is_mutation(environ):
                self._on_mutation()
            return [_drain(self._app(environ, start_response))]


def _drain(result: Iterable[bytes]) -> bytes:
    """Consume and close a WSGI response: a lazy body would otherwise run moto code after the lock is gone."""
    try:
        return b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def wait_outside_queue_lock(original: Callable[..., None]) -> Callable[..., None]:
    """moto's ReceiveMessage waits in Queue.wait_for_messages (a Condition, up to 1 s per round) until
    messages arrive or WaitTimeSeconds pass: release the SQS lock meanwhile, so a SendMessage can get in
    and wake the poll, and take it back before moto touches the queue again."""

    def wait_for_messages(queue: Any, timeout: int) -> None:
        if not getattr(_held, "queues", False):
            return original(queue, timeout)
        QUEUES_LOCK.release()
        try:
            return original(queue, timeout)
        finally:
            QUEUES_LOCK.acquire()

    return wait_for_messages


def patches() -> list[tuple[Any, str, Any]]:
    from moto.sqs.models import Queue

    return [(Queue, "wait_for_messages", wait_outside_queue_lock(Queue.wait_for_messages))]
