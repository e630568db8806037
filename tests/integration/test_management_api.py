"""ManagementApi (chalicelib/management_api.py) over real HTTP against a recording stand-in for API Gateway's
`@connections` endpoint: the same signed request as boto3's `apigatewaymanagementapi` client, boto3's error
shapes and retries, before-send hooks, and one kept-alive connection for many posts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError, SSLError

from chalicelib.broadcast import Broadcaster
from chalicelib.management_api import ManagementApi
from chalicelib.storage.connections import ConnectionRepository

ACCESS_KEY = "AKIDTESTMANAGEMENT"
SECRET_KEY = "test-secret-key-for-management-api"
REGION = "us-east-1"
# "=", "/" and "+" must be percent-encoded in the path segment; API Gateway's real ids end in "=".
CONNECTION_ID = "abc=/+x"
DATA = b'{"type":"ticket_status","updates":[{"ticket_id":"s1-A1","status":"held"}]}'


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # the raw request target, as it came over the wire
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client_port: int

    @property
    def authorization(self) -> dict[str, str]:
        """`AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` as a dict."""
        scheme, _, rest = self.headers["authorization"].partition(" ")
        assert scheme == "AWS4-HMAC-SHA256"
        return dict(part.strip().split("=", 1) for part in rest.split(","))


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False  # the body in chunks (Transfer-Encoding: chunked) instead of a Content-Length


class RecordingServer:
    """Records every request; answers the scripted answers in order, then `default`. Speaks HTTP/1.1 keep-alive."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Recorded] = []
        self.script: list[Answer] = []
        self.default = Answer(200)
        # Like a server that drops idle keep-alive connections: close each one after its answer, without saying so.
        self.hang_up_after_each = False
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30  # an idle kept-alive connection's thread ends on its own

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = server._record(
                    Recorded(
                        method=self.command,
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        client_port=self.client_address[1],
                    )
                )
                self.send_response(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                if answer.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    half = len(answer.body) // 2
                    for chunk in (answer.body[:half], answer.body[half:]):
                        self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                if server.hang_up_after_each:
                    self.close_connection = True

            def log_message(self, *args) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is None:
            self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        else:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.endpoint = f"https://localhost:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, request: Recorded) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else self.default

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server():
    recording = RecordingServer()
    yield recording
    recording.close()


def credentials(token: str | None = None) -> Credentials:
    return Credentials(ACCESS_KEY, SECRET_KEY, token)


def lean_client(endpoint: str, creds: Credentials | None = None, max_connections: int = 64) -> ManagementApi:
    return ManagementApi(
        endpoint,
        REGION,
        creds if creds is not None else credentials(),
        max_connections=max_connections,
        sleep=lambda s: None,
        backoff=lambda attempt: 0.0,
    )


def boto3_client(endpoint: str, token: str | None = None):
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, aws_session_token=token, region_name=REGION
    )
    return session.client("apigatewaymanagementapi", endpoint_url=endpoint, config=Config(retries={"mode": "standard"}))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once closed


def valid_signature(request: Recorded, creds: Credentials) -> bool:
    """Recompute SigV4 with botocore's signer over what actually arrived: raw path, body, the signed headers'
    values and the request's own X-Amz-Date; True when it equals the Signature the client sent."""
    auth = request.authorization
    signed = auth["SignedHeaders"].split(";")
    rebuilt = AWSRequest(
        method=request.method,
        url=f"http://{request.headers['host']}{request.path}",
        data=request.body,
        headers={name: request.headers[name] for name in signed},
    )
    rebuilt.context["timestamp"] = request.headers["x-amz-date"]
    signer = SigV4Auth(creds.get_frozen_credentials(), "execute-api", REGION)
    string_to_sign = signer.string_to_sign(rebuilt, signer.canonical_request(rebuilt))
    return signer.signature(string_to_sign, rebuilt) == auth["Signature"]


def scope_of(request: Recorded) -> str:
    """Credential=AKID/20260101/us-east-1/execute-api/aws4_request without the date."""
    key, _date, *rest = request.authorization["Credential"].split("/")
    return "/".join([key, *rest])


# --- the wire request -------------------------------------------------------------------------


def test_the_post_is_the_same_signed_request_boto3_sends(server):
    boto3_client(server.endpoint).post_to_connection(ConnectionId=CONNECTION_ID, Data=DATA)
    lean_client(server.endpoint).post_to_connection(ConnectionId=CONNECTION_ID, Data=DATA)

    theirs, ours = server.requests
    assert ours.method == theirs.method == "POST"
    assert ours.path == theirs.path == "/@connections/abc%3D%2F%2Bx"
    assert ours.body == theirs.body == DATA
    assert ours.headers.get("content-type") == theirs.headers.get("content-type")
    assert scope_of(ours) == scope_of(theirs) == f"{ACCESS_KEY}/{REGION}/execute-api/aws4_request"
    assert ours.authorization["SignedHeaders"] == theirs.authorization["SignedHeaders"]
    assert "x-amz-security-token" not in ours.headers


def test_the_signature_verifies_over_the_request_as_received(server):
    boto3_client(server.endpoint).post_to_connection(ConnectionId=CONNECTION_ID, Data=DATA)
    lean_client(server.endpoint).post_to_connection(ConnectionId=CONNECTION_ID, Data=DATA)

    theirs, ours = server.requests
    assert valid_signature(theirs, credentials())  # the verifier agrees with botocore's full stack...
    tampered = Recorded(theirs.method, theirs.path, theirs.headers, theirs.body + b" ", theirs.client_port)
    assert not valid_signature(tampered, credentials())  # ...and really checks the body
    assert valid_signature(ours, credentials())
    assert not valid_signature(ours, Credentials(ACCESS_KEY, "another-secret"))


def test_a_session_token_is_sent_and_signed(server):
    token = "FQoGZXIvYXdzE-session-token/with+chars=="
    creds = credentials(token)
    boto3_client(server.endpoint, token=token).post_to_connection(ConnectionId=CONNECTION_ID, Data=DATA)
    lean_client(server.endpoint, creds).post_to_connection(ConnectionId=CONNECTION_ID, Data=DATA)

    theirs, ours = server.requests
    assert ours.headers["x-amz-security-token"] == theirs.headers["x-amz-security-token"] == token
    assert "x-amz-security-token" in ours.authorization["SignedHeaders"].split(";")
    assert valid_signature(ours, creds)


def test_str_data_is_sent_as_its_utf8_bytes(server):
    lean_client(server.endpoint).post_to_connection(ConnectionId="c1", Data='{"name":"Amélie"}')

    [request] = server.requests
    assert request.body == '{"name":"Amélie"}'.encode()
    assert request.headers["content-length"] == str(len(request.body))


# --- answers: errors and retries -------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204])
def test_a_2xx_answer_returns_none_after_one_request(server, status):
    server.default = Answer(status)

    assert lean_client(server.endpoint).post_to_connection(ConnectionId="c1", Data=DATA) is None
    assert len(server.requests) == 1


def test_410_raises_gone_exception_without_a_retry(server):
    server.default = Answer(410, json.dumps({"message": "Gone"}).encode(), (("Content-Type", "application/json"),))

    with pytest.raises(ClientError) as caught:
        lean_client(server.endpoint).post_to_connection(ConnectionId="c1", Data=DATA)

    assert caught.value.response["Error"]["Code"] == "GoneException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert caught.value.operation_name == "PostToConnection"
    assert len(server.requests) == 1


@pytest.mark.parametrize("error_type", ["ForbiddenException", "InvalidSignatureException"])
def test_403_takes_its_code_from_the_error_type_header_as_boto3_does_without_a_retry(server, error_type):
    header = f"{error_type}:http://internal.amazon.com/coral/com.amazon.coral.service/"
    server.default = Answer(403, json.dumps({"message": "Forbidden"}).encode(), (("x-amzn-ErrorType", header),))

    with pytest.raises(ClientError) as ours:
        lean_client(server.endpoint).post_to_connection(ConnectionId="c1", Data=DATA)
    assert len(server.requests) == 1
    with pytest.raises(ClientError) as theirs:
        boto3_client(server.endpoint).post_to_connection(ConnectionId="c1", Data=DATA)

    assert ours.value.response["Error"]["Code"] == theirs.value.response["Error"]["Code"] == error_type
    assert ours.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize("status", [429, 500])
def test_throttling_and_server_errors_are_retried_until_success(server, status):
    server.script = [Answer(status, b'{"message":"busy"}'), Answer(status, b'{"message":"busy"}')]

    assert lean_client(server.endpoint).post_to_connection(ConnectionId=CONNECTION_ID, Data=DATA) is None

    assert len(server.requests) == 3
    assert {(r.path, r.body) for r in server.requests} == {("/@connections/abc%3D%2F%2Bx", DATA)}
    assert all(valid_signature(r, credentials()) for r in server.requests)  # each attempt is signed afresh


@pytest.mark.parametrize("status", [429, 500])
def test_a_persistent_throttle_or_server_error_raises_after_three_requests(server, status):
    server.default = Answer(status, b'{"message":"busy"}')

    with pytest.raises(ClientError) as caught:
        lean_client(server.endpoint).post_to_connection(ConnectionId="c1", Data=DATA)

    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert len(server.requests) == 3


class CountingHttp:
    """The client's signed HTTP transport, counting the attempts that go through it."""

    def __init__(self, http) -> None:
        self._http = http
        self.attempts = 0

    def send(self, *args, **kwargs):
        self.attempts += 1
        return self._http.send(*args, **kwargs)


def test_an_unreachable_endpoint_raises_endpoint_connection_error_after_three_attempts():
    client = lean_client(f"http://127.0.0.1:{closed_port()}")
    client._http = transport = CountingHttp(client._http)

    with pytest.raises(BotoCoreError) as caught:
        client.post_to_connection(ConnectionId="c1", Data=DATA)

    assert isinstance(caught.value, EndpointConnectionError), type(caught.value).__mro__
    assert transport.attempts == 3


def test_no_credentials_raises_before_anything_is_sent(server):
    client = ManagementApi(server.endpoint, REGION, None, sleep=lambda s: None)

    with pytest.raises(NoCredentialsError):
        client.post_to_connection(ConnectionId="c1", Data=DATA)

    assert server.requests == []


# --- hooks and connections ---------------------------------------------------------------------------


def test_two_server_errors_are_retried_and_the_third_attempt_delivers(server):
    server.script = [Answer(500), Answer(500)]
    client = lean_client(server.endpoint)

    client.post_to_connection(ConnectionId="c1", Data=DATA)

    assert len(server.requests) == 3
    assert all(request.path == "/@connections/c1" for request in server.requests)


def test_sequential_posts_reuse_one_kept_alive_connection(server):
    client = lean_client(server.endpoint)
    gone = []
    for n in range(12):
        server.script = [Answer(410, b'{"message":"Gone"}')] if n % 4 == 3 else []
        try:
            client.post_to_connection(ConnectionId=f"c{n}", Data=DATA)
        except ClientError:
            gone.append(n)

    assert gone == [3, 7, 11]  # error answers (read to the end) do not cost the connection either
    assert len(server.requests) == 12
    assert len({r.client_port for r in server.requests}) == 1


# --- through the Broadcaster -------------------------------------------------------------------------


def test_broadcaster_reports_an_unreachable_management_api_as_a_failed_post():
    # Only a 410 touches the repository, so a bare ConnectionRepository (no tables) suffices here.
    broadcaster = Broadcaster(lambda: lean_client(f"http://127.0.0.1:{closed_port()}"), ConnectionRepository())

    assert broadcaster.send("c1", {"type": "selected"}) is False


# --- post_many: a fan-out's posts on one asyncio loop ----------------------------------------------------


def test_post_many_sends_the_same_signed_request_as_a_single_post(server):
    token = "FQoGZXIvYXdzE-session-token/with+chars=="
    creds = credentials(token)
    boto3_client(server.endpoint, token=token).post_to_connection(ConnectionId=CONNECTION_ID, Data=DATA)
    assert lean_client(server.endpoint, creds).post_many([(CONNECTION_ID, DATA)]) == [None]

    theirs, ours = server.requests
    assert ours.method == "POST"
    assert ours.path == theirs.path == "/@connections/abc%3D%2F%2Bx"
    assert ours.body == theirs.body == DATA
    assert ours.headers["content-length"] == str(len(DATA))
    assert ours.headers["host"] == theirs.headers["host"]
    assert ours.headers["x-amz-security-token"] == token
    assert ours.authorization["SignedHeaders"] == theirs.authorization["SignedHeaders"]
    assert scope_of(ours) == scope_of(theirs)
    assert valid_signature(ours, creds)
    assert not valid_signature(ours, Credentials(ACCESS_KEY, "another-secret", token))


def test_post_many_under_a_stage_path_signs_the_path_as_sent(server):
    lean_client(server.endpoint + "/prod/").post_many([("L0SM9cOFvHcCIhw=", DATA)])

    [request] = server.requests
    assert request.path == "/prod/@connections/L0SM9cOFvHcCIhw%3D"
    assert valid_signature(request, credentials())


def test_post_many_answers_each_post_as_post_to_connection_would_raise(server):
    forbidden = "ForbiddenException:http://internal.amazon.com/coral/com.amazon.coral.service/"
    server.script = [
        Answer(200),
        Answer(410, b'{"message":"Gone"}'),
        Answer(403, b'{"message":"Forbidden"}', (("x-amzn-ErrorType", forbidden),), chunked=True),
        Answer(400, b'{"__type":"com.amazon#BadRequestException","message":"too big"}', chunked=True),
        Answer(204),
    ]
    posts = [(f"c{n}", DATA) for n in range(5)]

    outcomes = lean_client(server.endpoint, max_connections=1).post_many(posts)  # one connection: answers in order

    assert outcomes[0] is None and outcomes[4] is None
    codes = [(o.response["Error"]["Code"], o.response["ResponseMetadata"]["HTTPStatusCode"]) for o in outcomes[1:4]]
    assert codes == [("GoneException", 410), ("ForbiddenException", 403), ("BadRequestException", 400)]
    assert outcomes[3].response["Error"]["Message"] == "too big"  # read whole from its chunks
    assert all(o.operation_name == "PostToConnection" for o in outcomes[1:4])
    assert [r.path for r in server.requests] == [f"/@connections/c{n}" for n in range(5)]
    assert len({r.client_port for r in server.requests}) == 1  # chunked error answers do not cost the connection


@pytest.mark.parametrize("status", [429, 500, 503])
def test_post_many_retries_throttling_and_server_errors_three_times_at_most(server, status):
    server.script = [Answer(status, b'{"message":"busy"}'), Answer(status, b'{"message":"busy"}')]
    client = lean_client(server.endpoint, max_connections=1)

    assert client.post_many([("c1", DATA)]) == [None]
    assert len(server.requests) == 3
    assert all(valid_signature(r, credentials()) for r in server.requests)

    server.default = Answer(status, b'{"message":"busy"}')
    [outcome] = client.post_many([("c2", DATA)])
    assert isinstance(outcome, ClientError)
    assert outcome.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert len(server.requests) == 6


def test_post_many_to_an_unreachable_endpoint_answers_endpoint_connection_errors():
    outcomes = lean_client(f"http://127.0.0.1:{closed_port()}").post_many([("c1", DATA), ("c2", DATA)])

    assert [type(o) for o in outcomes] == [EndpointConnectionError, EndpointConnectionError]


def test_post_many_without_credentials_raises_before_anything_is_sent(server):
    client = ManagementApi(server.endpoint, REGION, None)

    with pytest.raises(NoCredentialsError):
        client.post_many([("c1", DATA)])
    assert server.requests == []


def test_post_many_keeps_its_connections_in_flight_and_alive_between_calls(server):
    client = lean_client(server.endpoint, max_connections=8)
    first = [(f"first{n}", DATA) for n in range(120)]
    second = [(f"second{n}", DATA) for n in range(120)]

    assert client.post_many(first) == [None] * 120
    ports = {r.client_port for r in server.requests}
    assert client.post_many(second) == [None] * 120

    assert sorted(r.path for r in server.requests) == sorted(f"/@connections/{cid}" for cid, _ in first + second)
    assert 1 < len(ports) <= 8
    assert {r.client_port for r in server.requests[120:]} <= ports  # the second call reused the first's


def test_post_many_resends_on_a_new_connection_when_a_kept_one_was_dropped_while_idle(server):
    server.hang_up_after_each = True  # every connection is closed after one answer, without notice
    client = lean_client(server.endpoint, max_connections=1)

    for n in range(3):
        assert client.post_many([(f"c{n}", DATA)]) == [None]

    assert [r.path for r in server.requests] == ["/@connections/c0", "/@connections/c1", "/@connections/c2"]
    assert len({r.client_port for r in server.requests}) == 3


def test_post_many_from_two_threads_at_once(server):
    client = lean_client(server.endpoint, max_connections=4)
    results: dict[str, list] = {}

    def fan_out(name: str) -> None:
        results[name] = client.post_many([(f"{name}{n}", DATA) for n in range(50)])

    threads = [threading.Thread(target=fan_out, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert results == {"a": [None] * 50, "b": [None] * 50}
    assert len(server.requests) == 100


def _self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for localhost (and 127.0.0.1) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def tls_server(tmp_path):
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    recording = RecordingServer(tls=context)
    recording.cert_file = cert_file  # type: ignore[attr-defined]
    yield recording
    recording.close()


def test_post_many_over_tls_sends_the_signed_request_to_a_trusted_endpoint(tls_server):
    trusting = ssl.create_default_context(cafile=tls_server.cert_file)
    client = ManagementApi(tls_server.endpoint + "/prod", REGION, credentials(), ssl_context=trusting)

    assert client.post_many([("c1", DATA), ("c2", DATA)]) == [None, None]

    assert sorted(r.path for r in tls_server.requests) == ["/prod/@connections/c1", "/prod/@connections/c2"]
    assert all(r.headers["host"] == tls_server.endpoint.split("://")[1] for r in tls_server.requests)
    assert all(valid_signature(r, credentials()) for r in tls_server.requests)


def test_post_many_refuses_an_endpoint_whose_certificate_it_does_not_trust(tls_server):
    client = ManagementApi(tls_server.endpoint, REGION, credentials())  # boto3's CA bundle: not this certificate

    [outcome] = client.post_many([("c1", DATA)])

    assert isinstance(outcome, SSLError), type(outcome).__mro__
    assert tls_server.requests == []
