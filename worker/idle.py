"""A worker's idle time: one background thread that calibrates new models and runs shadow jobs, only when idle.

Idle means no active job and nothing waiting in the queue, for IDLE_GRACE_SECONDS. Whatever runs here stops
as soon as a job arrives: busy() is asked between prompts and, through the backend's stop check, after every
generated token, so a real job waits at most one token for the cores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from worker import recovery
from worker.calibration import CalibrationReport, Calibrator
from worker.contracts import JobResult, JobSpec
from worker.errors import DynaquantError, JobCancelled
from worker.policy import rank
from worker.profiles import ProfileStore
from worker.shadow import Finished, ShadowSampler, run_shadow

if TYPE_CHECKING:
    from worker.model_loader import ModelLoader
    from worker.settings import Settings

log = logging.getLogger(__name__)

IDLE_GRACE_SECONDS = 1.0
"""Quiet time after a job before idle work starts (the next job of a burst is usually already on its way)."""
POLL_SECONDS = 1.0
QUEUE_CHECK_SECONDS = 0.25


class IdleWork:
    """Calibrations waiting for an idle moment, and the finished jobs sampled for shadow runs."""

    def __init__(
        self,
        loader: ModelLoader,
        store: ProfileStore,
        client: redis.Redis,
        settings: Settings,
        active: Callable[[], bool],
        queued: Callable[[], int],
    ) -> None:
        self.loader = loader
        self.store = store
        self.client = client
        self.settings = settings
        self.calibrator = Calibrator(client, store, loader, settings.calibration_seconds)
        self.sampler = ShadowSampler(settings.shadow_share)
        self._active = active
        self._queued = queued
        self._pending: list[str] = []
        self._seen: set[str] = set()
        self._quiet_since = time.monotonic()
        self._queue_checked = 0.0
        self._queue_busy = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_calibration: CalibrationReport | None = None
        self.shadow_runs = 0

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dq-idle-work", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread; whatever it runs stops at its next token."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def on_this_thread(self) -> bool:
        """Whether the caller is the idle-work thread (its loads and runs are no job's)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def note_job_end(self) -> None:
        """A job just ended: idle work may start after the grace time."""
        self._quiet_since = time.monotonic()
        self._wake.set()

    def want_calibration(self, model: str) -> None:
        """Calibrate `model` at the next idle moment, if calibration is on and this host has not done it yet."""
        with self._lock:
            if not self.settings.calibrate or model in self._seen:
                return
            self._seen.add(model)
            self._pending.append(model)
        self._wake.set()

    def finished(self, spec: JobSpec, result: JobResult) -> None:
        """A job succeeded: its model may need calibrating, and it may be kept for a shadow run."""
        self.want_calibration(spec.model)
        self.sampler.offer(spec, result)

    def busy(self) -> bool:
        """True once the worker has a job, a job waits in the queue, or the worker is stopping."""
        if self._stop.is_set() or self._active():
            return True
        now = time.monotonic()
        if now - self._queue_checked >= QUEUE_CHECK_SECONDS:
            self._queue_checked = now
            try:
                self._queue_busy = self._queued() > 0
            except redis.RedisError:
                self._queue_busy = True  # unsure: leave the cores to jobs
        return self._queue_busy

    def idle(self) -> bool:
        """Whether idle work may start now: not busy, and quiet for the grace time."""
        self._queue_checked = 0.0  # always a fresh queue reading before starting something
        return time.monotonic() - self._quiet_since >= IDLE_GRACE_SECONDS and not self.busy()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            if self._stop.is_set() or not self.idle():
                continue
            try:
                self.step()
            except Exception:
                log.exception("idle work failed; the worker goes on")

    def step(self) -> str | None:
        """Do one piece of idle work: the next calibration due, else one shadow run. Says what it did."""
        with self._lock:
            model = self._pending.pop(0) if self._pending else None
        if model is not None:
            return self.calibrate(model)
        job = self.sampler.take()
        if job is not None:
            return self.shadow(job)
        return None

    def ceiling(self, model: str) -> str | None:
        """The most precise level this host may run the model at now (after a worker died higher), if any."""
        try:
            found = recovery.host_ceiling(self.client, self.store.host, model)
        except redis.RedisError:
            return None
        return found.level if found else None

    def calibrate(self, model: str) -> str:
        """Calibrate a model on this host if still due (put back for later when a job cut it short)."""
        try:
            if not self.calibrator.due(model):
                return "calibration not due"
            ceiling = self.ceiling(model)
            levels = [
                lvl
                for lvl in self.loader.supported_levels(self.loader.registry.get(model))
                if ceiling is None or rank(lvl) >= rank(ceiling)
            ]
            report = self.calibrator.run(model, levels, self.busy)
        except (redis.RedisError, DynaquantError) as exc:
            log.warning("could not calibrate %s: %s", model, exc)
            return "calibration failed"
        if report is None:
            return "calibration held by another worker"
        self.last_calibration = report
        if report.stopped == "job":
            with self._lock:
                self._pending.insert(0, model)  # go on at the next idle moment
        return f"calibrated {model}"

    def shadow(self, job: Finished) -> str:
        """Run one shadow job; a job arriving stops it and nothing is recorded."""
        try:
            result = run_shadow(self.loader, self.store, job, self.busy, self.ceiling(job.spec.model))
        except JobCancelled:
            return "shadow run stopped"
        except (redis.RedisError, DynaquantError) as exc:
            log.warning("shadow run of a %s job failed: %s", job.spec.model, exc)
            return "shadow run failed"
        if result is None:
            return "no neighbouring level"
        self.shadow_runs += 1
        return f"shadow run at {result.level}"
