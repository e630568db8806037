"""Helpers shared by the moto server's tests: clients, tables, transaction items, raw HTTP."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
FAILED = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}


def client(service: str, endpoint: str) -> Any:
    config = Config(max_pool_connections=64, retries={"max_attempts": 1})
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, config=config)


def create_table(dynamodb: Any, name: str, *, sort_key: str | None = None, **extra: Any) -> None:
    keys = [("pk", "HASH")] + ([(sort_key, "RANGE")] if sort_key else [])
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": kind} for key, kind in keys],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key, _ in keys],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def seed(dynamodb: Any, table: str, *keys: str) -> None:
    for key in keys:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": key}, "status": {"S": "available"}})


def update(table: str, key: str, expression: str, condition: str | None = None, **values: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "TableName": table,
        "Key": {"pk": {"S": key}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {f":{name}": {"S": value} for name, value in values.items()},
    }
    if condition:
        op["ConditionExpression"] = condition
        op["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Update": op}


def hold(table: str, key: str, status: str = "held") -> dict[str, Any]:
    """An Update moving an available item to `status` (ALL_OLD if it is not available)."""
    return update(table, key, "SET #s = :new", "#s = :available", new=status, available="available")


def statuses(dynamodb: Any, table: str) -> dict[str, str]:
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["pk"]["S"]: item["status"]["S"] for item in items}


def latest_iterator(streams: Any, dynamodb: Any, table: str) -> str:
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    return streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]


def signed_for(service: str) -> str:
    """An Authorization header moto routes by its credential scope (moto checks no signature)."""
    return (
        f"AWS4-HMAC-SHA256 Credential=testing/20250101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )


def port_of(endpoint: str) -> int:
    port = urllib.parse.urlsplit(endpoint).port
    assert port is not None
    return port


def server_side_connections(port: int) -> dict[int, int]:
    """Every established IPv4 TCP connection a server on `port` accepted, from the kernel's table:
    {client port: bytes received that the server has not read yet}."""
    connections = {}
    with open("/proc/net/tcp") as table:
        next(table)  # the column names
        for line in table:
            _, local, remote, state, queues, *_ = line.split()
            if state == "01" and int(local.rpartition(":")[2], 16) == port:  # 01: ESTABLISHED
                connections[int(remote.rpartition(":")[2], 16)] = int(queues.partition(":")[2], 16)
    return connections


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def exchange(port: int, request: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    """One raw HTTP request on a fresh connection: (the parsed answer, its body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock, method=request.split(b" ", 1)[0].decode())
        response.begin()
        return response, response.read()
