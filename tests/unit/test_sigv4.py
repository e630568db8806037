"""chalicelib.sigv4 signs exactly what botocore's SigV4Auth signs, from a key it derives once a day; our two HTTP
clients send what it signed."""

from __future__ import annotations

import datetime as dt
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

from chalicelib.async_http import Headers
from chalicelib.signed_http import SignedHttp
from chalicelib.sigv4 import SigV4

REGION = "eu-west-1"
WHEN = dt.datetime(2026, 12, 5, 19, 30, 7)
AMZ_DATE = "20261205T193007Z"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
TEMPORARY = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "FQoGZXIvYXdzE-token/with+chars==")


def botocore_headers(
    url: str, body: bytes, credentials: Credentials, headers=None, service="execute-api", method="POST"
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        SigV4Auth(credentials.get_frozen_credentials(), service, REGION).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def ours(
    host: str,
    path: str,
    body: bytes,
    credentials: Credentials,
    headers=(),
    query="",
    service="execute-api",
    method="POST",
) -> dict[str, str]:
    signed = SigV4(service, REGION).sign(
        method, host, path, body, credentials.get_frozen_credentials(), AMZ_DATE, headers, query
    )
    result = {name.lower(): value for name, value in signed}
    assert len(result) == len(signed)  # no header twice
    return result


@pytest.mark.parametrize("connection_id", ["L0SM9cOFvHcCIhw=", "abc=/+x", "a b%c~d"])
@pytest.mark.parametrize("credentials", [CREDENTIALS, TEMPORARY], ids=["long-term", "temporary"])
@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "abc123.execute-api.eu-west-1.amazonaws.com"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
    ],
)
def test_a_post_to_a_connection_is_signed_as_botocore_signs_it(connection_id, credentials, endpoint, host):
    path = f"{urlsplit(endpoint).path}/@connections/{percent_encode(connection_id)}"
    body = b'{"type":"ticket_status","updates":[]}'

    theirs = botocore_headers(f"{endpoint}/@connections/{percent_encode(connection_id)}", body, credentials)
    mine = ours(host, path, body, credentials)

    assert mine["authorization"] == theirs["authorization"]
    assert mine["x-amz-date"] == theirs["x-amz-date"] == AMZ_DATE
    assert mine.get("x-amz-security-token") == theirs.get("x-amz-security-token") == credentials.token
    assert mine["host"] == host


@pytest.mark.parametrize("credentials", [CREDENTIALS, TEMPORARY], ids=["long-term", "temporary"])
def test_a_json_call_with_headers_of_its_own_is_signed_as_botocore_signs_it(credentials):
    # What local/pollers.py sends: a target and a content type (signed), a user agent (never signed, as a proxy
    # may change it), a value with runs of spaces (signed trimmed).
    headers = {
        "X-Amz-Target": "DynamoDBStreams_20120810.GetRecords",
        "Content-Type": "application/x-amz-json-1.0",
        "User-Agent": "tickets/1.0",
        "X-Custom": "  a   b  ",
    }
    body = b'{"ShardIterator": "it", "Limit": 100}'

    theirs = botocore_headers("http://127.0.0.1:5000/", body, credentials, headers, service="dynamodb")
    mine = ours("127.0.0.1:5000", "/", body, credentials, headers.items(), service="dynamodb")

    assert mine["authorization"] == theirs["authorization"]
    assert "user-agent" not in mine["authorization"]
    assert mine["x-amz-target"] == headers["X-Amz-Target"]


def test_a_query_string_is_signed_sorted_as_botocore_signs_it():
    url = "https://api.example.com/prod/items?b=2&a=3&a=1&empty="
    parts = urlsplit(url)

    theirs = botocore_headers(url, b"", CREDENTIALS, method="GET")
    mine = ours(parts.netloc, parts.path, b"", CREDENTIALS, query=parts.query, method="GET")

    assert mine["authorization"] == theirs["authorization"]


def test_the_signing_key_follows_the_day_and_the_secret():
    signer = SigV4("execute-api", REGION)
    first = Credentials("AKID", "secret-one").get_frozen_credentials()

    def signature(credentials, amz_date):
        headers = dict(signer.sign("POST", "h", "/@connections/c", b"x", credentials, amz_date))
        return headers["Authorization"].rsplit("Signature=", 1)[1]

    today = signature(first, AMZ_DATE)
    assert signature(first, AMZ_DATE) == today
    tomorrow = signature(first, "20261206T000001Z")
    rotated = signature(Credentials("AKID", "secret-two").get_frozen_credentials(), "20261206T000001Z")
    assert len({today, tomorrow, rotated}) == 3
    # and each still equals botocore's for its own day and secret
    later = dt.datetime(2026, 12, 6, 0, 0, 1)
    request = AWSRequest(method="POST", url="http://h/@connections/c", data=b"x", headers={})
    with mock.patch("botocore.auth.get_current_datetime", return_value=later):
        SigV4Auth(Credentials("AKID", "secret-two").get_frozen_credentials(), "execute-api", REGION).add_auth(request)
    assert request.headers["Authorization"].rsplit("Signature=", 1)[1] == rotated


@pytest.mark.parametrize(
    ("url", "host"),
    [
        (
            "https://abc.execute-api.eu-west-1.amazonaws.com:443/prod/@connections/a%3D",
            "abc.execute-api.eu-west-1.amazonaws.com",
        ),
        ("http://127.0.0.1:8000/@connections/a%3D", "127.0.0.1:8000"),
    ],
)
def test_signed_http_sends_the_signed_headers_with_botocores_signature(url, host):
    http = SignedHttp(url.split("/@")[0], "execute-api", REGION, TEMPORARY)
    sent = {}

    def urlopen(method, target, body, headers, preload_content):
        sent.update(method=method, target=target, body=body, headers=headers)

    with (
        mock.patch.object(http._pool, "urlopen", side_effect=urlopen),
        mock.patch("chalicelib.sigv4.time.gmtime", return_value=WHEN.timetuple()),
    ):
        http.send("POST", url, b"{}", {"Content-Type": "application/json"})

    theirs = botocore_headers(url, b"{}", TEMPORARY, {"Content-Type": "application/json"})
    assert sent["target"] == urlsplit(url).path
    assert sent["headers"]["Host"] == host
    assert sent["headers"]["Authorization"] == theirs["authorization"]
    assert sent["headers"]["X-Amz-Security-Token"] == TEMPORARY.token


def test_response_headers_are_read_in_any_case():
    headers = Headers({"x-amzn-errortype": "GoneException"})
    assert headers.get("x-amzn-ErrorType") == "GoneException"
    assert headers.get("X-Missing", "default") == "default"
