"""Which model names a job may ask for (the default, the models file, what live workers offer) and the job limits."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import redis

from webapp.extensions import current_settings, get_redis, per_app, settings_of
from worker.contracts import JobLimits, WorkerState
from worker.errors import InputError
from worker.status import live_workers

log = logging.getLogger(__name__)
T = TypeVar("T")


def models_in_file(path: Path | str | None) -> set[str]:
    """Names (the top-level keys) in a JSON models file; empty when unset or unreadable."""
    if not path:
        return set()
    try:
        with open(Path(path).expanduser(), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        log.warning("models file %s (DYNAQUANT_MODELS_FILE) is unreadable: %s", path, exc)
        return set()
    if not isinstance(data, dict):
        log.warning("models file %s (DYNAQUANT_MODELS_FILE) is not a JSON object of name -> settings", path)
        return set()
    return {str(name) for name in data}


def known_models(workers: Iterable[WorkerState], default: str, models_file: Path | str | None) -> list[str]:
    """The models a job may name, sorted."""
    offered = {name for state in workers for name in state.models_available}
    return sorted({default} | models_in_file(models_file) | offered)


def job_limits(lenient: bool = False) -> JobLimits:
    """This app's job limits, with the models a job may name now; `lenient`: without live workers if Redis is down."""
    settings = current_settings()
    try:
        workers = live_workers(get_redis())
    except redis.RedisError:
        if not lenient:
            raise
        workers = []
    return settings.job_limits(tuple(known_models(workers, settings.default_model, settings.models_file)))


class ModelNames:
    """The job limits with the model names read at most once a heartbeat: every POST asks, and reading them parses
    every worker's state and the models file. A name not among them is looked up again before it is refused."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._read: tuple[float, JobLimits] | None = None

    def limits(self, fresh: bool = False) -> JobLimits:
        """The limits as last read, or read now (when asked, or a heartbeat old)."""
        now = time.monotonic()
        with self._lock:
            read = self._read
        if read is not None and not fresh and now - read[0] < self.seconds:
            return read[1]
        limits = job_limits()
        with self._lock:
            self._read = (now, limits)
        return limits


def parsed(parse: Callable[[Any, JobLimits], T], body: Any) -> T:
    """A body parsed under this app's limits; an unknown model name is checked against a fresh read first."""
    names: ModelNames = per_app("model_names", lambda app: ModelNames(settings_of(app).heartbeat_seconds))
    try:
        return parse(body, names.limits())
    except InputError as exc:
        if not exc.field.endswith("model"):
            raise
    return parse(body, names.limits(fresh=True))
