"""Per-stage deploy settings: the defaults for `dev` and `prod`, overridable from CDK context.

Override one value with `-c <stage>:<field>=<value>` on the cdk command line (or the same key in cdk.json's
"context"), e.g. `cdk deploy tickets-prod -c prod:rest_rate_limit=1000 -c prod:alarm_email=ops@example.com`.
Plain application settings (HOLD_SECONDS, MAX_TICKETS_PER_USER, ...) live in `.chalice/config.json`, the
environment variables of each Chalice stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

APP = "tickets"
STAGES = ("dev", "prod")
# The retention periods CloudWatch Logs offers that infra/stack.py maps (a subset of RetentionDays).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)


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
    # Alarm when a function reports at least this many errors / throttles in one alarm period.
    errors_threshold: int = 1
    throttles_threshold: int = 1
    alarm_period_seconds: int = 300
    # Broadcast lag: alarm when the tickets stream consumer falls this far behind.
    stream_iterator_age_ms: int = 60_000
    # A stream batch that keeps failing is retried this often, then its metadata goes to a failure queue.
    stream_max_retries: int = 5
    stream_max_record_age_seconds: int = 300

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
    return settings
