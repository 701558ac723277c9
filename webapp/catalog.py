"""Which model names a job may ask for (the default, the models file, what live workers offer) and the job limits."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import redis

from webapp.extensions import current_settings, get_redis
from worker.contracts import JobLimits, WorkerState
from worker.status import live_workers

log = logging.getLogger(__name__)


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
