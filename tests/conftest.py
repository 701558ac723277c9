"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.policy import LEVELS
from worker.probes import LoadReading, MemoryReading, Probes

GIB = 1024**3


class Readings:
    """Memory and load readings a test can change between decisions."""

    def __init__(self, used_fraction: float = 0.1, total_bytes: int = 16 * GIB, queued: int = 0, running: int = 0):
        self.used_fraction = used_fraction
        self.total_bytes = total_bytes
        self.queued = queued
        self.running = running

    def memory(self) -> MemoryReading:
        available = int(self.total_bytes * (1 - self.used_fraction))
        return MemoryReading("test", self.total_bytes, available, 0)

    def load(self) -> LoadReading:
        return LoadReading(self.queued, self.running)


@pytest.fixture
def fixed_probes() -> Callable[..., Probes]:
    """Build probes that report what the test says, on a CPU that runs every level."""

    def build(readings: Readings | None = None, device: str = "cpu") -> Probes:
        r = readings or Readings()
        caps = {"gguf": dict.fromkeys(LEVELS, True)}
        return Probes(device=device, memory=r.memory, load=r.load, capabilities=caps)

    return build
