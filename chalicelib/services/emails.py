"""Buyer emails: the email worker (claim, send through SES, mark sent) and a buyer's request to resend a receipt.

Jobs are queued by the services that change an order (payments, refunds) through queues.EmailJobs; this service
only reads orders and accounts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from chalicelib.domain import OrderRecord, plausible_id
from chalicelib.emails import RECEIPT_STATUSES, compose
from chalicelib.errors import NotFound, NotResendable
from chalicelib.limits import Limit, RateLimiter
from chalicelib.mailer import Mailer
from chalicelib.observability import logger, metrics
from chalicelib.queues import EmailJobs
from chalicelib.storage.accounts import AccountRepository
from chalicelib.storage.emails import Claim, EmailLedger
from chalicelib.storage.orders import OrderRepository

KEEP_SECONDS = 30 * 24 * 3600  # how long a sent email's key is remembered: far past any redelivery


class EmailInFlight(Exception):
    """Another attempt holds this email's claim: the job is retried once its lease is over."""


class EmailService:
    """deliver raises EmailNotSent (SES), EmailInFlight (both retried); resend raises NotFound, NotResendable,
    RateLimited."""

    def __init__(
        self,
        *,
        orders: OrderRepository,
        accounts: AccountRepository,
        ledger: EmailLedger,
        mailer: Mailer,
        jobs: EmailJobs,
        limiter: RateLimiter,
        resend_limit: tuple[int, int],
        order_page_url: str,
        lease_seconds: int,
        ticket_codes: Callable[[OrderRecord], dict[str, str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._orders = orders
        self._accounts = accounts
        self._ledger = ledger
        self._mailer = mailer
        self._jobs = jobs
        self._limiter = limiter
        self._resend_limit = Limit(*resend_limit)
        self._order_page_url = order_page_url
        self._lease = lease_seconds
        self._ticket_codes = ticket_codes
        self._clock = clock

    # --- the worker -------------------------------------------------------------------------
    def deliver(self, job: dict) -> str:
        """Send the job's email at most once per key (barring a crash between SES and the mark: docs/email.md).
        Returns sent | duplicate | skipped."""
        order = self._orders.get(job["order_id"])
        account = self._accounts.get(order.user_id) if order else None
        if order is None or account is None or not account.email:
            logger.warning("email for an unknown order or buyer", extra={"order_id": job["order_id"]})
            return "skipped"
        order_url = self._order_page_url.replace("{order_id}", order.order_id)
        codes = self._codes(order) if job["kind"] == "receipt" else None
        email = compose(job["kind"], order, order_url=order_url, refund_id=job.get("refund_id"), codes=codes)
        if email is None:
            logger.info("email no longer applies", extra={"order_id": order.order_id, "kind": job["kind"]})
            return "skipped"
        claim = uuid.uuid4().hex
        taken = self._ledger.claim(
            job["key"], claim, now=int(self._clock()), lease_seconds=self._lease, keep_seconds=KEEP_SECONDS
        )
        if taken is Claim.SENT:
            return "duplicate"
        if taken is Claim.HELD:
            raise EmailInFlight(job["key"])
        try:
            message_id = self._mailer.send(account.email, email)
        except Exception:
            self._ledger.release(job["key"], claim)  # the retry may send at once
            metrics.add_metric(name="EmailsFailed", unit="Count", value=1)
            raise
        self._ledger.mark_sent(job["key"], claim, message_id=message_id, now=int(self._clock()))
        metrics.add_metric(name="EmailsSent", unit="Count", value=1)
        # No address in the log: the order id finds the buyer for anyone allowed to look.
        logger.info("email sent", extra={"order_id": order.order_id, "kind": job["kind"]})
        return "sent"

    def _codes(self, order: OrderRecord) -> dict[str, str] | None:
        """The receipt's e-ticket codes; without them (no signing key yet) the receipt still goes, with the link."""
        if self._ticket_codes is None:
            return None
        try:
            return self._ticket_codes(order)
        except Exception:  # noqa: BLE001 - a receipt without codes beats no receipt
            logger.exception("receipt without e-ticket codes", extra={"order_id": order.order_id})
            return None

    # --- a buyer asks for their tickets again ----------------------------------------------
    def resend(self, user_id: str, order_id: str) -> dict:
        """Queue a new receipt of the caller's paid order (counted against LIMIT_RESENDS_PER_USER)."""
        self._limiter.check(
            "resend", user_id, {"resends": self._resend_limit}, message="Too many resend requests; try again later."
        )
        order = self._orders.get(order_id) if plausible_id(order_id) else None
        if order is None or order.user_id != user_id:
            raise NotFound("No such order.")
        if order.status not in RECEIPT_STATUSES:
            raise NotResendable(f"An order in status {order.status} has no tickets to send.")
        self._jobs.resend(order.order_id, uuid.uuid4().hex)
        metrics.add_metric(name="ReceiptsResent", unit="Count", value=1)
        return {"order_id": order.order_id, "status": "queued"}
