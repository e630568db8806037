"""The speed work: everything moto does slowly for our few request shapes, done once or more cheaply.

None of it is needed for correctness (the integration suites of the seat lock and payments also run with it off:
`make test-speed-off`), and every piece answers what moto itself answers. It reaches into moto's private
internals, so it is installed only on the moto versions it was read against (local/moto/patches.py).
"""

from __future__ import annotations

from typing import Any


def patches() -> list[tuple[Any, str, Any]]:
    from local.moto.speed import answers, expressions, lookups, projection, records

    return [*expressions.patches(), *records.patches(), *answers.patches(), *projection.patches(), *lookups.patches()]
