"""What a failed condition says, read the same way by every repository.

pynamodb raises PutError / UpdateError / DeleteError (a single write whose condition failed:
ConditionalCheckFailedException) and TransactWriteError (TransactionCanceledException, with one cancellation
reason per item: ConditionalCheckFailed for the items whose condition failed, and the item's old image when the
request asked for ALL_OLD). Errors are read by code, never by message text.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pynamodb.exceptions import PynamoDBException

CONDITION_FAILED = "ConditionalCheckFailedException"  # a single write's error code
TRANSACTION_CANCELLED = "TransactionCanceledException"
_REASON_FAILED = "ConditionalCheckFailed"  # a transaction item's cancellation reason


def condition_failed(exc: PynamoDBException) -> bool:
    """A single conditional write (put, update, delete) was refused by its condition."""
    return exc.cause_response_code == CONDITION_FAILED


def transaction_cancelled(exc: PynamoDBException) -> bool:
    return exc.cause_response_code == TRANSACTION_CANCELLED


def refused(exc: PynamoDBException) -> bool:
    """Either of the two: the state was not what the write expected."""
    return exc.cause_response_code in (CONDITION_FAILED, TRANSACTION_CANCELLED)


def cancellation_reasons(exc: Any) -> list[Any]:
    """One reason per transaction item (None where the item was fine)."""
    return list(getattr(exc, "cancellation_reasons", None) or [])


def item_failed(reasons: list[Any], index: int) -> bool:
    """Whether the condition of the transaction's item at `index` failed."""
    return len(reasons) > index and reasons[index] is not None and reasons[index].code == _REASON_FAILED


class OldTicket(NamedTuple):
    """A ticket's image as it was when its condition failed (ALL_OLD), or `exists=False`."""

    exists: bool
    status: str | None = None
    holder: str | None = None
    hold_expires_at: int | None = None
    last_holder: str | None = None
    cooldown_until: int | None = None


def old_ticket(reason: Any) -> OldTicket:
    raw = getattr(reason, "raw_item", None) if reason is not None else None
    if not raw:
        return OldTicket(exists=False)
    return OldTicket(
        exists=True,
        status=raw.get("status", {}).get("S"),
        holder=raw.get("holder", {}).get("S"),
        hold_expires_at=_number(raw, "hold_expires_at"),
        last_holder=raw.get("last_holder", {}).get("S"),
        cooldown_until=_number(raw, "cooldown_until"),
    )


def _number(raw: dict[str, Any], name: str) -> int | None:
    value = raw.get(name, {}).get("N")
    return int(float(value)) if value is not None else None
