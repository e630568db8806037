"""`make install`'s pip run with a short progress report: a fresh clone installs for about a minute, and a quiet
pip shows nothing in that time, while a verbose one prints hundreds of lines.

    python -m local.install -r requirements-dev.txt -r requirements-infra.txt

Runs `python -m pip install <args>` with this interpreter and reports, on stderr, one line per phase (and, on a
terminal, a running count of the packages pip has looked at). When pip fails, its whole output is shown, then
its exit status is this script's. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import deque
from typing import TextIO

_LOOKED_AT = ("Collecting ", "Requirement already satisfied: ")
_EVERY = 25  # without a terminal, one line per this many packages


class Progress:
    """Turns pip's output lines into a few lines a person can follow."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self._out = out
        self._tty = tty
        self.seen = 0
        self._started = time.monotonic()

    def line(self, text: str) -> None:
        if text.startswith(_LOOKED_AT):
            self.seen += 1
            name = text.split(": ", 1)[-1] if text.startswith(_LOOKED_AT[1]) else text[len(_LOOKED_AT[0]) :]
            self._count(name.split()[0] if name.split() else "")
        elif text.startswith(("WARNING:", "ERROR:")):
            self._say(text)  # what a quiet pip showed too
        elif text.startswith("Installing collected packages: "):
            count = len(text.split(": ", 1)[1].split(", "))
            self._say(f"  installing {count} packages…")

    def _count(self, name: str) -> None:
        if self._tty:
            self._out.write(f"\r\033[K  packages looked at: {self.seen} ({name})")
            self._out.flush()
        elif self.seen % _EVERY == 0:
            self._say(f"  packages looked at: {self.seen}…")

    def _say(self, text: str) -> None:
        if self._tty:
            self._out.write("\r\033[K")
        self._out.write(text + "\n")
        self._out.flush()

    def done(self) -> None:
        self._say(f"  done: {self.seen} packages in {time.monotonic() - self._started:.0f} s")


def main(argv: list[str]) -> int:
    out = sys.stderr
    progress = Progress(out, out.isatty())
    command = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *argv]
    kept: deque[str] = deque(maxlen=400)  # enough to show why pip failed
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
        assert pip.stdout is not None
        for raw in pip.stdout:
            kept.append(raw)
            progress.line(raw.strip())
    if pip.returncode != 0:
        out.write("\n" + "".join(kept))
        out.write(f"pip install failed (exit status {pip.returncode})\n")
        return pip.returncode
    progress.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
