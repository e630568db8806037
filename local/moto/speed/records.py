"""Speed: GetRecords answered as plain JSON. Stream records are already in the wire shape (DynamoDB JSON
images); moto's shape-walking serializer cost a fifth of its CPU under load."""

from __future__ import annotations

from typing import Any


def _json_get_records(handler: Any) -> tuple[int, dict[str, str], str]:
    """DynamoDBStreamsHandler.get_records answering with plain JSON: stream records are already in the wire
    shape (DynamoDB JSON images), and moto's shape-walking serializer cost a fifth of its CPU under load."""
    import json

    limit = handler._get_param("Limit")
    result = handler.backend.get_records(handler._get_param("ShardIterator"), 1000 if limit is None else limit)
    body = json.dumps(result, default=wire_value, separators=(",", ":"))
    return 200, {"Content-Type": "application/x-amz-json-1.0"}, body


def wire_value(value: Any) -> Any:
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
    raise TypeError(f"{type(value).__name__} in an answer of plain JSON")


def patches() -> list[tuple[Any, str, Any]]:
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    return [(DynamoDBStreamsHandler, "get_records", _json_get_records)]
