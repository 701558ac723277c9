"""DynamicQuantizationManager: the pure policy fed by live probes, with per-model hysteresis."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from worker import policy
from worker.policy import LEVELS, Request, Stabilizer, Thresholds
from worker.probes import Probes, live_probes, merge_capabilities
from worker.settings import Settings, get_settings


@dataclass(frozen=True)
class Decision:
    """The level chosen for one job and the readings it rests on."""

    level: str
    memory_used: float
    load: int
    band: str
    wanted: str
    held_back: bool


class DynamicQuantizationManager:
    """Chooses a precision level from memory pressure, load and task priority.

    Thresholds are upper-case instance attributes so they can be tuned on a live instance.
    """

    def __init__(self, probes: Probes | None = None, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        t = settings.thresholds
        self.MEMORY_COMFORTABLE, self.MEMORY_MODERATE = t.memory_comfortable, t.memory_moderate
        self.MEMORY_TIGHT, self.MEMORY_CRITICAL = t.memory_tight, t.memory_critical
        self.LOAD_LOW, self.LOAD_MODERATE, self.LOAD_HIGH = t.load_low, t.load_moderate, t.load_high
        self.probes = probes if probes is not None else live_probes(settings.device)
        self.device = self.probes.device
        self.stabilizer = Stabilizer(dwell_seconds=settings.dwell_seconds, consecutive=settings.consecutive)
        self._lock = threading.Lock()

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds as they stand on this instance now."""
        memory = (self.MEMORY_COMFORTABLE, self.MEMORY_MODERATE, self.MEMORY_TIGHT, self.MEMORY_CRITICAL)
        return Thresholds(*memory, self.LOAD_LOW, self.LOAD_MODERATE, self.LOAD_HIGH)

    @property
    def capabilities(self) -> dict[str, bool]:
        """Levels some installed backend can run on this device."""
        return merge_capabilities(self.probes.capabilities)

    def supported_levels(self, backend: str | None = None) -> tuple[str, ...]:
        """Levels runnable by one backend, or by any when none is named."""
        caps = self.probes.capabilities.get(backend, {}) if backend else self.capabilities
        return tuple(level for level in LEVELS if caps.get(level))

    def select_level(
        self,
        memory_used: float,
        load: int,
        task_priority: str = "balanced",
        min_quantization: str | None = None,
    ) -> str:
        """The decision matrix with task priority and floor, for the given readings (pure)."""
        return policy.decide(memory_used, load, self.thresholds, Request(task_priority, min_quantization))

    def decide_for_model(
        self,
        model: str,
        candidate_bytes: Mapping[str, int],
        resident_bytes: int,
        request: Request,
        supported: Sequence[str],
        now: float | None = None,
    ) -> Decision:
        """Level for the next job on a model, from live readings, with hysteresis on re-optimisation.

        The pressure-driven level is stabilised per model; the job's task priority, floor and
        force are applied on top of it, so one job's wishes never hold back the next job.
        """
        reading = self.probes.memory()
        load = self.probes.load().total
        t = self.thresholds
        band = policy.memory_band(reading.used_fraction, t)
        if request.force_quantization is not None:
            level = policy.decide(reading.used_fraction, load, t, request, supported)
            return Decision(level, reading.used_fraction, load, band, level, False)
        wanted = policy.decide_projected(
            reading.used_bytes, reading.total_bytes, resident_bytes, candidate_bytes, load, t, Request(), supported
        )
        with self._lock:
            held = self.stabilizer.propose(
                model, wanted, time.monotonic() if now is None else now, critical=band == "emergency"
            )
        level = policy.apply_task_priority(held, request.task_priority)
        level = policy.apply_ceiling(level, request.ceiling)
        level = policy.apply_floor(level, request.min_quantization)
        level = policy.apply_capabilities(level, supported, request.min_quantization)
        return Decision(level, reading.used_fraction, load, band, wanted, held != wanted)

    def forget(self, model: str) -> None:
        """Drop the hysteresis state of a model that is no longer loaded."""
        with self._lock:
            self.stabilizer.forget(model)


_manager: DynamicQuantizationManager | None = None
_manager_lock = threading.Lock()


def get_quantization_manager() -> DynamicQuantizationManager:
    """The process-wide manager, built on first use from the environment."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = DynamicQuantizationManager()
        return _manager


def set_quantization_manager(manager: DynamicQuantizationManager | None) -> None:
    """Install the process-wide manager (a worker wires in its Redis load probe this way)."""
    global _manager
    with _manager_lock:
        _manager = manager
