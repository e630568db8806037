"""SQS publishing for the purchase and refund workers and the room fan-out's slices."""

from __future__ import annotations

import json
from collections.abc import Callable


class QueuePublisher:
    """Sends JSON messages to one queue. Raises botocore errors as they come (callers decide)."""

    def __init__(self, client_factory: Callable[[], object], queue_url: str | None, name: str) -> None:
        self._client_factory = client_factory
        self._client: object | None = None
        self._url = queue_url
        self._name = name

    def send(self, message: dict, *, group: str | None = None, dedup: str | None = None) -> None:
        """`group` / `dedup`: a FIFO queue's MessageGroupId (order kept within it) and MessageDeduplicationId."""
        if not self._url:
            raise RuntimeError(f"the {self._name} queue URL is not configured")
        if self._client is None:
            self._client = self._client_factory()
        extra = {}
        if group is not None:
            extra["MessageGroupId"] = group
        if dedup is not None:
            extra["MessageDeduplicationId"] = dedup
        self._client.send_message(  # type: ignore[attr-defined]
            QueueUrl=self._url, MessageBody=json.dumps(message, separators=(",", ":")), **extra
        )
