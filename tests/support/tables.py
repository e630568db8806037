"""Tables and queues for the integration suites, made from the code's own definitions on a moto endpoint."""

from __future__ import annotations

import uuid

import boto3

from chalicelib.config import load_settings
from chalicelib.etickets import new_keyset_json
from chalicelib.wiring import Container
from local.resources import ensure_queues, ensure_tables

# One e-ticket keyset for the test session (generating one per settings would do too; this is just cheaper).
TEST_TICKET_KEYS = new_keyset_json()


def make_settings(endpoint: str, **overrides: str):
    """Settings for an isolated set of tables (a unique prefix per test module or test)."""
    prefix = overrides.pop("TABLE_PREFIX", f"it-{uuid.uuid4().hex[:8]}-")
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "TABLE_PREFIX": prefix,
        "QUEUE_PREFIX": prefix,
        "JWT_SECRET": "integration-secret-integration-secret",
        "TICKET_KEYS": TEST_TICKET_KEYS,
        "PASSWORD_SCRYPT_N": "1024",
        "WS_MANAGEMENT_ENDPOINT": "http://127.0.0.1:9",
        **overrides,
    }
    return load_settings(env)


def provision(settings) -> dict[str, str]:
    session = boto3.session.Session(region_name=settings.region)
    streams = ensure_tables(session.client("dynamodb", endpoint_url=settings.dynamodb_endpoint), settings)
    ensure_queues(session.client("sqs", endpoint_url=settings.sqs_endpoint), settings)
    return streams


def bound(container: Container) -> Container:
    """The container with the storage models pointed at its tables again: pynamodb models are bound
    process-wide, so another module's container may have rebound them to its own tables."""
    from chalicelib import tables
    from chalicelib.storage.models import User, bind_models

    if User.Meta.table_name != container.settings.table_name(tables.USERS.logical):
        bind_models(container.settings)
    return container


def stream_world(moto_endpoint: str, title: str, **env: str) -> dict:
    """Fresh tables, a container on them, one event, and a DynamoDB Streams client with the tickets
    stream's ARN: what a test of the stream-driven paths (broadcasts, sweep) starts from."""
    from chalicelib.storage.catalog import CatalogRepository

    settings = make_settings(moto_endpoint, **env)
    streams = provision(settings)
    container = Container(settings)
    CatalogRepository().put_category("drama", "Drama")
    event = container.catalog.create_event(title=title, description="", category="drama", duration_minutes=90)
    session = boto3.session.Session(region_name=settings.region)
    return {
        "settings": settings,
        "container": container,
        "event": event["id"],
        "streams": session.client("dynamodbstreams", endpoint_url=moto_endpoint),
        "stream_arn": streams["tickets"],
    }
