"""Resident memory of the stack's process tree (gateway + moto child), read from /proc."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from bench.stats import descendants, parse_ppid, parse_status_kib

PROC = Path("/proc")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = parse_ppid((entry / "stat").read_text())
        except (OSError, ValueError):
            continue  # the process ended while we looked
    return parents


def tree_rss_kib(root: int) -> dict[int, int]:
    """pid -> VmRSS (KiB) for root and all its descendants still alive."""
    rss: dict[int, int] = {}
    for pid in descendants(root, _parents()):
        try:
            value = parse_status_kib((PROC / str(pid) / "status").read_text())
        except OSError:
            continue
        if value is not None:
            rss[pid] = value
    return rss


def total_mib(root: int) -> float:
    return round(sum(tree_rss_kib(root).values()) / 1024, 1)


class RssSampler(threading.Thread):
    """Samples the tree's total RSS every `interval` seconds; keeps the peak."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.root = root
        self.interval = interval
        self.peak_mib = 0.0
        self.samples = 0
        self._stop_event = threading.Event()

    def sample(self) -> float:
        value = total_mib(self.root)
        self.peak_mib = max(self.peak_mib, value)
        self.samples += 1
        return value

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def _cpu_seconds(pid: int) -> float:
    fields = (PROC / str(pid) / "stat").read_text()
    after_name = fields[fields.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name and state.
    return (int(after_name[11]) + int(after_name[12])) / _CLOCK_TICKS


def _label(pid: int, root: int) -> str:
    if pid == root:
        return "gateway"
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
        name = (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "gone"
    if b"resource_tracker" in cmdline:
        return "resource_tracker"
    # The stack's children name themselves (local/processes.py name_process).
    return {"event-sources": "event_sources", "moto-server": "moto", "rest-lambdas": "rest_lambdas"}.get(name, "moto")


def tree_cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds used so far by the stack's processes: the gateway (root), moto, the event sources..."""
    used: dict[str, float] = {}
    for pid in descendants(root, _parents()):
        try:
            seconds = _cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue
        label = _label(pid, root)
        used[label] = used.get(label, 0.0) + seconds
    return used


def tree_rss_by_label(root: int) -> dict[str, float]:
    by_label: dict[str, float] = {}
    for pid, kib in tree_rss_kib(root).items():
        label = _label(pid, root)
        by_label[label] = round(by_label.get(label, 0.0) + kib / 1024, 1)
    return by_label


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy since boot (everything but idle and iowait)."""
    fields = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS


def load_average() -> list[float]:
    return [float(v) for v in (PROC / "loadavg").read_text().split()[:3]]
