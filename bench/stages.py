"""Where a job's time goes inside a worker: the real run_job path, each stage timed by a wrapper around it.

Used by bench.loop: a WorkerRuntime is built in the benchmark's own process (same settings, Redis, model and
level as the service's worker), jobs are created in Redis as the API creates them and run through
worker.tasks.run_job one after another, with timers around each stage. What Celery itself adds (fetching the
message, acknowledging it, task events) is not in here; bench.loop measures it from the job records of the
service run (the gap between one job's finish and the next one's start).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

STAGES: tuple[tuple[str, str], ...] = (
    ("start", "mark running + lease (Lua)"),
    ("ceiling", "ceiling read (Redis)"),
    ("decide", "decision: memory + queue probes, estimates"),
    ("stage_note", "stage note (Redis HSET)"),
    ("generation", "llama.cpp generation (cancel checks left out)"),
    ("cancel_checks", "cancel / time-limit checks (per token, Redis every 0.25 s)"),
    ("quality", "quality checker"),
    ("store", "store result + metrics (Redis)"),
    ("release", "release lease (Redis)"),
    ("other", "the rest (parsing, pydantic, glue)"),
)
"""The stages reported, in job order; "other" is the job's wall time less every timed stage."""


class StageClock:
    """Accumulates seconds per stage for the job running now; wrappers put each call's time on its stage."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.jobs: list[dict[str, float]] = []
        self.beats: list[float] = []
        self._local = threading.local()

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """fn, its time (on the job thread) added to `stage`; a nested timed call's time stays on its own stage."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                return fn(*args, **kwargs)
            outer = getattr(self._local, "nested", 0.0)
            self._local.nested = 0.0
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                inner = self._local.nested
                self.current[stage] += spent - inner
                self.calls[stage] += 1
                self._local.nested = outer + spent

        return timed

    @contextmanager
    def job(self) -> Iterator[None]:
        """Time one job; its stages are kept when it ends."""
        self.current = defaultdict(float)
        self._local.nested = 0.0
        started = time.perf_counter()
        try:
            yield
        finally:
            total = time.perf_counter() - started
            row = dict(self.current)
            row["other"] = total - sum(row.values())
            row["total"] = total
            self.jobs.append(row)

    def beat_timer(self, fn: Callable[[], None]) -> Callable[[], None]:
        """A heartbeat's beat, timed (it runs on its own thread, beside the job)."""

        @functools.wraps(fn)
        def timed() -> None:
            started = time.perf_counter()
            try:
                fn()
            finally:
                self.beats.append(time.perf_counter() - started)

        return timed

    def per_job_ms(self) -> dict[str, float]:
        """Mean milliseconds per job for every stage and the total."""
        n = max(len(self.jobs), 1)
        keys = [s for s, _ in STAGES] + ["total"]
        return {k: 1000 * sum(j.get(k, 0.0) for j in self.jobs) / n for k in keys}


def instrument(runtime: Any, clock: StageClock) -> Callable[[], None]:
    """Put the clock's timers around each stage of the worker path; returns a function that takes them off."""
    from worker import gate, quality, tasks
    from worker.backends.llamacpp import LlamaCppModel

    undo: list[Callable[[], None]] = []

    def patch(owner: Any, name: str, stage: str) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, clock.wrap(stage, original))
        undo.append(lambda: setattr(owner, name, original))

    store, loader = runtime.store, runtime.loader
    patch(store, "start", "start")
    patch(runtime, "ceiling_for", "ceiling")
    patch(loader, "_decide", "decide")
    patch(store, "set_stage", "stage_note")
    patch(LlamaCppModel, "generate", "generation")
    patch(tasks.JobWatch, "__call__", "cancel_checks")
    patch(quality, "check", "quality")
    patch(store, "succeed", "store")
    patch(store, "count_reoptimization", "store")
    patch(store, "release_lease", "release")
    # gate.run binds the checker as a default argument: hand it the timed one explicitly.
    original_run = gate.run

    @functools.wraps(original_run)
    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("checker", quality.check)
        return original_run(*args, **kwargs)

    gate.run = run  # type: ignore[assignment]
    undo.append(lambda: setattr(gate, "run", original_run))
    beat = runtime.heartbeat.beat
    runtime.heartbeat.beat = clock.beat_timer(beat)
    undo.append(lambda: setattr(runtime.heartbeat, "beat", beat))

    def remove() -> None:
        for step in reversed(undo):
            step()

    return remove


def profile_jobs(
    settings: Any, bodies: Sequence[dict[str, Any]], warmup: dict[str, Any], heartbeat: bool = True
) -> dict[str, Any]:
    """Run the jobs through worker.tasks.run_job in this process, one after another, each stage timed.

    `settings` is the worker's Settings (its Redis, queue, threads, variants dir); the warm-up job loads the
    model and is not counted. The heartbeat thread runs as in a worker unless heartbeat is False.
    """
    from worker.contracts import parse_job
    from worker.jobs import JobStore, new_id
    from worker.runtime import WorkerRuntime
    from worker.tasks import run_job

    runtime = WorkerRuntime(f"profile@bench-{new_id()[:8]}", settings=settings)
    store = JobStore(runtime.client, settings.result_ttl)
    limits = settings.job_limits()

    def submit(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        spec = parse_job(body, limits)
        job_id = new_id()
        store.create(job_id, spec)
        return job_id, spec.model_dump(mode="json")

    clock = StageClock()
    if heartbeat:
        runtime.start()
    else:
        from worker.quality import warm

        warm()
    try:
        run_job(runtime, *submit(warmup))
        remove = instrument(runtime, clock)
        try:
            outcomes = []
            for body in bodies:
                job_id, payload = submit(body)
                with clock.job():
                    outcomes.append(run_job(runtime, job_id, payload))
        finally:
            remove()
    finally:
        runtime.stop()
        runtime.loader.clear_cache()
    failed = [o for o in outcomes if o.get("status") != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} profiled jobs did not succeed: {failed[0]}")
    return {
        "jobs": len(clock.jobs),
        "per_job_ms": clock.per_job_ms(),
        "calls_per_job": {k: v / max(len(clock.jobs), 1) for k, v in clock.calls.items()},
        "heartbeat": {
            "beats": len(clock.beats),
            "mean_ms": 1000 * sum(clock.beats) / len(clock.beats) if clock.beats else None,
            "ms_per_job": 1000 * sum(clock.beats) / max(len(clock.jobs), 1),
        },
        "tokens_out": [o["result"]["tokens_out"] for o in outcomes],
    }
