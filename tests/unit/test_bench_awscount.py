"""The bench names each AWS request from what goes on the wire."""

from __future__ import annotations

import pytest

from bench.awscount import RequestCounter, operation_of


@pytest.mark.parametrize(
    ("url", "headers", "body", "expected"),
    [
        (
            "http://moto/",
            {"X-Amz-Target": "DynamoDB_20120810.TransactWriteItems"},
            b"{}",
            "dynamodb.TransactWriteItems",
        ),
        ("http://moto/", {"X-Amz-Target": b"DynamoDB_20120810.GetItem"}, b"{}", "dynamodb.GetItem"),
        ("http://moto/", {"X-Amz-Target": "DynamoDBStreams_20120810.GetRecords"}, b"{}", "dynamodbstreams.GetRecords"),
        ("http://moto/", {"X-Amz-Target": "AmazonSQS.SendMessage"}, b"{}", "sqs.SendMessage"),
        ("http://moto/", {}, b"Action=ReceiveMessage&Version=2012-11-05", "sqs.ReceiveMessage"),
        ("http://gw/@connections/abc%3D", {}, b"{}", "apigatewaymanagementapi.PostToConnection"),
        ("https://x.execute-api/prod/%40connections/abc", {}, b"{}", "apigatewaymanagementapi.PostToConnection"),
        ("http://elsewhere/thing", {}, b"", "unknown./thing"),
    ],
)
def test_each_request_is_named_by_service_and_operation(url, headers, body, expected):
    assert operation_of(url, headers, body) == expected


def test_the_transports_are_counted_only_while_watching_and_put_back():
    from botocore.httpsession import URLLib3Session

    from chalicelib.signed_http import SignedHttp

    before = (URLLib3Session.send, SignedHttp.send)
    counter = RequestCounter()
    with counter.watching():
        assert (URLLib3Session.send, SignedHttp.send) != before
    assert (URLLib3Session.send, SignedHttp.send) == before
