"""Request and response shapes of the payment, cart and order endpoints (documented in openapi.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chalicelib.domain import ID_PATTERN, PAYPAL_ID_PATTERN
from chalicelib.schemas import normal_email


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreatePaymentIn(_Strict):
    showtime_id: str = Field(pattern=ID_PATTERN)


class RefundIn(_Strict):
    order_id: str = Field(pattern=ID_PATTERN)
    ticket_ids: list[str] | None = Field(default=None, min_length=1, max_length=50)


class CartQuery(_Strict):
    showtime_id: str = Field(pattern=ID_PATTERN)


class TokenQuery(BaseModel):
    # PayPal appends its own parameters (PayerID, ba_token...): accept and ignore extras.
    token: str = Field(min_length=1, pattern=PAYPAL_ID_PATTERN)
    PayerID: str | None = Field(default=None, max_length=64)


class OrdersQuery(_Strict):
    cursor: str | None = Field(default=None, max_length=2048)
    limit: int = Field(default=20, ge=1, le=100)


class StaffOrdersQuery(_Strict):
    attention: Literal["disputed", "reversed"] | None = Field(
        default=None,
        description="disputed: a PayPal dispute is open; reversed: the payment was taken back, its tickets are void",
    )
    email: str | None = Field(default=None, max_length=254, description="The buyer's email: their orders")
    order_id: str | None = Field(default=None, pattern=ID_PATTERN, description="One order by its id")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        # Spelled as accounts store it (NFKC, lower case), so any spelling of the address finds the buyer.
        return None if value is None else normal_email(value.strip())

    cursor: str | None = Field(default=None, max_length=2048)
    limit: int = Field(default=20, ge=1, le=100)


class StaffRefundIn(_Strict):
    ticket_ids: list[str] | None = Field(default=None, min_length=1, max_length=50)


class OrderTicketOut(BaseModel):
    ticket_id: str
    seat: str = Field(description='The short seat label, e.g. "D5"')
    label: str = Field(description='The seat as a buyer reads it, e.g. "Row D, seat 5"')
    price: str
    row: str | None = Field(default=None, description="Absent on orders placed before rows were kept")
    number: int | None = Field(default=None, description="Absent on orders placed before rows were kept")


class RefundOut(BaseModel):
    refund_id: str
    status: str
    amount: str
    ticket_ids: list[str]
    reason: str | None = None


class OrderOut(BaseModel):
    order_id: str
    status: str
    amount: str
    currency: str
    showtime_id: str
    event_id: str | None
    event_title: str | None = Field(description="The event's title when the order was placed (null on older orders)")
    starts_at: str | None = Field(description="When the showtime starts, ISO 8601 UTC (null on older orders)")
    theater: str | None = Field(description="The showtime's theater (null on older orders)")
    tickets: list[OrderTicketOut]
    refunded_ticket_ids: list[str]
    refunds: list[RefundOut]
    created_at: str
    expires_at: str
    paypal_order_id: str | None
    approval_url: str | None = None
    failure_reason: str | None = None
    cancel_reason: Literal["buyer", "replaced", "payment_not_created"] | None = Field(
        default=None,
        description="Only on a cancelled order: the buyer cancelled at PayPal, a later checkout replaced it, "
        "or PayPal could not create the payment (absent on cancelled orders from before it was kept)",
    )


class OrdersOut(BaseModel):
    results: list[OrderOut]
    next: str | None


class DisputeOut(BaseModel):
    dispute_id: str
    status: Literal["open", "resolved"]
    outcome: str | None = None


class StaffOrderOut(OrderOut):
    user_id: str
    email: str | None = Field(default=None, description="The buyer's email (null if the account is gone)")
    capture_id: str | None
    dispute: DisputeOut | None = None


class StaffOrdersOut(BaseModel):
    results: list[StaffOrderOut]
    next: str | None


class CreatedPaymentOut(OrderOut):
    approval_url: str | None


class OrderStatusOut(BaseModel):
    order_id: str
    status: str


class CartTicketOut(BaseModel):
    ticket_id: str
    showtime_id: str
    seat: str
    row: str
    number: int
    price: str
    currency: str
    status: str
    mine: bool
    expires_at: str | None = None


class CartOut(BaseModel):
    showtime_id: str
    tickets: list[CartTicketOut]
    total: str
    currency: str
    expires_at: str | None


class RefundCreatedOut(BaseModel):
    refund_id: str
    order_id: str
    status: str
    amount: str
    currency: str


class WebhookOut(BaseModel):
    status: str


def payment_operations(operation_cls) -> tuple:
    """The payment endpoints as openapi.Operation entries."""
    op = operation_cls
    return (
        op(
            "POST",
            "/api/payment/create",
            "Start a PayPal checkout for the caller's holds in a showtime",
            CreatedPaymentOut,
            201,
            CreatePaymentIn,
            auth="required",
            errors=(400, 401, 404, 409, 413, 415, 503),
        ),
        op(
            "GET",
            "/api/payment/execute",
            "Capture an approved PayPal order",
            OrderStatusOut,
            query=TokenQuery,
            auth="required",
            errors=(400, 401, 403, 404, 409, 422, 503),
        ),
        op(
            "GET",
            "/api/payment/cancel",
            "Cancel an unpaid order; its seats return to the buyer's holds",
            OrderStatusOut,
            query=TokenQuery,
            auth="required",
            errors=(400, 401, 403, 404, 409),
        ),
        op(
            "POST",
            "/api/payment/refund",
            "Refund a paid order, or some of its tickets",
            RefundCreatedOut,
            202,
            RefundIn,
            auth="required",
            errors=(400, 401, 404, 409, 413, 415),
        ),
        op("POST", "/api/payment/webhook", "PayPal webhook listener", WebhookOut, errors=(400, 503)),
        op(
            "GET",
            "/api/cart",
            "The caller's held seats in a showtime and their total",
            CartOut,
            query=CartQuery,
            auth="required",
            errors=(400, 401, 404),
        ),
        op(
            "GET",
            "/api/orders",
            "The caller's orders, newest first",
            OrdersOut,
            query=OrdersQuery,
            auth="required",
            errors=(400, 401),
        ),
        op("GET", "/api/orders/{order_id}", "One of the caller's orders", OrderOut, auth="required", errors=(401, 404)),
        op(
            "POST",
            "/api/orders/{order_id}/resend",
            "Email the caller's tickets again (a new receipt, queued)",
            OrderStatusOut,
            status=202,
            auth="required",
            errors=(401, 404, 409, 429),
        ),
        op(
            "GET",
            "/api/staff/orders",
            "Orders for staff: disputed or reversed ones, a buyer's (by email), or one by id (staff)",
            StaffOrdersOut,
            query=StaffOrdersQuery,
            auth="staff",
            errors=(400, 401, 403),
        ),
        op(
            "POST",
            "/api/staff/orders/{order_id}/refund",
            "Refund a buyer's order, or some of its tickets, as the buyer could (staff)",
            RefundCreatedOut,
            202,
            StaffRefundIn,
            auth="staff",
            errors=(400, 401, 403, 404, 409, 413, 415),
        ),
    )
