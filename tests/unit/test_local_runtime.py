"""The local runtime's own machinery: pollers that outlive any error, the supervisor's restarts and stops,
per-thread REST requests, the health answer, the data folder."""

from __future__ import annotations

import json
import threading
import time

import pytest

from local.gateway import concurrent_rest, with_parts
from local.pollers import Backoff, SqsPoller, Timer
from local.state import StateDir, StateInUse
from local.supervisor import MAX_RESTARTS, Supervisor, describe_exit


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# --- pollers ---------------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_and_a_success_resets_it():
    backoff = Backoff(first=1.0, cap=4.0)
    delays = [backoff.failed() for _ in range(5)]
    for delay, expected in zip(delays, [1, 2, 4, 4, 4], strict=True):
        assert 0.8 * expected <= delay <= 1.2 * expected  # within the +-20 % jitter
    assert backoff.succeeded() == 5
    assert 0.8 <= backoff.failed() <= 1.2


class FlakySqs:
    """Receives fail with arbitrary errors (not only ClientError) a few times, then deliver one message."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.deleted: list[str] = []
        self.delivered = False

    def receive_message(self, **_):
        if self.failures:
            raise self.failures.pop(0)
        if self.delivered:
            time.sleep(0.01)
            return {}
        self.delivered = True
        return {"Messages": [{"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": "{}"}]}

    def delete_message_batch(self, QueueUrl, Entries):  # noqa: N803 (boto3's names)
        self.deleted += [entry["ReceiptHandle"] for entry in Entries]


def fast(poller):
    poller._backoff = Backoff(first=0.01, cap=0.02)
    return poller


def test_sqs_poller_survives_any_error_and_then_delivers():
    client = FlakySqs([RuntimeError("boom"), ValueError("bad answer"), OSError("socket")])
    handled = []
    poller = fast(
        SqsPoller(
            client,
            "url",
            "arn",
            lambda event, context: handled.extend(r["messageId"] for r in event["Records"]),
            region="us-east-1",
            function_name="purchases_worker",
        )
    )
    poller.start()
    try:
        wait_for(lambda: client.deleted == ["r-1"])
        assert handled == ["m-1"]
        assert poller.is_alive()
        wait_for(lambda: poller.status()["status"] == "ok")
    finally:
        poller.stop()
        poller.join(5)


def test_a_failing_poller_reports_failing_with_the_error_until_it_recovers():
    client = FlakySqs([RuntimeError("first")] * 1000)
    poller = fast(SqsPoller(client, "url", "arn", lambda e, c: None, region="r", function_name="refunds_worker"))
    poller.start()
    try:
        wait_for(lambda: poller.status()["status"] == "failing")
        status = poller.status()
        assert status["error"] == "RuntimeError: first"
        assert status["failing_since"] <= time.time()
        client.failures.clear()
        wait_for(lambda: poller.status()["status"] == "ok")
        assert "error" not in poller.status()
    finally:
        poller.stop()
        poller.join(5)


def test_a_failed_invocation_is_a_failure_of_the_poller_and_leaves_the_message():
    client = FlakySqs([])

    def broken(event, context):
        raise KeyError("handler bug")

    poller = SqsPoller(client, "url", "arn", broken, region="r", function_name="purchases_worker")
    assert poller.poll_once() == 0  # as before: the batch becomes visible again
    assert client.deleted == []
    with pytest.raises(Exception, match="purchases_worker failed"):
        client.delivered = False
        poller.step()


def test_timer_keeps_firing_after_its_handler_raises():
    calls = []

    def handler(event, context):
        calls.append(event["detail-type"])
        if len(calls) == 1:
            raise RuntimeError("first tick fails")

    timer = fast(Timer(handler, interval=0.01, name="sweep_expired", region="us-east-1"))
    timer.start()
    try:
        wait_for(lambda: len(calls) >= 3)
        assert timer.name == "timer-sweep_expired"
    finally:
        timer.stop()
        timer.join(5)


# --- supervisor --------------------------------------------------------------------------------------------


class FakeProcess:
    def __init__(self, pid: int = 100) -> None:
        self.pid = pid
        self.alive = True
        self.exitcode: int | None = None
        self.started_with: list = []

    def die(self, exitcode: int = -9) -> None:
        self.alive, self.exitcode = False, exitcode

    def positions(self):
        return {"shard-1": "42"}

    def stop(self, timeout: float = 10.0) -> None:
        pass

    def start(self, positions=None) -> None:
        self.started_with.append(positions)
        self.pid += 1
        self.alive, self.exitcode = True, None

    def status(self) -> dict:
        return {"status": "ok" if self.alive else "down", "pid": self.pid}


def test_event_sources_are_restarted_where_they_left_off_and_health_counts_it(capsys):
    moto, sources, fatal = FakeProcess(1), FakeProcess(2), []
    supervisor = Supervisor(moto, sources, fatal.append, "")
    supervisor.start()
    try:
        sources.die()
        wait_for(lambda: sources.started_with)
        assert sources.started_with == [{"shard-1": "42"}]
        assert fatal == []
        assert supervisor.health()["event_sources"] == {"status": "ok", "pid": 3, "restarts": 1}
    finally:
        supervisor.stop()
    err = capsys.readouterr().err
    assert "event-sources (pid 2) was killed by SIGKILL: restarting it" in err


def test_event_sources_that_keep_dying_stop_the_stack():
    moto, sources, fatal = FakeProcess(1), FakeProcess(2), []
    supervisor = Supervisor(moto, sources, fatal.append, "")
    supervisor.start()
    try:
        for _ in range(MAX_RESTARTS + 1):
            restarts = len(sources.started_with)
            sources.die()
            wait_for(lambda restarts=restarts: len(sources.started_with) > restarts or fatal)
        wait_for(lambda: fatal)
    finally:
        supervisor.stop()
    assert len(sources.started_with) == MAX_RESTARTS
    assert f"died {MAX_RESTARTS + 1} times" in fatal[0]


def test_rest_lambdas_are_restarted_and_health_names_them(capsys):
    moto, sources, rest, fatal = FakeProcess(1), FakeProcess(2), FakeProcess(5), []
    supervisor = Supervisor(moto, sources, fatal.append, "", rest_lambdas=rest)
    supervisor.start()
    try:
        assert supervisor.health()["rest_lambdas"] == {"status": "ok", "pid": 5, "restarts": 0}
        rest.die()
        wait_for(lambda: rest.started_with)
        assert fatal == [] and sources.started_with == []
        assert supervisor.health()["rest_lambdas"] == {"status": "ok", "pid": 6, "restarts": 1}
        assert supervisor.health()["event_sources"]["restarts"] == 0
    finally:
        supervisor.stop()
    err = capsys.readouterr().err
    assert "rest-lambdas (pid 5) was killed by SIGKILL: restarting it" in err
    assert "rest-lambdas restarted (pid 6)" in err


def test_losing_moto_stops_the_stack_with_one_line_naming_it():
    moto, sources, fatal = FakeProcess(7), FakeProcess(8), []
    supervisor = Supervisor(moto, sources, fatal.append, "Its last snapshot is kept.")
    supervisor.start()
    try:
        moto.die(-9)
        wait_for(lambda: fatal)
    finally:
        supervisor.stop()
    assert fatal == [
        "moto-server (pid 7) was killed by SIGKILL: the stack's tables and queues lived there, so the stack "
        "stops. Its last snapshot is kept."
    ]
    assert sources.started_with == []
    assert supervisor.health()["moto"] == {"status": "down", "pid": 7, "exitcode": -9}


def test_exit_descriptions():
    assert describe_exit(-15) == "was killed by SIGTERM"
    assert describe_exit(3) == "exited with code 3"


# --- gateway ----------------------------------------------------------------------------------------------


def test_each_thread_sees_its_own_chalice_request():
    from chalice import Chalice

    app = Chalice(app_name="per-thread")
    concurrent_rest(app)
    concurrent_rest(app)  # idempotent
    seen: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def handle(name: str) -> None:
        app.current_request = name
        app.lambda_context = f"context-{name}"
        barrier.wait()  # both have set theirs before either reads
        seen[name] = (app.current_request, app.lambda_context)

    threads = [threading.Thread(target=handle, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": ("a", "context-a"), "b": ("b", "context-b")}
    assert app.current_request is None  # this thread never set one


def test_health_with_a_part_down_is_503_naming_it():
    app_answer = {"statusCode": 200, "headers": {}, "body": json.dumps({"status": "ok", "checks": {"tables": "ok"}})}
    parts = {"gateway": {"status": "ok"}, "event_sources": {"status": "down", "pid": 9}}
    answer = with_parts(app_answer, parts)
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 503
    assert body["status"] == "degraded"
    assert body["code"] == "service_unavailable"
    assert "event_sources" in body["message"]
    assert body["parts"] == parts
    assert body["checks"] == {"tables": "ok"}

    healthy = with_parts(app_answer, {"gateway": {"status": "ok"}})
    assert healthy["statusCode"] == 200
    assert json.loads(healthy["body"])["status"] == "ok"


# --- the data folder ------------------------------------------------------------------------------------


def test_state_folder_is_held_by_one_stack_at_a_time_and_reset_refuses_while_held(tmp_path):
    first, second = StateDir(tmp_path / "state"), StateDir(tmp_path / "state")
    first.acquire()
    try:
        with pytest.raises(StateInUse, match="in use by pid"):
            second.acquire()
        with pytest.raises(StateInUse):
            second.reset()
        assert (tmp_path / "state").is_dir()
    finally:
        first.release()
    second.reset()
    assert not (tmp_path / "state").exists()


def test_signing_secret_is_made_once_private_and_kept(tmp_path):
    state = StateDir(tmp_path)
    secret = state.jwt_secret()
    assert len(secret) >= 32
    assert StateDir(tmp_path).jwt_secret() == secret
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("value", ["", "off", "none", " OFF "])
def test_state_can_be_kept_in_memory_only(value):
    assert StateDir.from_env({"LOCAL_STATE_DIR": value}) is None


def test_state_defaults_to_the_checkout_folder(tmp_path):
    from local.state import DEFAULT_DIR

    assert StateDir.from_env({}).path == DEFAULT_DIR
    assert StateDir.from_env({"LOCAL_STATE_DIR": str(tmp_path)}).path == tmp_path


def test_install_progress_reports_phases_not_pips_every_line():
    import io

    from local.install import Progress

    out = io.StringIO()
    progress = Progress(out, tty=False)
    for n in range(30):
        progress.line(f"Collecting package-{n}==1.0 (from -r requirements-dev.txt (line {n}))")
        progress.line(f"  Downloading package_{n}-1.0-py3-none-any.whl (12 kB)")
    progress.line("Requirement already satisfied: boto3 in ./.venv/lib/python3.11/site-packages (1.35.0)")
    progress.line("WARNING: Location 'file:///x' is ignored: it is neither a file nor a directory.")
    progress.line("Installing collected packages: a, b, c")
    progress.done()

    lines = out.getvalue().splitlines()
    assert lines[:3] == [
        "  packages looked at: 25…",
        "WARNING: Location 'file:///x' is ignored: it is neither a file nor a directory.",
        "  installing 3 packages…",
    ]
    assert lines[3].startswith("  done: 31 packages in ")
    assert len(lines) == 4


def test_install_progress_on_a_terminal_rewrites_one_line_per_package():
    import io

    from local.install import Progress

    out = io.StringIO()
    progress = Progress(out, tty=True)
    progress.line("Collecting boto3>=1.35")
    progress.line("Requirement already satisfied: requests in ./x (2.32)")
    assert out.getvalue() == "\r\033[K  packages looked at: 1 (boto3>=1.35)\r\033[K  packages looked at: 2 (requests)"
