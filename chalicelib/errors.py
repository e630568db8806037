"""Domain exceptions. Each carries the contract's snake_case code; http.py maps them to statuses."""

from __future__ import annotations

import math


class DomainError(Exception):
    code = "error"
    default_message = "The request could not be completed."

    def __init__(
        self, message: str | None = None, *, ticket_id: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.ticket_id = ticket_id
        # Whole seconds until trying again makes sense (a Retry-After header, a WebSocket error's retry_after).
        self.retry_after = max(1, math.ceil(retry_after)) if retry_after is not None else None


class BadRequest(DomainError):
    code = "bad_request"
    default_message = "The request is malformed."


class Unauthorized(DomainError):
    code = "unauthorized"
    default_message = "Authentication is required."


class Forbidden(DomainError):
    code = "forbidden"
    default_message = "You are not allowed to do this."


class NotFound(DomainError):
    code = "not_found"
    default_message = "Not found."


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    default_message = "Send the body as application/json."


class Unprocessable(DomainError):
    """Well-formed, understood, and refused for what it says (422)."""

    code = "unprocessable"
    default_message = "The request cannot be processed."


class Unavailable(DomainError):
    """Something the request needs is not there now (503)."""

    code = "unavailable"
    default_message = "This is not available right now; please retry later."


class Conflict(DomainError):
    code = "conflict"
    default_message = "The request conflicts with the current state."


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "An account with this email already exists."


class AlreadyExists(Conflict):
    code = "already_exists"
    default_message = "This resource already exists."


class HasSales(Conflict):
    code = "showtime_has_sales"
    default_message = "Seats of this showtime are sold or being paid for."


# --- seat selection -------------------------------------------------------------------------


class TicketUnavailable(Conflict):
    code = "ticket_unavailable"
    default_message = "This seat is held by someone else or sold."


class LimitReached(Conflict):
    code = "limit_reached"
    default_message = "You hold the maximum number of seats for this showtime."


class NotHolder(Conflict):
    code = "not_holder"
    default_message = "You do not hold this seat."


class CheckoutInProgress(Conflict):
    code = "checkout_in_progress"
    default_message = "This seat is in a checkout; cancel the payment to release it."


class HoldBudgetSpent(Conflict):
    code = "hold_budget_spent"
    default_message = "You have held seats in this showtime for as long as one buyer may without paying."


class SeatCooldown(Conflict):
    code = "seat_cooldown"
    default_message = "Your hold on this seat ran out unpaid; it stays open to others for a while."


class Busy(Conflict):
    code = "busy"
    default_message = "The server is busy; please retry."


# --- payments -------------------------------------------------------------------------------


class NoHolds(Conflict):
    code = "no_holds"
    default_message = "You hold no seats in this showtime."


class OrderNotApproved(Conflict):
    code = "order_not_approved"
    default_message = "The payment has not been approved yet."


class OrderExpired(Conflict):
    code = "order_expired"
    default_message = "The payment window has passed."


class OrderCancelled(Conflict):
    code = "order_cancelled"
    default_message = "The order was cancelled."


class NotCancellable(Conflict):
    code = "not_cancellable"
    default_message = "The order can no longer be cancelled."


class NotResendable(Conflict):
    code = "not_resendable"
    default_message = "Only a paid order's tickets can be sent again."


class NotRefundable(Conflict):
    code = "not_refundable"
    default_message = "The order cannot be refunded."


class PaymentDeclined(DomainError):
    code = "payment_declined"
    default_message = "The payment was declined; approve it again with another funding source."


class PaymentProviderUnavailable(DomainError):
    code = "payment_provider_unavailable"
    default_message = "The payment provider cannot be reached; please retry."


class WebhooksDisabled(DomainError):
    code = "webhooks_disabled"
    default_message = "Webhooks are not accepted until this deployment has a PayPal webhook id."


class RateLimited(DomainError):
    code = "rate_limited"
    default_message = "Too many requests."
