"""The local stack's data folder: what survives a restart of `make run`.

By default `.local-state/` in the checkout (git ignores it); `LOCAL_STATE_DIR` moves it, and an empty value (or
`off`) keeps everything in memory, gone at stop (the tests and the bench do that with folders of their own).
It holds moto's snapshot (tables, streams, queues), the PayPal emulator's orders, captures and refunds, and the
local JWT signing secret, so a restart keeps users signed in and their orders refundable. One stack at a time
uses a folder (a lock file says which); `make reset` deletes it.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".local-state"
_OFF = {"", "off", "none", "memory"}


class StateInUse(RuntimeError):
    """Another running stack holds the folder."""


class StateDir:
    """A data folder, locked for as long as this object holds it (`acquire` / `release`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_file: IO[str] | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StateDir | None:
        """The folder `LOCAL_STATE_DIR` names (default .local-state), or None when state is kept in memory."""
        value = (environ if environ is not None else os.environ).get("LOCAL_STATE_DIR")
        if value is None:
            return cls(DEFAULT_DIR)
        if value.strip().lower() in _OFF:
            return None
        return cls(Path(value).expanduser().resolve())

    @property
    def moto_file(self) -> Path:
        return self.path / "moto.pickle"

    @property
    def paypal_file(self) -> Path:
        return self.path / "paypal.json"

    @property
    def _lock_path(self) -> Path:
        return self.path / "lock"

    def acquire(self) -> None:
        """Create and lock the folder. Raises StateInUse when another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self._lock_path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StateInUse(f"{self.path} is in use by {holder}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing drops the lock
            self._lock_file = None

    def jwt_secret(self) -> str:
        """The local signing secret, made once and kept (owner-only), so tokens outlive a restart."""
        path = self.path / "jwt-secret"
        try:
            secret = path.read_text().strip()
        except FileNotFoundError:
            secret = ""
        if len(secret) >= 32:
            return secret
        secret = secrets.token_urlsafe(48)
        write_private(path, secret + "\n")
        return secret

    def ticket_keys(self) -> str:
        """The local e-ticket keyset (Ed25519, chalicelib/etickets.py), made once and kept (owner-only), so the
        tickets of a past run still scan."""
        from chalicelib.etickets import Keyset, new_keyset_json

        path = self.path / "ticket-keys.json"
        try:
            text = path.read_text().strip()
            if Keyset.parse(text).usable:
                return text
        except (FileNotFoundError, ValueError):
            pass
        text = new_keyset_json()
        write_private(path, text + "\n")
        return text

    def reset(self) -> None:
        """Delete the folder. Raises StateInUse while a stack holds it."""
        if not self.path.exists():
            return
        self.acquire()
        try:
            shutil.rmtree(self.path)
        finally:
            self.release()


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (a crash leaves the old file or the new, never half)."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def main() -> int:
    """`make reset`: start the next `make run` from nothing."""
    state = StateDir.from_env()
    if state is None:
        print("LOCAL_STATE_DIR is off: the local stack keeps nothing between runs")
        return 0
    try:
        state.reset()
    except StateInUse as exc:
        print(f"cannot reset: {exc}; stop `make run` first")
        return 1
    print(f"removed {state.path}: the next `make run` starts clean")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
