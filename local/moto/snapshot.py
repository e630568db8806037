"""moto's state in a file, so `make run` keeps its tables, stream records and queues across restarts.

moto keeps everything in memory. The server restores its DynamoDB, SQS and SES backends from the file at start and
writes a snapshot while running: at most every `interval` seconds and only after a request that may have changed
something, plus a final one at a clean stop. A snapshot is pickled under every service lock (so it is a consistent
point: no half transaction, no message half moved) and written outside them, atomically (a temporary file, fsync,
rename): a crash leaves the previous snapshot or the new one, never a torn file. What a hard kill loses is what
changed since the last snapshot: at most `interval` seconds.

Shard iterators are not kept (the DynamoDB Streams backend holds nothing else): a reader asks for new ones after
its last sequence number, which the restored records still carry. moto's SQS queues hold thread locks and
conditions; they are pickled as fresh ones. SES keeps the verified sender (without it every email after a restart
is refused) and the mail sent, which the local outbox shows. A file of format 1 (before SES was kept) is still
restored: its DynamoDB and SQS state, with SES fresh.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys
import threading
import time
from pathlib import Path
from typing import Any

from local.moto.serialize import ALL_LOCKS, holding

log = logging.getLogger(__name__)

SLOW_SNAPSHOT_SECONDS = 0.5
_FORMAT = 2
_READABLE = (1, 2)
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class StateFileError(RuntimeError):
    """The state file exists but cannot be restored."""


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES[0]):
            return threading.Lock, ()
        if isinstance(obj, _LOCK_TYPES[1]):
            return threading.RLock, ()
        return NotImplemented


def _backends() -> tuple[Any, ...]:
    from moto.dynamodb.models import dynamodb_backends
    from moto.ses.models import ses_backends
    from moto.sqs.models import sqs_backends

    return dynamodb_backends, sqs_backends, ses_backends


def dumps() -> bytes:
    """The DynamoDB, SQS and SES backends, pickled together so references between them stay one object each."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump((_FORMAT, moto_version(), _backends()))
    return buffer.getvalue()


def moto_version() -> str:
    import moto

    return str(moto.__version__)


def restore(path: Path) -> bool:
    """Replace moto's backends with the file's. False when there is no file; raises StateFileError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    try:
        form, version, backends = pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, the message is the same
        raise StateFileError(_unreadable(path, f"{type(exc).__name__}: {exc}")) from None
    if form not in _READABLE or version != moto_version():
        raise StateFileError(_unreadable(path, f"it was written by moto {version}, this is {moto_version()}"))
    for live, loaded in zip(_backends(), backends, strict=False):  # format 1 holds no SES
        live.clear()
        live.update(loaded)
    _forget_iterators()
    return True


def _forget_iterators() -> None:
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    for regions in dynamodbstreams_backends.values():
        for backend in regions.values():
            backend.shard_iterators.clear()


def _unreadable(path: Path, why: str) -> str:
    return f"the local state in {path} cannot be restored ({why}); `make reset` starts clean"


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class Snapshots:
    """Takes snapshots of a changed moto to `path`; `mark()` is called (under a lock) by every mutating request."""

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._dirty = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="moto-snapshots", daemon=True)
        self._write_lock = threading.Lock()  # one writer of the file at a time
        self.taken = 0
        self.last_seconds = 0.0

    def mark(self) -> None:
        self._dirty = True

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def take(self, force: bool = False) -> bool:
        """Snapshot now if anything changed since the last one (or `force`). Returns whether one was written."""
        with self._write_lock:
            started = time.perf_counter()
            with holding(ALL_LOCKS):
                if not (self._dirty or force):
                    return False
                self._dirty = False
                data = dumps()
            self.last_seconds = time.perf_counter() - started
            if self.last_seconds > SLOW_SNAPSHOT_SECONDS:
                log.warning("moto snapshot took %.2f s under the locks (%d bytes)", self.last_seconds, len(data))
            write_atomically(self.path, data)
            self.taken += 1
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.take()
            except Exception:  # noqa: BLE001 - a failed snapshot is retried at the next interval
                self._dirty = True
                log.exception("moto snapshot to %s failed", self.path)

    def stop(self) -> None:
        """Stop the timer and take the final snapshot."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            self.take()
        except Exception as exc:  # noqa: BLE001 - say so, in one line: the process is exiting
            print(f"moto's final snapshot to {self.path} failed: {exc}", file=sys.stderr, flush=True)
