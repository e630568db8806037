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


class EmailJobs:
    """Jobs for the email worker, each with the idempotency key of the one email it may send (chalicelib/emails.py).
    Raises what QueuePublisher raises: each caller decides whether a job that could not be queued is retried."""

    def __init__(self, publisher: QueuePublisher) -> None:
        self._publisher = publisher

    def receipt(self, order_id: str) -> None:
        self._send("receipt", order_id, f"{order_id}#receipt")

    def resend(self, order_id: str, request_id: str) -> None:
        """A receipt the buyer asked for again: a key of its own, so it is sent even though the first one was."""
        self._send("receipt", order_id, f"{order_id}#resend#{request_id}")

    def refund(self, order_id: str, refund_id: str) -> None:
        self._send("refund", order_id, f"{order_id}#refund#{refund_id}", refund_id=refund_id)

    def failed(self, order_id: str) -> None:
        self._send("failed", order_id, f"{order_id}#failed")

    def _send(self, kind: str, order_id: str, key: str, **extra: str) -> None:
        self._publisher.send({"kind": kind, "order_id": order_id, "key": key, **extra})
