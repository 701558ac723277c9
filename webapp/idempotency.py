"""Idempotency-Key support: a client retry gets the first request's job or batch, and nothing new is queued."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from webapp.errors import ApiError
from webapp.extensions import get_redis
from worker.jobs import IDEMPOTENCY_KEY

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
POLLS = 20
POLL_SECONDS = 0.05
T = TypeVar("T")

log = logging.getLogger(__name__)


def idempotency_key(headers: Any) -> str | None:
    """The client's Idempotency-Key header, checked: 1-255 visible ASCII characters."""
    value = headers.get(HEADER)
    if value is None:
        return None
    key = str(value)
    if not key or len(key) > MAX_LENGTH or not all("!" <= ch <= "~" for ch in key):
        message = f"{HEADER} must be 1 to {MAX_LENGTH} visible ASCII characters (a UUID is ideal)"
        raise ApiError(400, "invalid_input", message, HEADER)
    return key


def settled(read: Callable[[], T | None]) -> T | None:
    """Read a record that a concurrent request with the same key may still be writing (waits up to 1 s)."""
    for _ in range(POLLS):
        found = read()
        if found is not None:
            return found
        time.sleep(POLL_SECONDS)
    return read()


def release(scoped_key: str, owner: str) -> None:
    """Unbind a key whose job never got queued, so the client's retry can try again."""
    client = get_redis()
    name = IDEMPOTENCY_KEY.format(scoped_key)
    try:
        value = client.get(name)
        if value is not None and (value.decode() if isinstance(value, bytes) else str(value)) == owner:
            client.delete(name)
    except Exception as exc:  # Redis may be the very failure being undone
        log.warning("could not release idempotency key %s: %s", scoped_key, exc)
