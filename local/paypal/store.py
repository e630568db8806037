"""The emulator's durable state in a JSON file, so `make run` remembers orders, captures, refunds and disputes
across restarts (a refund of an order paid before a restart must find its capture).

Kept: tokens, orders, captures, refunds, disputes, idempotency records, webhook transmissions (verify-webhook-signature
recognises events sent before the restart) and the signing key. Not kept: faults (tests set them per test). A
save is debounced (at most one per SAVE_DELAY_SECONDS after a change; saving the whole state after every request
cost about a millisecond per hundred orders) and written atomically; `flush()` saves at once (at a clean stop).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from local.paypal.ledger import PayPalEmulator
from local.paypal.model import Capture, Dispute, Order, Refund, Transmission

SAVE_DELAY_SECONDS = 0.2
TRANSMISSIONS_KEPT = 100
_FORMAT = 1
_DECIMALS = {
    "Order": ("total",),
    "Capture": ("amount", "refunded"),
    "Refund": ("amount", "total_refunded"),
    "Dispute": ("amount",),
}


class StateFileError(RuntimeError):
    """The file exists but cannot be read back."""


def dump(emulator: PayPalEmulator) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "signing_key": base64.b64encode(emulator.signing_key).decode(),
        "tokens": emulator.tokens,
        "orders": [_record(order) for order in emulator.orders.values()],
        "captures": [_record(capture) for capture in emulator.captures.values()],
        "refunds": [_record(refund) for refund in emulator.refunds.values()],
        "disputes": [_record(dispute) for dispute in emulator.disputes.values()],
        "idempotency": [[op, key, status, body] for (op, key), (status, body) in emulator.idempotency.items()],
        # Only the latest: verify-webhook-signature runs within seconds of a delivery, and each event carries a
        # whole order (they were most of the file and of the time to save it).
        "transmissions": {tid: dict(vars(t)) for tid, t in list(emulator.transmissions.items())[-TRANSMISSIONS_KEPT:]},
    }


def _record(value: Any) -> dict[str, Any]:
    # Shallow: the JSON encoder reads the nested values at once, on the same thread (no deep copies needed).
    record = dict(vars(value))
    for name in _DECIMALS[type(value).__name__]:
        record[name] = str(record[name])
    return record


def _restore(cls: type, record: dict[str, Any]) -> Any:
    values = dict(record)
    for name in _DECIMALS[cls.__name__]:
        values[name] = Decimal(values[name])
    return cls(**values)


def load(emulator: PayPalEmulator, data: dict[str, Any]) -> None:
    """Replace the emulator's durable state with `data` (from `dump`). Raises KeyError/TypeError/ValueError."""
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError("not a state file of this emulator")
    emulator.signing_key = base64.b64decode(data["signing_key"])
    emulator.tokens = {str(k): float(v) for k, v in data["tokens"].items()}
    emulator.orders = {r["id"]: _restore(Order, r) for r in data["orders"]}
    emulator.captures = {r["id"]: _restore(Capture, r) for r in data["captures"]}
    emulator.refunds = {r["id"]: _restore(Refund, r) for r in data["refunds"]}
    # Files written before disputes existed have none.
    emulator.disputes = {r["id"]: _restore(Dispute, r) for r in data.get("disputes", [])}
    emulator.idempotency = {(op, key): (status, body) for op, key, status, body in data["idempotency"]}
    emulator.transmissions = {tid: Transmission(**t) for tid, t in data["transmissions"].items()}


class Store:
    """Loads `path` into the emulator at start and saves the emulator there after changes."""

    def __init__(self, emulator: PayPalEmulator, path: Path) -> None:
        self._emulator = emulator
        self.path = path
        self._pending: asyncio.TimerHandle | None = None
        self.saves = 0

    def load(self) -> bool:
        """False when there is no file yet. Raises StateFileError for one that cannot be read."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        try:
            load(self._emulator, json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateFileError(
                f"the PayPal emulator's state in {self.path} cannot be read ({type(exc).__name__}: {exc}); "
                "`make reset` starts clean"
            ) from None
        return True

    def changed(self) -> None:
        """Save soon: at most one write per SAVE_DELAY_SECONDS however many changes."""
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(SAVE_DELAY_SECONDS, self.flush)

    def flush(self, *_: Any) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(dump(self._emulator), handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        self.saves += 1

    async def close(self, _app: Any = None) -> None:
        """An aiohttp on_cleanup hook: the last save."""
        self.flush()
