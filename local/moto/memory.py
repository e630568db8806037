"""Correctness fixes (memory): nothing moto keeps grows with every request.

Upstream behaviour fixed (moto 5.2.5):
- `BaseModel.__new__` (moto/core/common_models.py, through its InstanceTrackerMeta) appends every instance it
  ever creates to a class-level list, only for the /moto-api dashboard. For DynamoDB, DynamoDB Streams and SQS
  that is every item version, query result copy, stream record, shard iterator and received message; trimming
  streams would free nothing while those lists hold them.
- `Queue.delete_message` (moto/sqs/models.py) adds every receipt handle a deleted message ever had to
  `Queue.deleted_messages`, a set nothing shrinks (so that deleting a message twice succeeds, as on AWS). The
  workers delete every message they handle: a few hundred bytes more per message, for as long as the server
  runs. A queue here keeps the handles of its last DELETED_HANDLES_KEPT deletes; a repeated delete later than
  that (a retry comes within seconds) gets ReceiptHandleIsInvalid.
Drop each when moto stops doing it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_UNTRACKED_SERVICES = frozenset({"dynamodb", "dynamodbstreams", "sqs"})


def selectively_tracked_new(base: type) -> Callable[..., Any]:
    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance = super(base, cls).__new__(cls)  # type: ignore[misc]
        # The same service key moto's InstanceTrackerMeta files classes under.
        if cls.__module__.split(".")[1] not in _UNTRACKED_SERVICES:
            cls.instances_tracked.append(instance)  # type: ignore[attr-defined]
        return instance

    return __new__


DELETED_HANDLES_KEPT = 1_000


class RecentHandles:
    """What moto uses of `Queue.deleted_messages` (`in`, `update`, iteration), keeping the newest `keep`."""

    def __init__(self, keep: int, handles: Iterable[str] = ()) -> None:
        self._keep = keep
        self._handles: dict[str, None] = {}
        self.update(handles)

    def __contains__(self, handle: object) -> bool:
        return handle in self._handles

    def __iter__(self) -> Iterator[str]:
        return iter(self._handles)

    def __len__(self) -> int:
        return len(self._handles)

    def update(self, handles: Iterable[str]) -> None:
        for handle in handles:
            self._handles.pop(handle, None)
            self._handles[handle] = None  # newest last
        for stale in list(itertools.islice(self._handles, max(0, len(self._handles) - self._keep))):
            del self._handles[stale]


def recent_deletes_only(init: Callable[..., None]) -> Callable[..., None]:
    def __init__(queue: Any, *args: Any, **kwargs: Any) -> None:
        init(queue, *args, **kwargs)
        queue.deleted_messages = RecentHandles(DELETED_HANDLES_KEPT, queue.deleted_messages)

    return __init__


def patches() -> list[tuple[Any, str, Any]]:
    from moto.core.common_models import BaseModel
    from moto.sqs.models import Queue

    return [
        (BaseModel, "__new__", staticmethod(selectively_tracked_new(BaseModel))),
        (Queue, "__init__", recent_deletes_only(Queue.__init__)),
    ]
