"""Which model names a job may ask for: the default, the models file and what live workers offer."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from worker.jobspec import default_model

log = logging.getLogger(__name__)


def models_in_file(path: str | None) -> set[str]:
    """Names (the top-level keys) in a JSON models file; empty when unset or unreadable."""
    if not path:
        return set()
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        log.warning("models file %s (DYNAQUANT_MODELS_FILE) is unreadable: %s", path, exc)
        return set()
    if not isinstance(data, dict):
        log.warning("models file %s (DYNAQUANT_MODELS_FILE) is not a JSON object of name -> settings", path)
        return set()
    return {str(name) for name in data}


def models_of_workers(workers: Iterable[dict[str, Any]]) -> set[str]:
    """Every model name some live worker says it can serve."""
    names: set[str] = set()
    for state in workers:
        available = state.get("models_available")
        if isinstance(available, list):
            names.update(str(name) for name in available if isinstance(name, str))
    return names


def known_models(workers: Iterable[dict[str, Any]], models_file: str | None) -> list[str]:
    """The models a job may name, sorted."""
    return sorted({default_model()} | models_in_file(models_file) | models_of_workers(workers))
