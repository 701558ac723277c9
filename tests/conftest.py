"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import redis

from worker.contracts import GIB, LoadReading, MemoryReading
from worker.policy import LEVELS
from worker.probes import Probes
from worker.settings import get_settings


def redis_db_url(db: int) -> str:
    """A Redis DB on the server REDIS_URL names (default the local one), for tests that own that DB."""
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + f"/{db}"


def emptied(url: str) -> redis.Redis:
    """A client on a test's own Redis DB, emptied; the test fails saying so when no server answers."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.ConnectionError:
        pytest.fail(f"this test needs a Redis server at {url}: start one with `redis-server` or set REDIS_URL")
    return client


class Readings:
    """Memory and load readings a test can change between decisions."""

    def __init__(self, used_fraction: float = 0.1, total_bytes: int = 16 * GIB, queued: int = 0, running: int = 0):
        self.used_fraction = used_fraction
        self.total_bytes = total_bytes
        self.queued = queued
        self.running = running

    def memory(self) -> MemoryReading:
        available = int(self.total_bytes * (1 - self.used_fraction))
        return MemoryReading(pool="test", total_bytes=self.total_bytes, available_bytes=available, process_bytes=0)

    def load(self) -> LoadReading:
        return LoadReading(queued=self.queued, running=self.running)


@pytest.fixture
def fixed_probes() -> Callable[..., Probes]:
    """Build probes that report what the test says, on a CPU that runs every level."""

    def build(readings: Readings | None = None, device: str = "cpu") -> Probes:
        r = readings or Readings()
        caps = {"gguf": dict.fromkeys(LEVELS, True)}
        return Probes(device=device, memory=r.memory, load=r.load, capabilities=caps)

    return build


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """This process's settings read again from the environment the test sets (otherwise they are read once)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
