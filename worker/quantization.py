"""DynamicQuantizationManager: the pure policy fed by live probes, with per-model hysteresis."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from worker import policy
from worker.contracts import LevelChoice, MemoryReading
from worker.policy import LEVELS, LevelStats, Request, Stabilizer, Thresholds
from worker.probes import Probes, live_probes, merge_capabilities
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

ProfileSource = Callable[[str], Mapping[str, LevelStats]]


@dataclass(frozen=True)
class Decision:
    """The level chosen for one job and the readings it rests on."""

    level: str
    memory_used: float
    load: int
    band: str
    wanted: str
    held_back: bool
    matrix_level: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class PressureLevel:
    """The level memory and load call for on a model, before hysteresis, with what the matrix alone said and why."""

    level: str
    matrix_level: str
    reasons: tuple[str, ...]


class DynamicQuantizationManager:
    """Chooses a precision level from memory pressure, load and task priority.

    Thresholds are upper-case instance attributes so they can be tuned on a live instance.
    """

    def __init__(
        self, probes: Probes | None = None, settings: Settings | None = None, device: str | None = None
    ) -> None:
        """`device` (cpu, cuda, mps or auto) overrides DYNAQUANT_DEVICE for live probes; ignored with `probes`."""
        self.settings = settings = settings or get_settings()  # the seed's Python API: no argument needed
        t = settings.thresholds
        self.MEMORY_COMFORTABLE, self.MEMORY_MODERATE = t.memory_comfortable, t.memory_moderate
        self.MEMORY_TIGHT, self.MEMORY_CRITICAL = t.memory_tight, t.memory_critical
        self.LOAD_LOW, self.LOAD_MODERATE, self.LOAD_HIGH = t.load_low, t.load_moderate, t.load_high
        self.probes = probes if probes is not None else live_probes(device or settings.device)
        self.device = self.probes.device
        self.stabilizer = Stabilizer(dwell_seconds=settings.dwell_seconds, consecutive=settings.consecutive)
        self.profile_rules = settings.profile_rules
        self.profile_source: ProfileSource | None = None
        """Measured level profiles of a model on this host (set by the runtime); None: the matrix alone decides."""
        self.choices: dict[str, LevelChoice] = {}
        self._profiles_seen: dict[str, Mapping[str, LevelStats]] = {}
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

    def profiles(self, model: str) -> Mapping[str, LevelStats]:
        """The model's measured profiles on this host; empty when there is no source or it fails (logged)."""
        if self.profile_source is None:
            return {}
        try:
            return self.profile_source(model)
        except Exception as exc:  # a profile store that is down must never fail a decision
            log.warning("could not read the level profiles of %s (%s); deciding without them", model, exc)
            return {}

    def pressure_level(
        self,
        reading: MemoryReading,
        load: int,
        candidate_bytes: Mapping[str, int],
        resident_bytes: int,
        supported: Sequence[str],
        profiles: Mapping[str, LevelStats],
        source_level: str | None = None,
    ) -> PressureLevel:
        """The level memory and load call for (no I/O): the matrix on measured footprints, then the profile."""
        t = self.thresholds
        sized = policy.measured_bytes(candidate_bytes, profiles)

        def projected(at_load: int, sizes: Mapping[str, int]) -> str:
            used, total = reading.used_bytes, reading.total_bytes
            return policy.decide_projected(used, total, resident_bytes, sizes, at_load, t, Request(), supported)

        matrix = projected(load, sized)
        unloaded = projected(0, sized)
        reasons: list[str] = []
        estimated = projected(load, candidate_bytes)
        if policy.rank(matrix) > policy.rank(estimated):
            reasons.append(f"{estimated} does not fit its measured footprint here: {matrix} for memory")
        level, weighed = policy.apply_profile(matrix, unloaded, profiles, self.profile_rules, supported)
        level, reencoded = policy.apply_source_ceiling(level, source_level, profiles, self.profile_rules)
        level, dominated = policy.skip_dominated(level, profiles, self.profile_rules, supported)
        return PressureLevel(level, matrix, tuple(reasons + weighed + reencoded + dominated))

    def decide_for_model(
        self,
        model: str,
        candidate_bytes: Mapping[str, int],
        resident_bytes: int,
        request: Request,
        supported: Sequence[str],
        now: float | None = None,
        prior: Mapping[str, LevelStats] | None = None,
        source_level: str | None = None,
        preview: bool = False,
    ) -> Decision:
        """Level for the next job on a model, from live readings and its measured profile, with hysteresis.

        The pressure-driven level (matrix, then the profile) is stabilised per model and recorded with its
        reasons in `choices`; the job's task priority, floor and force are applied on top of it, so one
        job's wishes never hold back the next job. `prior` (worker.priors) stands in for levels the host has not
        measured yet; `source_level`, the level of the model's own file when every level above it is a re-encoding
        of it, caps the pressure level and the task priority's step up (a floor or force still goes above it).
        `preview`: what the next job would get, nothing recorded (the status shows it).
        """
        reading = self.probes.memory()
        load = self.probes.load().total
        t = self.thresholds
        band = policy.memory_band(reading.used_fraction, t)
        if request.force_quantization is not None:
            level = policy.decide(reading.used_fraction, load, t, request, supported)
            return Decision(level, reading.used_fraction, load, band, level, False)
        profiles = self.profiles(model)
        if prior:
            profiles = policy.with_prior(profiles, prior, self.profile_rules)
        pressure = self.pressure_level(
            reading, load, candidate_bytes, resident_bytes, supported, profiles, source_level
        )
        wanted = pressure.level
        at, critical = time.monotonic() if now is None else now, band == "emergency"
        with self._lock:
            if preview:
                held = self.stabilizer.peek(model, wanted, at, critical)
            else:
                self._profiles_seen[model] = profiles
                held = self.stabilizer.propose(model, wanted, at, critical)
            reasons = [f"matrix: {pressure.matrix_level} at {band} memory and load {load}", *pressure.reasons]
            if held != wanted:
                reasons.append(f"held at {held}: {wanted} must hold a while first (hysteresis)")
            if not preview:
                self.choices[model] = LevelChoice(
                    model=model,
                    level=policy.as_level(held),
                    matrix_level=policy.as_level(pressure.matrix_level),
                    reasons=reasons,
                    at=time.time(),
                )
        level = policy.apply_task_priority(held, request.task_priority)
        level = policy.apply_source_ceiling(level, source_level, profiles, self.profile_rules)[0]
        level = policy.apply_ceiling(level, request.ceiling)
        level = policy.apply_floor(level, request.min_quantization)
        level = policy.apply_capabilities(level, supported, request.min_quantization)
        return Decision(
            level, reading.used_fraction, load, band, wanted, held != wanted, pressure.matrix_level, tuple(reasons)
        )

    def get_status(self) -> dict[str, object]:
        """The manager's state in one dict: device, readings, thresholds, the matrix's level now and the levels held."""
        reading = self.probes.memory()
        load = self.probes.load()
        return {
            "device": self.device,
            "memory_used": reading.used_fraction,
            "memory_band": policy.memory_band(reading.used_fraction, self.thresholds),
            "load": load.total,
            "thresholds": dataclasses.asdict(self.thresholds),
            "recommended_level": self.select_level(reading.used_fraction, load.total),
            "supported_levels": list(self.supported_levels()),
            "current_levels": dict(self.stabilizer.current),
            "choices": {model: choice.model_dump() for model, choice in self.level_choices().items()},
        }

    def profiles_seen(self, model: str) -> Mapping[str, LevelStats]:
        """The profiles the last decision on a model read (no store read: for the pre-load's forecast)."""
        with self._lock:
            return self._profiles_seen.get(model, {})

    def level_choices(self) -> dict[str, LevelChoice]:
        """Per model: the level held now and why (what a worker's heartbeat publishes)."""
        with self._lock:
            return dict(self.choices)

    def forget(self, model: str) -> None:
        """Drop the hysteresis state of a model that is no longer loaded."""
        with self._lock:
            self.stabilizer.forget(model)
            self.choices.pop(model, None)
            self._profiles_seen.pop(model, None)


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
