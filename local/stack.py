"""The whole local stack: its parts started in order, watched while it runs, stopped in the reverse order.

Order matters: the data folder is locked, moto started (restoring the last snapshot), the environment the Lambda
code reads is prepared, the resources are created, and only then is app.py imported, exactly as a Lambda
container would see it. Stopping goes the other way: the event sources first (their handlers post to the gateway
and use moto), then the gateway: REST requests in flight finish (new ones get 503), the PayPal emulator's webhook
deliveries are cancelled, the sockets and the HTTP server close; moto last (so `$disconnect` handlers still reach
it, and its final snapshot holds everything).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import boto3
from aiohttp import web

from chalicelib.etickets import new_keyset_json
from local.state import StateDir

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("local")


LOCAL_WEBHOOK_ID = "0LOCALWEBHOOK001"
# How long a stop waits for REST requests in flight (a capture with PayPal's retries takes a few seconds at most).
DRAIN_SECONDS = 10.0


class StartupError(RuntimeError):
    """A part could not start; the message says why and what to do, in one line."""


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def non_negative(name: str, default: str) -> float:
    """A number setting where 0 means off; anything else fails the start with one line naming the variable."""
    raw = env(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise StartupError(f"{name} must be a number >= 0 (0 turns it off), not {raw!r}")
    return value


def prepare_environment(host: str, port: int, endpoint: str, jwt_secret: str, ticket_keys: str) -> dict[str, str]:
    """The environment the Lambda code reads (chalicelib/config.py), as the deployed stack would set it."""
    origin = f"http://{host}:{port}"
    values = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": env("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint),
        "AWS_ACCESS_KEY_ID": env("AWS_ACCESS_KEY_ID", "local"),
        "AWS_SECRET_ACCESS_KEY": env("AWS_SECRET_ACCESS_KEY", "local"),
        "AWS_REGION": env("AWS_REGION", "us-east-1"),
        "AWS_DEFAULT_REGION": env("AWS_REGION", "us-east-1"),
        "STAGE": env("STAGE", "local"),
        "JWT_SECRET": env("JWT_SECRET", jwt_secret),
        "TICKET_KEYS": env("TICKET_KEYS", ticket_keys),
        "WS_MANAGEMENT_ENDPOINT": origin,
        "PAYPAL_MODE": env("PAYPAL_MODE", "local"),
        # The emulator registers this webhook and signs every delivery for it, so webhooks are verified by
        # postback here exactly as in production (PAYPAL_WEBHOOK_ID= and PAYPAL_MODE=local: unverified).
        "PAYPAL_WEBHOOK_ID": os.environ.get(
            "PAYPAL_WEBHOOK_ID", LOCAL_WEBHOOK_ID if env("PAYPAL_MODE", "local") == "local" else ""
        ),
        "PAYPAL_API_BASE": env("PAYPAL_API_BASE", f"{origin}/paypal"),
        "PAYPAL_CLIENT_ID": env("PAYPAL_CLIENT_ID", "local-client"),
        "PAYPAL_CLIENT_SECRET": env("PAYPAL_CLIENT_SECRET", "local-secret"),
        "PAYMENT_RETURN_URL": env("PAYMENT_RETURN_URL", f"{origin}/paypal/return"),
        "PAYMENT_CANCEL_URL": env("PAYMENT_CANCEL_URL", f"{origin}/paypal/cancel"),
        # What the buyer's emails link to; the mail itself is read back from moto's SES at /local/outbox.
        "ORDER_PAGE_URL": env("ORDER_PAGE_URL", f"{origin}/#/orders/{{order_id}}"),
        "EMAIL_SENDER": env("EMAIL_SENDER", "tickets@example.com"),
        "POWERTOOLS_METRICS_DISABLED": env("POWERTOOLS_METRICS_DISABLED", "true"),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": env("POWERTOOLS_LOG_LEVEL", env("LOG_LEVEL", "WARNING")),
    }
    os.environ.update(values)
    return values


class LocalStack:
    """`serve()` starts every part; `stop()` stops them; `fatal` is set with a reason when a part is lost."""

    def __init__(self) -> None:
        self.host = env("HOST", "127.0.0.1")
        self.port = int(env("PORT", "8000"))
        self.staff_email = env("DEMO_STAFF_EMAIL", "staff@example.com")
        self.staff_password = env("DEMO_STAFF_PASSWORD", "staff-password")
        self.sweep_interval = float(env("SWEEP_INTERVAL_SECONDS", "5"))
        self.state = StateDir.from_env()
        self.moto: Any = None
        self.event_sources: Any = None
        self.gateway: Any = None
        self.rest_lambdas: Any = None
        self.supervisor: Any = None
        self.runner: web.AppRunner | None = None
        self.paypal_app: web.Application | None = None
        self.fatal: str | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_backend(self) -> str:
        external = os.environ.get("AWS_ENDPOINT_URL")
        if external:
            return external
        from local.moto import MotoProcess

        self.moto = MotoProcess(state_file=self.state.moto_file if self.state else None)
        try:
            return self.moto.start(host="127.0.0.1", port=int(env("MOTO_PORT", "0")))
        except (RuntimeError, TimeoutError) as exc:
            self.moto = None
            raise StartupError(str(exc)) from None

    def create_resources(self) -> dict[str, str]:
        from chalicelib import tables
        from chalicelib.config import load_settings
        from local.resources import ensure_queues, ensure_sender, ensure_tables

        settings = load_settings()
        session = boto3.session.Session()
        streams = ensure_tables(session.client("dynamodb"), settings)
        sqs = session.client("sqs")
        queues = ensure_queues(sqs, settings, visibility_seconds=int(env("LOCAL_QUEUE_VISIBILITY_SECONDS", "5")))
        os.environ["TICKETS_STREAM_ARN"] = streams["tickets"]
        ensure_sender(session.client("ses"), settings)
        for logical in (spec.logical for spec in tables.QUEUES):
            arn = sqs.get_queue_attributes(QueueUrl=queues[logical], AttributeNames=["QueueArn"])["Attributes"]
            os.environ[f"{logical.upper()}_QUEUE_URL"] = queues[logical]
            os.environ[f"{logical.upper()}_QUEUE_ARN"] = arn["QueueArn"]
        return queues

    async def serve(self, stopping: asyncio.Event) -> None:
        """Start every part; `stopping` is set when a part that holds state is lost (see `fatal`)."""
        self._stopping = stopping
        if self.state is not None:
            self.state.acquire()
        endpoint = self.start_backend()
        jwt_secret = self.state.jwt_secret() if self.state else secrets.token_urlsafe(48)
        ticket_keys = self.state.ticket_keys() if self.state else new_keyset_json()
        prepare_environment(self.host, self.port, endpoint, jwt_secret, ticket_keys)
        self.create_resources()
        app_module = importlib.import_module("app")
        from chalicelib.storage import warm_clients
        from chalicelib.wiring import container
        from local.seed import seed

        seed(
            container(),
            staff_email=self.staff_email,
            staff_password=self.staff_password,
            days=int(env("DEMO_SEED_DAYS", "3")),
        )
        warm_clients()
        container().broadcaster.client  # noqa: B018 - built once here, not by each first concurrent post
        await self._start_http(app_module)
        if stopping.is_set():
            return  # stopped while starting (the signal is seen at the first await): no ready line, no pollers
        self._start_event_sources()
        self._start_supervisor()
        kept = f"data kept in {self.state.path}" if self.state else "data in memory only (LOCAL_STATE_DIR is off)"
        print(
            f"ready: open {self.origin}/  (REST {self.origin}/api/, WebSocket ws://{self.host}:{self.port}/ws, "
            f"staff {self.staff_email} / {self.staff_password}, AWS endpoint {endpoint}); {kept}",
            flush=True,
        )

    async def _start_http(self, app_module) -> None:
        from chalice.config import Config

        from local.gateway import ConnectionLimits, Gateway

        config_args = {"chalice_stage": "local", "app_name": "tickets", "lambda_timeout": 60, "lambda_memory_size": 512}
        config = Config.create(**config_args)
        if env("LOCAL_REST_PROCESS", "1") != "0":
            from local.gateway import REST_CONCURRENCY
            from local.rest_lambdas import RestLambdasProcess

            self.rest_lambdas = RestLambdasProcess(config_args, REST_CONCURRENCY, env("LOCAL_LOG_LEVEL", "WARNING"))
            await asyncio.to_thread(self.rest_lambdas.start)
        self.gateway = Gateway(
            app_module,
            config,
            web_root=ROOT / "web",
            public_origin=self.origin,
            parts_health=lambda: self.supervisor.health() if self.supervisor else {},
            limits=ConnectionLimits(
                idle_seconds=non_negative("LOCAL_WS_IDLE_SECONDS", "600"),
                max_age_seconds=non_negative("LOCAL_WS_MAX_AGE_SECONDS", "7200"),
                connect_rate=non_negative("LOCAL_WS_CONNECT_RATE", "500"),
            ),
            rest_lambdas=self.rest_lambdas,
        )
        application = self.gateway.build(extra_subapps=self._subapps())
        self.runner = web.AppRunner(
            application,
            access_log=None,
            handle_signals=False,
            # API Gateway accepts request lines and headers up to about 10 KB; aiohttp's default is 8190.
            max_line_size=16384,
            max_field_size=16384,
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, backlog=1024)
        await site.start()

    def _subapps(self) -> dict[str, web.Application]:
        from local.paypal import create_paypal_app
        from local.paypal.store import StateFileError

        try:
            paypal = create_paypal_app(
                webhook_url=f"{self.origin}/api/payment/webhook",
                client_id=os.environ["PAYPAL_CLIENT_ID"],
                client_secret=os.environ["PAYPAL_CLIENT_SECRET"],
                webhook_id=os.environ.get("PAYPAL_WEBHOOK_ID") or None,
                state_path=self.state.paypal_file if self.state else None,
            )
        except StateFileError as exc:
            raise StartupError(str(exc)) from None
        self.paypal_app = paypal
        from local.outbox import create_outbox_app

        return {"/paypal": paypal, "/local": create_outbox_app(lambda: os.environ["AWS_ENDPOINT_URL"])}

    def _start_event_sources(self) -> None:
        from local.event_sources import EventSourcesProcess

        self.event_sources = EventSourcesProcess(self.sweep_interval, env("LOCAL_LOG_LEVEL", "WARNING"))
        self.event_sources.start()

    def _start_supervisor(self) -> None:
        from local.supervisor import Supervisor

        loop = asyncio.get_running_loop()
        note = (
            f"Its last snapshot is in {self.state.moto_file}; `make run` starts from it."
            if self.state and self.moto
            else "Its data is gone (LOCAL_STATE_DIR is off)."
        )

        def on_fatal(message: str) -> None:
            self.fatal = message
            if self._stopping is not None:
                loop.call_soon_threadsafe(self._stopping.set)

        self.supervisor = Supervisor(self.moto, self.event_sources, on_fatal, note, rest_lambdas=self.rest_lambdas)
        self.supervisor.start()

    async def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()  # stopping on purpose from here on: no restarts
        if self.event_sources is not None:
            self.event_sources.stop()  # first: its handlers post to the gateway and use moto
        if self.gateway is not None:
            await self._stop_gateway()
        if self.rest_lambdas is not None:
            self.rest_lambdas.stop()  # after the gateway's drain: the REST requests in flight ran there
        if self.moto is not None:
            self.moto.stop()  # last: $disconnect handlers above still reach it; its final snapshot
        if self.state is not None:
            self.state.release()

    async def _stop_gateway(self) -> None:
        moto_lost = self.moto is not None and not self.moto.alive
        if self.paypal_app is not None:
            from local.paypal.app import SENDER_KEY

            # First: a webhook in flight would meet a draining server, time out and say so after the stop began
            # (PayPal redelivers; the sweeper settles the order either way).
            await self.paypal_app[SENDER_KEY].close()
        if not moto_lost:
            # REST handlers in flight finish while the server they call (PayPal emulator, Management API) is up.
            await self.gateway.drain(DRAIN_SECONDS)
        if moto_lost:
            self.gateway.skip_disconnect_handlers()  # they would only fail against a dead moto
        await self.gateway.close_all()
        if self.runner is not None:
            await self.runner.cleanup()
        self.gateway.shutdown()
