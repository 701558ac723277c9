"""Calibration: a worker meeting a model with no profile on its host measures each level on a few fixed prompts.

The prompts run level by level, one prompt at every level before any level gets the next, so a calibration cut
short by its time bound (DYNAQUANT_CALIBRATION_SECONDS) or by a real job still measured every level it could.
Outputs go through the quality checker (gate off: one draft), so pass rates and grade errors are seeded too.
A Redis lock keeps two workers on one host from calibrating the same model at once; a marker, kept as long as
the profiles, says the host's calibration of the model is done. Each prompt is noted as open before it runs and
closed after (finished, stopped or failed): a level left open was where a worker died (killed for memory, say),
so later calibrations skip it and every more precise level instead of dying there again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import redis

from worker.contracts import JobResult, JobSpec, validated
from worker.errors import DynaquantError, JobCancelled
from worker.policy import LEVELS, rank
from worker.profiles import ProfileStore

if TYPE_CHECKING:
    from worker.model_loader import ModelLoader

log = logging.getLogger(__name__)

CALIBRATION_TEXTS: tuple[tuple[int, str, str], ...] = (
    (
        5,
        "Science",
        "Volcanoes form where molten rock from deep inside the Earth rises through cracks in the crust. When "
        "pressure builds up, the magma erupts as lava, ash and gas, and over many eruptions it piles up into a "
        "mountain.",
    ),
    (
        6,
        "History",
        "The printing press, developed by Johannes Gutenberg around 1440, allowed books to be produced far more "
        "quickly and cheaply than copying them by hand, which helped ideas spread across Europe.",
    ),
    (
        7,
        "Geography",
        "Rivers shape the land around them by carrying sediment downstream, eroding their banks on the outside of "
        "bends and depositing sand and mud where the current slows, eventually forming wide floodplains.",
    ),
)
"""(grade, subject, text): three short paragraphs, fixed so every host's calibration is comparable."""
LOCK_PREFIX = "dq:calibrating:"
DONE_PREFIX = "dq:calibrated:"
OPEN_PREFIX = "dq:calibration-open:"
LOCK_MARGIN_SECONDS = 60


@dataclass
class CalibrationReport:
    """What one calibration did: jobs per level, and why it stopped early (None: it ran every prompt)."""

    model: str
    levels: tuple[str, ...]
    jobs: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None
    seconds: float = 0.0


def calibration_spec(model: str, level: str, grade: int, subject: str, text: str, max_tokens: int) -> JobSpec:
    """The job one calibration prompt runs: forced to the level, one draft (the quality gate off)."""
    return validated(
        JobSpec,
        {
            "text": text,
            "grade_level": grade,
            "subject": subject,
            "model": model,
            "max_tokens": max_tokens,
            "force_quantization": level,
            "quality_check": False,
        },
    )


def run_calibration(
    loader: ModelLoader,
    store: ProfileStore,
    model: str,
    levels: Sequence[str],
    seconds: float,
    busy: Callable[[], bool],
    texts: Sequence[tuple[int, str, str]] = CALIBRATION_TEXTS,
    mark: Callable[[str, int], None] | None = None,
) -> CalibrationReport:
    """Run the fixed prompts at each level, within `seconds`, stopping (between prompts or mid-generation) when
    busy() turns true; each finished prompt goes into its level's profile as a calibration job. `mark(level, +1)`
    is called before a prompt runs and `mark(level, -1)` after it, however it ended."""
    started = time.monotonic()
    deadline = started + seconds
    report = CalibrationReport(model, tuple(levels))
    done = {level: p.calibration_jobs for level, p in store.profiles(model).items()}
    failed: set[str] = set()

    def should_stop() -> bool:
        return time.monotonic() >= deadline or busy()

    for index, (grade, subject, text) in enumerate(texts):
        for level in [lvl for lvl in levels if lvl not in failed and index >= done.get(lvl, 0)]:
            report.stopped = "job" if busy() else "time" if time.monotonic() >= deadline else None
            if report.stopped:
                report.seconds = time.monotonic() - started
                return report
            spec = calibration_spec(model, level, grade, subject, text, loader.settings.job_default_max_tokens)
            outcome = calibrate_once(loader, spec, should_stop, mark)
            if outcome == "failed":
                failed.add(level)
            elif outcome is not None:
                store.record_job(outcome, "calibration")
                report.jobs[level] = report.jobs.get(level, 0) + 1
    report.seconds = time.monotonic() - started
    return report


def calibrate_once(
    loader: ModelLoader, spec: JobSpec, should_stop: Callable[[], bool], mark: Callable[[str, int], None] | None
) -> JobResult | Literal["failed"] | None:
    """One calibration prompt: its result, "failed" (the level cannot run here), or None when it was stopped."""
    from worker.simplify import simplify_text

    level = str(spec.force_quantization)
    if mark is not None:
        mark(level, 1)
    try:
        return simplify_text(loader, spec, should_stop)
    except JobCancelled:
        return None  # the caller's next check says whether a job or the bound stopped it
    except DynaquantError as exc:
        log.warning("calibration of %s at %s failed, that level is skipped: %s", spec.model, level, exc)
        return "failed"
    finally:
        if mark is not None:
            mark(level, -1)


class Calibrator:
    """Decides whether this host still has to calibrate a model, and runs it under the host's lock."""

    def __init__(self, client: redis.Redis, store: ProfileStore, loader: ModelLoader, seconds: float) -> None:
        self.client = client
        self.store = store
        self.loader = loader
        self.seconds = seconds

    def _key(self, prefix: str, model: str) -> str:
        return f"{prefix}{self.store.host}:{self.store.device}:{model}"

    def due(self, model: str) -> bool:
        """Whether this host and device have not calibrated the model yet."""
        return not self.client.exists(self._key(DONE_PREFIX, model))

    def survivable(self, model: str, levels: Sequence[str]) -> list[str]:
        """The levels less precise than any a worker died calibrating on this host (all when none died)."""
        raw = self.client.hgetall(self._key(OPEN_PREFIX, model))
        opened = {(k.decode() if isinstance(k, bytes) else str(k)): int(n) for k, n in raw.items()}
        died = [rank(lvl) for lvl, n in opened.items() if n > 0 and lvl in LEVELS]
        if died:
            log.warning("a worker died calibrating %s at %s on this host: not calibrated there again", model, opened)
        return [lvl for lvl in levels if not died or rank(lvl) > max(died)]

    def run(self, model: str, levels: Sequence[str], busy: Callable[[], bool]) -> CalibrationReport | None:
        """Calibrate unless another worker on the host does it now (None then); mark it done unless a job cut it."""
        lock, token = self._key(LOCK_PREFIX, model), uuid.uuid4().hex
        if not self.client.set(lock, token, nx=True, ex=int(self.seconds) + LOCK_MARGIN_SECONDS):
            return None
        opened = self._key(OPEN_PREFIX, model)

        def mark(level: str, step: int) -> None:
            self.client.hincrby(opened, level, step)
            self.client.expire(opened, self.store.ttl_seconds)

        try:
            levels = self.survivable(model, levels)
            report = run_calibration(self.loader, self.store, model, levels, self.seconds, busy, mark=mark)
            if report.stopped != "job":
                self.client.set(self._key(DONE_PREFIX, model), time.time(), ex=self.store.ttl_seconds)
            log.info(
                "calibrated %s on %s in %.1f s: %s%s",
                model,
                self.store.host,
                report.seconds,
                report.jobs,
                f" (stopped: {report.stopped})" if report.stopped else "",
            )
            return report
        finally:
            if self.client.get(lock) == token.encode():
                self.client.delete(lock)
