"""Cold start of the Lambda package, measured against the floor every Python Lambda that calls AWS pays.

    python -m bench.coldstart [--runs 7] [--package build/lambda/deployment.zip] [--sources-only]
    python -m bench.coldstart --profile KIND          (imports beyond the floor's, slowest first)
    python -m bench.coldstart --cprofile KIND [--filter REGEX] [--sort tottime | callers:REGEX]

Each sample is a fresh Python process in a virtualenv holding only boto3 (what the Lambda runtime provides),
with the unzipped deployment package first on sys.path and bytecode writing off (/var/task is read-only). It
times `import app` (the init phase) and the first invocation of one handler, then a second invocation (warm):

- rest:   GET /api/events/{id}/tickets through the Chalice REST handler (event, showtimes, tickets reads)
- ws:     a WebSocket `select` message (cart read, one transaction, the reply post), then `unselect`
- sqs:    a purchase-worker batch of one message (order read, batchItemFailures answer)
- stream: a tickets-stream batch of one change (room query, one post per connection)
- floor:  `import boto3`, one DynamoDB client, one GetItem

All of them run against one moto server (local.moto) and a loopback stand-in for the API Gateway
Management API, in the same run, interleaved, so machine load affects every kind alike. Figures exclude the
interpreter's own start-up (the same for all) and the network latency of real AWS. Needs `make package` first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

from infra.bundle import BUILD_DIR

WORK = BUILD_DIR / "coldstart"
PREFIX = "coldstart-"
MARKER = "COLDSTART-RESULT "
KINDS = ("rest", "ws", "sqs", "stream")
CONNECTION_ID = "coldstart-connection"
USER_ID = "coldstart-user"

# Runs in the measured process: only boto3 and the package are importable there.
DRIVER = r"""
import json, os, sys, time
t0 = time.perf_counter()
kind = sys.argv[1]
spec = json.loads(os.environ["COLDSTART_SPEC"])

class Context:
    function_name = "coldstart"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:coldstart"
    memory_limit_in_mb = 512
    aws_request_id = "coldstart-request"
    log_group_name = "/aws/lambda/coldstart"
    log_stream_name = "coldstart"
    def get_remaining_time_in_millis(self):
        return 30000

def result(**figures):
    print("%s%s" % (spec["marker"], json.dumps(figures)), flush=True)

if kind == "floor":
    import boto3
    t1 = time.perf_counter()
    client = boto3.client("dynamodb")
    t2 = time.perf_counter()
    client.get_item(TableName=spec["table"], Key={"slug": {"S": "none"}})
    t3 = time.perf_counter()
    result(import_ms=(t1 - t0) * 1e3, client_ms=(t2 - t1) * 1e3, call_ms=(t3 - t2) * 1e3, total_ms=(t3 - t0) * 1e3)
    sys.exit(0)

if os.environ.get("COLDSTART_CPROFILE"):
    import cProfile, pstats
    profiler = cProfile.Profile()
    profiler.enable()
import app
t1 = time.perf_counter()
handler = getattr(app, spec["handlers"][kind])
first, second = spec["events"][kind]
answer = handler(first, Context())
t2 = time.perf_counter()
if os.environ.get("COLDSTART_CPROFILE"):
    profiler.disable()
    how = os.environ["COLDSTART_CPROFILE"]
    stats = pstats.Stats(profiler, stream=sys.stderr)
    if how.startswith("callers:"):
        stats.sort_stats("cumulative").print_callers(how[len("callers:"):])
    else:
        stats.sort_stats(how).print_stats(os.environ.get("COLDSTART_CPROFILE_FILTER") or ".", 45)
handler(second, Context())
t3 = time.perf_counter()
result(import_ms=(t1 - t0) * 1e3, first_ms=(t2 - t1) * 1e3, total_ms=(t2 - t0) * 1e3,
       second_ms=(t3 - t2) * 1e3, answer=answer if kind != "rest" else {"statusCode": answer["statusCode"]})
"""


class _ManagementApi(BaseHTTPRequestHandler):
    """Answers every @connections post like API Gateway does for an open connection."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def boto3_only_venv() -> Path:
    """A virtualenv with boto3 (the version of this environment) and its dependencies only."""
    venv = WORK / "venv-boto3"
    python = venv / "bin" / "python"
    stamp = venv / f".boto3-{boto3.__version__}"
    if not stamp.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"boto3=={boto3.__version__}",
            ],
            check=True,
        )
        stamp.touch()
    return python


def unpack(package: Path, sources_only: bool) -> Path:
    target = WORK / ("package-sources" if sources_only else "package")
    shutil.rmtree(target, ignore_errors=True)
    with zipfile.ZipFile(package) as archive:
        archive.extractall(target)
    if sources_only:
        for cache in list(target.rglob("__pycache__")):
            shutil.rmtree(cache)
    return target


def _settings(endpoint: str, management: str):
    from chalicelib.config import load_settings

    return load_settings(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "TABLE_PREFIX": PREFIX,
            "QUEUE_PREFIX": PREFIX,
            "JWT_SECRET": "coldstart-secret-coldstart-secret",
            "WS_MANAGEMENT_ENDPOINT": management,
            "PAYPAL_MODE": "local",
            "PAYPAL_API_BASE": "http://127.0.0.1:9",
            "PAYPAL_CLIENT_ID": "coldstart",
            "PAYPAL_CLIENT_SECRET": "coldstart",
        }
    )


def provision(endpoint: str, management: str) -> dict:
    """Tables, queues and a tiny catalog (one showtime of 10 seats) plus one connection in its room."""
    import datetime as dt

    from chalicelib.domain import ConnectionRecord, EventRecord
    from chalicelib.errors import AlreadyExists
    from chalicelib.storage.catalog import CatalogRepository
    from chalicelib.wiring import Container
    from local.resources import ensure_queues, ensure_tables

    settings = _settings(endpoint, management)
    session = boto3.session.Session(region_name="us-east-1")
    streams = ensure_tables(session.client("dynamodb", endpoint_url=endpoint), settings)
    queues = ensure_queues(session.client("sqs", endpoint_url=endpoint), settings)
    container = Container(settings)
    repo = CatalogRepository()
    repo.put_category("drama", "Drama")
    try:
        repo.create_event(
            EventRecord(
                id="coldstart-event",
                title="Cold Start",
                description="",
                category="drama",
                category_name="Drama",
                duration_minutes=90,
                created_at="2024-01-01T00:00:00.000000Z",
            )
        )
        container.catalog.create_showtime(
            "coldstart-event",
            date=dt.date.today() + dt.timedelta(days=1),
            theater="Hall 1",
            starts_at="19:30",
            rows=2,
            seats_per_row=5,
            price=Decimal("12.00"),
            currency="USD",
        )
    except AlreadyExists:
        pass
    (showtime,) = repo.list_showtimes("coldstart-event")
    container.connections.add(
        ConnectionRecord(
            connection_id=CONNECTION_ID, room=showtime.id, user_id=USER_ID, connected_at=int(time.time()) - 60
        )
    )
    sqs = session.client("sqs", endpoint_url=endpoint)
    purchases_arn = sqs.get_queue_attributes(QueueUrl=queues["purchases"], AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return {
        "settings": settings,
        "showtime": showtime.id,
        "ticket": f"{showtime.id}-A1",
        "stream_arn": streams["tickets"],
        "purchases_url": queues["purchases"],
        "purchases_arn": purchases_arn,
        "refunds_url": queues["refunds"],
    }


def _rest_event(path: str, resource: str, path_parameters: dict) -> dict:
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "GET",
        "headers": {"Host": "coldstart.example", "Accept": "application/json"},
        "multiValueHeaders": {"Host": ["coldstart.example"], "Accept": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": "GET",
            "path": f"/dev{path}",
            "stage": "dev",
            "requestId": "coldstart",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _ws_event(action: str, ticket: str) -> dict:
    return {
        "requestContext": {
            "routeKey": "$default",
            "eventType": "MESSAGE",
            "connectionId": CONNECTION_ID,
            "apiId": "coldstart",
            "domainName": "coldstart.execute-api.us-east-1.amazonaws.com",
            "stage": "dev",
            "requestId": f"coldstart-{action}",
            "messageId": f"coldstart-{action}",
        },
        "body": json.dumps({"action": action, "ticket_id": ticket}),
        "isBase64Encoded": False,
    }


def _sqs_event(queue_arn: str, message_id: str) -> dict:
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": "coldstart",
                "body": json.dumps({"order_id": "coldstart-no-such-order"}),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
        ]
    }


def _stream_event(stream_arn: str, showtime: str, ticket: str, sequence: str) -> dict:
    keys = {"showtime_id": {"S": showtime}, "ticket_id": {"S": ticket}}
    return {
        "Records": [
            {
                "eventID": sequence,
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1700000000,
                    "Keys": keys,
                    "OldImage": {**keys, "status": {"S": "available"}},
                    "NewImage": {
                        **keys,
                        "status": {"S": "held"},
                        "hold_expires_at": {"N": str(int(time.time()) + 600)},
                    },
                    "SequenceNumber": sequence,
                    "SizeBytes": 120,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": stream_arn,
            }
        ]
    }


def run_spec(world: dict) -> dict:
    showtime, ticket = world["showtime"], world["ticket"]
    tickets_path = "/api/events/coldstart-event/tickets"
    rest = _rest_event(tickets_path, "/api/events/{event_id}/tickets", {"event_id": "coldstart-event"})
    return {
        "marker": MARKER,
        "table": f"{PREFIX}categories",
        "handlers": {"rest": "app", "ws": "ws_message", "sqs": "purchase_worker", "stream": "tickets_changed"},
        "events": {
            "rest": [rest, rest],
            "ws": [_ws_event("select", ticket), _ws_event("unselect", ticket)],
            "sqs": [_sqs_event(world["purchases_arn"], "m1"), _sqs_event(world["purchases_arn"], "m2")],
            "stream": [
                _stream_event(world["stream_arn"], showtime, ticket, "1"),
                _stream_event(world["stream_arn"], showtime, ticket, "2"),
            ],
        },
    }


def child_env(world: dict, endpoint: str, management: str, package: Path, spec: dict) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(package),
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only on Lambda
        "PYTHONNOUSERSITE": "1",
        "AWS_ACCESS_KEY_ID": "coldstart",
        "AWS_SECRET_ACCESS_KEY": "coldstart",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "STAGE": "coldstart",
        "TABLE_PREFIX": PREFIX,
        "QUEUE_PREFIX": PREFIX,
        "TICKETS_STREAM_ARN": world["stream_arn"],
        "PURCHASES_QUEUE_ARN": world["purchases_arn"],
        "PURCHASES_QUEUE_URL": world["purchases_url"],
        "REFUNDS_QUEUE_URL": world["refunds_url"],
        "WS_MANAGEMENT_ENDPOINT": management,
        # On AWS the key comes from one SSM GetParameter per container; none of the measured requests needs it.
        "JWT_SECRET": "coldstart-secret-coldstart-secret",
        "PAYPAL_MODE": "local",
        "PAYPAL_API_BASE": "http://127.0.0.1:9",
        "PAYPAL_CLIENT_ID": "coldstart",
        "PAYPAL_CLIENT_SECRET": "coldstart",
        "POWERTOOLS_SERVICE_NAME": "tickets",
        "POWERTOOLS_METRICS_NAMESPACE": "Tickets",
        "COLDSTART_SPEC": json.dumps(spec),
    }
    return env


def sample(python: Path, kind: str, env: dict) -> dict:
    # cwd is the package, as /var/task is on Lambda: `python -c` puts the working directory first on sys.path,
    # and from the repository it would import app.py and chalicelib/ from the source tree instead of the package.
    result = subprocess.run(
        [str(python), "-c", DRIVER, kind], env=env, cwd=env["PYTHONPATH"], capture_output=True, text=True, timeout=120
    )
    for line in result.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise RuntimeError(
        f"{kind}: no result (exit {result.returncode})\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )


def import_profile(python: Path, kind: str, env: dict, top: int = 40) -> str:
    """The imports of one cold process of `kind` that are not in the floor's (`import boto3`), slowest first."""
    floor = _imported(python, "floor", env)
    timings = _imported(python, kind, env)
    extra = {name: figures for name, figures in timings.items() if name not in floor}
    total_self = sum(self_us for self_us, _ in extra.values()) / 1e3
    lines = [f"{kind}: {len(extra)} modules beyond the floor's, {total_self:.0f} ms of their own import time"]
    lines.append("  self ms   cumulative ms  module")
    for name, (self_us, cumulative_us) in sorted(extra.items(), key=lambda item: -item[1][1])[:top]:
        lines.append(f"  {self_us / 1e3:7.1f}   {cumulative_us / 1e3:13.1f}  {name}")
    return "\n".join(lines)


def _imported(python: Path, kind: str, env: dict) -> dict[str, tuple[int, int]]:
    run = subprocess.run(
        [str(python), "-X", "importtime", "-c", DRIVER, kind],
        env=env,
        cwd=env["PYTHONPATH"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    timings = {}
    for line in run.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            self_us, cumulative_us, name = (part.strip() for part in line[len("import time:") :].split("|"))
            timings[name] = (int(self_us), int(cumulative_us))
    return timings


def _check(kind: str, figures: dict) -> None:
    answer = figures.get("answer")
    expected = {
        "rest": {"statusCode": 200},
        "ws": {"statusCode": 200},
        "sqs": {"batchItemFailures": []},
        "stream": None,
    }
    if kind in expected and answer != expected[kind]:
        raise RuntimeError(f"{kind}: unexpected answer {answer!r}: the measured request did not succeed")


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f}"


def report(samples: dict[str, list[dict]]) -> str:
    floor = samples["floor"]
    floor_total = statistics.median(s["total_ms"] for s in floor)
    lines = [
        f"median of {len(floor)} fresh processes per kind, milliseconds",
        "kind     import  1st call  import+1st  2nd call   x floor",
        f"floor  {_median([s['import_ms'] for s in floor])} {_median([s['client_ms'] + s['call_ms'] for s in floor])}"
        f"    {_median([s['total_ms'] for s in floor])}         -      1.00"
        f"   (import boto3 | client + GetItem)",
    ]
    for kind in KINDS:
        if kind not in samples:
            continue
        rows = samples[kind]
        total = statistics.median(s["total_ms"] for s in rows)
        lines.append(
            f"{kind:<6} {_median([s['import_ms'] for s in rows])} {_median([s['first_ms'] for s in rows])}"
            f"    {_median([s['total_ms'] for s in rows])}   {_median([s['second_ms'] for s in rows])}"
            f"   {total / floor_total:7.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--package", type=Path, default=BUILD_DIR / "lambda" / "deployment.zip")
    parser.add_argument("--sources-only", action="store_true", help="drop the shipped .pyc files first")
    parser.add_argument(
        "--profile",
        choices=KINDS,
        help="instead of measuring, run one process of this kind with -X importtime and print the slowest imports",
    )
    parser.add_argument(
        "--cprofile",
        choices=KINDS,
        help="instead of measuring, profile import + first call of one process of this kind",
    )
    parser.add_argument(
        "--sort",
        default="cumulative",
        help="pstats sort key for --cprofile (cumulative, tottime), or callers:<function regex>",
    )
    parser.add_argument("--filter", help="with --cprofile: only functions whose path matches this regex")
    args = parser.parse_args(argv)
    if not args.package.exists():
        print(f"{args.package} not found: run `make package` first", file=sys.stderr)
        return 2

    from local.moto import MotoProcess

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "coldstart")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "coldstart")
    python = boto3_only_venv()
    package = unpack(args.package, args.sources_only)
    management_server = ThreadingHTTPServer(("127.0.0.1", 0), _ManagementApi)
    threading.Thread(target=management_server.serve_forever, daemon=True).start()
    management = f"http://127.0.0.1:{management_server.server_address[1]}/dev"
    moto = MotoProcess()
    try:
        endpoint = moto.start()
        world = provision(endpoint, management)
        env = child_env(world, endpoint, management, package, run_spec(world))
        kinds = ["floor", *KINDS]
        samples: dict[str, list[dict]] = {kind: [] for kind in kinds}
        sample(python, "floor", env)  # warm the OS file cache once, unmeasured
        if args.profile:
            print(import_profile(python, args.profile, env))
            return 0
        if args.cprofile:
            run = subprocess.run(
                [str(python), "-c", DRIVER, args.cprofile],
                env={**env, "COLDSTART_CPROFILE": args.sort, "COLDSTART_CPROFILE_FILTER": args.filter or ""},
                cwd=env["PYTHONPATH"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            print(run.stderr)
            return run.returncode
        for _ in range(args.runs):
            random.shuffle(kinds)
            for kind in kinds:
                figures = sample(python, kind, env)
                _check(kind, figures)
                samples[kind].append(figures)
    finally:
        moto.stop()
        management_server.shutdown()
    size = args.package.stat().st_size
    print(f"package {args.package} ({size / 1048576:.1f} MiB){' without .pyc' if args.sources_only else ''}")
    print(report(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
