"""Numeric settings read from the environment, with errors that name the variable."""

from __future__ import annotations

import os


def env_int(var: str, default: int, minimum: int = 1) -> int:
    """An integer setting, at least `minimum`; the default when unset or empty."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{var} must be at least {minimum}, got {value}")
    return value


def env_float(var: str, default: float, minimum: float = 0.0) -> float:
    """A number setting, at least `minimum`; the default when unset or empty."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a number") from None
    if value < minimum:
        raise ValueError(f"{var} must be at least {minimum}, got {value}")
    return value
