"""moto's state kept in a file across restarts of the server: what survives, what a hard kill loses, and a file
that cannot be read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.moto import MotoProcess
from tests.integration.moto.common import STREAM, client, create_table, seed


def stream_keys(endpoint: str, table: str) -> list[str]:
    dynamodb, streams = client("dynamodb", endpoint), client("dynamodbstreams", endpoint)
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return [record["dynamodb"]["Keys"]["pk"]["S"] for record in records]


def queue_state(endpoint: str, url: str) -> tuple[str, str]:
    attributes = client("sqs", endpoint).get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]


def test_tables_stream_records_and_queue_messages_survive_a_stop_and_start(
    dummy_credentials: None, tmp_path: Path
) -> None:
    state = tmp_path / "moto.pickle"
    with MotoProcess(state_file=state) as moto:
        dynamodb, sqs = client("dynamodb", moto.endpoint), client("sqs", moto.endpoint)
        create_table(dynamodb, "kept", StreamSpecification=STREAM)
        seed(dynamodb, "kept", "a", "b", "c")
        url = sqs.create_queue(QueueName="kept", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
        for body in ("one", "two", "three"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        in_flight = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
    with MotoProcess(state_file=state) as moto:
        items = client("dynamodb", moto.endpoint).scan(TableName="kept")["Items"]
        assert sorted(item["pk"]["S"] for item in items) == ["a", "b", "c"]
        assert stream_keys(moto.endpoint, "kept") == ["a", "b", "c"]
        assert queue_state(moto.endpoint, url) == ("2", "1")
        # The message received before the restart can still be deleted with its receipt handle.
        client("sqs", moto.endpoint).delete_message(QueueUrl=url, ReceiptHandle=in_flight["ReceiptHandle"])
        assert queue_state(moto.endpoint, url) == ("2", "0")


def test_a_verified_sender_and_the_mail_sent_survive_a_stop_and_start(dummy_credentials: None, tmp_path: Path) -> None:
    """Without SES in the snapshot every email after a restart was refused (the sender no longer verified)."""
    state = tmp_path / "moto.pickle"
    message = {"Subject": {"Data": "Kept"}, "Body": {"Text": {"Data": "still here"}}}
    with MotoProcess(state_file=state) as moto:
        ses = client("ses", moto.endpoint)
        ses.verify_email_identity(EmailAddress="tickets@example.com")
        ses.send_email(Source="tickets@example.com", Destination={"ToAddresses": ["a@example.com"]}, Message=message)
    with MotoProcess(state_file=state) as moto:
        ses = client("ses", moto.endpoint)
        assert "tickets@example.com" in ses.list_identities()["Identities"]
        ses.send_email(Source="tickets@example.com", Destination={"ToAddresses": ["b@example.com"]}, Message=message)
        assert ses.get_send_quota()["SentLast24Hours"] == 2


def test_a_format_1_file_without_ses_is_still_restored(dummy_credentials: None, tmp_path: Path) -> None:
    import pickle

    state = tmp_path / "moto.pickle"
    with MotoProcess(state_file=state) as moto:
        create_table(client("dynamodb", moto.endpoint), "old")
        seed(client("dynamodb", moto.endpoint), "old", "x")
    form, version, backends = pickle.loads(state.read_bytes())
    assert form == 2
    state.write_bytes(pickle.dumps((1, version, backends[:2])))  # as a stack before SES was kept wrote it
    with MotoProcess(state_file=state) as moto:
        items = client("dynamodb", moto.endpoint).scan(TableName="old")["Items"]
        assert [item["pk"]["S"] for item in items] == ["x"]


def test_a_hard_kill_loses_nothing_written_a_snapshot_interval_before_it(
    dummy_credentials: None, tmp_path: Path
) -> None:
    state = tmp_path / "moto.pickle"
    moto = MotoProcess(state_file=state, snapshot_seconds=0.2)
    moto.start()
    try:
        dynamodb = client("dynamodb", moto.endpoint)
        create_table(dynamodb, "killed")
        seed(dynamodb, "killed", "before")
        time.sleep(1.0)
        os.kill(moto.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while moto.alive:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        moto.stop()
    with MotoProcess(state_file=state) as moto:
        items = client("dynamodb", moto.endpoint).scan(TableName="killed")["Items"]
        assert [item["pk"]["S"] for item in items] == ["before"]


@pytest.mark.parametrize("content", [b"not a snapshot", b""], ids=["garbage", "empty"])
def test_a_state_file_that_cannot_be_read_is_refused_naming_it(
    dummy_credentials: None, tmp_path: Path, content: bytes
) -> None:
    state = tmp_path / "moto.pickle"
    state.write_bytes(content)
    with pytest.raises(RuntimeError) as raised:
        MotoProcess(state_file=state).start()
    assert str(state) in str(raised.value)
    assert "make reset" in str(raised.value)
    assert state.read_bytes() == content  # left for the developer to look at


def test_without_a_state_file_nothing_is_written(dummy_credentials: None, tmp_path: Path) -> None:
    with MotoProcess() as moto:
        create_table(client("dynamodb", moto.endpoint), "memory-only")
        time.sleep(1.2)
    assert list(tmp_path.iterdir()) == []


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[3]
    return subprocess.run(
        [sys.executable, "-c", code], cwd=root, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_the_speed_work_is_refused_with_one_line_on_an_unchecked_moto_version() -> None:
    answer = run_python(
        "import local.moto.patches as p; p.CHECKED_VERSIONS = ('0.0.1',); "
        "from moto.dynamodb.parsing.expressions import UpdateExpressionParser as U; before = vars(U)['make']; "
        "print(p.install(True), vars(U)['make'] is before)"
    )
    assert answer.stdout.split() == ["False", "True"]  # not installed: moto's own parser stays
    [line] = answer.stderr.strip().splitlines()
    assert "is not a version the speed patches were checked against (0.0.1)" in line
    assert "LOCAL_MOTO_SPEED=off" in line


def test_the_switch_turns_the_speed_work_off_and_the_fixes_stay() -> None:
    answer = run_python(
        "import local.moto.patches as p; "
        "from moto.dynamodb.models import DynamoDBBackend as B; from local.moto import transactions; "
        "from moto.dynamodb.parsing.expressions import UpdateExpressionParser as U; before = vars(U)['make']; "
        "print(p.install(), vars(U)['make'] is before, B.transact_write_items is transactions.transact_write_items)",
        LOCAL_MOTO_SPEED="off",
    )
    assert answer.stdout.split() == ["False", "True", "True"], answer.stderr
    assert answer.stderr == ""


def test_a_correctness_fix_that_no_longer_fits_moto_refuses_to_start() -> None:
    answer = run_python(
        "import local.moto.patches as p; from moto.sqs.models import Queue; del Queue.wait_for_messages; p.install()"
    )
    assert answer.returncode != 0
    assert "no longer fits the correctness fixes" in answer.stderr
    assert "wait_for_messages" in answer.stderr


def test_the_switch_accepts_only_on_and_off() -> None:
    from local.moto import patches

    assert patches.speed_requested({}) is True
    assert patches.speed_requested({"LOCAL_MOTO_SPEED": "OFF"}) is False
    with pytest.raises(ValueError, match="LOCAL_MOTO_SPEED"):
        patches.speed_requested({"LOCAL_MOTO_SPEED": "fast"})
