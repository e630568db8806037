"""Suite-wide ordering: the browser tests run last.

Playwright's sync API keeps an asyncio loop running in the main thread for as long as its session
fixture lives, and every later test that calls asyncio.run() would fail. Running the browser
suite last keeps both kinds in one `make test`.
"""

from __future__ import annotations


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: "tests/browser/" in str(item.fspath).replace("\\", "/"))
