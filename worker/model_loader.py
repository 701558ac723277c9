"""ModelLoader: asks the decision engine for a level, serves the model from the cache or loads it,
re-optimises a loaded model when memory pressure moves its level, and never loads what cannot fit.

Backends (and so torch, transformers and llama_cpp) are imported only when a model is first loaded.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.backends.base import Backend, LoadedModel
from worker.cache import MB, ModelCache
from worker.errors import InputError, InsufficientMemoryError, ModelLoadError
from worker.policy import LEVELS, Request, estimate_weights_gb, rank
from worker.quantization import Decision, DynamicQuantizationManager, get_quantization_manager
from worker.registry import ModelSpec, Registry, get_registry
from worker.settings import env_float


def memory_reserve_bytes() -> int:
    """Memory always left free for the OS and the worker itself: DYNAQUANT_MEMORY_RESERVE_MB (default 256)."""
    return int(env_float("DYNAQUANT_MEMORY_RESERVE_MB", 256.0) * MB)


@dataclass(frozen=True)
class Lease:
    """A model held for one job: what was decided, what was loaded and what re-optimisation it caused."""

    model: LoadedModel
    level: str
    decision: Decision
    reoptimization: dict[str, Any] | None
    load_seconds: float
    cache_hit: bool


class ModelLoader:
    """Per-process model runtime: decision engine + registry + LRU cache + backends."""

    def __init__(
        self,
        manager: DynamicQuantizationManager,
        registry: Registry | None = None,
        cache: ModelCache | None = None,
        backends: dict[str, Backend] | None = None,
        variants_dir: Path | None = None,
    ) -> None:
        self.manager = manager
        self.registry = registry if registry is not None else get_registry()
        self.cache = cache if cache is not None else ModelCache()
        self.variants_dir = variants_dir
        self.reoptimizations = 0
        self.last_reoptimization: dict[str, Any] | None = None
        self._backends: dict[str, Backend] = dict(backends or {})
        self._pressure_level: dict[str, str] = {}
        self._doomed: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self.stage_listener: Callable[[str, str, str], None] | None = None
        """Told (phase, model, level) before a model is loaded and when a job gets it, so a death can be traced."""

    def _stage(self, phase: str, model: str, level: str) -> None:
        if self.stage_listener is not None:
            self.stage_listener(phase, model, level)

    def backend(self, name: str) -> Backend:
        """The backend called `name` ("gguf" or "transformers"), created on first use."""
        with self._lock:
            if name not in self._backends:
                if name == "gguf":
                    from worker.backends.llamacpp import LlamaCppBackend

                    self._backends[name] = LlamaCppBackend(self.variants_dir, device=self.manager.device)
                elif name == "transformers":
                    from worker.backends.hf import TransformersBackend

                    self._backends[name] = TransformersBackend(self.manager.device)
                else:
                    raise ValueError(f"unknown backend {name!r}: allowed are gguf, transformers")
            return self._backends[name]

    def supported_levels(self, spec: ModelSpec) -> tuple[str, ...]:
        """Levels this model can run at here: a source for it, a backend installed and able on this device."""
        levels = []
        for level in spec.levels():
            backend_name = spec.backend_for(level)
            runnable = self.backend(backend_name).supported_levels(spec)
            if level in self.manager.supported_levels(backend_name) and level in runnable:
                levels.append(level)
        if not levels:
            raise ModelLoadError(
                f"model {spec.name!r} cannot run on this worker: install llama-cpp-python for GGUF files, or "
                f"transformers and torch (plus bitsandbytes for int8/int4) for HF checkpoints"
            )
        return tuple(levels)

    def estimates(self, spec: ModelSpec, levels: tuple[str, ...]) -> dict[str, int]:
        """Expected bytes of the model at each level."""
        return {level: self.backend(spec.backend_for(level)).estimate_bytes(spec, level) for level in levels}

    def load_model(
        self,
        name: str | None = None,
        model_size_params: float | None = None,
        force_quantization: str | None = None,
        task_priority: str = "balanced",
        min_quantization: str | None = None,
    ) -> LoadedModel:
        """The spec's API: the model at the level the decision engine picks (cached, loaded or re-optimised)."""
        request = Request(task_priority, min_quantization, force_quantization)
        with self.acquire(name, request, model_size_params) as lease:
            return lease.model

    @contextmanager
    def acquire(
        self, name: str | None, request: Request | None = None, model_size_params: float | None = None
    ) -> Iterator[Lease]:
        """Hold the model for a job: pinned in the cache (never evicted) until the block exits."""
        lease = self._lease(name, request or Request(), model_size_params)
        self._stage("running", lease.model.name, lease.level)
        try:
            yield lease
        finally:
            self._release(lease.model.name, lease.level)

    def clear_cache(self) -> float:
        """Unload every model no job holds; returns MB freed."""
        with self._lock:
            freed = self.cache.clear()
            self._forget_uncached()
            return freed

    def stats(self) -> dict[str, Any]:
        """Cache statistics plus the re-optimisation counter."""
        body = self.cache.stats()
        body["reoptimizations"] = self.reoptimizations
        body["last_reoptimization"] = self.last_reoptimization
        return body

    def _lease(self, name: str | None, request: Request, model_size_params: float | None) -> Lease:
        spec = self.registry.get(name)
        if model_size_params is not None:
            size = model_size_params
            if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
                raise InputError("model_size_params", f"must be a positive number of billions, got {size!r}")
            spec = dataclasses.replace(spec, params_b=float(model_size_params))
        with self._lock:
            supported = self.supported_levels(spec)
            cached = self.cache.levels_of(spec.name)
            resident = int(sum(cached.values()) * MB)
            decision = self.manager.decide_for_model(
                spec.name, self.estimates(spec, supported), resident, request, supported
            )
            reopt = self._reoptimize(spec.name, decision, request) if cached else None
            if reopt is None and request.force_quantization is None:
                self._pressure_level[spec.name] = self._held_level(spec.name, decision)
            model = self.cache.get(spec.name, decision.level, pin=True)
            if model is not None:
                return Lease(model, decision.level, decision, reopt, 0.0, cache_hit=True)
            started = time.perf_counter()  # load time includes building the variant the first time
            self._stage("loading", spec.name, decision.level)
            level = self._fitting_level(spec, decision.level, request, supported)
            model = self.cache.get(spec.name, level, pin=True)  # stepping down may land on a cached level
            if model is not None:
                return Lease(model, level, decision, reopt, 0.0, cache_hit=True)
            if level != decision.level:
                self._stage("loading", spec.name, level)
            model = self.backend(spec.backend_for(level)).load(spec, level)
            seconds = time.perf_counter() - started
            self.cache.put(model, pin=True)
            self._forget_uncached()
            return Lease(model, level, decision, reopt, seconds, cache_hit=False)

    def _held_level(self, name: str, decision: Decision) -> str:
        """The pressure-driven level the decision engine holds for a model (before the job's own wishes)."""
        if not decision.held_back:
            return decision.wanted
        return self.manager.stabilizer.current.get(name, decision.wanted)

    def _reoptimize(self, name: str, decision: Decision, request: Request) -> dict[str, Any] | None:
        """When pressure moved the model's level, drop its entries at other levels and report the MB freed."""
        if request.force_quantization is not None:
            return None
        held = self._held_level(name, decision)
        previous = self._pressure_level.get(name)
        self._pressure_level[name] = held
        if previous is None or previous == held:
            return None
        others = {lvl: mb for lvl, mb in self.cache.levels_of(name).items() if lvl != decision.level}
        if not others:
            return None
        freed = 0.0
        for lvl in others:
            mb = self.cache.evict(name, lvl)
            if mb == 0.0:
                self._doomed.add((name, lvl))  # a job still holds it: drop it when that job ends
            freed += mb
        from_level = previous if previous in others else min(others, key=rank)
        info = {"model": name, "from_level": from_level, "to_level": decision.level, "freed_mb": round(freed, 1)}
        self.reoptimizations += 1
        self.last_reoptimization = info
        return info

    def _fitting_level(self, spec: ModelSpec, level: str, request: Request, supported: tuple[str, ...]) -> str:
        """The level to load: `level` if it fits after evicting idle models, else the next lower one that does."""
        floor = rank(request.min_quantization) if request.min_quantization else len(LEVELS) - 1
        if request.force_quantization is not None:
            candidates = [level]
        else:
            candidates = [lvl for lvl in LEVELS[rank(level) : floor + 1] if lvl in supported]
        reserve = memory_reserve_bytes()
        tried: list[str] = []
        for candidate in candidates:
            lower_bound = int(estimate_weights_gb(spec.params_b, candidate) * 1e9)
            if not self._could_fit(lower_bound, reserve):  # hopeless: don't build a variant to find out
                tried.append(f"{candidate} >= {lower_bound / MB:.0f} MB")
                continue
            backend = self.backend(spec.backend_for(candidate))
            backend.prepare(spec, candidate)
            need = backend.estimate_bytes(spec, candidate)
            if self._make_room(need, reserve):
                return candidate
            tried.append(f"{candidate} ~{need / MB:.0f} MB")
        reading = self.manager.probes.memory()
        raise InsufficientMemoryError(
            f"model {spec.name!r} does not fit at any allowed level ({', '.join(tried)}): the cache cap "
            f"MAX_MODEL_CACHE_MB is {self.cache.max_size_mb:.0f} MB with {self.cache.current_size_mb:.0f} MB held "
            f"({self.cache.current_size_mb - self.cache.idle_size_mb:.0f} MB by running jobs), and "
            f"{reading.available_bytes / MB:.0f} MB of memory is free (keeping {reserve / MB:.0f} MB in reserve). "
            "Raise MAX_MODEL_CACHE_MB, free memory, allow a lower min_quantization, or use a smaller model."
        )

    def _could_fit(self, need: int, reserve: int) -> bool:
        """Whether `need` bytes would fit the cap and the free memory once every idle model is evicted."""
        idle_mb = self.cache.idle_size_mb
        if self.cache.current_size_mb - idle_mb + need / MB > self.cache.max_size_mb:
            return False
        return need + reserve <= self.manager.probes.memory().available_bytes + idle_mb * MB

    def _make_room(self, need: int, reserve: int) -> bool:
        """Evict idle LRU models until `need` bytes fit the cap and free memory (False, evicting nothing, if never)."""
        if not self._could_fit(need, reserve):
            return False
        need_mb = need / MB
        reading = self.manager.probes.memory()
        freed = 0.0
        while (
            self.cache.current_size_mb + need_mb > self.cache.max_size_mb
            or need + reserve > reading.available_bytes + freed * MB
        ):
            victims = self.cache.evict_lru(1)
            if not victims:
                return False
            freed += victims[0].size_mb
        return True

    def _release(self, name: str, level: str) -> None:
        self.cache.release(name, level)  # no loader lock: a finished job never waits for another's load
        if (name, level) in self._doomed:
            with self._lock:
                if self.cache.evict(name, level) > 0:
                    self._doomed.discard((name, level))
                    self._forget_uncached()

    def _forget_uncached(self) -> None:
        """Drop decision state of models that are no longer cached at any level."""
        cached = {name for name, _ in self.cache.keys()}  # noqa: SIM118 (keys() takes the lock; iterating would not)
        for name in [n for n in self._pressure_level if n not in cached]:
            del self._pressure_level[name]
            self.manager.forget(name)


_loader: ModelLoader | None = None
_loader_lock = threading.Lock()


def get_model_loader() -> ModelLoader:
    """The process-wide loader: the process's quantization manager, registry and cache."""
    global _loader
    with _loader_lock:
        if _loader is None:
            _loader = ModelLoader(get_quantization_manager())
        return _loader


def set_model_loader(loader: ModelLoader | None) -> None:
    """Install (or reset with None) the process-wide loader."""
    global _loader
    with _loader_lock:
        _loader = loader
