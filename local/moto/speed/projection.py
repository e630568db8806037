"""Speed: an item projected onto top-level attributes (an index's keys, a ProjectionExpression of plain names)
copies those attributes. moto's `Item.project` turned the whole item into plain Python (boto3's deserializer)
once per projected name and serialized the result back: a broadcast's KEYS_ONLY query of a 1,200-connection
room spent a third of its time there, under moto's one lock (py-spy, `bench --only rush`).

And since a projection copies what it keeps, a query of a KEYS_ONLY or INCLUDE index no longer deep-copies
every whole item first (a quarter of that query's time): moto's `Table.query` copies its results before
projecting them, which only an ALL index (or the table itself) needs, its items being answered whole.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Callable
from typing import Any

_PROJECTING = ("KEYS_ONLY", "INCLUDE")


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


class _CopyUnlessProjecting(threading.local):
    """The `copy` module as moto's table module sees it: its deepcopy does nothing while this thread runs a query
    of a projecting index (the projection copies what it keeps)."""

    projecting = False

    def deepcopy(self, value: Any, memo: dict | None = None) -> Any:
        return value if self.projecting else copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _not_copying_what_a_projection_copies(
    original: Callable[..., Any], shim: _CopyUnlessProjecting
) -> Callable[..., Any]:
    signature = inspect.signature(original)

    def query(table: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = signature.bind(table, *args, **kwargs).arguments.get("index_name")
        index = {i.name: i for i in table.all_indexes()}.get(index_name) if index_name else None
        projection = (getattr(index, "projection", None) or {}).get("ProjectionType")
        if projection not in _PROJECTING:
            return original(table, *args, **kwargs)
        shim.projecting = True
        try:
            return original(table, *args, **kwargs)
        finally:
            shim.projecting = False

    return query


def patches() -> list[tuple[Any, str, Any]]:
    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.dynamo_type import Item

    shim = _CopyUnlessProjecting()
    return [
        (Item, "project", _projecting_names_directly(Item.project)),
        (table_module, "copy", shim),
        (table_module.Table, "query", _not_copying_what_a_projection_copies(table_module.Table.query, shim)),
    ]
