"""The aiohttp front: the WSGI environ, kept-alive connections, response headers, the Flask shortcut."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.moto import server
from local.moto.speed import shortcut
from tests.integration.moto.common import (
    STREAM,
    client,
    create_table,
    exchange,
    port_of,
    server_side_connections,
    signed_for,
)

# What moto's code reads from a WSGI environ (Request, DomainDispatcherApplication, locks_for, Flask routing);
# every HTTP_* key is compared too.
MOTO_READS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "RAW_URI",
    "REQUEST_URI",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_PROTOCOL",
    "wsgi.url_scheme",
)
BODY_SEEN = "test.body"


def moto_view(environ: dict[str, Any]) -> dict[str, Any]:
    from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY

    view = {key: environ.get(key) for key in MOTO_READS}
    view.update((key, value) for key, value in environ.items() if key.startswith("HTTP_"))
    # moto reads the preserved names as `environ.get(key) or {}`: absent and empty are the same to it.
    view[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = environ.get(PRESERVED_HEADER_NAMES_ENVIRON_KEY) or {}
    # werkzeug leaves CONTENT_LENGTH out for a request without a body, the bridge says "0"; both read as an
    # empty body, and moto's own in-process requests say "0" too (Request.from_primitives).
    view["CONTENT_LENGTH"] = environ.get("CONTENT_LENGTH") or "0"
    view[BODY_SEEN] = environ[BODY_SEEN]
    return view


@pytest.fixture(scope="module")
def environs_for() -> Iterator[Callable[[bytes], tuple[dict[str, Any], dict[str, Any]]]]:
    """Send the same raw request to werkzeug's development server with moto's MotoRequestHandler (what moto
    was served from before) and to aiohttp serving through WsgiBridge.handle (as `_serve` routes it), both
    running one WSGI app that records its environ: (werkzeug's environ, the bridge's environ)."""
    from aiohttp import web
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    seen: list[dict[str, Any]] = []

    def recording_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        seen.append({**environ, BODY_SEEN: environ["wsgi.input"].read(length)})
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    werkzeug_server = make_server("127.0.0.1", 0, recording_app, request_handler=MotoRequestHandler)
    werkzeug_thread = threading.Thread(target=werkzeug_server.serve_forever, daemon=True)
    werkzeug_thread.start()

    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    bridge = server.WsgiBridge(recording_app, "127.0.0.1", 0)

    async def start() -> tuple[Any, int]:
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", bridge.handle)
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, bridge_port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    def environs(request: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        seen.clear()
        for port in (werkzeug_server.server_port, bridge_port):
            response, body = exchange(port, request)
            assert (response.status, body) == (200, b"ok")
        werkzeug_environ, bridge_environ = seen
        return werkzeug_environ, bridge_environ

    try:
        yield environs
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(10)
        loop.close()
        bridge.shutdown()
        werkzeug_server.shutdown()
        werkzeug_server.server_close()


def raw_http(request_line: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [request_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


ENVIRON_CASES = [
    pytest.param(
        raw_http(
            "GET /bucket-one/a%2Fb/%E2%9C%93%20caf%C3%A9%2B1?list-type=2&prefix=a%2Fb%2F&marker=%C3%BC+x HTTP/1.1",
            [
                ("Host", "127.0.0.1:5000"),
                ("X-Amz-Date", "20250101T000000Z"),
                ("X-Repeated", "one"),
                ("x-repeated", "two"),
                ("Accept-Encoding", "identity"),
                ("Authorization", signed_for("s3")),
            ],
        ),
        id="encoded-slash-and-unicode-path-query-repeated-header",
    ),
    pytest.param(
        raw_http(
            "POST / HTTP/1.1",
            [
                ("Host", "localhost:5000"),
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "DynamoDB_20120810.GetItem"),
                ("Authorization", signed_for("dynamodb")),
                ("Content-Length", "25"),
            ],
            b'{"TableName": "t\\u00fc1"}',
        ),
        id="json-target-post",
    ),
    pytest.param(
        raw_http(
            "POST / HTTP/1.1",
            [
                ("Host", "localhost:5000"),
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("Authorization", signed_for("sqs")),
                ("Content-Length", "36"),
            ],
            b"Action=ListQueues&Version=2012-11-05",
        ),
        id="query-protocol-form-post",
    ),
]


@pytest.mark.parametrize("request_bytes", ENVIRON_CASES)
def test_bridge_environ_matches_what_werkzeug_builds_for_the_same_request(
    environs_for: Callable[[bytes], tuple[dict[str, Any], dict[str, Any]]], request_bytes: bytes
) -> None:
    werkzeug_environ, bridge_environ = environs_for(request_bytes)

    method, target, _ = request_bytes.split(b"\r\n", 1)[0].decode().split(" ")
    assert (werkzeug_environ["REQUEST_METHOD"], werkzeug_environ["RAW_URI"]) == (method, target)  # not vacuous
    assert moto_view(bridge_environ) == moto_view(werkzeug_environ)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            raw_http("GET /moto-api/ HTTP/1.1", [("Host", "localhost:5000"), ("x_custom", "underscored")]),
            id="underscored-header-outside-metadata",
        ),
    ],
)
def test_bridge_drops_underscored_headers_like_werkzeug(
    environs_for: Callable[[bytes], tuple[dict[str, Any], dict[str, Any]]], request_bytes: bytes
) -> None:
    werkzeug_environ, bridge_environ = environs_for(request_bytes)

    assert moto_view(bridge_environ) == moto_view(werkzeug_environ)


def test_sequential_boto3_calls_reuse_one_kept_alive_connection(endpoint: str) -> None:
    port = port_of(endpoint)
    others = set(server_side_connections(port))  # earlier tests' pooled connections
    dynamodb = client("dynamodb", endpoint)

    create_table(dynamodb, "keepalive")
    opened = set(server_side_connections(port)) - others
    for n in range(30):
        dynamodb.put_item(TableName="keepalive", Item={"pk": {"S": f"k{n}"}, "status": {"S": "available"}})
        dynamodb.get_item(TableName="keepalive", Key={"pk": {"S": f"k{n}"}})

    # A server closing connections would have made botocore open a new one (a new client port) per call.
    assert len(opened) == 1
    assert set(server_side_connections(port)) - others == opened


def dynamodb_request(target: str, body: dict[str, Any]) -> tuple[str, str, bytes, dict[str, str]]:
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"DynamoDB_20120810.{target}",
        "Authorization": signed_for("dynamodb"),
    }
    return "POST", "/", json.dumps(body).encode(), headers


def test_answers_carry_one_content_length_matching_the_body_on_a_kept_alive_connection(endpoint: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port_of(endpoint), timeout=10)
    requests = [
        dynamodb_request("DescribeTable", {"TableName": "no-such-table"}),
        ("GET", "/moto-api/", b"", {}),
        (
            "POST",
            "/",
            b"Action=ListQueues&Version=2012-11-05",
            {"Content-Type": "application/x-www-form-urlencoded", "Authorization": signed_for("sqs")},
        ),
    ]
    statuses: list[int] = []
    sockets: list[Any] = []
    try:
        for method, path, body, headers in requests:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            statuses.append(response.status)
            sockets.append(connection.sock)  # http.client drops the socket after a `Connection: close` answer
            assert response.msg.get_all("Content-Length") == [str(len(payload))]
            assert response.msg.get_all("Transfer-Encoding") is None
            assert len(response.msg.get_all("Connection") or []) <= 1
    finally:
        connection.close()

    assert statuses == [400, 200, 200]
    assert sockets[0] is not None and all(sock is sockets[0] for sock in sockets)  # one kept-alive connection


def test_boto3_parses_answers_with_a_single_content_length(endpoint: str) -> None:
    dynamodb = client("dynamodb", endpoint)
    create_table(dynamodb, "lengths")
    found = dynamodb.describe_table(TableName="lengths")
    with pytest.raises(ClientError) as missing:
        dynamodb.describe_table(TableName="no-such-table")

    for metadata in (found["ResponseMetadata"], missing.value.response["ResponseMetadata"]):
        headers = metadata["HTTPHeaders"]  # botocore joins a repeated header's values with ", "
        assert headers["content-length"].isdigit()
        assert "transfer-encoding" not in headers
        assert headers["x-amzn-requestid"] == metadata["RequestId"]
    assert found["Table"]["TableName"] == "lengths"
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_head_request_is_answered_without_a_body(endpoint: str) -> None:
    port = port_of(endpoint)
    # Read to EOF: whatever follows the headers would be a body.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"HEAD /moto-api/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, after_headers = answer.partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 200 ")
    assert after_headers == b""
    # And a kept-alive connection goes on to the next answer cleanly after a HEAD.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("HEAD", "/moto-api/")
        assert connection.getresponse().read() == b""
        connection.request("GET", "/moto-api/config")
        config = connection.getresponse()
        assert config.status < 300 and isinstance(json.loads(config.read()), dict)
    finally:
        connection.close()


# JsonTargetShortcut against moto's own Flask route, in-process


@pytest.fixture
def moto_apps(patched_moto: tuple[Any, Any]) -> tuple[Any, Any, list[str]]:
    """moto's own server app and JsonTargetShortcut in front of it, on patched_moto's backends:
    (moto's app, the shortcut, the paths the shortcut passed on to moto's app)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    dynamodb, _ = patched_moto
    create_table(dynamodb, "shortcut", sort_key="sk", StreamSpecification=STREAM)
    dynamodb.put_item(TableName="shortcut", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "status": {"S": "held"}})
    moto_app = DomainDispatcherApplication(create_backend_app)
    passed_on: list[str] = []

    def behind_the_shortcut(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        passed_on.append(environ["PATH_INFO"])
        return moto_app(environ, start_response)

    return moto_app, shortcut.JsonTargetShortcut(behind_the_shortcut), passed_on


def answer_of(app: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    from werkzeug.test import Client

    response = Client(app).open(path, method=method, data=body, headers={"Host": "localhost:5000", **headers})
    return response.status_code, {name.lower(): value for name, value in response.headers.items()}, response.data


def streams_request(target: str, body: dict[str, Any]) -> tuple[str, str, bytes, dict[str, str]]:
    method, path, data, headers = dynamodb_request(target, body)
    return method, path, data, {**headers, "X-Amz-Target": f"DynamoDBStreams_20120810.{target}"}


SHORTCUT_CASES = [
    pytest.param(
        dynamodb_request("DescribeTable", {"TableName": "no-such-table"}),
        400,
        "ResourceNotFoundException",
        id="describe-missing-table",
    ),
    pytest.param(
        dynamodb_request("GetItem", {"TableName": "shortcut", "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}}}),
        200,
        None,
        id="get-item",
    ),
    pytest.param(
        dynamodb_request("GetItem", {"TableName": "shortcut", "Key": {"pk": {"S": "a"}}}),
        400,
        "ValidationException",
        id="get-item-missing-range-key",
    ),
    pytest.param(
        dynamodb_request(
            "Query",
            {
                "TableName": "shortcut",
                "KeyConditionExpression": "nope = :v",
                "ExpressionAttributeValues": {":v": {"S": "a"}},
            },
        ),
        400,
        "ValidationException",
        id="query-key-condition-on-a-non-key",
    ),
    pytest.param(
        dynamodb_request(
            "Query",
            {
                "TableName": "shortcut",
                "KeyConditionExpression": "pk BETWEEN :v",
                "ExpressionAttributeValues": {":v": {"S": "a"}},
            },
        ),
        400,
        "ValidationException",
        id="query-key-condition-unsupported-operator",
    ),
    pytest.param(streams_request("ListStreams", {"TableName": "shortcut"}), 200, None, id="streams-list-streams"),
    pytest.param(
        streams_request("DescribeStream", {"StreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/y"}),
        400,
        "ResourceNotFoundException",
        id="streams-describe-missing-stream",
    ),
]


@pytest.mark.parametrize(("request_parts", "status", "error"), SHORTCUT_CASES)
def test_json_target_shortcut_answers_what_moto_flask_route_answers(
    moto_apps: tuple[Any, Any, list[str]],
    request_parts: tuple[str, str, bytes, dict[str, str]],
    status: int,
    error: str | None,
) -> None:
    moto_app, shortcut, passed_on = moto_apps

    by_shortcut = answer_of(shortcut, *request_parts)
    by_moto = answer_of(moto_app, *request_parts)

    assert passed_on == []  # the shortcut answered it itself
    assert by_shortcut[0] == by_moto[0] == status
    assert json.loads(by_shortcut[2]) == json.loads(by_moto[2])
    if error is not None:
        assert json.loads(by_moto[2])["__type"].endswith(f"#{error}")
    if request_parts[3]["X-Amz-Target"].startswith("DynamoDB_"):
        assert "x-amz-crc32" in by_moto[1]  # DynamoDB's answers carry one (Streams' do not): compared below
    for headers in (by_shortcut[1], by_moto[1]):
        assert {"x-amzn-requestid", "content-type", "content-length"} <= set(headers)
        headers["x-amzn-requestid"] = "random per request"
    # CORS headers (flask_cors in moto's Flask app) have a test of their own below.
    assert without_cors(by_shortcut[1]) == without_cors(by_moto[1])


def without_cors(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if not name.startswith("access-control-") and name != "vary"}


@pytest.mark.parametrize("origin", [None, "http://localhost:8000"])
def test_json_target_shortcut_answers_cors_headers_like_moto(
    moto_apps: tuple[Any, Any, list[str]], origin: str | None
) -> None:
    moto_app, shortcut, _ = moto_apps
    method, path, body, headers = dynamodb_request("DescribeTable", {"TableName": "shortcut"})
    if origin is not None:
        headers["Origin"] = origin

    by_shortcut = answer_of(shortcut, method, path, body, headers)
    by_moto = answer_of(moto_app, method, path, body, headers)

    assert by_moto[1]["access-control-allow-origin"] == (origin or "*")  # what moto's app answers
    assert by_shortcut[1].get("access-control-allow-origin") == by_moto[1]["access-control-allow-origin"]


@pytest.mark.parametrize(
    "request_parts",
    [
        pytest.param(("GET", "/moto-api/", b"", {}), id="moto-api-dashboard"),
        pytest.param(
            (
                "POST",
                "/",
                b"Action=ListQueues&Version=2012-11-05",
                {"Content-Type": "application/x-www-form-urlencoded", "Authorization": signed_for("sqs")},
            ),
            id="sqs-query-protocol-post",
        ),
        pytest.param(
            ("GET", *dynamodb_request("ListTables", {})[1:]),
            id="dynamodb-target-on-a-get",
        ),
        pytest.param(
            ("POST", "/elsewhere", *dynamodb_request("ListTables", {})[2:]),
            id="dynamodb-target-on-another-path",
        ),
        pytest.param(
            (
                "POST",
                "/",
                b"{}",
                {
                    "Content-Type": "application/x-amz-json-1.0",
                    "X-Amz-Target": "AmazonSQS.ListQueues",
                    "Authorization": signed_for("sqs"),
                },
            ),
            id="sqs-json-target",
        ),
    ],
)
def test_json_target_shortcut_passes_every_other_request_to_moto(
    moto_apps: tuple[Any, Any, list[str]], request_parts: tuple[str, str, bytes, dict[str, str]]
) -> None:
    moto_app, shortcut, passed_on = moto_apps

    by_shortcut = answer_of(shortcut, *request_parts)
    by_moto = answer_of(moto_app, *request_parts)

    assert passed_on == [request_parts[1]]
    assert by_shortcut[0] == by_moto[0]
