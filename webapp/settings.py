"""Web app settings: defaults read from the environment, each overridable through create_app(test_config)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import celeryconfig

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MIB = 1024 * 1024


def _number(env: Mapping[str, str], name: str, default: str, parse: Callable[[str], Any], low: float) -> Any:
    raw = env.get(name, "").strip() or default
    try:
        value = parse(raw)
    except ValueError:
        kind = "an integer" if parse is int else "a number"
        raise ValueError(f"{name}={raw!r} is not {kind}") from None
    if value < low:
        raise ValueError(f"{name}={raw!r} must be at least {low}")
    return value


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The app's configuration as the environment sets it (see README, "Configuration")."""
    env = os.environ if environ is None else environ
    redis_url = env.get("REDIS_URL", "").strip() or DEFAULT_REDIS_URL
    return {
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": None,  # None: the broker is REDIS_URL
        "QUEUE": celeryconfig.task_default_queue,
        "API_TOKEN": env.get("API_TOKEN", "").strip() or None,
        "MAX_CONTENT_LENGTH": _number(env, "DYNAQUANT_MAX_BODY_BYTES", str(MIB), int, 1),
        "MAX_QUEUE": _number(env, "DYNAQUANT_MAX_QUEUE", "10000", int, 1),
        "MAX_BATCH": _number(env, "DYNAQUANT_MAX_BATCH", "500", int, 1),
        "CLEAR_WAIT_SECONDS": _number(env, "DYNAQUANT_CLEAR_WAIT_SECONDS", "5", float, 0),
        "RETRY_AFTER_SECONDS": _number(env, "DYNAQUANT_RETRY_AFTER_SECONDS", "5", int, 1),
        "MODELS_FILE": env.get("DYNAQUANT_MODELS_FILE", "").strip() or None,
    }
