"""The supervisor's restart policy on real (tiny) processes, and how workers split the cores."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from dynaquant import supervisor
from dynaquant.supervisor import Child, Supervisor, restart_delay
from dynaquant.up import core_shares


def drive(sup: Supervisor, child: Child, until: str, seconds: float = 20) -> None:
    """Run the supervisor's checks until the child reaches a state."""
    deadline = time.monotonic() + seconds
    while child.state != until:
        assert time.monotonic() < deadline, f"{child.name} never became {until}: {child.state} {child.message}"
        sup._check(child)
        time.sleep(0.01)


def test_a_process_that_keeps_dying_at_start_is_given_up_with_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "RESTART_DELAY_SECONDS", 0.01)
    exits: list[int | None] = []
    sup = Supervisor(on_exit=lambda c: exits.append(c.last_exit_code))
    argv = [sys.executable, "-c", "raise SystemExit(3)"]
    child = sup.add(Child("flower", "flower", argv, hint="is port 5555 free?"))
    drive(sup, child, "given_up")
    assert child.restarts == supervisor.GIVE_UP_AFTER - 1 and exits == [3] * supervisor.GIVE_UP_AFTER
    assert child.message is not None and "gave up after 5 failed starts in a row (last: exit code 3)" in child.message
    assert "is port 5555 free?" in child.message
    assert child.snapshot()["state"] == "given_up" and child.snapshot()["pid"] is None


def test_a_killed_process_that_had_been_running_is_restarted_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "START_GRACE_SECONDS", 0.2)
    sup = Supervisor()
    child = sup.add(Child("worker1", "worker", [sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        for round_ in range(1, 4):  # ran past the grace each time: never counts towards giving up
            time.sleep(0.3)
            assert child.proc is not None
            first = child.proc.pid
            os.kill(first, signal.SIGKILL)
            drive(sup, child, "backoff")
            assert child.quick_failures == 1 and "killed by SIGKILL" in (child.message or "")
            drive(sup, child, "running")
            assert child.restarts == round_ and child.proc.pid != first
    finally:
        sup.stop_all(grace_seconds=5)
    assert child.state == "stopped"


def test_restart_delay_doubles_up_to_its_cap() -> None:
    delays = [restart_delay(n) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0] and max(delays) == supervisor.RESTART_DELAY_MAX_SECONDS


def test_workers_split_the_cores_into_disjoint_shares() -> None:
    assert core_shares(2, [0, 1]) == [{0}, {1}]
    assert core_shares(1, [0, 1, 2, 3]) == [{0, 1, 2, 3}]
    assert [len(s) for s in core_shares(3, list(range(8)))] == [3, 3, 2]
    assert set().union(*core_shares(3, list(range(8)))) == set(range(8))
    assert core_shares(4, [0, 1]) == [{0}, {1}, {0}, {1}], "more workers than cores: one core each, shared"
