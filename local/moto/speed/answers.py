"""Speed: the DynamoDB actions the stack calls answered as plain JSON. moto's answers already hold items in the
wire shape (DynamoDB JSON); its shape-walking serializer then walks every attribute of every item again. A
broadcast's connection query of a 1,000-viewer room spent most of its time there, under the lock every table
request waits on, and under a rush the writes' answers (an update's returned attributes, a transaction's empty
answer) still took a sixth of moto's CPU there (py-spy, `bench --only rush`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from local.moto.speed.records import wire_value

_JSON = {"Content-Type": "application/x-amz-json-1.0"}


def _plain_json(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def answer(handler: Any) -> Any:
        from moto.core.responses import ActionResult

        result = original(handler)
        if not isinstance(result, ActionResult) or not isinstance(result.result, dict):
            return result  # an error, or a shape this was not written for: moto serializes it
        # moto's serializer leaves out members that are None (an absent LastEvaluatedKey), and so does this.
        body = {name: value for name, value in result.result.items() if value is not None}
        return 200, dict(_JSON), json.dumps(body, default=wire_value, separators=(",", ":"))

    return answer


# Every action the stack's code calls. An error is raised, not returned, and moto still serializes it.
ACTIONS = (
    "query",
    "get_item",
    "batch_get_item",
    "scan",
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
)


def patches() -> list[tuple[Any, str, Any]]:
    from moto.dynamodb.responses import DynamoHandler

    from local.moto.speed.validation import validating_each_shape_once

    actions = {name: getattr(DynamoHandler, name) for name in ACTIONS}
    # A transaction's request validation is done once per shape (validation.py); its answer is made plain around that.
    actions["transact_write_items"] = validating_each_shape_once(actions["transact_write_items"])
    return [(DynamoHandler, name, _plain_json(action)) for name, action in actions.items()]
