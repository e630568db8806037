"""Browser tests: the web app in headless Chromium (Debian's, driven by Playwright) against the local stack.

The stack is started once per session (`python -m local` on a free loopback port) unless
BROWSER_TESTS_BASE_URL names one that is already running. Playwright never downloads a browser here:
it drives /usr/bin/chromium (CHROMIUM_PATH overrides). Screenshots land in tests/browser/artifacts/.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.browser import helpers
from tests.support.stack import LIMITS_OFF

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling home, which floods a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 15


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the web app in headless Chromium against the running local stack"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Lets the page fixture know whether the test failed, to keep a screenshot of every open page.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def playwright_api():
    """Playwright's sync API, or a skip saying what is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not importable: pip install 'playwright>=1.45,<2' (its own browsers are not used)")
    # Never let Playwright fetch a browser of its own.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("FAILED-*.png"):
        stale.unlink()
    return ARTIFACTS


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _python() -> str:
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.is_file() else sys.executable


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # Its own process group (start_new_session), so this reaches the stack's children and nothing else.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def base_url(playwright_api, artifacts_dir: Path):
    """Origin of the local stack: started here (and stopped with SIGINT at the end) unless one is given."""
    given = os.environ.get("BROWSER_TESTS_BASE_URL")
    if given:
        yield given.rstrip("/")
        return
    port = _free_port()
    state_dir = artifacts_dir / "stack-state"  # never the developer's own .local-state
    shutil.rmtree(state_dir, ignore_errors=True)
    env = dict(
        os.environ,
        HOST="127.0.0.1",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
        LOCAL_STATE_DIR=str(state_dir),
        # A 1 s draw grace (30 s on AWS): the waiting-room test opens a sale a few seconds ahead.
        WAITROOM_DRAW_GRACE_SECONDS="1",
        **LIMITS_OFF,
    )
    log_path = artifacts_dir / "stack.log"
    proc = subprocess.Popen(
        [_python(), "-m", "local"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )
    ready = threading.Event()
    tail: collections.deque[str] = collections.deque(maxlen=60)

    def pump() -> None:
        # Keeps draining the pipe for the whole session, so the stack never blocks on a full stdout.
        with log_path.open("w", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                tail.append(line.rstrip())
                if not ready.is_set() and "ready" in line:
                    ready.set()

    reader = threading.Thread(target=pump, name="stack-stdout", daemon=True)
    reader.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.wait(timeout=0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            reader.join(timeout=5)
            why = (
                f"exited with {proc.returncode}" if proc.returncode is not None else f"not ready in {READY_TIMEOUT_S} s"
            )
            pytest.fail(
                f"the local stack ({_python()} -m local) {why}; last output:\n" + "\n".join(tail),
                pytrace=False,
            )
    url = f"http://127.0.0.1:{port}"
    try:
        helpers.wait_healthy(url)
        yield url
    finally:
        _stop(proc)
        reader.join(timeout=5)


@pytest.fixture(scope="session")
def browser(playwright_api):
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def catalog(base_url: str) -> list[helpers.Showtime]:
    """Every seeded showtime (the seed has at least 3 events with showtimes)."""
    showtimes = helpers.list_showtimes(base_url)
    assert showtimes, "the demo seed has no showtimes"
    return showtimes


@pytest.fixture
def new_page(request: pytest.FixtureRequest, browser, base_url: str, artifacts_dir: Path):
    """Factory: a page in a browser context of its own (one per user). Checks for uncaught page errors."""
    contexts = []
    pages = []
    page_errors: list[str] = []

    def make(viewport: dict | None = None):
        context = browser.new_context(viewport=viewport or {"width": 1200, "height": 900}, base_url=base_url)
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(f"{page.url}: {exc}"))
        contexts.append(context)
        pages.append(page)
        return page

    yield make

    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for i, page in enumerate(pages):
            try:
                page.screenshot(path=str(artifacts_dir / f"FAILED-{request.node.name}-{i}.png"), full_page=True)
            except Exception:  # noqa: BLE001 - a broken page must not hide the real failure
                pass
    for context in contexts:
        context.close()
    assert not page_errors, "uncaught errors in the page:\n" + "\n".join(page_errors)
