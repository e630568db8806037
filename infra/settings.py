"""Per-stage deploy settings: the defaults for `dev` and `prod`, overridable from CDK context.

Override one value with `-c <stage>:<field>=<value>` on the cdk command line (or the same key in cdk.json's
"context"), e.g. `cdk deploy tickets-prod -c prod:rest_rate_limit=1000 -c prod:alarm_email=ops@example.com`.
Plain application settings (HOLD_SECONDS, MAX_TICKETS_PER_USER, ...) live in `.chalice/config.json`, the
environment variables of each Chalice stage.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

APP = "tickets"
STAGES = ("dev", "prod")
# The retention periods CloudWatch Logs offers that infra/stack.py maps (a subset of RetentionDays).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)
# Which setting reserves concurrency for which function (Chalice's resource names). Reserved concurrency is a
# guarantee and a cap at once: a REST flood cannot take what the workers hold, nor more than its own share.
RESERVED_CONCURRENCY = {
    "APIHandler": "api_concurrency",
    "WebsocketMessage": "ws_message_concurrency",
    "PurchaseWorker": "purchase_concurrency",
    "RefundWorker": "refund_concurrency",
    "TicketsChanged": "stream_concurrency",
    "SweepExpired": "sweep_concurrency",
    "FanoutWorker": "fanout_concurrency",
    "EmailWorker": "email_concurrency",
    "WaitroomTick": "waitroom_concurrency",
}
# Functions an SQS queue triggers: their reservation is also their event source's MaximumConcurrency (2-1000).
QUEUE_WORKERS = ("PurchaseWorker", "RefundWorker", "FanoutWorker", "EmailWorker")
# Lambda refuses a reservation that leaves less than this unreserved in the account (per region).
MIN_UNRESERVED_CONCURRENCY = 100
# WAF rate-based rules: the smallest and largest limit WAF accepts per evaluation window.
WAF_LIMIT_RANGE = (10, 2_000_000_000)
WAF_LIMITS = ("waf_token_limit", "waf_register_limit", "waf_webhook_limit", "waf_ip_limit", "waf_web_limit")
# A CLOUDFRONT-scope web ACL lives in us-east-1, whatever the stage's region.
_WEB_ACL_ARN = re.compile(r"^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/[\w-]+/[\w-]+$")


@dataclass(frozen=True)
class StageSettings:
    name: str
    # Keep data when the stack or a table is deleted (RETAIN + deletion protection), prod only by default.
    retain_data: bool
    paypal_mode: str  # "sandbox" | "live"
    # Where PayPal sends the buyer back: {frontend_url}/paypal/return and /paypal/cancel (see API.md). Empty: the
    # stage's own web app, https://<its CloudFront domain> (infra/web.py); set it when a custom domain fronts it.
    frontend_url: str = ""
    # The id PayPal gives the webhook registered for {RestApiUrl}payment/webhook/; empty until registered.
    paypal_webhook_id: str = ""
    # API Gateway throttling: steady requests per second and burst, per stage (REST) / per route (WebSocket).
    rest_rate_limit: float = 100.0
    rest_burst_limit: int = 200
    ws_rate_limit: float = 200.0
    ws_burst_limit: int = 400
    log_retention_days: int = 14
    alarm_email: str = ""
    # Who buyers' emails come from: an address (or an address of a domain) verified in SES in the stage's region.
    # The email worker may send from it alone (docs/email.md).
    email_sender: str = "tickets@example.com"
    # Alarm when a function reports at least this many errors / throttles in one alarm period.
    errors_threshold: int = 1
    throttles_threshold: int = 1
    alarm_period_seconds: int = 300
    # Broadcast lag: alarm when the tickets stream consumer falls this far behind.
    stream_iterator_age_ms: int = 60_000
    # A stream batch that keeps failing is retried this often, then its metadata goes to a failure queue.
    stream_max_retries: int = 5
    stream_max_record_age_seconds: int = 300
    # Reserved concurrency per function (RESERVED_CONCURRENCY; 0: none, the function shares the unreserved pool).
    # The queue workers' event sources never run more than their reservation (SQS MaximumConcurrency).
    api_concurrency: int = 0
    ws_message_concurrency: int = 0
    purchase_concurrency: int = 0
    refund_concurrency: int = 0
    # Parallel slices of big rooms' broadcasts (FANOUT_SLICE_SIZE viewers each; docs/broadcasts.md).
    fanout_concurrency: int = 0
    stream_concurrency: int = 0
    sweep_concurrency: int = 0
    # Emails in flight: keeps the worker under SES's sending rate (14/s by default out of the sandbox, 1/s in it).
    email_concurrency: int = 0
    # The waiting-room ticker: one is enough (each sale's step is claimed with a conditional write anyway).
    waitroom_concurrency: int = 0
    # The account's Lambda concurrency quota in the stage's region (1,000 unless raised): reservations must leave
    # MIN_UNRESERVED_CONCURRENCY of it unreserved.
    account_concurrency: int = 1000
    # WAF rate-based rules: requests per client IP in WAF's 5-minute window (infra/waf.py; README "WAF").
    waf_token_limit: int = 300  # /api/token and /api/token/refresh
    waf_register_limit: int = 100  # /api/auth/register
    waf_webhook_limit: int = 20_000  # /api/payment/webhook: far above PayPal's delivery rate
    waf_ip_limit: int = 10_000  # every other REST path
    waf_web_limit: int = 10_000  # the web app's distribution
    # ARN of the stage's CLOUDFRONT web ACL (the `<stage>-edge` stack's WebAclArn output, us-east-1); empty: the
    # distribution has no web ACL until it is deployed and set.
    web_acl_arn: str = ""

    def reserved_concurrency(self, function: str) -> int:
        """The concurrency reserved for a function (0: none)."""
        field = RESERVED_CONCURRENCY.get(function)
        return getattr(self, field) if field else 0

    @property
    def stack_name(self) -> str:
        return f"{APP}-{self.name}"

    @property
    def resource_prefix(self) -> str:
        """Prefix of every physical name: matches TABLE_PREFIX / QUEUE_PREFIX of chalicelib.config."""
        return f"{APP}-{self.name}-"


DEFAULTS: dict[str, StageSettings] = {
    "dev": StageSettings(
        name="dev",
        retain_data=False,
        paypal_mode="sandbox",
        rest_rate_limit=50.0,
        rest_burst_limit=100,
        ws_rate_limit=100.0,
        ws_burst_limit=200,
        log_retention_days=14,
        api_concurrency=20,
        ws_message_concurrency=10,
        purchase_concurrency=2,
        refund_concurrency=2,
        fanout_concurrency=2,
        stream_concurrency=5,
        sweep_concurrency=1,
        email_concurrency=2,
        waitroom_concurrency=1,
        waf_token_limit=100,
        waf_register_limit=50,
        waf_webhook_limit=5_000,
        waf_ip_limit=2_000,
        waf_web_limit=2_000,
    ),
    "prod": StageSettings(
        name="prod",
        retain_data=True,
        paypal_mode="live",
        rest_rate_limit=500.0,
        rest_burst_limit=1000,
        ws_rate_limit=1000.0,
        ws_burst_limit=2000,
        log_retention_days=90,
        api_concurrency=500,
        ws_message_concurrency=200,
        purchase_concurrency=20,
        refund_concurrency=5,
        fanout_concurrency=20,
        stream_concurrency=20,
        sweep_concurrency=2,
        email_concurrency=5,
        waitroom_concurrency=1,
    ),
}


def _coerce(kind: object, raw: object) -> object:
    if not isinstance(raw, str):
        return raw
    if kind in (bool, "bool"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    return raw


def stage_settings(name: str, context: Callable[[str], object | None] = lambda key: None) -> StageSettings:
    """The settings of a stage: DEFAULTS[name] with any `<name>:<field>` context values applied.

    Raises KeyError for an unknown stage, ValueError for a value of the wrong type.
    """
    base = DEFAULTS[name]
    changes: dict[str, object] = {}
    for field in dataclasses.fields(base):
        if field.name == "name":
            continue
        raw = context(f"{name}:{field.name}")
        if raw is None:
            continue
        try:
            changes[field.name] = _coerce(field.type, raw)
        except ValueError as exc:
            raise ValueError(f"context {name}:{field.name}: {exc}") from exc
    settings = dataclasses.replace(base, **changes)
    if settings.paypal_mode not in ("sandbox", "live"):
        raise ValueError(f"context {name}:paypal_mode must be sandbox or live, got {settings.paypal_mode!r}")
    if settings.log_retention_days not in LOG_RETENTION_DAYS:
        raise ValueError(f"context {name}:log_retention_days must be one of {LOG_RETENTION_DAYS}")
    if settings.frontend_url and not settings.frontend_url.startswith(("https://", "http://")):
        raise ValueError(f"context {name}:frontend_url must be an http(s) URL, got {settings.frontend_url!r}")
    for field in ("rest_rate_limit", "rest_burst_limit", "ws_rate_limit", "ws_burst_limit"):
        if getattr(settings, field) <= 0:
            raise ValueError(f"context {name}:{field} must be positive")
    _check_concurrency(settings)
    _check_waf(settings)
    _check_email(settings)
    return settings


def _check_email(settings: StageSettings) -> None:
    local, _, domain = settings.email_sender.partition("@")
    if not local or "." not in domain:
        raise ValueError(
            f"context {settings.name}:email_sender must be an email address, got {settings.email_sender!r}"
        )


def _check_concurrency(settings: StageSettings) -> None:
    name = settings.name
    for function, field in RESERVED_CONCURRENCY.items():
        value = getattr(settings, field)
        if value < 0:
            raise ValueError(f"context {name}:{field} must be 0 (no reservation) or positive")
        # SQS MaximumConcurrency, set to the same number, takes 2 to 1000.
        if function in QUEUE_WORKERS and value and not 2 <= value <= 1000:
            raise ValueError(f"context {name}:{field} must be 0 or between 2 and 1000 (SQS maximum concurrency)")
    reserved = sum(settings.reserved_concurrency(function) for function in RESERVED_CONCURRENCY)
    if reserved > settings.account_concurrency - MIN_UNRESERVED_CONCURRENCY:
        raise ValueError(
            f"context {name}: the reservations ({reserved}) must leave {MIN_UNRESERVED_CONCURRENCY} of "
            f"{name}:account_concurrency ({settings.account_concurrency}) unreserved"
        )


def _check_waf(settings: StageSettings) -> None:
    low, high = WAF_LIMIT_RANGE
    for field in WAF_LIMITS:
        if not low <= getattr(settings, field) <= high:
            raise ValueError(f"context {settings.name}:{field} must be between {low} and {high}")
    if settings.web_acl_arn and not _WEB_ACL_ARN.match(settings.web_acl_arn):
        raise ValueError(
            f"context {settings.name}:web_acl_arn must be a CLOUDFRONT web ACL ARN "
            f"(arn:aws:wafv2:us-east-1:<account>:global/webacl/<name>/<id>), got {settings.web_acl_arn!r}"
        )
