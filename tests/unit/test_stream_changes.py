"""Tickets stream images -> the ticket_status updates a room sees; the local stream poller; replies on failure."""

from __future__ import annotations

import json
import time

import pytest

from chalicelib import holds
from chalicelib.services.seats import SeatService, TicketChange, change_from_images, update_message

ROOM = "show1"
OTHER_ROOM = "show2"
EXP = 1_700_000_600


def image(ticket: str = "A1", room: str = ROOM, status: str = "available", **extra) -> dict:
    item = {
        "showtime_id": {"S": room},
        "ticket_id": {"S": f"{room}-{ticket}"},
        "row": {"S": ticket[0]},
        "number": {"N": ticket[1:]},
        "price": {"S": "12.00"},
        "currency": {"S": "USD"},
        "status": {"S": status},
    }
    for name, value in extra.items():
        item[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return item


def held(ticket: str = "A1", holder: str = "alice", expires: int = EXP, room: str = ROOM) -> dict:
    return image(ticket, room, "held", holder=holder, hold_expires_at=expires, sweep_shard="1")


def test_select_is_seen_as_held_with_its_expiry():
    change = change_from_images(image(), held())
    assert change == TicketChange(room=ROOM, ticket_id=f"{ROOM}-A1", status="held", expires_at=EXP)


def test_unselect_is_seen_as_available_without_expiry():
    change = change_from_images(held(), image())
    assert change == TicketChange(room=ROOM, ticket_id=f"{ROOM}-A1", status="available", expires_at=None)


def test_taking_over_an_expired_hold_is_seen_as_the_new_expiry():
    change = change_from_images(held(holder="alice", expires=EXP), held(holder="bob", expires=EXP + 600))
    assert change is not None
    assert (change.status, change.expires_at) == ("held", EXP + 600)


def test_a_hold_already_past_its_expiry_is_still_reported_held():
    # Stream batches can be late: the viewer frees the seat at expires_at itself.
    change = change_from_images(image(), held(expires=1))
    assert change is not None and (change.status, change.expires_at) == ("held", 1)


def test_holder_change_with_the_same_expiry_is_invisible():
    assert change_from_images(held(holder="alice"), held(holder="bob")) is None


def test_changes_to_invisible_attributes_are_dropped():
    assert change_from_images(image(), image(order_id="o-1")) is None
    assert change_from_images(held(), {**held(), "sweep_shard": {"S": "3"}}) is None


def test_checkout_reads_held_and_only_a_new_expiry_is_visible():
    checkout_same = image("A1", ROOM, "checkout", holder="alice", hold_expires_at=EXP, order_id="o-1")
    assert change_from_images(held(), checkout_same) is None
    checkout_longer = image("A1", ROOM, "checkout", holder="alice", hold_expires_at=EXP + 900, order_id="o-1")
    change = change_from_images(held(), checkout_longer)
    assert change is not None and (change.status, change.expires_at) == ("held", EXP + 900)


def test_purchase_and_refund_are_seen_as_sold_then_available():
    checkout = image("A1", ROOM, "checkout", holder="alice", hold_expires_at=EXP, order_id="o-1")
    sold = image("A1", ROOM, "sold", holder="alice", order_id="o-1")
    assert change_from_images(checkout, sold) == TicketChange(ROOM, f"{ROOM}-A1", "sold", None)
    assert change_from_images(sold, image()) == TicketChange(ROOM, f"{ROOM}-A1", "available", None)


def test_a_new_ticket_is_seen_as_available():
    assert change_from_images(None, image("B3")) == TicketChange(ROOM, f"{ROOM}-B3", "available", None)


def test_a_deleted_ticket_is_no_visible_change_and_does_not_fail_the_batch():
    assert change_from_images(held(), None) is None


def test_an_image_without_keys_is_ignored():
    assert change_from_images(None, {"status": {"S": "held"}}) is None
    assert change_from_images(None, None) is None


def test_update_message_has_the_contract_shape_and_never_names_a_user():
    changes = [
        change_from_images(image("A1"), held("A1", holder="user-secret-id")),
        change_from_images(held("A2", holder="user-secret-id"), image("A2")),
    ]
    message = update_message([c for c in changes if c is not None])
    assert message == {
        "type": "ticket_status",
        "updates": [
            {"ticket_id": f"{ROOM}-A1", "status": "held", "expires_at": holds.iso(EXP)},
            {"ticket_id": f"{ROOM}-A2", "status": "available"},
        ],
    }
    assert "user-secret-id" not in json.dumps(message)
    assert "alice" not in json.dumps(message)


class FakeBroadcaster:
    def __init__(self) -> None:
        self.fanned: list[tuple[str, list[dict]]] = []

    def fan_out(self, room: str, messages) -> int:
        return self.fan_out_rooms({room: list(messages)})

    def fan_out_rooms(self, rooms) -> int:
        self.fanned += [(room, list(messages)) for room, messages in rooms.items()]
        return sum(len(messages) for messages in rooms.values())


@pytest.fixture
def service_and_broadcaster():
    broadcaster = FakeBroadcaster()
    service = SeatService(
        repo=None,  # type: ignore[arg-type]
        catalog=None,  # type: ignore[arg-type]
        accounts=None,  # type: ignore[arg-type]
        connections=None,  # type: ignore[arg-type]
        broadcaster=broadcaster,  # type: ignore[arg-type]
    )
    return service, broadcaster


def test_publish_sends_one_message_per_room_with_changes_in_stream_order(service_and_broadcaster):
    service, broadcaster = service_and_broadcaster
    service.publish(
        [
            (image("A1"), held("A1")),
            (image("A1", OTHER_ROOM), held("A1", room=OTHER_ROOM)),
            (held("A1"), image("A1")),
            (image("A2"), image("A2", order_id="invisible")),
            (image("A3"), held("A3")),
        ]
    )
    assert [room for room, _ in broadcaster.fanned] == [ROOM, OTHER_ROOM]
    room_messages = dict(broadcaster.fanned)
    assert len(room_messages[ROOM]) == 1
    assert [(u["ticket_id"], u["status"]) for u in room_messages[ROOM][0]["updates"]] == [
        (f"{ROOM}-A1", "held"),
        (f"{ROOM}-A1", "available"),
        (f"{ROOM}-A3", "held"),
    ]
    assert [u["ticket_id"] for u in room_messages[OTHER_ROOM][0]["updates"]] == [f"{OTHER_ROOM}-A1"]


def test_each_update_carries_its_stream_sequence_number_when_given(service_and_broadcaster):
    service, broadcaster = service_and_broadcaster
    service.publish([(image("A1"), held("A1"), "4100"), (held("A1"), image("A1"), "4200"), (image("A2"), held("A2"))])
    updates = broadcaster.fanned[0][1][0]["updates"]
    assert [(u["ticket_id"], u.get("seq")) for u in updates] == [
        (f"{ROOM}-A1", "4100"),
        (f"{ROOM}-A1", "4200"),
        (f"{ROOM}-A2", None),
    ]


def test_publish_of_only_invisible_changes_posts_nothing(service_and_broadcaster):
    service, broadcaster = service_and_broadcaster
    service.publish([(image("A1"), image("A1", order_id="x")), (held("A2"), None)])
    assert broadcaster.fanned == []


class FakeStreams:
    """A one-shard DynamoDB Streams client whose oldest records were trimmed away."""

    def __init__(self, kept: list[dict], trimmed_before: int) -> None:
        self.kept = kept
        self.trimmed_before = trimmed_before
        self.iterators: dict[str, int] = {}

    def describe_stream(self, StreamArn):  # noqa: N803
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, StreamArn, ShardId, ShardIteratorType, SequenceNumber=None):  # noqa: N803
        start = self.trimmed_before if ShardIteratorType == "TRIM_HORIZON" else int(SequenceNumber) + 1
        name = f"it-{len(self.iterators)}"
        self.iterators[name] = start
        return {"ShardIterator": name}

    def get_records(self, ShardIterator, Limit):  # noqa: N803
        from botocore.exceptions import ClientError

        start = self.iterators[ShardIterator]
        if start < self.trimmed_before:
            raise ClientError({"Error": {"Code": "TrimmedDataAccessException", "Message": "trimmed"}}, "GetRecords")
        records = [r for r in self.kept if int(r["dynamodb"]["SequenceNumber"]) >= start]
        return {"Records": records[:Limit]}


def stream_raw(sequence: int) -> dict:
    return {
        "eventName": "MODIFY",
        "dynamodb": {"SequenceNumber": str(sequence), "OldImage": image(), "NewImage": held()},
    }


def test_stream_poller_behind_the_trim_horizon_resumes_at_the_oldest_kept_record():
    from local.pollers import StreamPoller

    delivered: list[list[str]] = []
    client = FakeStreams(kept=[stream_raw(n) for n in range(1, 11)], trimmed_before=1)
    poller = StreamPoller(
        client,
        "arn:stream",
        lambda event, context: delivered.append([r["dynamodb"]["SequenceNumber"] for r in event["Records"]]),
        region="us-east-1",
        window=0,
    )
    poller.prime()  # LATEST: after record 10
    # The poller falls behind: records 11..49 are written and trimmed before it reads again.
    client.kept, client.trimmed_before = [stream_raw(50), stream_raw(51)], 50

    assert poller.poll_once() == 2
    assert delivered == [["50", "51"]]
    assert poller.poll_once() == 0  # and it goes on from there, without replaying


def test_stream_poller_reports_each_batchs_iterator_age_and_duration_as_lambda_does():
    from local.pollers import StreamPoller

    client = FakeStreams(kept=[], trimmed_before=0)
    poller = StreamPoller(client, "arn:stream", lambda event, context: time.sleep(0.05), region="us-east-1", window=0)
    poller.prime()
    now = time.time()
    written = [stream_raw(n) for n in (1, 2, 3)]
    for record, age in zip(written, (2.0, 1.0, 0.5), strict=True):  # the oldest record was written 2 s ago
        record["dynamodb"]["ApproximateCreationDateTime"] = now - age
    client.kept = written

    assert poller.poll_once() == 3
    [(iterator_age, duration)] = poller.status()["recent_batches_ms"]
    assert 2000 <= iterator_age < 2500
    assert 50 <= duration < 500


# --- the sender's reply when something unexpected breaks -------------------------------------------------


class RecordingBroadcaster(FakeBroadcaster):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict]] = []

    def send(self, connection_id: str, message: dict) -> bool:
        self.sent.append((connection_id, message))
        return True


class OneConnection:
    def get(self, connection_id: str):
        from chalicelib.domain import ConnectionRecord

        return ConnectionRecord(connection_id=connection_id, room=ROOM, user_id="alice", connected_at=0)


class BrokenRepo:
    """A storage layer failing in a way no domain error describes (a throttle, a timeout...)."""

    def select(self, *args, **kwargs):
        raise RuntimeError("ProvisionedThroughputExceeded")


def test_an_unexpected_failure_is_answered_busy_for_that_ticket():
    broadcaster = RecordingBroadcaster()
    service = SeatService(
        repo=BrokenRepo(),  # type: ignore[arg-type]
        catalog=None,  # type: ignore[arg-type]
        accounts=None,  # type: ignore[arg-type]
        connections=OneConnection(),  # type: ignore[arg-type]
        broadcaster=broadcaster,  # type: ignore[arg-type]
    )
    service.handle_message("c-1", json.dumps({"action": "select", "ticket_id": f"{ROOM}-A1"}))
    [(connection_id, reply)] = broadcaster.sent
    assert connection_id == "c-1"
    assert (reply["type"], reply["code"], reply["ticket_id"]) == ("error", "busy", f"{ROOM}-A1")
    assert "ProvisionedThroughput" not in reply["message"]
