"""Shadow runs: a sample of finished jobs re-run at a neighbouring level while the worker is idle.

A shadow run measures a level the policy did not choose (or has not chosen for a while), so its profile stays
current. It runs the job's text again, forced to the neighbouring level with the quality gate off (one draft,
still checked), records speed and quality as a shadow job, and never touches the job's stored result.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker.contracts import JobResult, JobSpec
from worker.policy import LEVELS, rank
from worker.profiles import ProfileStore

if TYPE_CHECKING:
    from worker.model_loader import ModelLoader

KEEP = 32
"""Finished jobs held for shadow runs; older ones drop out first."""


@dataclass(frozen=True)
class Finished:
    """A finished job kept to be re-run: what it asked and the level it ran at."""

    spec: JobSpec
    level: str


def neighbour(level: str, supported: Sequence[str], jobs: Mapping[str, int], ceiling: str | None = None) -> str | None:
    """The supported level next to `level` (one more or one less precise) with fewer measured jobs.

    Levels above the host's ceiling are never chosen; a tie goes to the less precise level (the step down the
    policy weighs). None when there is no neighbour.
    """
    ordered = [lvl for lvl in LEVELS if lvl in supported and (ceiling is None or rank(lvl) >= rank(ceiling))]
    if level not in ordered:
        return None
    at = ordered.index(level)
    candidates = [ordered[i] for i in (at + 1, at - 1) if 0 <= i < len(ordered)]
    return min(candidates, key=lambda lvl: jobs.get(lvl, 0)) if candidates else None


class ShadowSampler:
    """Keeps each finished job with probability `share`, at most KEEP of them, newest first out."""

    def __init__(self, share: float, keep: int = KEEP, rng: random.Random | None = None) -> None:
        self.share = share
        self._kept: deque[Finished] = deque(maxlen=keep)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def offer(self, spec: JobSpec, result: JobResult) -> bool:
        """Keep a succeeded job for a shadow run, by chance; True when kept. A forced job is never kept."""
        if spec.force_quantization is not None or self.share <= 0 or self._rng.random() >= self.share:
            return False
        with self._lock:
            self._kept.append(Finished(spec, result.level))
        return True

    def take(self) -> Finished | None:
        """The newest kept job, removed (None when none is kept)."""
        with self._lock:
            return self._kept.pop() if self._kept else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)


def shadow_spec(spec: JobSpec, level: str) -> JobSpec:
    """The job as its shadow runs it: the same text and grade, forced to `level`, one draft."""
    return spec.model_copy(
        update={
            "force_quantization": level,
            "min_quantization": None,
            "task_priority": "balanced",
            "quality_check": False,
        }
    )


def run_shadow(
    loader: ModelLoader,
    store: ProfileStore,
    job: Finished,
    should_stop: Callable[[], bool],
    ceiling: str | None = None,
    levels: Sequence[str] | None = None,
) -> JobResult | None:
    """Re-run a finished job at a neighbouring level among `levels` (default: every supported one) and record it as
    a shadow job (None: no neighbour).

    Raises JobCancelled when should_stop() turns true (a real job came): nothing is recorded then.
    """
    from worker.simplify import simplify_text

    supported = levels if levels is not None else loader.supported_levels(loader.registry.get(job.spec.model))
    counts = {level: p.jobs for level, p in store.profiles(job.spec.model).items()}
    level = neighbour(job.level, supported, counts, ceiling)
    if level is None:
        return None
    result = simplify_text(loader, shadow_spec(job.spec, level), should_stop)
    store.record_job(result, "shadow")
    return result
