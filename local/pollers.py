"""Event sources of the local runtime, shaped as Lambda's: DynamoDB Streams, SQS, schedules."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from chalicelib.signed_http import SignedHttp, client_error
from local.gateway import lambda_context

log = logging.getLogger("local.pollers")


class Backoff:
    """Exponential waits between failed attempts, with jitter, reset by a success (as Lambda's pollers back off)."""

    def __init__(self, first: float = 0.5, cap: float = 10.0) -> None:
        self._first, self._cap = first, cap
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the seconds to wait before the next attempt."""
        self.failures += 1
        delay = min(self._cap, self._first * 2 ** (self.failures - 1))
        return delay * random.uniform(0.8, 1.2)

    def succeeded(self) -> int:
        """Reset; returns how many failures came before this success."""
        failures, self.failures = self.failures, 0
        return failures


class _Loop(threading.Thread):
    """A poller thread that never dies of an error: any exception is logged, backed off from and retried.

    Each loop reports its health (`status()`): the local runtime's health check shows it, so a poller that keeps
    failing is visible instead of silent.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._stop_event = threading.Event()
        self._backoff = Backoff()
        self._last_ok: float | None = None
        self._failing_since: float | None = None
        self._last_error: str | None = None

    def stop(self) -> None:
        self._stop_event.set()

    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._stop_event.wait(seconds)

    def step(self) -> None:
        """One unit of work; raise to have it retried after a backoff."""
        raise NotImplementedError

    def run(self) -> None:
        while not self.stopped():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - whatever broke, the poller must live on and retry
                self._failed(exc)
            else:
                self._succeeded()

    def _failed(self, exc: Exception) -> None:
        delay = self._backoff.failed()
        cause = exc.__cause__ if isinstance(exc, InvocationFailed) and exc.__cause__ else exc
        self._last_error = f"{type(cause).__name__}: {_first_line(cause)}"
        if self._failing_since is None:
            self._failing_since = time.time()
            # A traceback helps with a handler's bug, not with an endpoint that does not answer.
            trace = None if _unreachable(exc) else exc
            log.warning("%s failed (%s); retrying with backoff", self.name, self._last_error, exc_info=trace)
        else:
            log.warning("%s failed again (%s); retry in %.1f s", self.name, self._last_error, delay)
        self.wait(delay)

    def _succeeded(self) -> None:
        self._last_ok = time.time()
        failures = self._backoff.succeeded()
        if failures:
            log.warning("%s recovered after %d failed attempts", self.name, failures)
        self._failing_since = None
        self._last_error = None

    def status(self) -> dict:
        """{"status": "ok" | "failing" | "starting", "last_ok_at", "failing_since"?, "error"?} (epoch seconds)."""
        report: dict = {"status": "ok" if self._last_ok else "starting", "last_ok_at": self._last_ok}
        if self._failing_since is not None:
            report.update(status="failing", failing_since=self._failing_since, error=self._last_error)
        if not self.is_alive() and not self.stopped():
            report["status"] = "dead"
        return report


_UNREACHABLE = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectionError)


def _unreachable(exc: BaseException | None) -> bool:
    """Whether an endpoint not answering is what went wrong (directly, or as what a handler ran into)."""
    while exc is not None:
        if isinstance(exc, _UNREACHABLE):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


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


_TIMINGS_KEPT = 500


def _age_ms(records: list[dict], now: float) -> int:
    """Lambda's IteratorAge for a batch: now minus the oldest record's approximate creation time (0 if unknown)."""
    created = [r.get("dynamodb", {}).get("ApproximateCreationDateTime") for r in records]
    known = [float(value) for value in created if isinstance(value, int | float)]
    return max(0, round((now - min(known)) * 1000)) if known else 0


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
        self._positions_lock = threading.Lock()  # read by the status reporter's thread
        self._iterators: dict[str, str | None] = {}  # shard id -> iterator for the next read
        self._pending: dict[str, list[dict]] = {}  # shard id -> records read but not yet delivered
        self.batches = 0
        self.records = 0
        # (IteratorAge, Duration) of recent batches in ms, as Lambda reports them for a stream mapping: how old the
        # batch's oldest record was when the handler was called, and how long the handler took.
        self._timings: deque[tuple[int, int]] = deque(maxlen=_TIMINGS_KEPT)
        self._timings_lock = threading.Lock()  # read by the status reporter's thread

    def prime(self) -> None:
        """Remember where each shard ends now, so only later changes are delivered (LATEST)."""
        for shard in self._shards():
            latest = self._latest_sequence(shard)
            with self._positions_lock:
                self._positions[shard] = latest
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
                with self._positions_lock:
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
            started = time.time()
            self._handler(event, lambda_context("tickets_changed"))  # raises: the batch stays pending
            timing = (_age_ms(event["Records"], started), round((time.time() - started) * 1000))
            with self._timings_lock:
                self._timings.append(timing)
            del self._pending[shard_id][: len(records)]
            with self._positions_lock:
                self._positions[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
            delivered += len(records)
            self.batches += 1
        self.records += delivered
        return delivered

    def _refresh_shards(self) -> list[str]:
        shards = self._shards()
        with self._positions_lock:
            for shard in shards:
                self._positions.setdefault(shard, None)
            return list(self._positions)

    def status(self) -> dict:
        """The loop's health and how many batches (of how many records) it has delivered: their ratio shows how
        much a rush coalesces."""
        with self._timings_lock:
            timings = [list(pair) for pair in self._timings]
        return {
            **super().status(),
            "batches": self.batches,
            "records": self.records,
            # [IteratorAge, Duration] in ms of the last batches (at most _TIMINGS_KEPT), oldest first.
            "recent_batches_ms": timings,
        }

    def positions(self) -> dict[str, str | None]:
        """Shard id -> the last sequence number delivered (None: from the oldest record kept)."""
        with self._positions_lock:
            return dict(self._positions)

    def resume(self, positions: dict[str, str | None]) -> None:
        """Go on after these positions (a restarted poller: nothing delivered twice beyond the last report)."""
        with self._positions_lock:
            self._positions.update(positions)
        for shard in positions:
            self._iterators[shard] = None

    def step(self) -> None:
        if not self.poll_once():
            self.wait(self._idle)


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
        self._function_name = function_name
        self._batch_size = batch_size
        self._wait = wait_seconds
        self._invocations = 0

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

    def status(self) -> dict:
        """The loop's health and how many invocations it has made (which poller did the work shows in /api/health/)."""
        return {**super().status(), "invocations": self._invocations}

    def poll_once(self) -> int:
        """One receive and delivery; returns the messages handled (0 when the invocation failed)."""
        try:
            return self._poll()
        except InvocationFailed:
            log.exception("%s failed; the batch becomes visible again", self._function_name)
            return 0

    def step(self) -> None:
        self._poll()

    def _poll(self) -> int:
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
            result = self._handler(self._event(messages), lambda_context(self._function_name))
            self._invocations += 1
        except Exception as exc:
            # A failed invocation leaves the whole batch to redrive (visibility timeout, then the DLQ).
            raise InvocationFailed(f"{self._function_name} failed; the batch becomes visible again") from exc
        failed = {f.get("itemIdentifier") for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._client.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return len(done)


class InvocationFailed(Exception):
    """A handler invocation raised: Lambda would retry the batch, and so does the poller."""


class Timer(_Loop):
    """Calls a scheduled handler every `interval` seconds with a CloudWatch scheduled event."""

    def __init__(self, handler: Callable[[dict, object], object], *, interval: float, name: str, region: str) -> None:
        super().__init__(f"timer-{name}")
        self._handler = handler
        self._interval = interval
        self._function_name = name
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
            "resources": [f"arn:aws:events:{self._region}:123456789012:rule/{self._function_name}"],
            "detail": {},
        }
        return self._handler(event, lambda_context(self._function_name))

    def step(self) -> None:
        if not self.wait(self._interval):
            self.fire()
