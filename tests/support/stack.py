"""Start the real local stack (`python -m local`) as a subprocess on free loopback ports."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LIMITS_OFF = {
    "LIMIT_REGISTER_PER_SOURCE": "0/1",
    "LIMIT_LOGIN_PER_SOURCE": "0/1",
    "LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "0/1",
    "LIMIT_HOLDS_PER_SOURCE": "0/1",
    "LIMIT_WS_MESSAGES_PER_USER": "0",
    "LIMIT_WS_MESSAGES_PER_CONNECTION": "0",
    "LIMIT_WS_SNAPSHOTS_PER_USER": "0",
    "MAX_SOCKETS_PER_USER_PER_ROOM": "0",
}


@dataclass
class Stack:
    base_url: str
    ws_url: str
    staff_email: str
    staff_password: str
    process: subprocess.Popen
    output: deque = field(default_factory=lambda: deque(maxlen=400))
    ready_line: str = ""

    @property
    def aws_endpoint(self) -> str:
        """The AWS endpoint (embedded moto) the stack printed on its ready line."""
        found = re.search(r"AWS endpoint (http://[^\s)]+)", self.ready_line)
        if not found:
            raise AssertionError(f"the ready line names no AWS endpoint: {self.ready_line!r}")
        return found.group(1)

    def api(self, path: str) -> str:
        return f"{self.base_url}/api/{path.lstrip('/')}"

    def register(self, email: str | None = None, password: str = "correct-horse-1") -> dict:
        """Register a fresh user; returns {"email", "password", "access", "refresh", "id"}."""
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        created = requests.post(self.api("auth/register/"), json={"email": email, "password": password}, timeout=10)
        created.raise_for_status()
        tokens = self.login(email, password)
        return {"email": email, "password": password, "id": created.json()["id"], **tokens}

    def login(self, email: str, password: str) -> dict:
        response = requests.post(self.api("token/"), json={"email": email, "password": password}, timeout=10)
        response.raise_for_status()
        return response.json()

    def staff_token(self) -> str:
        return self.login(self.staff_email, self.staff_password)["access"]


@contextmanager
def running_stack(env: dict[str, str] | None = None, timeout: float = 120.0):
    """The stack in a subprocess; its data folder is a fresh temporary one unless `env` names LOCAL_STATE_DIR."""
    state_dir = None
    if "LOCAL_STATE_DIR" not in (env or {}):
        state_dir = tempfile.mkdtemp(prefix="stack-state-")
        env = {**(env or {}), "LOCAL_STATE_DIR": state_dir}
    try:
        with _running_stack(env, timeout) as stack:
            yield stack
    finally:
        if state_dir is not None:
            shutil.rmtree(state_dir, ignore_errors=True)


@contextmanager
def _running_stack(env: dict[str, str], timeout: float):
    port = free_port()
    staff_email, staff_password = "staff@example.com", "staff-password-e2e"
    environment = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "DEMO_STAFF_EMAIL": staff_email,
        "DEMO_STAFF_PASSWORD": staff_password,
        "PASSWORD_SCRYPT_N": "1024",  # fast hashing for tests; the cost is stored per hash
        "DEMO_SEED_DAYS": "1",  # a smaller seed starts faster; tests make their own showtimes as needed
        # Every test client comes from 127.0.0.1: per-source and per-client limits off, except where a test
        # of the limits turns them on (tests/e2e/test_abuse.py).
        **LIMITS_OFF,
        **env,
    }
    for inherited in ("AWS_ENDPOINT_URL", "TICKETS_STREAM_ARN", "JWT_SECRET", "TICKET_KEYS"):
        if inherited not in env:
            environment.pop(inherited, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stack = Stack(
        base_url=f"http://127.0.0.1:{port}",
        ws_url=f"ws://127.0.0.1:{port}/ws",
        staff_email=staff_email,
        staff_password=staff_password,
        process=process,
    )
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.output.append(line.rstrip())
            if line.startswith("ready:") and not ready.is_set():
                stack.ready_line = line.strip()
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.is_set():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError("local stack did not start:\n" + "\n".join(stack.output))
        ready.wait(0.2)
    try:
        yield stack
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
