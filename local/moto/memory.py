"""Correctness fix (memory): moto's dashboard bookkeeping does not keep every table item and message alive.

Upstream behaviour fixed: moto 5.2.5's `BaseModel.__new__` (moto/core/common_models.py, through its
InstanceTrackerMeta) appends every instance it ever creates to a class-level list, only for the /moto-api
dashboard. For DynamoDB, DynamoDB Streams and SQS that is every item version, query result copy, stream record,
shard iterator and received message: memory that grows with every request, and trimming streams would free
nothing while those lists hold them.
"""

from __future__ import annotations

from collections.abc import Callable
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


def patches() -> list[tuple[Any, str, Any]]:
    from moto.core.common_models import BaseModel

    return [(BaseModel, "__new__", staticmethod(selectively_tracked_new(BaseModel)))]
