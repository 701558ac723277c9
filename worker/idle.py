"""A worker's idle time: one background thread that builds variants, calibrates new models and runs shadow jobs.

Idle means no active job and nothing waiting in the queue, for IDLE_GRACE_SECONDS. Whatever runs here stops
as soon as a job arrives: busy() is asked between prompts and, through the backend's stop check, after every
generated token, so a real job waits at most one token for the cores; a variant build runs in a child process
at the lowest CPU priority and is killed (worker.builder). After a cache clear nothing here runs until a job
has run or DYNAQUANT_QUIET_AFTER_CLEAR has passed, so what the user freed stays free.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from worker import recovery
from worker.backends.llamacpp import LlamaCppBackend
from worker.builder import VariantBuilds
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
        self.builds = VariantBuilds(settings.thread_count)
        self._active = active
        self._queued = queued
        self._pending: list[str] = []
        self._seen: set[str] = set()
        self._quiet_since = time.monotonic()
        self._held_until = 0.0
        self._step_lock = threading.Lock()
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
        """A job just ended: idle work may start after the grace time (a hold after a cache clear ends too)."""
        self._quiet_since = time.monotonic()
        self._held_until = 0.0
        self._wake.set()

    def hold(self) -> None:
        """After a cache clear: no idle work until a job has run or the quiet period passed; returns once the
        piece of idle work running now has stopped (at its next token, or its build killed)."""
        self._held_until = time.monotonic() + self.settings.quiet_after_clear_seconds
        with self._step_lock:
            pass

    def held(self) -> bool:
        """Whether a cache clear's quiet period holds idle work back now."""
        return time.monotonic() < self._held_until

    def want_calibration(self, model: str) -> None:
        """Build the model's missing variants and calibrate it at the next idle moments, if calibration is on and
        this host has not done it yet."""
        with self._lock:
            if not self.settings.calibrate or model in self._seen:
                return
            self._seen.add(model)
            self._pending.append(model)
        try:
            for level in self.useful_levels(model):
                self.want_variant(model, level)
        except DynaquantError as exc:
            log.warning("cannot list the levels of %s to build: %s", model, exc)
        self._wake.set()

    def useful_levels(self, model: str) -> list[str]:
        """The levels of a model worth building and calibrating (no re-encoding of its file the decision would never
        pick)."""
        return self.loader.worth_having(self.loader.registry.get(model))

    def want_variant(self, model: str, level: str) -> None:
        """Build a GGUF level of a model at the next idle moment (a job ran at another level for want of it)."""
        try:
            spec = self.loader.registry.get(model)
            backend = self.loader.backend(spec.backend_for(level))
            if isinstance(backend, LlamaCppBackend):
                self.builds.want(backend.build_for(spec, level))
                self._wake.set()
        except DynaquantError as exc:
            log.warning("cannot build %s of %s: %s", level, model, exc)

    def finished(self, spec: JobSpec, result: JobResult) -> None:
        """A job succeeded: its model may need calibrating, and it may be kept for a shadow run."""
        self.want_calibration(spec.model)
        self.sampler.offer(spec, result)

    def busy(self) -> bool:
        """True once the worker has a job, a job waits in the queue, a cache clear holds idle work, or the worker
        is stopping."""
        if self._stop.is_set() or self._active() or self.held():
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
                with self._step_lock:
                    self.step()
            except Exception:
                log.exception("idle work failed; the worker goes on")

    def step(self) -> str | None:
        """Do one piece of idle work: the next variant build, else the next calibration due, else one shadow run.
        Says what it did."""
        if self.builds.pending():
            return self.builds.run_next(self.busy)
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
            spec = self.loader.registry.get(model)
            levels = [
                lvl
                for lvl in self.useful_levels(model)
                if (ceiling is None or rank(lvl) >= rank(ceiling)) and self.loader.ready(spec, lvl)
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
            spec = self.loader.registry.get(job.spec.model)
            levels = [level for level in self.useful_levels(spec.name) if self.loader.ready(spec, level)]
            result = run_shadow(self.loader, self.store, job, self.busy, self.ceiling(spec.name), levels)
        except JobCancelled:
            return "shadow run stopped"
        except (redis.RedisError, DynaquantError) as exc:
            log.warning("shadow run of a %s job failed: %s", job.spec.model, exc)
            return "shadow run failed"
        if result is None:
            return "no neighbouring level"
        self.shadow_runs += 1
        return f"shadow run at {result.level}"
