"""Speed: Query and GetItem answered as plain JSON. moto's answers already hold items in the wire shape (DynamoDB
JSON); its shape-walking serializer then walks every attribute of every item again. A broadcast's connection
query of a 1,000-viewer room spent most of its time there, under the lock every table request waits on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from local.moto.speed.records import wire_value

_JSON = {"Content-Type": "application/x-amz-json-1.0"}


def _plain_json(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def read(handler: Any) -> Any:
        from moto.core.responses import ActionResult

        result = original(handler)
        if not isinstance(result, ActionResult) or not isinstance(result.result, dict):
            return result  # an error, or a shape this was not written for: moto serializes it
        # moto's serializer leaves out members that are None (an absent LastEvaluatedKey), and so does this.
        body = {name: value for name, value in result.result.items() if value is not None}
        return 200, dict(_JSON), json.dumps(body, default=wire_value, separators=(",", ":"))

    return read


def patches() -> list[tuple[Any, str, Any]]:
    from moto.dynamodb.responses import DynamoHandler

    return [(DynamoHandler, name, _plain_json(getattr(DynamoHandler, name))) for name in ("query", "get_item")]
