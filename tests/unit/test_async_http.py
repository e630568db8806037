"""chalicelib.async_http's SigV4 signs exactly what botocore's SigV4Auth signs, from a key it derives once a day."""

from __future__ import annotations

import datetime as dt
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

from chalicelib.async_http import Headers, SigV4

REGION = "eu-west-1"
WHEN = dt.datetime(2026, 12, 5, 19, 30, 7)
AMZ_DATE = "20261205T193007Z"


def botocore_headers(url: str, body: bytes, credentials: Credentials) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers={})
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", REGION).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def ours(host: str, path: str, body: bytes, credentials: Credentials, amz_date: str = AMZ_DATE) -> dict[str, str]:
    lines = SigV4("execute-api", REGION).headers(
        "POST", host, path, body, credentials.get_frozen_credentials(), amz_date
    )
    assert lines.endswith("\r\n")
    return {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines.split("\r\n")[:-1])
    }


@pytest.mark.parametrize("connection_id", ["L0SM9cOFvHcCIhw=", "abc=/+x", "a b%c~d"])
@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzE-session-token/with+chars=="])
@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "abc123.execute-api.eu-west-1.amazonaws.com"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
    ],
)
def test_the_signature_is_botocores(connection_id, token, endpoint, host):
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    path = f"{urlsplit(endpoint).path}/@connections/{percent_encode(connection_id)}"
    body = b'{"type":"ticket_status","updates":[]}'

    theirs = botocore_headers(f"{endpoint}/@connections/{percent_encode(connection_id)}", body, credentials)
    mine = ours(host, path, body, credentials)

    assert mine["authorization"] == theirs["authorization"]
    assert mine["x-amz-date"] == theirs["x-amz-date"] == AMZ_DATE
    assert mine.get("x-amz-security-token") == theirs.get("x-amz-security-token") == token
    assert mine["host"] == host


def test_the_signing_key_follows_the_day_and_the_secret():
    signer = SigV4("execute-api", REGION)
    first = Credentials("AKID", "secret-one").get_frozen_credentials()

    def signature(credentials, amz_date):
        return (
            signer.headers("POST", "h", "/@connections/c", b"x", credentials, amz_date)
            .rsplit("Signature=", 1)[1]
            .strip()
        )

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


def test_response_headers_are_read_in_any_case():
    headers = Headers({"x-amzn-errortype": "GoneException"})
    assert headers.get("x-amzn-ErrorType") == "GoneException"
    assert headers.get("X-Missing", "default") == "default"
