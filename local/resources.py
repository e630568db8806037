"""Create the tables and queues described in chalicelib.tables on any AWS-compatible endpoint, and verify the
email sender with SES.

Idempotent: existing tables and queues keep their data, so restarts never fail on old data; an index a newer
version of the code added is created on an existing table (a `.local-state` from before it still works).
"""

from __future__ import annotations

import json
import logging

from botocore.exceptions import ClientError

from chalicelib import tables
from chalicelib.config import Settings

log = logging.getLogger("local.resources")


def _projection(index: tables.Index) -> dict:
    projection: dict = {"ProjectionType": index.projection}
    if index.projection == "INCLUDE":
        projection["NonKeyAttributes"] = list(index.non_key_attributes)
    return projection


def _key_schema(hash_key: tables.Key, range_key: tables.Key | None) -> list[dict]:
    schema = [{"AttributeName": hash_key.name, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return schema


def _index_request(index: tables.Index) -> dict:
    return {
        "IndexName": index.name,
        "KeySchema": _key_schema(index.hash_key, index.range_key),
        "Projection": _projection(index),
    }


def _add_missing_indexes(dynamodb, spec: tables.TableSpec, name: str, description: dict) -> None:
    present = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
    for index in spec.indexes:
        if index.name in present:
            continue
        keys = [index.hash_key, *([index.range_key] if index.range_key else [])]
        dynamodb.update_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": k.name, "AttributeType": k.type} for k in keys],
            GlobalSecondaryIndexUpdates=[{"Create": _index_request(index)}],
        )
        log.info("added index %s to table %s", index.name, name)


def create_table_request(spec: tables.TableSpec, name: str) -> dict:
    """The CreateTable request for a spec (on-demand billing, as in infra)."""
    request: dict = {
        "TableName": name,
        "KeySchema": _key_schema(spec.hash_key, spec.range_key),
        "AttributeDefinitions": [{"AttributeName": k.name, "AttributeType": k.type} for k in spec.key_attributes()],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [_index_request(index) for index in spec.indexes]
    if spec.stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": spec.stream}
    return request


def ensure_tables(dynamodb, settings: Settings) -> dict[str, str]:
    """Create missing tables; returns logical name -> latest stream ARN (for tables with a stream)."""
    streams: dict[str, str] = {}
    for spec in tables.TABLES:
        name = settings.table_name(spec.logical)
        try:
            description = dynamodb.describe_table(TableName=name)["Table"]
            _add_missing_indexes(dynamodb, spec, name, description)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            description = dynamodb.create_table(**create_table_request(spec, name))["TableDescription"]
            log.info("created table %s", name)
            if spec.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )
        if spec.stream and description.get("LatestStreamArn"):
            streams[spec.logical] = description["LatestStreamArn"]
    return streams


def ensure_queues(sqs, settings: Settings, visibility_seconds: int | None = None) -> dict[str, str]:
    """Create each queue with its dead-letter queue and redrive policy; returns logical -> URL.

    visibility_seconds overrides the spec's timeout locally, so a failed message is redelivered
    (and redriven to its DLQ) within seconds instead of minutes.
    """
    urls: dict[str, str] = {}
    for spec in tables.QUEUES:
        fifo = {"FifoQueue": "true"} if spec.fifo else {}
        dlq_url = sqs.create_queue(
            QueueName=spec.dlq_name(settings.queue_prefix),
            Attributes={"MessageRetentionPeriod": str(spec.dlq_retention_seconds), **fifo},
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName=spec.name(settings.queue_prefix),
            Attributes={
                **fifo,
                "VisibilityTimeout": str(visibility_seconds or spec.visibility_timeout_seconds),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}
                ),
            },
        )["QueueUrl"]
        urls[spec.logical] = url
        urls[spec.dlq_logical] = dlq_url
    return urls


def ensure_sender(ses, settings: Settings) -> None:
    """Verify the sender identity (EMAIL_SENDER): SES sends from verified identities only, moto's SES too."""
    ses.verify_email_identity(EmailAddress=settings.email_sender)
