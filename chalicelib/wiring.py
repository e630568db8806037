"""Composition root: builds clients and services lazily, once per container (never at import)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config as BotoConfig

from chalicelib import auth
from chalicelib.config import ConfigError, Settings, get_settings
from chalicelib.storage import bind_models

# Each service (and what it alone needs: PayPal's client, the Management API's, ...) is imported when a handler
# first asks for it, so a cold start imports only what that handler kind uses (infra/README.md, "Cold start").
if TYPE_CHECKING:
    from chalicelib.broadcast import Broadcaster
    from chalicelib.etickets import Keyset
    from chalicelib.limits import RateLimiter
    from chalicelib.paypal import PayPalClient
    from chalicelib.queues import EmailJobs
    from chalicelib.services.accounts import AccountService
    from chalicelib.services.catalog import CatalogService
    from chalicelib.services.chargebacks import ChargebackService
    from chalicelib.services.emails import EmailService
    from chalicelib.services.etickets import TicketService
    from chalicelib.services.health import HealthCheck
    from chalicelib.services.payments import PaymentService
    from chalicelib.services.refunds import RefundService
    from chalicelib.services.seats import SeatService
    from chalicelib.services.sessions import SessionService
    from chalicelib.services.staff import StaffService
    from chalicelib.services.waitroom import WaitroomService
    from chalicelib.storage.connections import ConnectionRepository


class Container:
    """Every client and service of one Lambda container. `clock` (epoch seconds) is the time every service reads:
    tests pass their own instead of rebuilding the services by hand."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        bind_models(settings)
        self._lock = threading.Lock()
        self._token_config: auth.TokenConfig | None = None
        self._paypal: PayPalClient | None = None

    # --- AWS clients --------------------------------------------------------------------
    def _boto_config(self) -> BotoConfig:
        return BotoConfig(
            region_name=self.settings.region,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=64,
            connect_timeout=3,
            read_timeout=10,
        )

    def management_client(self):
        from chalicelib.management_api import ManagementApi

        if not self.settings.ws_management_endpoint:
            raise ConfigError("WS_MANAGEMENT_ENDPOINT must be set to post to WebSocket clients")
        return ManagementApi(
            self.settings.ws_management_endpoint,
            self.settings.region,
            boto3.session.Session().get_credentials(),
            connect_timeout=3,
            read_timeout=10,
            max_connections=self.settings.fanout_concurrency,
        )

    def _secret_from_ssm(self, name: str) -> str:
        client = boto3.session.Session().client("ssm", config=self._boto_config())
        return client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]

    def sqs_client(self):
        return boto3.session.Session().client(
            "sqs", endpoint_url=self.settings.sqs_endpoint, config=self._boto_config()
        )

    def ses_client(self):
        return boto3.session.Session().client(
            "ses", endpoint_url=self.settings.ses_endpoint, config=self._boto_config()
        )

    # --- PayPal -------------------------------------------------------------------------
    def paypal(self) -> PayPalClient:
        from chalicelib.paypal import PayPalClient, base_url_for

        if self._paypal is None:
            with self._lock:
                if self._paypal is None:
                    client_id, secret = self._paypal_credentials()
                    base = base_url_for(self.settings.paypal_mode, self.settings.paypal_api_base)
                    self._paypal = PayPalClient(base, client_id, secret)
        return self._paypal

    def _paypal_credentials(self) -> tuple[str, str]:
        if self.settings.paypal_client_id and self.settings.paypal_client_secret:
            return self.settings.paypal_client_id, self.settings.paypal_client_secret
        if self.settings.paypal_secret_parameter:
            # One JSON secret {"client_id": ..., "client_secret": ...}, read once per container.
            value = json.loads(self._secret_from_ssm(self.settings.paypal_secret_parameter))
            return value["client_id"], value["client_secret"]
        raise ConfigError("PAYPAL_CLIENT_ID/PAYPAL_CLIENT_SECRET or PAYPAL_SECRET_PARAMETER must be set")

    # --- auth ---------------------------------------------------------------------------
    def token_config(self) -> auth.TokenConfig:
        if self._token_config is None:
            with self._lock:
                if self._token_config is None:
                    self._token_config = auth.TokenConfig(
                        secret=self._jwt_secret(),
                        issuer=self.settings.jwt_issuer,
                        audience=self.settings.jwt_audience,
                        access_seconds=self.settings.access_token_seconds,
                        refresh_seconds=self.settings.refresh_token_seconds,
                    )
        return self._token_config

    def _jwt_secret(self) -> str:
        if self.settings.jwt_secret:
            return self.settings.jwt_secret
        if self.settings.jwt_secret_parameter:
            return self._secret_from_ssm(self.settings.jwt_secret_parameter)
        raise ConfigError("JWT_SECRET or JWT_SECRET_PARAMETER must be set")

    # --- repositories and services --------------------------------------------------------
    @cached_property
    def catalog(self) -> CatalogService:
        from chalicelib.services.catalog import CatalogService
        from chalicelib.storage.catalog import CatalogRepository

        return CatalogService(CatalogRepository(), clock=self.clock)

    @cached_property
    def health(self) -> HealthCheck:
        from chalicelib.services.health import HealthCheck
        from chalicelib.storage.catalog import CatalogRepository

        repo = CatalogRepository()
        return HealthCheck(lambda: repo.get_category("health-probe"))

    @cached_property
    def accounts(self) -> AccountService:
        from chalicelib.services.accounts import AccountService
        from chalicelib.storage.accounts import AccountRepository

        return AccountService(
            AccountRepository(),
            self.token_config,
            sessions=self.sessions,
            scrypt_n=self.settings.password_scrypt_n,
            limiter=self.limiter,
            limits=self.settings.limits,
            clock=self.clock,
        )

    @cached_property
    def sessions(self) -> SessionService:
        from chalicelib.services.sessions import SessionService
        from chalicelib.storage.accounts import AccountRepository
        from chalicelib.storage.sessions import SessionRepository

        return SessionService(
            SessionRepository(),
            AccountRepository(),
            self.token_config,
            reuse_grace_seconds=self.settings.refresh_reuse_grace_seconds,
            close_sockets=self.broadcaster.close_sockets,
            clock=self.clock,
        )

    @cached_property
    def limiter(self) -> RateLimiter:
        from chalicelib.limits import RateLimiter
        from chalicelib.storage.limits import LimitRepository

        return RateLimiter(LimitRepository(), clock=self.clock)

    @cached_property
    def connections(self) -> ConnectionRepository:
        from chalicelib.storage.connections import ConnectionRepository

        return ConnectionRepository()

    @cached_property
    def broadcaster(self) -> Broadcaster:
        from chalicelib.broadcast import Broadcaster
        from chalicelib.queues import QueuePublisher

        settings = self.settings
        return Broadcaster(
            self.management_client,
            self.connections,
            slice_size=settings.fanout_slice_size,
            slices=QueuePublisher(self.sqs_client, settings.fanout_queue_url, "fanout")
            if settings.fanout_queue_url
            else None,
            clock=self.clock,
        )

    @cached_property
    def seats(self) -> SeatService:
        from chalicelib.services.seats import SeatService
        from chalicelib.storage.seats import SeatRepository

        limits = self.settings.limits
        repo = SeatRepository(
            hold_seconds=self.settings.hold_seconds,
            limit=self.settings.max_tickets_per_user,
            attempts=self.settings.select_attempts,
            cooldown_seconds=limits.hold_cooldown_seconds,
            budget_seconds=limits.hold_budget_seconds,
            budget_renew_seconds=limits.hold_budget_renew_seconds,
        )
        return SeatService(
            repo=repo,
            catalog=self.catalog,
            accounts=self.accounts,
            connections=self.connections,
            broadcaster=self.broadcaster,
            limiter=self.limiter,
            limits=limits,
            waitroom=lambda: self.waitroom,
            clock=self.clock,
        )

    @cached_property
    def etickets(self) -> TicketService:
        from chalicelib.services.etickets import TicketService
        from chalicelib.storage.checkins import CheckinRepository
        from chalicelib.storage.orders import OrderRepository

        return TicketService(
            orders=OrderRepository(),
            catalog=self.catalog,
            checkins=CheckinRepository(),
            keyset=self.ticket_keyset,
            clock=self.clock,
        )

    def ticket_keyset(self) -> Keyset:
        """The e-ticket keys, read once per container (TICKET_KEYS inline, or the TICKET_KEYS_PARAMETER secret)."""
        from chalicelib.etickets import Keyset

        cached = getattr(self, "_ticket_keyset", None)
        if cached is None:
            with self._lock:
                if self.settings.ticket_keys:
                    text = self.settings.ticket_keys
                elif self.settings.ticket_keys_parameter:
                    text = self._secret_from_ssm(self.settings.ticket_keys_parameter)
                else:
                    text = "{}"  # no keys: tickets answer tickets_unavailable, check-in ticket_forged
                cached = Keyset.parse(text)
                self._ticket_keyset = cached
        return cached

    @cached_property
    def waitroom(self) -> WaitroomService:
        from chalicelib.services.waitroom import WaitroomService
        from chalicelib.storage.waitroom import WaitroomRepository

        return WaitroomService(
            repo=WaitroomRepository(),
            catalog=self.catalog,
            secret=lambda: self.token_config().secret,
            issuer=self.settings.jwt_issuer,
            timings=self.settings.waitroom,
            clock=self.clock,
        )

    @cached_property
    def payments(self) -> PaymentService:
        from chalicelib.queues import QueuePublisher
        from chalicelib.services.payments import PaymentService
        from chalicelib.storage.orders import OrderRepository

        return PaymentService(
            orders=OrderRepository(),
            seats=self.seats.repo,
            catalog=self.catalog,
            paypal=self.paypal,
            purchases=QueuePublisher(self.sqs_client, self.settings.purchases_queue_url, "purchases"),
            payment_window_seconds=self.settings.payment_window_seconds,
            return_url=self.settings.payment_return_url,
            cancel_url=self.settings.payment_cancel_url,
            emails=self.email_jobs,
            clock=self.clock,
        )

    @cached_property
    def chargebacks(self) -> ChargebackService:
        from chalicelib.services.chargebacks import ChargebackService

        return ChargebackService(orders=self.payments.orders, paypal=self.paypal)

    @cached_property
    def refunds(self) -> RefundService:
        from chalicelib.queues import QueuePublisher
        from chalicelib.services.refunds import RefundService

        return RefundService(
            orders=self.payments.orders,
            payments=self.payments,
            catalog=self.catalog,
            paypal=self.paypal,
            refunds=QueuePublisher(self.sqs_client, self.settings.refunds_queue_url, "refunds"),
            cutoff_seconds=self.settings.refund_cutoff_seconds,
            chargebacks=self.chargebacks,
            webhook_id=self.settings.paypal_webhook_id,
            webhooks_on=self.settings.paypal_webhooks == "verify",
            emails=self.email_jobs,
            clock=self.clock,
        )

    @cached_property
    def email_jobs(self) -> EmailJobs | None:
        """None without EMAILS_QUEUE_URL: orders then change without queueing any email."""
        from chalicelib.queues import EmailJobs, QueuePublisher

        url = self.settings.emails_queue_url
        return EmailJobs(QueuePublisher(self.sqs_client, url, "emails")) if url else None

    @cached_property
    def emails(self) -> EmailService:
        from chalicelib import tables
        from chalicelib.mailer import Mailer
        from chalicelib.queues import EmailJobs, QueuePublisher
        from chalicelib.services.emails import EmailService
        from chalicelib.storage.accounts import AccountRepository
        from chalicelib.storage.emails import EmailLedger
        from chalicelib.storage.orders import OrderRepository

        settings = self.settings
        return EmailService(
            orders=OrderRepository(),
            accounts=AccountRepository(),
            ledger=EmailLedger(),
            mailer=Mailer(self.ses_client, settings.email_sender),
            jobs=self.email_jobs or EmailJobs(QueuePublisher(self.sqs_client, None, "emails")),
            limiter=self.limiter,
            resend_limit=settings.limits.resends_per_user,
            order_page_url=settings.order_page_url,
            # A claim outlives the invocation that took it (the worker's timeout), never much more.
            lease_seconds=tables.EMAILS_QUEUE.consumer_timeout_seconds,
            ticket_codes=lambda order: self.etickets.codes(order),
            clock=self.clock,
        )

    @cached_property
    def staff(self) -> StaffService:
        from chalicelib.services.staff import StaffService
        from chalicelib.storage.accounts import AccountRepository
        from chalicelib.storage.catalog import CatalogRepository

        return StaffService(
            catalog=self.catalog,
            catalog_repo=CatalogRepository(),
            orders=self.payments.orders,
            accounts=AccountRepository(),
            chargebacks=self.chargebacks,
            clock=self.clock,
        )


_container: Container | None = None
_container_lock = threading.Lock()


def container() -> Container:
    """The container for this process, built on first use."""
    global _container
    if _container is None:
        with _container_lock:
            if _container is None:
                _container = Container(get_settings())
    return _container


def reset_container() -> None:
    """For tests and the local runtime: forget the container so new settings take effect."""
    global _container
    with _container_lock:
        _container = None
    get_settings.cache_clear()
