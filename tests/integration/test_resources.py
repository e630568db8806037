"""local/resources.py against the moto server: tables from the code's own definitions, kept up to date."""

from __future__ import annotations

import boto3

from chalicelib import tables
from local.resources import create_table_request, ensure_tables
from tests.support.tables import make_settings


def test_an_index_added_by_newer_code_is_created_on_an_existing_table_and_its_items_kept(moto_endpoint):
    settings = make_settings(moto_endpoint)
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = settings.table_name(tables.ORDERS.logical)
    # The orders table as an older version made it: no by_attention index.
    older = tables.ORDERS._replace(indexes=tuple(i for i in tables.ORDERS.indexes if i.name != "by_attention"))
    dynamodb.create_table(**create_table_request(older, name))
    dynamodb.put_item(
        TableName=name,
        Item={"order_id": {"S": "o1"}, "attention": {"S": "reversed"}, "created_at": {"S": "2030-01-01T00:00:00Z"}},
    )

    ensure_tables(dynamodb, settings)

    indexes = {i["IndexName"] for i in dynamodb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]}
    assert indexes == {i.name for i in tables.ORDERS.indexes}
    found = dynamodb.query(
        TableName=name,
        IndexName="by_attention",
        KeyConditionExpression="attention = :a",
        ExpressionAttributeValues={":a": {"S": "reversed"}},
    )["Items"]
    assert [item["order_id"]["S"] for item in found] == ["o1"]
    ensure_tables(dynamodb, settings)  # and again: nothing left to add
