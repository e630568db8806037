"""The one place that reads the environment: a frozen Settings, built once per process."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import NamedTuple

MIN_JWT_SECRET_BYTES = 32


class WaitroomTimings(NamedTuple):
    admission_seconds: int = 300  # how long an admission lets its holder pick seats
    heartbeat_timeout_seconds: int = 60  # a waiting client silent this long has left (it polls every 3-20 s)
    heartbeat_write_seconds: int = 15  # a poll records the heartbeat when the last one is this old
    draw_grace_seconds: int = 30  # the draw waits this long after opening (API Gateway's 29 s request limit)
    tick_seconds: float = 2.0  # the ticker's step
    tick_loop_seconds: float = 0.0  # how long one ticker invocation keeps stepping (AWS: 55 of each minute)
    config_cache_seconds: float = 2.0  # a container's copy of a sale's settings, for the seat gate and polls


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message names the variable."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _opt(env: dict[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _rate(env: dict[str, str], name: str, default: str) -> tuple[int, int]:
    """A limit written COUNT/SECONDS (e.g. 20/3600); a COUNT of 0 turns it off."""
    raw = env.get(name) or default
    count, _, window = raw.partition("/")
    try:
        parsed = (int(count), int(window))
    except ValueError as exc:
        raise ConfigError(f"{name} must be COUNT/SECONDS (e.g. {default}), got {raw!r}") from exc
    if parsed[0] < 0 or parsed[1] < 1:
        raise ConfigError(f"{name} needs a count >= 0 and a window >= 1 second, got {raw!r}")
    return parsed


class AbuseLimits(NamedTuple):
    """What a client may spend (docs/API.md, "Limits"). Each (count, seconds) is a fixed window; count 0: off."""

    register_per_source: tuple[int, int]
    login_per_source: tuple[int, int]
    login_failures_per_account: tuple[int, int]
    holds_per_source: tuple[int, int]
    resends_per_user: tuple[int, int]
    ws_window_seconds: int
    ws_messages_per_user: int
    ws_messages_per_connection: int
    ws_snapshots_per_user: int
    sockets_per_user_per_room: int
    hold_cooldown_seconds: int
    hold_budget_seconds: int
    hold_budget_renew_seconds: int


def _abuse_limits(env: dict[str, str], hold_seconds: int) -> AbuseLimits:
    budget = _int(env, "HOLD_BUDGET_SECONDS", max(hold_seconds, 600), minimum=1)
    return AbuseLimits(
        register_per_source=_rate(env, "LIMIT_REGISTER_PER_SOURCE", "20/3600"),
        login_per_source=_rate(env, "LIMIT_LOGIN_PER_SOURCE", "60/600"),
        login_failures_per_account=_rate(env, "LIMIT_LOGIN_FAILURES_PER_ACCOUNT", "5/900"),
        holds_per_source=_rate(env, "LIMIT_HOLDS_PER_SOURCE", "40/600"),
        resends_per_user=_rate(env, "LIMIT_RESENDS_PER_USER", "3/3600"),
        ws_window_seconds=_int(env, "LIMIT_WS_WINDOW_SECONDS", 10, minimum=1),
        ws_messages_per_user=_int(env, "LIMIT_WS_MESSAGES_PER_USER", 60),
        ws_messages_per_connection=_int(env, "LIMIT_WS_MESSAGES_PER_CONNECTION", 40),
        ws_snapshots_per_user=_int(env, "LIMIT_WS_SNAPSHOTS_PER_USER", 5),
        sockets_per_user_per_room=_int(env, "MAX_SOCKETS_PER_USER_PER_ROOM", 4),
        hold_cooldown_seconds=_int(env, "HOLD_COOLDOWN_SECONDS", 1800),
        hold_budget_seconds=budget,
        hold_budget_renew_seconds=_int(env, "HOLD_BUDGET_RENEW_SECONDS", 3600, minimum=budget),
    )


class Settings(NamedTuple):
    stage: str
    region: str
    table_prefix: str
    queue_prefix: str
    # Endpoints: None means "let botocore resolve the real AWS endpoint".
    dynamodb_endpoint: str | None
    sqs_endpoint: str | None
    ws_management_endpoint: str | None
    tickets_stream_arn: str
    purchases_queue_arn: str
    purchases_queue_url: str | None
    refunds_queue_arn: str
    refunds_queue_url: str | None
    fanout_queue_arn: str
    fanout_queue_url: str | None
    emails_queue_arn: str
    emails_queue_url: str | None  # None: no emails are sent (tests and tools that do not need them)
    # Email (docs/email.md): SES's endpoint (None: AWS's), the verified sender, and where a buyer's order page is
    # (`{order_id}` is replaced): the email links there for the tickets.
    ses_endpoint: str | None
    email_sender: str
    order_page_url: str
    # Room fan-out (docs/broadcasts.md): posts in flight per invocation, and the room size above which a batch is
    # posted in slices by parallel invocations (0: never).
    fanout_concurrency: int
    fanout_slice_size: int
    # Auth
    jwt_secret: str | None
    jwt_secret_parameter: str | None
    # E-ticket signing keys (chalicelib/etickets.py): inline JSON (local), or a secret read once per container
    ticket_keys: str | None
    ticket_keys_parameter: str | None
    jwt_issuer: str
    jwt_audience: str
    access_token_seconds: int
    refresh_token_seconds: int
    refresh_reuse_grace_seconds: int
    password_scrypt_n: int
    # Seat rules
    hold_seconds: int
    max_tickets_per_user: int
    payment_window_seconds: int
    refund_cutoff_seconds: int
    select_attempts: int
    # PayPal
    paypal_mode: str
    paypal_api_base: str | None
    paypal_client_id: str | None
    paypal_client_secret: str | None
    paypal_secret_parameter: str | None
    paypal_webhook_id: str | None
    paypal_webhooks: str  # "verify" (every delivery verified with PayPal) | "off" (refused with 503)
    payment_return_url: str
    payment_cancel_url: str
    # What a client may spend
    limits: AbuseLimits
    # The waiting room's clocks (docs/waiting-room.md)
    waitroom: WaitroomTimings

    def table_name(self, logical: str) -> str:
        return f"{self.table_prefix}{logical}"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build Settings from a mapping (os.environ by default). Raises ConfigError."""
    env = dict(os.environ if env is None else env)
    stage = env.get("STAGE", "local")
    generic_endpoint = _opt(env, "AWS_ENDPOINT_URL")
    max_tickets = _int(env, "MAX_TICKETS_PER_USER", 4, minimum=1)
    paypal_mode = env.get("PAYPAL_MODE", "local")
    hold_seconds = _int(env, "HOLD_SECONDS", 600, minimum=1)
    if paypal_mode not in ("local", "sandbox", "live"):
        raise ConfigError(f"PAYPAL_MODE must be local, sandbox or live, got {paypal_mode!r}")
    paypal_webhook_id, paypal_webhooks = _webhook_settings(env, paypal_mode)
    jwt_secret = _opt(env, "JWT_SECRET")
    if jwt_secret is not None and len(jwt_secret.encode("utf-8")) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            f"JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes (HS256 keys shorter than the hash are "
            "guessable offline from one token)"
        )
    return Settings(
        stage=stage,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        table_prefix=env.get("TABLE_PREFIX", f"tickets-{stage}-"),
        queue_prefix=env.get("QUEUE_PREFIX", f"tickets-{stage}-"),
        dynamodb_endpoint=_opt(env, "AWS_ENDPOINT_URL_DYNAMODB") or generic_endpoint,
        sqs_endpoint=_opt(env, "AWS_ENDPOINT_URL_SQS") or generic_endpoint,
        ws_management_endpoint=_opt(env, "WS_MANAGEMENT_ENDPOINT"),
        tickets_stream_arn=env.get(
            "TICKETS_STREAM_ARN",
            "arn:aws:dynamodb:us-east-1:123456789012:table/tickets/stream/placeholder",
        ),
        purchases_queue_arn=env.get(
            "PURCHASES_QUEUE_ARN", "arn:aws:sqs:us-east-1:123456789012:tickets-purchases-placeholder"
        ),
        purchases_queue_url=_opt(env, "PURCHASES_QUEUE_URL"),
        refunds_queue_arn=env.get(
            "REFUNDS_QUEUE_ARN", "arn:aws:sqs:us-east-1:123456789012:tickets-refunds-placeholder"
        ),
        refunds_queue_url=_opt(env, "REFUNDS_QUEUE_URL"),
        fanout_queue_arn=env.get(
            "FANOUT_QUEUE_ARN", "arn:aws:sqs:us-east-1:123456789012:tickets-fanout-placeholder.fifo"
        ),
        fanout_queue_url=_opt(env, "FANOUT_QUEUE_URL"),
        emails_queue_arn=env.get("EMAILS_QUEUE_ARN", "arn:aws:sqs:us-east-1:123456789012:tickets-emails-placeholder"),
        emails_queue_url=_opt(env, "EMAILS_QUEUE_URL"),
        ses_endpoint=_opt(env, "AWS_ENDPOINT_URL_SES") or generic_endpoint,
        email_sender=env.get("EMAIL_SENDER") or "tickets@example.com",
        order_page_url=_order_page_url(env),
        fanout_concurrency=_int(env, "FANOUT_CONCURRENCY", 256, minimum=1),
        fanout_slice_size=_int(env, "FANOUT_SLICE_SIZE", 2000),
        jwt_secret=jwt_secret,
        jwt_secret_parameter=_opt(env, "JWT_SECRET_PARAMETER"),
        ticket_keys=_opt(env, "TICKET_KEYS"),
        ticket_keys_parameter=_opt(env, "TICKET_KEYS_PARAMETER"),
        jwt_issuer=env.get("JWT_ISSUER", "tickets"),
        jwt_audience=env.get("JWT_AUDIENCE", "tickets-api"),
        access_token_seconds=_int(env, "ACCESS_TOKEN_SECONDS", 300, minimum=1),
        refresh_token_seconds=_int(env, "REFRESH_TOKEN_SECONDS", 7 * 24 * 3600, minimum=1),
        refresh_reuse_grace_seconds=_int(env, "REFRESH_REUSE_GRACE_SECONDS", 10),
        password_scrypt_n=_int(env, "PASSWORD_SCRYPT_N", 2**14, minimum=2),
        hold_seconds=hold_seconds,
        max_tickets_per_user=max_tickets,
        payment_window_seconds=_int(env, "PAYMENT_WINDOW_SECONDS", 900, minimum=1),
        refund_cutoff_seconds=_int(env, "REFUND_CUTOFF_SECONDS", 3600),
        select_attempts=_int(env, "SELECT_ATTEMPTS", max_tickets + 2, minimum=max_tickets + 1),
        paypal_mode=paypal_mode,
        paypal_api_base=_opt(env, "PAYPAL_API_BASE"),
        paypal_client_id=_opt(env, "PAYPAL_CLIENT_ID"),
        paypal_client_secret=_opt(env, "PAYPAL_CLIENT_SECRET"),
        paypal_secret_parameter=_opt(env, "PAYPAL_SECRET_PARAMETER"),
        paypal_webhook_id=paypal_webhook_id,
        paypal_webhooks=paypal_webhooks,
        payment_return_url=env.get("PAYMENT_RETURN_URL", "http://127.0.0.1:8000/paypal/return"),
        payment_cancel_url=env.get("PAYMENT_CANCEL_URL", "http://127.0.0.1:8000/paypal/cancel"),
        limits=_abuse_limits(env, hold_seconds),
        waitroom=WaitroomTimings(
            admission_seconds=_int(env, "WAITROOM_ADMISSION_SECONDS", 300, minimum=1),
            heartbeat_timeout_seconds=_int(env, "WAITROOM_HEARTBEAT_TIMEOUT_SECONDS", 60, minimum=30),
            draw_grace_seconds=_int(env, "WAITROOM_DRAW_GRACE_SECONDS", 30),
            tick_seconds=float(_int(env, "WAITROOM_TICK_SECONDS", 2, minimum=1)),
            tick_loop_seconds=float(_int(env, "WAITROOM_TICK_LOOP_SECONDS", 0)),
        ),
    )


def _order_page_url(env: dict[str, str]) -> str:
    raw = env.get("ORDER_PAGE_URL") or "http://127.0.0.1:8000/#/orders/{order_id}"
    if "{order_id}" not in raw:
        raise ConfigError(f"ORDER_PAGE_URL must contain {{order_id}}, got {raw!r}")
    return raw


def _webhook_settings(env: dict[str, str], paypal_mode: str) -> tuple[str | None, str]:
    """Webhooks are verified with PayPal, always outside local mode: an unverified webhook would let anyone make
    us call PayPal with our credentials and store a dedupe row, per forged event. Before PayPal has given the
    deployment a webhook id (it needs the deployed URL first), PAYPAL_WEBHOOKS=off refuses every delivery."""
    webhook_id = _opt(env, "PAYPAL_WEBHOOK_ID")
    mode = env.get("PAYPAL_WEBHOOKS", "verify")
    if mode not in ("verify", "off"):
        raise ConfigError(f"PAYPAL_WEBHOOKS must be verify or off, got {mode!r}")
    if mode == "verify" and webhook_id is None and paypal_mode != "local":
        raise ConfigError(
            f"PAYPAL_WEBHOOK_ID is required with PAYPAL_MODE={paypal_mode} (webhooks are verified with PayPal); "
            "set PAYPAL_WEBHOOKS=off to refuse webhooks until the id exists"
        )
    return webhook_id, mode


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide Settings (cached; call get_settings.cache_clear() in tests)."""
    return load_settings()
