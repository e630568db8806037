"""The health check: whether the tables answer, at most one probe per container per interval."""

from __future__ import annotations

from chalicelib.services.health import HealthCheck


class Probe:
    def __init__(self) -> None:
        self.calls = 0
        self.broken = False

    def __call__(self) -> None:
        self.calls += 1
        if self.broken:
            raise ConnectionRefusedError("no tables")


def test_healthy_tables_answer_ok():
    assert HealthCheck(Probe()).check() == {"status": "ok", "checks": {"tables": "ok"}}


def test_unreachable_tables_answer_unavailable_without_raising():
    probe = Probe()
    probe.broken = True
    assert HealthCheck(probe).check() == {"status": "unavailable", "checks": {"tables": "unreachable"}}


def test_a_flood_of_checks_probes_once_per_interval():
    probe, now = Probe(), [100.0]
    check = HealthCheck(probe, clock=lambda: now[0], cache_seconds=5.0)
    for _ in range(50):
        check.check()
    assert probe.calls == 1
    probe.broken = True
    now[0] += 4.9
    assert check.check()["status"] == "ok"  # still the remembered answer
    now[0] += 0.2
    assert check.check()["status"] == "unavailable"
    assert probe.calls == 2
