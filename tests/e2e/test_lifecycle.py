"""`make run` stops cleanly however it is told to: Ctrl-C in a terminal signals the whole foreground process
group, and so do process supervisors (`kill -TERM -- -PGID`, systemd's default, a container stop)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.support.stack import running_stack

STOP_TIMEOUT = 30.0


def processes_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signalling_the_whole_process_group_stops_every_process_of_the_stack(signum):
    with running_stack() as stack:
        assert requests.get(stack.api("events/"), timeout=10).status_code == 200
        pgid = os.getpgid(stack.process.pid)
        assert len(processes_in_group(pgid)) >= 3  # the gateway, moto and the event sources

        os.killpg(pgid, signum)

        assert stack.process.wait(timeout=STOP_TIMEOUT) == 0
        deadline = time.monotonic() + STOP_TIMEOUT
        while processes_in_group(pgid) or "stopped" not in stack.output:  # the output is read by a thread
            assert time.monotonic() < deadline, f"left running: {processes_in_group(pgid)}; {list(stack.output)}"
            time.sleep(0.1)
        # Stopped by the signal, not killed after a grace period.
        assert not [line for line in stack.output if "did not stop" in line], list(stack.output)
