"""Which changes to moto this server makes, and when.

- The correctness fixes (serialize, transactions, streams, memory) are always installed: without them the seat
  lock is not a lock, transactions copy whole tables, and memory grows for ever. Each checks that what it replaces
  still exists, and refuses to start (RuntimeError naming the fix) when moto has changed under it.
- The speed work (local/moto/speed/) is installed when `LOCAL_MOTO_SPEED` is `on` (the default) and the installed
  moto is one of CHECKED_VERSIONS, the exact versions its patches were read against. On any other version it is
  refused with one line on stderr and the server runs without it.

To check a new moto version: read each patched function's upstream source against the module that replaces it,
run `make test` (which also runs the lock and payment suites with the speed work off), then add the version here
and pin it in requirements-dev.txt.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from typing import Any

CHECKED_VERSIONS = ("5.2.5",)
SWITCH = "LOCAL_MOTO_SPEED"

Patch = tuple[Any, str, Any]  # (owner, attribute, replacement)
_installed: dict[str, bool] = {}


def speed_requested(environ: dict[str, str] | None = None) -> bool:
    """The switch: on (default) or off. Raises ValueError for anything else."""
    value = (environ if environ is not None else os.environ).get(SWITCH, "on").strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"{SWITCH} must be on or off, not {value!r}")
    return value == "on"


def correctness_patches() -> list[Patch]:
    from local.moto import memory, serialize, streams, transactions

    return [*serialize.patches(), *transactions.patches(), *streams.patches(), *memory.patches()]


def speed_patches() -> list[Patch]:
    from local.moto import speed

    return speed.patches()


def moto_version() -> str:
    import moto

    return str(moto.__version__)


def refusal(version: str) -> str | None:
    """Why the speed work cannot run on this moto version, or None when it can."""
    if version in CHECKED_VERSIONS:
        return None
    return (
        f"moto {version} is not a version the speed patches were checked against ({', '.join(CHECKED_VERSIONS)}): "
        f"running without them; set {SWITCH}=off to silence this, or check local/moto/speed against it"
    )


def apply(patches: list[Patch], kind: str) -> None:
    for owner, name, replacement in patches:
        if not hasattr(owner, name):
            raise RuntimeError(
                f"moto {moto_version()} has no {getattr(owner, '__name__', owner)}.{name}: the {kind} "
                f"'{replacement.__module__ if hasattr(replacement, '__module__') else name}' cannot be applied"
            )
        setattr(owner, name, replacement)


def install(speed: bool | None = None) -> bool:
    """Patch moto in this process (once). Returns whether the speed work is installed.

    Raises RuntimeError when a correctness fix no longer fits the installed moto.
    """
    if "speed" in _installed:
        return _installed["speed"]
    _warn_if_transactions_fixed_upstream()
    try:
        fixes = correctness_patches()
    except (AttributeError, ImportError) as exc:
        raise RuntimeError(f"moto {moto_version()} no longer fits the correctness fixes: {exc}") from None
    apply(fixes, "correctness fix")
    wanted = speed_requested() if speed is None else speed
    reason = refusal(moto_version()) if wanted else None
    if reason is not None:
        print(reason, file=sys.stderr, flush=True)
    enabled = wanted and reason is None
    if enabled:
        from local.moto import transactions

        apply(speed_patches(), "speed patch")
        transactions.REHEARSED = set()
    _installed["speed"] = enabled
    return enabled


def _warn_if_transactions_fixed_upstream() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    with contextlib.suppress(OSError, TypeError):  # no source shipped: nothing to tell
        if "deepcopy" not in inspect.getsource(DynamoDBBackend.transact_write_items):
            print(
                "moto's transact_write_items no longer copies tables: drop local/moto/transactions.py",
                file=sys.stderr,
                flush=True,
            )
