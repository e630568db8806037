"""The server's process: start, stop, loopback only, stopping with a long poll in flight."""

from __future__ import annotations

import http.client
import json
import logging
import select
import urllib.error
import urllib.parse
import urllib.request

import pytest

from local.moto import MotoProcess, process
from tests.integration.moto.common import client, port_of, server_side_connections, signed_for, wait_for

# Process lifecycle
# --------------------------------------------------------------------------------------


def test_server_answers_after_start_and_refuses_after_stop(
    dummy_credentials: None,
) -> None:
    moto = MotoProcess()
    url = moto.start()
    assert url == moto.endpoint and url.startswith("http://127.0.0.1:")
    assert client("sts", url).get_caller_identity()["Account"]

    moto.stop()
    moto.stop()  # idempotent

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/moto-api/config", timeout=2)
    with pytest.raises(RuntimeError):
        _ = moto.endpoint


def test_server_refuses_to_bind_beyond_loopback() -> None:
    with pytest.raises(ValueError):
        MotoProcess().start(host="0.0.0.0")


# --------------------------------------------------------------------------------------


# Stopping


def test_stop_is_prompt_with_an_sqs_long_poll_in_flight(
    dummy_credentials: None, caplog: pytest.LogCaptureFixture
) -> None:
    moto = MotoProcess()
    endpoint = moto.start()
    port = port_of(endpoint)
    queue = client("sqs", endpoint).create_queue(QueueName="stop-while-polling")["QueueUrl"]
    poll = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AmazonSQS.ReceiveMessage",
        "Authorization": signed_for("sqs"),
    }
    try:
        poll.request("POST", "/", body=json.dumps({"QueueUrl": queue, "WaitTimeSeconds": 0}), headers=headers)
        empty = poll.getresponse()
        assert (empty.status, json.loads(empty.read())) == (200, {})  # the request is routed to SQS as sent
        poll.request("POST", "/", body=json.dumps({"QueueUrl": queue, "WaitTimeSeconds": 20}), headers=headers)
        client_port = poll.sock.getsockname()[1]
        wait_for(lambda: server_side_connections(port).get(client_port) == 0, "the server to read the long poll")
        assert select.select([poll.sock], [], [], 0)[0] == []  # and it is still waiting: no answer yet
        caplog.set_level(logging.WARNING, logger=process.__name__)

        moto.stop(timeout=5)  # asked over its pipe; after 5 s it kills the server and logs a warning saying so
    finally:
        moto.stop(timeout=1)
        poll.close()
    warnings = [record for record in caplog.records if record.name == process.__name__]
    assert [record.getMessage() for record in warnings if record.levelno >= logging.WARNING] == []
