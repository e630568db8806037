"""Broadcasts and replies over a real HTTP Management API stand-in, with connections and tickets in moto.

The stand-in records what each connection id was sent and answers a chosen status per connection
(410 for a gone one, 500 for a broken one), the way API Gateway's @connections endpoint does.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import urllib.parse
import uuid
from collections import defaultdict
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib import holds
from chalicelib.broadcast import Broadcaster
from chalicelib.domain import ConnectionRecord
from chalicelib.management_api import ManagementApi as LeanClient
from chalicelib.storage.catalog import CatalogRepository
from chalicelib.storage.connections import ConnectionRepository
from chalicelib.storage.models import Connection
from local.pollers import RecordsReader, StreamPoller
from tests.support.tables import stream_world


class ManagementApi:
    """POST /@connections/{id}: records the body; answers `statuses[id]` (200 by default)."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict]] = defaultdict(list)
        self.statuses: dict[str, int] = {}
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                connection_id = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = api.statuses.get(connection_id, 200)
                if status == 200:
                    with api._lock:
                        api.received[connection_id].append(json.loads(body))
                payload = (
                    b"" if status == 200 else json.dumps({"message": "Gone" if status == 410 else "Boom"}).encode()
                )
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def messages(self, connection_id: str) -> list[dict]:
        with self._lock:
            return list(self.received[connection_id])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def management_api():
    api = ManagementApi()
    yield api
    api.close()


@pytest.fixture(scope="module")
def world(moto_endpoint, management_api):
    return stream_world(moto_endpoint, "Fan-out", WS_MANAGEMENT_ENDPOINT=management_api.endpoint)


def new_room(world, seats: int = 6) -> list[str]:
    created = world["container"].catalog.create_showtime(
        world["event"],
        date=dt.date(2031, 1, 1),
        theater=f"Hall {uuid.uuid4().hex[:8]}",
        starts_at="19:30",
        rows=1,
        seats_per_row=seats,
        price=Decimal("10.00"),
        currency="USD",
    )
    return [t.ticket_id for t in CatalogRepository().list_tickets(created["showtime_id"], consistent=True)]


def room_of(ticket_id: str) -> str:
    return ticket_id.rsplit("-", 1)[0]


def connect(world, room: str, user: str, connected_at: float | None = None) -> str:
    connection_id = f"c-{uuid.uuid4().hex[:12]}"
    world["container"].connections.add(
        ConnectionRecord(
            connection_id=connection_id,
            room=room,
            user_id=user,
            connected_at=int(time.time() if connected_at is None else connected_at),
        )
    )
    return connection_id


def row_exists(connection_id: str) -> bool:
    try:
        Connection.get(connection_id, consistent_read=True)
    except Connection.DoesNotExist:
        return False
    return True


class StreamTap:
    """The tickets stream from `start()` on, delivered to SeatService.publish as ONE batch per `deliver()`."""

    def __init__(self, world) -> None:
        self.posts: list[int] = []
        self._seats = world["container"].seats
        streams = world["streams"]
        self._poller = StreamPoller(
            streams,
            world["stream_arn"],
            self._handle,
            region="us-east-1",
            batch_size=1000,
            window=0,
            # The reader `make run` uses (records stay DynamoDB JSON); test_sweep.py covers boto3's.
            get_records=RecordsReader(
                streams.meta.endpoint_url, "us-east-1", boto3.session.Session().get_credentials()
            ),
        )

    def _handle(self, event, context) -> None:
        images = ((r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage")) for r in event["Records"])
        self.posts.append(self._seats.publish(images))

    def start(self) -> None:
        self._poller.prime()

    def deliver(self) -> list[int]:
        self._poller.poll_once()
        return self.posts


@pytest.fixture
def stream(world) -> StreamTap:
    return StreamTap(world)


def test_a_batch_reaches_each_viewer_of_the_room_as_one_message_with_every_change_in_order(
    world, management_api, stream
):
    tickets = new_room(world)
    other = new_room(world)
    room, other_room = room_of(tickets[0]), room_of(other[0])
    alice_1, alice_2 = connect(world, room, "alice"), connect(world, room, "alice")
    bob = connect(world, room, "bob")
    elsewhere = connect(world, other_room, "carol")
    repo = world["container"].seats.repo
    stream.start()
    now = time.time()
    repo.select("alice", room, tickets[0], now)
    repo.select("bob", room, tickets[1], now)
    repo.unselect("alice", room, tickets[0], now)
    repo.select("carol", other_room, other[0], now)

    [posts] = stream.deliver()

    assert posts == 4  # one per connection, not one per change
    expiry = holds.iso(int(now) + world["container"].settings.hold_seconds)
    expected = {
        "type": "ticket_status",
        "updates": [
            {"ticket_id": tickets[0], "status": "held", "expires_at": expiry},
            {"ticket_id": tickets[1], "status": "held", "expires_at": expiry},
            {"ticket_id": tickets[0], "status": "available"},
        ],
    }
    for viewer in (alice_1, alice_2, bob):
        assert management_api.messages(viewer) == [expected]
    assert management_api.messages(elsewhere) == [
        {"type": "ticket_status", "updates": [{"ticket_id": other[0], "status": "held", "expires_at": expiry}]}
    ]
    assert "alice" not in json.dumps(management_api.messages(bob))


def test_a_gone_connection_is_pruned_and_the_rest_still_receive(world, management_api, stream):
    tickets = new_room(world)
    room = room_of(tickets[0])
    healthy = connect(world, room, "alice")
    gone = connect(world, room, "bob", connected_at=time.time() - 60)
    broken = connect(world, room, "carol", connected_at=time.time() - 60)
    management_api.statuses[gone] = 410
    management_api.statuses[broken] = 500
    stream.start()
    world["container"].seats.repo.select("alice", room, tickets[0], time.time())

    stream.deliver()

    assert [m["type"] for m in management_api.messages(healthy)] == ["ticket_status"]
    assert not row_exists(gone)
    assert row_exists(broken)  # an error other than 410 is no proof the viewer left
    assert gone not in ConnectionRepository().in_room(room)


def test_a_410_for_a_connection_still_opening_does_not_delete_it(world, management_api, stream):
    tickets = new_room(world)
    room = room_of(tickets[0])
    opening = connect(world, room, "alice")  # its $connect has just written the row
    management_api.statuses[opening] = 410
    stream.start()
    world["container"].seats.repo.select("alice", room, tickets[0], time.time())

    stream.deliver()

    assert row_exists(opening)


def test_an_unreachable_management_api_does_not_fail_the_batch(world):
    tickets = new_room(world)
    room = room_of(tickets[0])
    viewer = connect(world, room, "alice", connected_at=time.time() - 60)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # nothing listens here once closed
    container = world["container"]
    dead = Broadcaster(
        lambda: LeanClient(
            f"http://127.0.0.1:{dead_port}",
            "us-east-1",
            boto3.session.Session().get_credentials(),
            sleep=lambda seconds: None,
            backoff=lambda attempt: 0.0,
        ),
        container.connections,
    )
    assert dead.fan_out(room, [{"type": "ticket_status", "updates": []}]) == 1
    assert dead.send(viewer, {"type": "selected"}) is False
    assert row_exists(viewer)


def test_the_senders_reply_goes_to_the_sender_only(world, management_api):
    tickets = new_room(world)
    room = room_of(tickets[0])
    sender, neighbour = connect(world, room, "alice"), connect(world, room, "alice")
    seats = world["container"].seats

    seats.handle_message(sender, json.dumps({"action": "select", "ticket_id": tickets[0]}))

    [reply] = management_api.messages(sender)
    assert reply["type"] == "selected" and reply["ticket_id"] == tickets[0]
    assert dt.datetime.strptime(reply["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert management_api.messages(neighbour) == []


@pytest.mark.parametrize(
    ("frame", "ticket_in_error"),
    [
        ("not json", False),
        ("[1, 2]", False),
        (json.dumps({"action": "dance", "ticket_id": "x-A1"}), False),
        (json.dumps({"action": "select"}), False),
        (json.dumps({"action": "select", "ticket_id": 7}), False),
        (json.dumps({"action": ["select"], "ticket_id": "x-A1"}), False),
    ],
)
def test_a_bad_frame_is_answered_bad_request_without_a_ticket(world, management_api, frame, ticket_in_error):
    room = room_of(new_room(world, seats=1)[0])
    sender = connect(world, room, "alice")
    world["container"].seats.handle_message(sender, frame)
    [reply] = management_api.messages(sender)
    assert reply["type"] == "error" and reply["code"] == "bad_request"
    assert reply["ticket_id"] is None
    assert reply["message"]


def test_toggle_selects_then_unselects_and_errors_name_the_ticket(world, management_api):
    tickets = new_room(world)
    room = room_of(tickets[0])
    alice, bob = connect(world, room, "alice"), connect(world, room, "bob")
    seats = world["container"].seats

    seats.handle_message(alice, json.dumps({"ticket_id": tickets[0]}))
    seats.handle_message(bob, json.dumps({"ticket_id": tickets[0]}))
    seats.handle_message(bob, json.dumps({"action": "unselect", "ticket_id": tickets[0]}))
    seats.handle_message(alice, json.dumps({"ticket_id": tickets[0]}))
    seats.handle_message(alice, json.dumps({"action": "select", "ticket_id": f"{room}-Z99"}))

    assert [(m["type"], m.get("code"), m["ticket_id"]) for m in management_api.messages(alice)] == [
        ("selected", None, tickets[0]),
        ("unselected", None, tickets[0]),
        ("error", "not_found", f"{room}-Z99"),
    ]
    assert [(m["type"], m.get("code"), m["ticket_id"]) for m in management_api.messages(bob)] == [
        ("error", "ticket_unavailable", tickets[0]),
        ("error", "not_holder", tickets[0]),
    ]


def test_snapshot_marks_the_senders_own_holds(world, management_api):
    tickets = new_room(world, seats=3)
    room = room_of(tickets[0])
    alice = connect(world, room, "alice")
    seats = world["container"].seats
    seats.repo.select("alice", room, tickets[0], time.time())
    seats.repo.select("bob", room, tickets[1], time.time())

    seats.handle_message(alice, json.dumps({"action": "snapshot"}))

    [snapshot] = management_api.messages(alice)
    assert snapshot["type"] == "snapshot"
    view = {t["ticket_id"]: (t["status"], t["mine"]) for t in snapshot["tickets"]}
    assert view == {tickets[0]: ("held", True), tickets[1]: ("held", False), tickets[2]: ("available", False)}


def test_a_message_from_a_connection_without_a_row_is_dropped(world, management_api):
    world["container"].seats.handle_message("never-connected", json.dumps({"action": "snapshot"}))
    assert management_api.messages("never-connected") == []


def test_the_raw_records_reader_returns_what_boto3_reads_with_creation_times_as_epoch_seconds(world):
    streams, arn = world["streams"], world["stream_arn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    new_room(world)  # writes tickets: stream records
    reader = RecordsReader(streams.meta.endpoint_url, "us-east-1", boto3.session.Session().get_credentials())

    def first_page(read):
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        return read(ShardIterator=iterator["ShardIterator"], Limit=5)

    raw, parsed = first_page(reader), first_page(streams.get_records)

    assert len(raw["Records"]) == len(parsed["Records"]) == 5
    assert raw["NextShardIterator"]
    for mine, theirs in zip(raw["Records"], parsed["Records"], strict=True):
        created = mine["dynamodb"].pop("ApproximateCreationDateTime")
        assert created == theirs["dynamodb"].pop("ApproximateCreationDateTime").timestamp()
        assert mine == theirs


def test_the_raw_records_reader_raises_the_service_error_for_an_unknown_iterator(world):
    streams = world["streams"]
    reader = RecordsReader(streams.meta.endpoint_url, "us-east-1", boto3.session.Session().get_credentials())
    with pytest.raises(ClientError) as raised:
        reader(ShardIterator="arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/never-issued", Limit=5)
    assert raised.value.response["Error"]["Code"] == "ExpiredIteratorException"


# --- big rooms: slices through the FIFO fan-out queue -----------------------------------------------------------


@pytest.fixture(scope="module")
def sliced_world(moto_endpoint, management_api):
    from chalicelib import tables
    from chalicelib.wiring import Container
    from tests.support.tables import make_settings

    plain = stream_world(moto_endpoint, "Sliced", WS_MANAGEMENT_ENDPOINT=management_api.endpoint)
    settings = plain["settings"]
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=tables.FANOUT.name(settings.queue_prefix))["QueueUrl"]
    sliced = make_settings(
        moto_endpoint,
        TABLE_PREFIX=settings.table_prefix,
        QUEUE_PREFIX=settings.queue_prefix,
        WS_MANAGEMENT_ENDPOINT=management_api.endpoint,
        FANOUT_QUEUE_URL=url,
        FANOUT_SLICE_SIZE="3",
    )
    return {**plain, "container": Container(sliced), "sqs": sqs, "fanout_url": url}


def drain_slices(world) -> list[dict]:
    """Receive every slice message (as the fan-out worker's event source would) and post it; returns the bodies."""
    bodies = []
    while True:
        got = (
            world["sqs"]
            .receive_message(QueueUrl=world["fanout_url"], MaxNumberOfMessages=10, AttributeNames=["MessageGroupId"])
            .get("Messages", [])
        )
        if not got:
            return bodies
        for message in got:
            body = json.loads(message["Body"])
            body["group"] = message["Attributes"]["MessageGroupId"]
            bodies.append(body)
            world["container"].broadcaster.post_slice(body["connection_ids"], body["payloads"])
            world["sqs"].delete_message(QueueUrl=world["fanout_url"], ReceiptHandle=message["ReceiptHandle"])


def test_a_room_bigger_than_a_slice_is_posted_in_slices_each_viewer_once_and_in_order(sliced_world, management_api):
    tickets = new_room(sliced_world)
    room = room_of(tickets[0])
    viewers = [connect(sliced_world, room, f"viewer-{n}") for n in range(10)]
    seats = sliced_world["container"].seats
    change = {"showtime_id": {"S": room}, "ticket_id": {"S": tickets[0]}}
    held = {**change, "status": {"S": "held"}, "hold_expires_at": {"N": "1924992000"}}

    posted_here = seats.publish([(change, held, "100")])
    first = drain_slices(sliced_world)
    seats.publish([(held, change, "101")])
    second = drain_slices(sliced_world)

    assert posted_here == 0  # the stream's invocation posts nothing itself: 4 slices of <= 3 (by hash) do
    assert {b["group"] for b in first} == {b["group"] for b in second}  # each viewer keeps its slice
    assert all(b["group"].startswith(f"{room}#") for b in first)
    covered = [cid for b in first for cid in b["connection_ids"]]
    assert sorted(covered) == sorted(viewers)  # every viewer in exactly one slice
    for viewer in viewers:
        statuses = [(m["updates"][0]["status"], m["updates"][0]["seq"]) for m in management_api.messages(viewer)]
        assert statuses == [("held", "100"), ("available", "101")]


def test_a_room_within_a_slice_is_posted_at_once_by_the_streams_invocation(sliced_world, management_api):
    tickets = new_room(sliced_world)
    room = room_of(tickets[0])
    viewers = [connect(sliced_world, room, f"small-{n}") for n in range(3)]
    change = {"showtime_id": {"S": room}, "ticket_id": {"S": tickets[1]}}
    sold = {**change, "status": {"S": "sold"}}

    assert sliced_world["container"].seats.publish([(change, sold, "7")]) == 3
    assert drain_slices(sliced_world) == []
    for viewer in viewers:
        assert management_api.messages(viewer) == [
            {"type": "ticket_status", "updates": [{"ticket_id": tickets[1], "status": "sold", "seq": "7"}]}
        ]
