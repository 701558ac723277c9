"""Variant builds off the jobs' path: a child process at the lowest CPU priority, killed the moment a job arrives.

llama.cpp's quantizer takes every core for up to a minute (F16 of a 1.5B model) and cannot be interrupted
in-process. So idle work runs it as `python -m worker.builder SOURCE TYPE DIR THREADS` under SCHED_IDLE
(nice 19 where that is missing) and kills it when busy() turns true: the build's temporary file is removed,
the build goes back to the front of the line, and the job has the cores within one poll.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worker.variants import ensure_variant, existing_variant, file_lock, remove_stale_temps, variant_path

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
"""How often a running build checks for a job: the longest a job shares the cores with it."""


@dataclass(frozen=True)
class Build:
    """One variant to build: the model it is for, its source GGUF, the type to write and the folder it goes in."""

    model: str
    source: Path
    gguf_type: str
    directory: Path

    def done(self) -> bool:
        """Whether the variant is on disk already."""
        return existing_variant(self.source, self.gguf_type, self.directory) is not None

    @property
    def target(self) -> Path:
        """Where the built variant will be."""
        return variant_path(self.source, self.gguf_type, self.directory)


class VariantBuilds:
    """The variants idle work should build, and the one child process building now."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.running: subprocess.Popen[bytes] | None = None
        """The build's child process while one runs."""
        self._pending: list[Build] = []
        self._lock = threading.Lock()

    def want(self, build: Build) -> None:
        """Queue a build unless it is queued already or its file exists (the source counts for its own type)."""
        if build.done():
            return
        with self._lock:
            if build not in self._pending:
                self._pending.append(build)

    def pending(self, model: str | None = None) -> list[Build]:
        """Builds still to do (of one model, when named)."""
        with self._lock:
            return [b for b in self._pending if model is None or b.model == model]

    def run_next(self, busy: Callable[[], bool]) -> str | None:
        """Run the next build to its end, or until busy() (then it is killed and queued again). Says what happened."""
        with self._lock:
            build = self._pending.pop(0) if self._pending else None
        if build is None:
            return None
        target = build.target
        if build.done():
            return f"{build.gguf_type} of {build.model} already built"
        started = time.monotonic()
        argv = [sys.executable, "-m", "worker.builder", str(build.source), build.gguf_type, str(build.directory)]
        child = self.running = subprocess.Popen(
            [*argv, str(self.threads)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        lowest_priority(child.pid)  # before its start-up is over, so the quantizer's threads inherit it
        try:
            while child.poll() is None:
                if busy():
                    stop(child, target)
                    with self._lock:
                        self._pending.insert(0, build)
                    return f"build of {build.gguf_type} of {build.model} stopped for a job"
                time.sleep(POLL_SECONDS)
        finally:
            self.running = None
        if child.returncode != 0:
            error = (child.stderr.read() if child.stderr else b"").decode(errors="replace").strip().splitlines()
            log.warning("building %s of %s failed: %s", build.gguf_type, build.model, error[-1] if error else "?")
            return f"build of {build.gguf_type} of {build.model} failed"
        log.info("built %s of %s in %.1f s while idle", build.gguf_type, build.model, time.monotonic() - started)
        return f"built {build.gguf_type} of {build.model}"


def stop(child: subprocess.Popen[bytes], target: Path) -> None:
    """Kill a build at once and remove what it left (its lock dies with it)."""
    child.send_signal(signal.SIGKILL)
    child.wait()
    with file_lock(target.with_name(target.name + ".lock")):
        remove_stale_temps(target)


def lowest_priority(pid: int = 0) -> None:
    """Give a process (0: this one) the CPU only when nothing else wants it: SCHED_IDLE, else nice 19."""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, 19)


def main(argv: list[str]) -> int:
    """Build one variant at the lowest CPU priority: SOURCE TYPE DIR THREADS."""
    source, gguf_type, directory, threads = argv
    lowest_priority()
    ensure_variant(Path(source), gguf_type, Path(directory), int(threads))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
