"""An order's statuses and every move between them, in one place (docs/API.md, "Order status").

Storage builds its conditions from these moves (`Order.status.is_in(*move.sources)`) and services check them
before asking, so a transition the table does not list cannot be written. No AWS imports.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class OrderStatus(StrEnum):
    CREATED = "created"
    PROCESSING = "processing"
    PAID = "paid"
    REFUND_PENDING = "refund_pending"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"
    REVERSED = "reversed"


S = OrderStatus


class CancelReason(StrEnum):
    """Why a checkout ended `cancelled`: the buyer reads the difference on the order."""

    BUYER = "buyer"  # the buyer cancelled at PayPal
    REPLACED = "replaced"  # a later checkout of the same buyer and showtime took its place
    PAYMENT_NOT_CREATED = "payment_not_created"  # PayPal could not create the payment


class Move(NamedTuple):
    """A named transition: from any of `sources` to one of `targets`."""

    name: str
    sources: frozenset[OrderStatus]
    targets: frozenset[OrderStatus]

    def allows(self, source: str, target: str) -> bool:
        return source in self.sources and target in self.targets


def _move(name: str, sources: set[OrderStatus], targets: set[OrderStatus]) -> Move:
    return Move(name, frozenset(sources), frozenset(targets))


# checkout ends without payment: the buyer cancels (seats back to their holds), or the window passes
CANCEL = _move("cancel", {S.CREATED}, {S.CANCELLED})
EXPIRE = _move("expire", {S.CREATED}, {S.EXPIRED})
# execute: a capture attempt starts; a decline (or an unknown outcome) lets the buyer try again
BEGIN_CAPTURE = _move("begin capture", {S.CREATED}, {S.PROCESSING})
ABORT_CAPTURE = _move("abort capture", {S.PROCESSING}, {S.CREATED})
# the capture id is noted, by execute or by a webhook that captured first
RECORD_CAPTURE = _move("record capture", {S.CREATED, S.PROCESSING}, {S.PROCESSING})
# the purchase worker: seats sold, or lost (refunded) and the order failed; a denied capture fails it too
PURCHASE = _move("purchase", {S.PROCESSING}, {S.PAID})
FAIL = _move("fail", {S.PROCESSING}, {S.FAILED})
# refunds through our API: pending, then done, or failed back to where the order was
REQUEST_REFUND = _move("request refund", {S.PAID, S.PARTIALLY_REFUNDED}, {S.REFUND_PENDING})
COMPLETE_REFUND = _move("complete refund", {S.REFUND_PENDING}, {S.PARTIALLY_REFUNDED, S.REFUNDED})
FAIL_REFUND = _move("fail refund", {S.REFUND_PENDING}, {S.PAID, S.PARTIALLY_REFUNDED})
# a refund made in PayPal's dashboard, recorded when its webhook arrives
EXTERNAL_REFUND = _move(
    "external refund",
    {S.PAID, S.PARTIALLY_REFUNDED, S.REFUND_PENDING},
    {S.PARTIALLY_REFUNDED, S.REFUNDED},
)
# the payment was taken back (a chargeback, a dispute the buyer won): the tickets are void
REVERSE = _move("reverse", {S.PAID, S.PARTIALLY_REFUNDED, S.REFUND_PENDING}, {S.REVERSED})

MOVES: tuple[Move, ...] = (
    CANCEL,
    EXPIRE,
    BEGIN_CAPTURE,
    ABORT_CAPTURE,
    RECORD_CAPTURE,
    PURCHASE,
    FAIL,
    REQUEST_REFUND,
    COMPLETE_REFUND,
    FAIL_REFUND,
    EXTERNAL_REFUND,
    REVERSE,
)


def _transitions() -> dict[OrderStatus, frozenset[OrderStatus]]:
    table: dict[OrderStatus, set[OrderStatus]] = {status: set() for status in OrderStatus}
    for move in MOVES:
        for source in move.sources:
            table[source] |= move.targets
    return {status: frozenset(targets) for status, targets in table.items()}


# Every status a status may move to (a self-move is a change of something else: the capture id, the refunds).
TRANSITIONS = _transitions()
FINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
# An order still being paid for (the sweeper watches these; a refund message cannot concern them).
OPEN = frozenset({S.CREATED, S.PROCESSING})


def can_move(source: str, target: str) -> bool:
    """Whether an order may go from `source` to `target` (unknown statuses: never)."""
    try:
        return OrderStatus(target) in TRANSITIONS[OrderStatus(source)]
    except ValueError:
        return False


def refunded_status(refunded_ticket_ids: set[str], ticket_ids: set[str]) -> OrderStatus:
    """The order's status once these of its tickets are refunded."""
    return S.REFUNDED if refunded_ticket_ids >= ticket_ids else S.PARTIALLY_REFUNDED
