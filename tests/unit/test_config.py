"""Settings come from the environment in one place and fail loudly, naming the variable."""

from __future__ import annotations

import pytest

from chalicelib.config import ConfigError, load_settings


def test_defaults_need_no_environment():
    settings = load_settings({})
    assert settings.stage == "local"
    assert settings.region == "us-east-1"
    assert settings.table_prefix == "tickets-local-"
    assert settings.dynamodb_endpoint is None and settings.sqs_endpoint is None
    assert (settings.hold_seconds, settings.max_tickets_per_user, settings.payment_window_seconds) == (600, 4, 900)
    assert (settings.jwt_issuer, settings.jwt_audience) == ("tickets", "tickets-api")
    assert settings.jwt_secret is None


def test_stage_names_the_tables():
    settings = load_settings({"STAGE": "prod"})
    assert settings.table_name("users") == "tickets-prod-users"


def test_table_prefix_overrides_the_stage_prefix():
    assert load_settings({"STAGE": "prod", "TABLE_PREFIX": "x-"}).table_name("events") == "x-events"


def test_generic_endpoint_reaches_dynamodb_and_sqs():
    settings = load_settings({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert settings.dynamodb_endpoint == settings.sqs_endpoint == "http://127.0.0.1:5000"


def test_service_specific_endpoint_wins_over_the_generic_one():
    settings = load_settings({"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_DYNAMODB": "http://b"})
    assert (settings.dynamodb_endpoint, settings.sqs_endpoint) == ("http://b", "http://a")


def test_blank_endpoint_means_the_real_aws_endpoint():
    assert load_settings({"AWS_ENDPOINT_URL": "  "}).dynamodb_endpoint is None


def test_region_falls_back_to_the_default_region_variable():
    assert load_settings({"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    assert load_settings({"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-central-1"


def test_integer_settings_are_read():
    settings = load_settings({"HOLD_SECONDS": "30", "MAX_TICKETS_PER_USER": "6", "ACCESS_TOKEN_SECONDS": "60"})
    assert (settings.hold_seconds, settings.max_tickets_per_user, settings.access_token_seconds) == (30, 6, 60)


@pytest.mark.parametrize(
    "name",
    ["HOLD_SECONDS", "MAX_TICKETS_PER_USER", "ACCESS_TOKEN_SECONDS", "PAYMENT_WINDOW_SECONDS", "PASSWORD_SCRYPT_N"],
)
def test_non_integer_setting_fails_naming_the_variable(name):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: "ten"})


@pytest.mark.parametrize("name", ["HOLD_SECONDS", "MAX_TICKETS_PER_USER", "REFRESH_TOKEN_SECONDS"])
def test_setting_below_its_minimum_fails_naming_the_variable(name):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: "0"})


def test_select_attempts_must_exceed_the_ticket_limit():
    assert load_settings({"MAX_TICKETS_PER_USER": "4"}).select_attempts >= 5
    with pytest.raises(ConfigError, match="SELECT_ATTEMPTS"):
        load_settings({"MAX_TICKETS_PER_USER": "4", "SELECT_ATTEMPTS": "4"})


@pytest.mark.parametrize("mode", ["sandbox", "live"])
def test_paypal_outside_local_mode_refuses_to_start_without_a_webhook_id(mode):
    with pytest.raises(ConfigError, match="PAYPAL_WEBHOOK_ID is required"):
        load_settings({"PAYPAL_MODE": mode})
    with pytest.raises(ConfigError, match="PAYPAL_WEBHOOK_ID is required"):
        load_settings({"PAYPAL_MODE": mode, "PAYPAL_WEBHOOK_ID": "  "})
    verified = load_settings({"PAYPAL_MODE": mode, "PAYPAL_WEBHOOK_ID": "1JE4291016473214C"})
    assert (verified.paypal_webhook_id, verified.paypal_webhooks) == ("1JE4291016473214C", "verify")


def test_webhooks_can_be_turned_off_explicitly_until_paypal_gives_the_id():
    settings = load_settings({"PAYPAL_MODE": "live", "PAYPAL_WEBHOOKS": "off"})
    assert (settings.paypal_webhook_id, settings.paypal_webhooks) == (None, "off")
    with pytest.raises(ConfigError, match="PAYPAL_WEBHOOKS"):
        load_settings({"PAYPAL_WEBHOOKS": "skip-verification"})


def test_local_mode_may_run_webhooks_unverified():
    assert load_settings({"PAYPAL_MODE": "local"}).paypal_webhook_id is None


def test_unknown_paypal_mode_fails_naming_the_variable():
    with pytest.raises(ConfigError, match="PAYPAL_MODE"):
        load_settings({"PAYPAL_MODE": "production"})


def test_jwt_secret_is_read_and_blank_means_unset():
    assert load_settings({"JWT_SECRET": "s" * 32}).jwt_secret == "s" * 32
    assert load_settings({"JWT_SECRET": " "}).jwt_secret is None


def test_settings_are_immutable():
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.hold_seconds = 1  # type: ignore[misc]


def test_a_jwt_secret_shorter_than_32_bytes_is_refused_naming_the_variable():
    with pytest.raises(ConfigError, match="JWT_SECRET must be at least 32 bytes"):
        load_settings({"JWT_SECRET": "s3cret"})
