"""Keep the service's processes running: restart what exits, back off, give up on what cannot start.

Why our own and not a library: supervisord runs as a separate daemon configured by an ini file and is
watched over XML-RPC; circus brings ZeroMQ and its own event loop; honcho, like the old `dynaquant up`,
stops everything when one process exits. What `dynaquant up` needs beyond restart-with-backoff is in
its own loop: requeueing a dead worker's job the moment the worker exits, publishing the state to Redis
for the API, and a warm, ordered shutdown. That is a small loop over `subprocess`, kept here.

Policy: a process that exits is restarted after a delay that doubles with each quick failure (one that
ran less than START_GRACE_SECONDS), from RESTART_DELAY_SECONDS up to RESTART_DELAY_MAX_SECONDS. After
GIVE_UP_AFTER quick failures in a row it is given up, with a message that says what to check; the
others keep running. Stopping (Ctrl-C, SIGTERM) sends SIGTERM to each process group, the service's
processes first (workers finish their running job: a warm shutdown) and the processes they depend on
(Redis) last, then SIGKILL to what outlives the grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.contracts import ProcessRole, ProcessStatus, SupervisedProcess

START_GRACE_SECONDS = 30.0
RESTART_DELAY_SECONDS = 0.5
RESTART_DELAY_MAX_SECONDS = 30.0
GIVE_UP_AFTER = 5
POLL_SECONDS = 0.2


@dataclass
class Child:
    """One supervised process: how to start it and what has happened to it."""

    name: str
    role: ProcessRole
    argv: list[str]
    env: dict[str, str] | None = None
    hint: str = "see its log above"
    threads: int | None = None
    """A worker's llama.cpp threads (its share of the cores), as the status shows them."""
    essential: bool = False
    """The service cannot go on without it (the web app, the Redis we started): giving up stops everything."""
    last_stage: bool = False
    """Stopped after the others (the Redis they write to)."""
    proc: subprocess.Popen[bytes] | None = None
    state: ProcessStatus = "new"
    started_at: float = 0.0
    restarts: int = 0
    quick_failures: int = 0
    next_start: float = 0.0
    last_exit_code: int | None = None
    message: str | None = None

    def snapshot(self) -> SupervisedProcess:
        """This process's state as the API shows it."""
        return SupervisedProcess(
            name=self.name,
            role=self.role,
            state=self.state,
            pid=self.proc.pid if self.proc is not None and self.state == "running" else None,
            restarts=self.restarts,
            started_at=self.started_at or None,
            last_exit_code=self.last_exit_code,
            threads=self.threads,
            message=self.message,
        )


def restart_delay(quick_failures: int) -> float:
    """Seconds to wait before the next start: doubling with each quick failure in a row."""
    return min(RESTART_DELAY_SECONDS * 2 ** max(quick_failures - 1, 0), RESTART_DELAY_MAX_SECONDS)


def exit_text(code: int) -> str:
    """An exit status in words (a negative code is the signal that ended it)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Supervisor:
    """Processes started together, restarted one by one, stopped together in order."""

    children: list[Child] = field(default_factory=list)
    on_exit: Callable[[Child], None] | None = None
    """Called once a process has exited, before it is restarted (a dead worker's jobs are requeued here)."""
    on_tick: Callable[[], None] | None = None
    tick_seconds: float = 2.0
    stopping: int = 0

    def add(self, child: Child) -> Child:
        """Start a process and keep it under supervision."""
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        print(f"starting {child.name}: {' '.join(child.argv)}", flush=True)
        # Unbuffered: a process that dies abruptly still leaves its last lines (its shutdown, its error) in the log.
        env = {**(child.env if child.env is not None else os.environ), "PYTHONUNBUFFERED": "1"}
        child.proc = subprocess.Popen(child.argv, env=env, start_new_session=True)
        child.state, child.started_at, child.message = "running", time.time(), None

    def wait(self) -> int:
        """Supervise until Ctrl-C or SIGTERM (0), or until an essential process is given up (1)."""

        def on_signal(signum: int, _frame: object) -> None:
            self.stopping = signum

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        next_tick = 0.0
        while not self.stopping:
            for child in self.children:
                if self._check(child) and child.essential:
                    print(f"{child.name} cannot run: stopping the service", file=sys.stderr, flush=True)
                    return 1
            if self.on_tick is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.tick_seconds
                self.on_tick()
            time.sleep(POLL_SECONDS)
        return 0

    def _check(self, child: Child) -> bool:
        """Reap, restart or give up one process; True when it was given up just now."""
        if child.state == "backoff" and time.time() >= child.next_start:
            child.restarts += 1
            self._spawn(child)
            return False
        if child.state != "running" or child.proc is None or child.proc.poll() is None:
            return False
        code = int(child.proc.returncode)
        ran = time.time() - child.started_at
        _kill_group(child.proc.pid)  # what the process left behind (gunicorn's workers) must not hold its port
        child.last_exit_code = code
        child.quick_failures = child.quick_failures + 1 if ran < START_GRACE_SECONDS else 1
        if self.on_exit is not None:
            self.on_exit(child)
        if child.quick_failures >= GIVE_UP_AFTER:
            child.state = "given_up"
            child.message = (
                f"{child.name} gave up after {child.quick_failures} failed starts in a row (last: {exit_text(code)}): "
                f"{child.hint}"
            )
            print(child.message, file=sys.stderr, flush=True)
            return True
        delay = restart_delay(child.quick_failures)
        child.state, child.next_start = "backoff", time.time() + delay
        child.message = f"{child.name} stopped ({exit_text(code)} after {ran:.0f} s); restarting in {delay:.1f} s"
        print(child.message, file=sys.stderr, flush=True)
        return False

    def stop_all(self, grace_seconds: float = 60.0) -> None:
        """SIGTERM every process group (Redis last), then SIGKILL those still running after the grace period."""
        first = [c for c in reversed(self.children) if not c.last_stage]
        last = [c for c in reversed(self.children) if c.last_stage]
        for stage in (first, last):
            for child in stage:
                if child.proc is not None and child.proc.poll() is None:
                    _signal_group(child.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_seconds
            for child in stage:
                if child.proc is None:
                    continue
                try:
                    child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    print(f"{child.name} did not stop in {grace_seconds:.0f} s; killing it", file=sys.stderr)
                    _kill_group(child.proc.pid)
                    child.proc.wait()
                code = child.proc.returncode
                if code not in (0, -signal.SIGTERM):
                    print(f"{child.name} stopped with {exit_text(code)}", file=sys.stderr, flush=True)
                child.state = "stopped"

    def snapshot(self) -> list[SupervisedProcess]:
        """Every process's state."""
        return [child.snapshot() for child in self.children]


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _kill_group(pgid: int) -> None:
    _signal_group(pgid, signal.SIGKILL)
