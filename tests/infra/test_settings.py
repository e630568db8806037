"""Per-stage deploy settings: defaults per stage, overridable from CDK context with typed values."""

from __future__ import annotations

import re

import pytest

from infra.settings import DEFAULTS, stage_settings


def _context(values: dict[str, str]):
    return values.get


def test_prod_keeps_its_data_and_takes_live_payments_while_dev_does_neither():
    assert DEFAULTS["prod"].retain_data and DEFAULTS["prod"].paypal_mode == "live"
    assert not DEFAULTS["dev"].retain_data and DEFAULTS["dev"].paypal_mode == "sandbox"


def test_context_values_override_the_stage_defaults_with_their_field_types():
    settings = stage_settings(
        "prod",
        _context(
            {
                "prod:rest_rate_limit": "1000",
                "prod:ws_burst_limit": "50",
                "prod:retain_data": "false",
                "prod:alarm_email": "ops@example.com",
                "dev:rest_rate_limit": "1",
            }
        ),
    )

    assert settings.rest_rate_limit == 1000.0
    assert settings.ws_burst_limit == 50
    assert settings.retain_data is False
    assert settings.alarm_email == "ops@example.com"
    assert settings.ws_rate_limit == DEFAULTS["prod"].ws_rate_limit


@pytest.mark.parametrize(
    "key, value",
    [
        ("dev:paypal_mode", "local"),
        ("dev:log_retention_days", "13"),
        ("dev:rest_rate_limit", "0"),
        ("dev:retain_data", "maybe"),
        ("dev:ws_burst_limit", "many"),
        ("dev:email_sender", "tickets"),
        ("dev:email_sender", "tickets@localhost"),
    ],
)
def test_invalid_context_values_are_refused_naming_the_setting(key, value):
    with pytest.raises(ValueError, match=re.escape(key)):
        stage_settings("dev", _context({key: value}))


def test_an_unknown_stage_is_refused():
    with pytest.raises(KeyError):
        stage_settings("staging")


def test_prod_reserves_more_concurrency_and_allows_more_traffic_than_dev():
    dev, prod = DEFAULTS["dev"], DEFAULTS["prod"]
    for field in ("api_concurrency", "ws_message_concurrency", "purchase_concurrency", "stream_concurrency"):
        assert getattr(prod, field) > getattr(dev, field) > 0, field
    for field in ("waf_token_limit", "waf_webhook_limit", "waf_ip_limit", "waf_web_limit"):
        assert getattr(prod, field) > getattr(dev, field), field


def test_new_context_values_take_their_field_types():
    settings = stage_settings("dev", _context({"dev:waf_token_limit": "250", "dev:purchase_concurrency": "4"}))
    assert settings.waf_token_limit == 250
    assert settings.reserved_concurrency("PurchaseWorker") == 4
