"""What a buyer's emails say: pure functions from an order to a subject, a plain-text body and a simple HTML one.

No AWS imports. The emails name the showing and the seats and link to the order page, where the tickets are; they
never carry a token, a password or a payment id (docs/email.md).
"""

from __future__ import annotations

import html
from enum import StrEnum
from typing import NamedTuple

from chalicelib.domain import OrderRecord, OrderTicket, RefundEntry, showing_time
from chalicelib.order_status import OrderStatus


class Kind(StrEnum):
    RECEIPT = "receipt"  # the order is paid: what was bought, with the link to the tickets
    REFUND = "refund"  # one refund finished: completed (money back, seats released) or failed (why)
    FAILED = "failed"  # the order failed after the buyer paid or tried to (and what happened to the money)


# A receipt is worth sending while the tickets are good: sent again on request (a resend) too.
RECEIPT_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUND_PENDING})


class Email(NamedTuple):
    subject: str
    text: str
    html: str


def compose(
    kind: str,
    order: OrderRecord,
    *,
    order_url: str,
    refund_id: str | None = None,
    codes: dict[str, str] | None = None,
) -> Email | None:
    """The email of a job, or None when the order no longer warrants it (a receipt for an order refunded since).
    `codes`: the receipt's e-ticket codes by ticket id (docs/tickets.md)."""
    if kind == Kind.RECEIPT:
        return receipt(order, order_url, codes) if order.status in RECEIPT_STATUSES else None
    if kind == Kind.FAILED:
        return failure_notice(order, order_url) if order.status == OrderStatus.FAILED else None
    if kind == Kind.REFUND:
        refund = next((r for r in order.refunds if r.refund_id == refund_id), None)
        if refund is None or refund.status not in ("completed", "failed"):
            return None
        return refund_notice(order, refund, order_url)
    raise ValueError(f"unknown email kind {kind!r}")


def _showing(order: OrderRecord) -> list[str]:
    return [p for p in (order.event_title or "Your showing", showing_time(order.starts_at), order.theater) if p]


def _title(order: OrderRecord) -> str:
    return order.event_title or "your showing"


def _seat_lines(tickets: list[OrderTicket], currency: str) -> list[str]:
    return [f"{t.label}: {t.price} {currency}" for t in tickets]


def _render(subject: str, paragraphs: list[list[str]], order_url: str, link_text: str) -> Email:
    """Each paragraph is a list of lines; the link closes the email."""
    paragraphs = [lines for lines in paragraphs if lines]
    text = "\n\n".join("\n".join(lines) for lines in paragraphs) + f"\n\n{link_text}: {order_url}\n"
    body = "".join("<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>" for lines in paragraphs)
    link = f'<p><a href="{html.escape(order_url, quote=True)}">{html.escape(link_text)}</a></p>'
    page = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head><body>{body}{link}</body></html>"
    )
    return Email(subject=subject, text=text, html=page)


def receipt(order: OrderRecord, order_url: str, codes: dict[str, str] | None = None) -> Email:
    """The tickets still valid (a partly refunded order lists what remains), what they cost, and their e-ticket
    codes (the door scans the QR codes on the order page, or types these)."""
    kept = [t for t in order.tickets if t.ticket_id not in order.refunded_ticket_ids]
    count = f"{len(kept)} seat{'' if len(kept) == 1 else 's'}"
    tickets = [f"{t.label}: {codes[t.ticket_id]}" for t in kept if codes and t.ticket_id in codes]
    return _render(
        f"Your tickets for {_title(order)}",
        [
            ["Thank you for your order. Your seats are booked."],
            _showing(order),
            [f"Seats ({count}):", *_seat_lines(kept, order.currency)],
            [f"Total paid: {order.amount} {order.currency}", f"Order reference: {order.order_id}"],
            ["Show your tickets (QR codes) from the order page at the entrance."],
            ["Your e-ticket codes (the door can type one in if a QR code will not scan):", *tickets] if tickets else [],
        ],
        order_url,
        "Your order and tickets",
    )


def refund_notice(order: OrderRecord, refund: RefundEntry, order_url: str) -> Email:
    refunded = [t for t in order.tickets if t.ticket_id in refund.ticket_ids]
    if refund.status == "completed":
        return _render(
            f"Your refund for {_title(order)}",
            [
                [f"We refunded {refund.amount} {order.currency} to your PayPal account."],
                _showing(order),
                ["Refunded seats (no longer valid):", *_seat_lines(refunded, order.currency)],
                [f"Order reference: {order.order_id}"],
            ],
            order_url,
            "Your order",
        )
    return _render(
        f"Your refund for {_title(order)} could not be made",
        [
            [f"We could not refund {refund.amount} {order.currency}: {refund.reason or 'PayPal refused the refund.'}"],
            ["Your tickets are still valid.", *_seat_lines(refunded, order.currency)],
            _showing(order),
            [f"Order reference: {order.order_id}"],
        ],
        order_url,
        "Your order",
    )


def failure_notice(order: OrderRecord, order_url: str) -> Email:
    returned = next((r for r in order.refunds if r.status == "completed" and r.source == "system"), None)
    money = (
        f"Your payment of {returned.amount} {order.currency} was refunded in full."
        if returned is not None
        else "No money was taken for this order."
    )
    return _render(
        f"Your order for {_title(order)} could not be completed",
        [
            [order.failure_reason or "We could not complete your order.", money],
            _showing(order),
            ["Seats you tried to book:", *_seat_lines(list(order.tickets), order.currency)],
            [f"Order reference: {order.order_id}"],
        ],
        order_url,
        "Your order",
    )
