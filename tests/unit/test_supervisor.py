"""The supervisor's restart policy on real (tiny) processes, and how workers split the cores."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from dynaquant import supervisor
from dynaquant.supervisor import Child, Supervisor, restart_delay
from dynaquant.up import worker_children, worker_count
from worker.contracts import ServiceSummary, SupervisorState
from worker.settings import Settings, available_cores, split_evenly


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
    assert child.snapshot().state == "given_up" and child.snapshot().pid is None
    state = SupervisorState(host="h", pid=1, started_at=0.0, url="http://127.0.0.1:1", processes=[child.snapshot()])
    service = ServiceSummary.of([state])
    assert service.degraded and service.messages == [child.message] and service.processes[0].host == "h"
    assert not ServiceSummary.of([]).degraded and not ServiceSummary.of([]).supervised


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


def test_workers_split_the_cores_between_them() -> None:
    assert split_evenly(2, 2) == [1, 1] and split_evenly(4, 1) == [4]
    assert split_evenly(8, 3) == [3, 3, 2] and sum(split_evenly(8, 3)) == 8
    assert split_evenly(2, 4) == [1, 1, 1, 1], "more workers than cores: one thread each"
    assert Settings().worker_threads(2) == split_evenly(available_cores(), 2)
    assert Settings(threads=3).worker_threads(2) == [3, 3], "DYNAQUANT_THREADS, when set, holds for every worker"
    children = worker_children(2, "INFO", Settings())
    assert [c.threads for c in children] == [int(c.env["DYNAQUANT_THREADS"]) for c in children if c.env]
    assert [c.snapshot().threads for c in children] == split_evenly(available_cores(), 2)


def test_more_workers_than_cores_are_capped_to_one_per_core_unless_threads_are_set() -> None:
    cores = available_cores()
    assert worker_count(cores, Settings()) == (cores, None)
    count, warning = worker_count(cores + 2, Settings())
    assert count == cores and warning is not None and "DYNAQUANT_THREADS" in warning
    assert worker_count(cores + 2, Settings(threads=1)) == (cores + 2, None), "DYNAQUANT_THREADS set: as asked"
