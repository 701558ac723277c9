"""DynamicQuantizationManager: the pure policy fed by live probes, with per-model hysteresis."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from worker import policy
from worker.policy import LEVELS, Request, Stabilizer, Thresholds
from worker.probes import Probes, live_probes, merge_capabilities

GB = 1e9


@dataclass(frozen=True)
class Decision:
    """The level chosen for one job and the readings it rests on."""

    level: str
    memory_used: float
    load: int
    band: str
    wanted: str
    held_back: bool


def stabilizer_from_env(environ: Mapping[str, str] | None = None) -> Stabilizer:
    """Hysteresis settings from QUANTIZE_DWELL_SECONDS and QUANTIZE_CONSECUTIVE."""
    env = os.environ if environ is None else environ
    try:
        dwell = float(env.get("QUANTIZE_DWELL_SECONDS", "30"))
        consecutive = int(env.get("QUANTIZE_CONSECUTIVE", "3"))
    except ValueError as exc:
        raise ValueError(
            f"QUANTIZE_DWELL_SECONDS must be a number and QUANTIZE_CONSECUTIVE an integer: {exc}"
        ) from None
    if dwell < 0 or consecutive < 1:
        raise ValueError("QUANTIZE_DWELL_SECONDS must be >= 0 and QUANTIZE_CONSECUTIVE >= 1")
    return Stabilizer(dwell_seconds=dwell, consecutive=consecutive)


class DynamicQuantizationManager:
    """Chooses a precision level from memory pressure, load and task priority.

    Thresholds are instance attributes (spec names) so they can be tuned on a live instance.
    """

    def __init__(
        self,
        device: str | None = None,
        probes: Probes | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        t = policy.thresholds_from_env(environ)
        self.MEMORY_COMFORTABLE = t.memory_comfortable
        self.MEMORY_MODERATE = t.memory_moderate
        self.MEMORY_TIGHT = t.memory_tight
        self.MEMORY_CRITICAL = t.memory_critical
        self.LOAD_LOW = t.load_low
        self.LOAD_MODERATE = t.load_moderate
        self.LOAD_HIGH = t.load_high
        self.probes = probes if probes is not None else live_probes(device)
        self.device = self.probes.device
        self.stabilizer = stabilizer_from_env(environ)
        self._lock = threading.Lock()

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds as they stand on this instance now."""
        return Thresholds(
            memory_comfortable=self.MEMORY_COMFORTABLE,
            memory_moderate=self.MEMORY_MODERATE,
            memory_tight=self.MEMORY_TIGHT,
            memory_critical=self.MEMORY_CRITICAL,
            load_low=self.LOAD_LOW,
            load_moderate=self.LOAD_MODERATE,
            load_high=self.LOAD_HIGH,
        )

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

    def calculate(
        self, model_size_params: float, task_priority: str = "balanced", backend: str = "transformers"
    ) -> dict[str, Any]:
        """The /calculate body: the level for a model of this size under the live readings."""
        policy.check_priority(task_priority)
        sizes = {level: int(policy.estimate_memory_gb(model_size_params, level) * GB) for level in LEVELS}
        reading = self.probes.memory()
        load = self.probes.load().total
        supported = self.supported_levels(backend if backend in self.probes.capabilities else None) or LEVELS
        level = policy.decide_projected(
            reading.used_bytes, reading.total_bytes, 0, sizes, load, self.thresholds, Request(task_priority), supported
        )
        return calculation_body(model_size_params, level, backend, reading.used_fraction, load)

    def get_status(self) -> dict[str, Any]:
        """Device, memory, capabilities, the level a job would get now, and requests in flight."""
        reading = self.probes.memory()
        load = self.probes.load()
        return {
            "device": self.device,
            "active_requests": load.running,
            "queued_requests": load.queued,
            "memory": reading.as_dict(),
            "memory_status": policy.memory_band(reading.used_fraction, self.thresholds),
            "capabilities": self.capabilities,
            "recommended_level": self.select_level(reading.used_fraction, load.total),
            "thresholds": asdict(self.thresholds),
        }


def calculation_body(
    model_size_params: float, level: str, backend: str, memory_used: float, load: int
) -> dict[str, Any]:
    """The spec's /calculate response for a chosen level."""
    return {
        "level": level,
        "precision": level,
        "compression_ratio": f"{policy.compression_ratio(level):.1f}x",
        "estimated_memory_gb": round(policy.estimate_memory_gb(model_size_params, level), 2),
        "estimated_weights_gb": round(policy.estimate_weights_gb(model_size_params, level), 2),
        "config": policy.loader_config(level, "gguf" if backend == "gguf" else "transformers"),
        "basis": {"memory_used": round(memory_used, 4), "load": load, "backend": backend},
    }


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
