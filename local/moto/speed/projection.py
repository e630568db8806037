"""Speed: an item projected onto top-level attributes (an index's keys, a ProjectionExpression of plain names)
copies those attributes. moto's `Item.project` turned the whole item into plain Python (boto3's deserializer)
once per projected name and serialized the result back: a broadcast's KEYS_ONLY query of a 1,200-connection
room spent a third of its time there, under moto's one lock (py-spy, `bench --only rush`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any


def _projecting_names_directly(original: Callable[..., Any]) -> Callable[..., Any]:
    def project(item: Any, projection_expressions: list[list[str]]) -> Any:
        if not all(len(path) == 1 and "[" not in path[0] for path in projection_expressions):
            return original(item, projection_expressions)  # a nested path or a list element: moto's own way
        from moto.dynamodb.models.dynamo_type import Item, LimitedSizeDict

        attrs = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.__init__(attrs)
        for (name,) in projection_expressions:
            value = item.attrs.get(name)
            if value is not None:
                # As moto's copy does: the values passed the size check when written.
                dict.__setitem__(attrs, name, copy.deepcopy(value))
        projected = Item.__new__(Item)
        projected.hash_key, projected.range_key, projected.attrs = item.hash_key, item.range_key, attrs
        return projected

    return project


def patches() -> list[tuple[Any, str, Any]]:
    from moto.dynamodb.models.dynamo_type import Item

    return [(Item, "project", _projecting_names_directly(Item.project))]
