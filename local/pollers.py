"""Event sources of the local runtime, shaped as Lambda's: DynamoDB Streams, SQS, schedules."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

from botocore.exceptions import ClientError

from chalicelib.signed_http import SignedHttp, client_error
from local.gateway import lambda_context

log = logging.getLogger("local.pollers")


class _Loop(threading.Thread):
    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._stop_event.wait(seconds)


def stream_record(raw: dict, stream_arn: str, region: str) -> dict:
    """A DynamoDB Streams record as the Lambda event source mapping delivers it."""
    record = dict(raw)
    body = dict(record.get("dynamodb", {}))
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        # boto3 parses it into a datetime; Lambda delivers epoch seconds.
        body["ApproximateCreationDateTime"] = created.timestamp()
    record["dynamodb"] = body
    record.setdefault("eventSource", "aws:dynamodb")
    record.setdefault("awsRegion", region)
    record["eventSourceARN"] = stream_arn
    return record


_ITERATOR_GONE = ("ExpiredIteratorException", "TrimmedDataAccessException")


class RecordsReader:
    """GetRecords as one signed JSON request, its records left in DynamoDB JSON as Lambda delivers them.

    botocore would parse every attribute of every image into Python values (and creation times into
    datetimes) only for us to turn them back: about a tenth of the process's CPU under a rush (measured when
    the pollers shared the gateway's process). Errors are raised as a boto3 client raises them (ClientError
    with the service's code).
    """

    _TARGET = "DynamoDBStreams_20120810.GetRecords"

    def __init__(self, endpoint_url: str, region: str, credentials) -> None:
        self._url = endpoint_url.rstrip("/") + "/"
        self._http = SignedHttp(self._url, "dynamodb", region, credentials, max_connections=2)

    def __call__(self, ShardIterator: str, Limit: int) -> dict:  # noqa: N803 (boto3's names)
        body = json.dumps({"ShardIterator": ShardIterator, "Limit": Limit}).encode("utf-8")
        headers = {"X-Amz-Target": self._TARGET, "Content-Type": "application/x-amz-json-1.0"}
        response = self._http.send("POST", self._url, body, headers)
        if response.status == 200:
            try:
                parsed = json.loads(response.data)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
        raise client_error(response, "GetRecords", f"Http{response.status}")


class StreamPoller(_Loop):
    """Reads every shard from LATEST (as at start) like Lambda's event source mapping: batches of up
    to batch_size, a failed batch retried until the handler succeeds, one GetRecords per poll."""

    def __init__(
        self,
        client,
        stream_arn: str,
        handler: Callable[[dict, object], object],
        *,
        region: str,
        batch_size: int = 100,
        window: float = 0.0,
        idle_sleep: float = 0.05,
        get_records: Callable[..., dict] | None = None,
    ) -> None:
        super().__init__("stream-poller")
        self._client = client
        # Only the per-poll read; describe_stream and shard iterators go through the boto3 client.
        self._get_records = get_records or client.get_records
        self._arn = stream_arn
        self._handler = handler
        self._region = region
        self._batch_size = batch_size
        self._window = window
        self._idle = idle_sleep
        self._positions: dict[str, str | None] = {}  # shard id -> last sequence number delivered
        self._iterators: dict[str, str | None] = {}  # shard id -> iterator for the next read
        self._pending: dict[str, list[dict]] = {}  # shard id -> records read but not yet delivered
        self.batches = 0
        self.records = 0

    def prime(self) -> None:
        """Remember where each shard ends now, so only later changes are delivered (LATEST)."""
        for shard in self._shards():
            self._positions[shard] = self._latest_sequence(shard)
            self._iterators[shard] = None

    def _shards(self) -> list[str]:
        description = self._client.describe_stream(StreamArn=self._arn)["StreamDescription"]
        return [s["ShardId"] for s in description.get("Shards", [])]

    def _latest_sequence(self, shard_id: str) -> str | None:
        iterator = self._client.get_shard_iterator(
            StreamArn=self._arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        last = None
        while True:
            response = self._client.get_records(ShardIterator=iterator, Limit=1000)
            if not response["Records"]:
                return last
            last = response["Records"][-1]["dynamodb"]["SequenceNumber"]
            iterator = response.get("NextShardIterator")
            if not iterator:
                return last

    def _new_iterator(self, shard_id: str) -> str:
        position = self._positions.get(shard_id)
        if position is None:
            kind = {"ShardIteratorType": "TRIM_HORIZON"}
        else:
            kind = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": position}
        return self._client.get_shard_iterator(StreamArn=self._arn, ShardId=shard_id, **kind)["ShardIterator"]

    def _read(self, shard_id: str, limit: int) -> list[dict]:
        """Records after the last read; keeps the shard's iterator between reads (one call per poll)."""
        iterator = self._iterators.get(shard_id) or self._new_iterator(shard_id)
        try:
            response = self._get_records(ShardIterator=iterator, Limit=limit)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in _ITERATOR_GONE:
                raise
            if code == "TrimmedDataAccessException":
                # We fell behind the trim horizon: those records are gone. Go on from the oldest kept,
                # as Lambda's event source mapping does, instead of failing on one position forever.
                log.warning("stream records after %s were trimmed before delivery", self._positions.get(shard_id))
                self._positions[shard_id] = None
            self._iterators[shard_id] = None
            response = self._get_records(ShardIterator=self._new_iterator(shard_id), Limit=limit)
        self._iterators[shard_id] = response.get("NextShardIterator")
        return response["Records"]

    def _batch(self, shard_id: str) -> list[dict]:
        pending = self._pending.setdefault(shard_id, [])
        if len(pending) < self._batch_size:
            pending.extend(self._read(shard_id, self._batch_size - len(pending)))
            if pending and len(pending) < self._batch_size and self._window:
                time.sleep(self._window)  # the batching window: let a burst gather into one batch
                pending.extend(self._read(shard_id, self._batch_size - len(pending)))
        return pending[: self._batch_size]

    def poll_once(self) -> int:
        """Deliver one batch per shard; returns the number of records delivered."""
        delivered = 0
        for shard_id in list(self._positions) or self._refresh_shards():
            records = self._batch(shard_id)
            if not records:
                continue
            event = {"Records": [stream_record(r, self._arn, self._region) for r in records]}
            self._handler(event, lambda_context("tickets_changed"))  # raises: the batch stays pending
            del self._pending[shard_id][: len(records)]
            self._positions[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
            delivered += len(records)
            self.batches += 1
        self.records += delivered
        return delivered

    def _refresh_shards(self) -> list[str]:
        for shard in self._shards():
            self._positions.setdefault(shard, None)
        return list(self._positions)

    def run(self) -> None:
        while not self.stopped():
            try:
                if not self.poll_once():
                    self.wait(self._idle)
            except ClientError:
                log.exception("stream poll failed")
                self.wait(1.0)
            except Exception:  # noqa: BLE001 - Lambda would retry the batch: so do we
                log.exception("stream handler failed; retrying the batch")
                self.wait(1.0)


class SqsPoller(_Loop):
    """Long-polls a queue, delivers SQS batches, deletes only what succeeded (batchItemFailures)."""

    def __init__(
        self,
        client,
        queue_url: str,
        queue_arn: str,
        handler: Callable[[dict, object], object],
        *,
        region: str,
        function_name: str,
        batch_size: int = 10,
        wait_seconds: int = 1,
    ) -> None:
        super().__init__(f"sqs-poller-{function_name}")
        self._client = client
        self._url = queue_url
        self._arn = queue_arn
        self._handler = handler
        self._region = region
        self._name = function_name
        self._batch_size = batch_size
        self._wait = wait_seconds

    def _event(self, messages: list[dict]) -> dict:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m.get("MD5OfBody"),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self._arn,
                    "awsRegion": self._region,
                }
                for m in messages
            ]
        }

    def poll_once(self) -> int:
        messages = self._client.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        try:
            result = self._handler(self._event(messages), lambda_context(self._name))
        except Exception:  # noqa: BLE001 - a failed invocation leaves the whole batch to redrive
            log.exception("%s failed; the batch becomes visible again", self._name)
            return 0
        failed = {f.get("itemIdentifier") for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._client.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return len(done)

    def run(self) -> None:
        while not self.stopped():
            try:
                self.poll_once()
            except ClientError:
                log.exception("sqs poll failed")
                self.wait(1.0)


class Timer(_Loop):
    """Calls a scheduled handler every `interval` seconds with a CloudWatch scheduled event."""

    def __init__(self, handler: Callable[[dict, object], object], *, interval: float, name: str, region: str) -> None:
        super().__init__(f"timer-{name}")
        self._handler = handler
        self._interval = interval
        self._name = name
        self._region = region

    def fire(self) -> object:
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self._region,
            "resources": [f"arn:aws:events:{self._region}:123456789012:rule/{self._name}"],
            "detail": {},
        }
        return self._handler(event, lambda_context(self._name))

    def run(self) -> None:
        while not self.wait(self._interval):
            try:
                self.fire()
            except Exception:  # noqa: BLE001 - the next tick retries
                log.exception("scheduled handler %s failed", self._name)
