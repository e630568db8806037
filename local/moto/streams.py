"""Correctness fix: stream shards that do not grow forever, shard iterators that expire, AWS's answers for both.

Upstream behaviour fixed (moto 5.2.5, moto/dynamodb/models/table.py `StreamShard`, moto/dynamodbstreams/models.py):
- a shard keeps every record forever, so a long `make run` only grows; AWS keeps 24 hours. We keep
  STREAM_RECORDS_KEPT per shard and answer a read behind the horizon with TrimmedDataAccessException (moto
  would fail an assert: HTTP 500);
- every GetShardIterator and GetRecords call creates an iterator that moto keeps forever; AWS's expire after
  15 minutes. Here they expire after STREAM_ITERATOR_LIFETIME_SECONDS, and at most STREAM_ITERATORS_KEPT live
  at once (the poller asks for a new one on every read: hundreds a minute); an unknown iterator is answered with
  ExpiredIteratorException (moto would raise KeyError: HTTP 500).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

# Per stream shard. The pollers read within milliseconds; 3,000 changes is over ten seconds of a rush. A reader
# further behind than that is told TrimmedDataAccessException and goes on from the oldest kept record.
STREAM_RECORDS_KEPT = 3_000
# What AWS documents for a shard iterator.
STREAM_ITERATOR_LIFETIME_SECONDS = 15 * 60
# The most iterators kept at once, oldest forgotten first: a reader holds one per shard, and AWS's own limits
# make thousands of live iterators meaningless; without a cap, 15 minutes of polling kept ~20,000.
STREAM_ITERATORS_KEPT = 1_000


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


def expire_iterators(iterators: dict[str, Any], created_before: float, keep: int = STREAM_ITERATORS_KEPT) -> None:
    """Forget shard iterators created before the cutoff, and the oldest beyond `keep`.

    moto inserts each iterator when it creates it, so dict order is age order: stop at the first young one.
    """
    stale = list(
        itertools.takewhile(
            lambda arn: getattr(iterators[arn], "created_at", 0.0) < created_before,
            iterators,
        )
    )
    excess = len(iterators) - len(stale) - keep
    if excess > 0:
        stale += list(itertools.islice(iterators, len(stale), len(stale) + excess))
    for arn in stale:
        del iterators[arn]


def _streams_error(code: str, message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError(code, message)


def trimming_add(original: Callable[..., None]) -> Callable[..., None]:
    def add(shard: Any, old: Any, new: Any) -> None:
        original(shard, old, new)
        trim_stream_shard(shard, STREAM_RECORDS_KEPT)

    return add


def horizon_checked_get(
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


def timestamped_init(original: Callable[..., None]) -> Callable[..., None]:
    def __init__(iterator: Any, *args: Any, **kwargs: Any) -> None:
        original(iterator, *args, **kwargs)
        iterator.created_at = time.monotonic()

    return __init__


def expiring_get_records(original: Callable[..., Any]) -> Callable[..., Any]:
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


def patches() -> list[tuple[Any, str, Any]]:
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator

    return [
        (StreamShard, "add", trimming_add(StreamShard.add)),
        (StreamShard, "get", horizon_checked_get(StreamShard.get)),
        (ShardIterator, "__init__", timestamped_init(ShardIterator.__init__)),
        (DynamoDBStreamsBackend, "get_records", expiring_get_records(DynamoDBStreamsBackend.get_records)),
    ]
