"""ModelLoader: asks the decision engine for a level, serves the model from the cache or loads it,
re-optimises a loaded model when memory pressure moves its level (keeping its other levels resident while
memory is comfortable), pre-loads the level a load trend calls for, and never loads what cannot fit.

The loader's lock guards only its maps. A load runs outside it and is tracked while it runs: a second
job for the same model and level waits for that load, a job for a model already loaded is served at
once, loads themselves run one at a time, and clear_cache (from the heartbeat thread) never waits.
Backends (and so torch, transformers and llama_cpp) are imported only when a model is first loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

from worker.backends.base import Backend, LoadedModel
from worker.cache import ModelCache
from worker.contracts import MIB, Phase, Reoptimization
from worker.errors import InputError, InsufficientMemoryError, ModelLoadError, UnsupportedLevelError
from worker.policy import (
    LEVELS,
    TREND_WINDOW,
    LevelStats,
    Request,
    apply_capabilities,
    apply_source_ceiling,
    estimate_weights_gb,
    memory_band,
    predicted_load,
    rank,
    with_prior,
)
from worker.priors import prior_profiles
from worker.quantization import Decision, DynamicQuantizationManager
from worker.registry import ModelSpec, Registry
from worker.settings import Settings

Key = tuple[str, str]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    """A model held for one job: what was decided, what was loaded and what re-optimisation it caused."""

    model: LoadedModel
    level: str
    decision: Decision
    reoptimization: Reoptimization | None
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
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or manager.settings
        self.manager = manager
        self.registry = registry if registry is not None else Registry.from_settings(self.settings)
        self.cache = cache if cache is not None else ModelCache(self.settings.max_cache_mb)
        self.reoptimizations = 0
        self.last_reoptimization: Reoptimization | None = None
        self.preloads = 0
        self.last_preload: Key | None = None
        self.preload_thread: threading.Thread | None = None
        self._load_history: deque[int] = deque(maxlen=TREND_WINDOW)
        self._backends: dict[str, Backend] = dict(backends or {})
        self._pressure_level: dict[str, str] = {}
        self._doomed: set[Key] = set()
        self._loading: dict[Key, Future[str]] = {}
        self._lock = threading.Lock()  # the maps above; never held across a load
        self._load_lock = threading.Lock()  # one load at a time, so two loads never count the same free memory
        self.stage_listener: Callable[[Phase, str, str], None] | None = None
        """Told (phase, model, level) before a model is loaded and when a job gets it, so a death can be traced.
        Called from the job's thread, never under the loader's lock (it may write to Redis)."""
        self.load_listener: Callable[[str, str, int, int], None] | None = None
        """Told (model, level, measured bytes, estimated bytes) after each load: the footprint delta around it."""
        self.variant_wanted: Callable[[str, str], None] | None = None
        """Told (model, level) when a job ran at another level because that one is not built yet."""

    def _stage(self, phase: Phase, model: str, level: str) -> None:
        if self.stage_listener is not None:
            self.stage_listener(phase, model, level)

    def backend(self, name: str) -> Backend:
        """The backend called `name` ("gguf" or "transformers"), created on first use."""
        with self._lock:
            if name not in self._backends:
                self._backends[name] = self._new_backend(name)
            return self._backends[name]

    def _new_backend(self, name: str) -> Backend:
        if name == "gguf":
            from worker.backends.llamacpp import LlamaCppBackend

            return LlamaCppBackend.from_settings(self.settings, self.manager.device)
        if name == "transformers":
            from worker.backends.hf import TransformersBackend

            return TransformersBackend(self.manager.device)
        raise ValueError(f"unknown backend {name!r}: allowed are gguf, transformers")

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
        """The model at the level the decision engine picks (cached, loaded or re-optimised)."""
        request = Request(task_priority, min_quantization, force_quantization)
        with self.acquire(name, request, model_size_params) as lease:
            return lease.model

    @contextmanager
    def acquire(
        self, name: str | None, request: Request | None = None, model_size_params: float | None = None
    ) -> Iterator[Lease]:
        """Hold the model for a job: pinned in the cache (never evicted) until the block exits."""
        lease = self._lease(name, request or Request(), model_size_params)
        try:
            self._stage("running", lease.model.name, lease.level)
            yield lease
        finally:
            self._release(lease.model.name, lease.level)

    def clear_cache(self) -> float:
        """Unload every model no job holds; returns MiB freed. Never waits for a load in progress."""
        freed = self.cache.clear()
        with self._lock:
            self._forget_uncached()
        return freed

    def loading(self) -> list[Key]:
        """(model, level) pairs being loaded now."""
        with self._lock:
            return list(self._loading)

    def _lease(self, name: str | None, request: Request, model_size_params: float | None) -> Lease:
        spec = self._spec(name, model_size_params)
        supported = self.supported_levels(spec)
        estimates = self.estimates(spec, supported)  # once per job: the decision and the pre-load both use them
        lease = self._serve(spec, request, supported, estimates)
        self._preload_next(spec, supported, lease.decision, estimates)
        return lease

    def _spec(self, name: str | None, model_size_params: float | None) -> ModelSpec:
        spec = self.registry.get(name)
        if model_size_params is not None:
            size = model_size_params
            if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
                raise InputError("model_size_params", f"must be a positive number of billions, got {size!r}")
            spec = dataclasses.replace(spec, params_b=float(model_size_params))
        return spec

    def _serve(self, spec: ModelSpec, request: Request, supported: tuple[str, ...], estimates: dict[str, int]) -> Lease:
        decision, reopt = self._decide(spec, request, supported, estimates)
        started, waited = time.perf_counter(), 0.0
        while True:
            model = self.cache.get(spec.name, decision.level, pin=True)
            if model is not None:
                return Lease(model, decision.level, decision, reopt, waited, cache_hit=True)
            key = (spec.name, decision.level)
            with self._lock:
                pending = self._loading.get(key)
                owner = pending is None
                if pending is None:
                    pending = self._loading[key] = Future()
            if owner:
                return self._load(key, pending, spec, decision, request, supported, reopt)
            level = pending.result()  # another job is loading this model: wait for it, share its error
            waited = time.perf_counter() - started
            model = self.cache.get(spec.name, level, pin=True)
            if model is not None:
                return Lease(model, level, decision, reopt, waited, cache_hit=True)

    def _decide(
        self, spec: ModelSpec, request: Request, supported: tuple[str, ...], estimates: dict[str, int]
    ) -> tuple[Decision, Reoptimization | None]:
        """The level for this job, and the re-optimisation it causes (other levels dropped unless they may stay)."""
        cached = self.cache.levels_of(spec.name)
        decision = self._decision(spec, request, supported, estimates)
        keep = decision.level in cached or (bool(cached) and self._room_beside(estimates.get(decision.level, 0)))
        with self._lock:
            self._load_history.append(decision.load)
            reopt = self._reoptimize(spec.name, decision, request, keep) if cached else None
            if reopt is None and request.force_quantization is None:
                self._pressure_level[spec.name] = self._held_level(spec.name, decision)
        return decision, reopt

    def next_level(self, name: str | None = None, request: Request | None = None) -> Decision:
        """The level the next job on a model would run at now, and why: the same decision, nothing recorded, nothing
        built (the status shows it)."""
        spec = self.registry.get(name)
        supported = self.supported_levels(spec)
        return self._decision(spec, request or Request(), supported, self.estimates(spec, supported), preview=True)

    def _decision(
        self,
        spec: ModelSpec,
        request: Request,
        supported: tuple[str, ...],
        estimates: dict[str, int],
        preview: bool = False,
    ) -> Decision:
        """The manager's decision on this model's figures, moved to a built level; `preview`: nothing recorded,
        no build asked."""
        resident = int(sum(self.cache.levels_of(spec.name).values()) * MIB)
        prior, source = self._known(spec, supported, estimates)
        decision = self.manager.decide_for_model(
            spec.name, estimates, resident, request, supported, prior=prior, source_level=source, preview=preview
        )
        return self._built_level(spec, decision, request, supported, ask_build=not preview)

    def _built_level(
        self, spec: ModelSpec, decision: Decision, request: Request, supported: tuple[str, ...], ask_build: bool = True
    ) -> Decision:
        """The decided level if it needs no build, else the nearest that does (its build is asked of idle work).

        A job never waits for a variant the decision merely prefers: building F16 from a 1 GB source takes a
        minute of both cores. A forced level, or a floor or ceiling (after a worker died higher) no built level
        meets, is built in the job's path.
        """
        if request.force_quantization is not None or self.ready(spec, decision.level):
            return decision
        built = [
            level
            for level in supported
            if self.ready(spec, level) and (request.ceiling is None or rank(level) >= rank(request.ceiling))
        ]
        try:
            level = apply_capabilities(decision.level, built, request.min_quantization)
        except UnsupportedLevelError:
            return decision
        if ask_build and self.variant_wanted is not None:
            self.variant_wanted(spec.name, decision.level)
        wanted = decision.level
        reason = f"{wanted} is not built on this host yet: {level} now, {wanted} once idle work has built it"
        return dataclasses.replace(decision, level=level, reasons=(*decision.reasons, reason))

    def _known(
        self, spec: ModelSpec, supported: tuple[str, ...], estimates: dict[str, int]
    ) -> tuple[dict[str, LevelStats] | None, str | None]:
        """What is known of the levels before measuring them: the shipped prior and the level of the model's own
        file (both None with DYNAQUANT_PRIOR=0)."""
        if not self.settings.prior:
            return None, None
        backends = {level: spec.backend_for(level) for level in supported}
        prior = prior_profiles(spec.name, self.manager.device, backends, estimates)
        return prior, self.source_level(spec, supported)

    def worth_having(self, spec: ModelSpec) -> list[str]:
        """The model's levels the decision may pick without force: all but re-encodings of its file that are not
        faster than the file's own level (by the host's profile, else the prior); all with DYNAQUANT_PRIOR=0."""
        supported = self.supported_levels(spec)
        prior, source = self._known(spec, supported, self.estimates(spec, supported))
        if prior is None or source is None:
            return list(supported)
        rules = self.manager.profile_rules
        profiles = with_prior(self.manager.profiles(spec.name), prior, rules)
        return [level for level in supported if apply_source_ceiling(level, source, profiles, rules)[0] == level]

    def source_level(self, spec: ModelSpec, supported: tuple[str, ...]) -> str | None:
        """The level of the model's GGUF file when every supported level above it is built from that file."""
        source = self.backend("gguf").source_level(spec) if spec.gguf_path is not None else None
        if source is None:
            return None
        above = [level for level in supported if rank(level) < rank(source)]
        return source if all(spec.backend_for(level) == "gguf" for level in above) else None

    def ready(self, spec: ModelSpec, level: str) -> bool:
        """Whether the model can be had at the level without a build: cached, or its files on disk."""
        return (spec.name, level) in self.cache or self.backend(spec.backend_for(level)).ready(spec, level)

    def _load(
        self,
        key: Key,
        pending: Future[str],
        spec: ModelSpec,
        decision: Decision,
        request: Request,
        supported: tuple[str, ...],
        reopt: Reoptimization | None,
    ) -> Lease:
        """Load the model for `key` (the first job to ask does this; later ones wait on `pending`)."""
        try:
            with self._load_lock:
                started = time.perf_counter()  # load time includes building the variant the first time
                self._stage("loading", spec.name, decision.level)
                level = self._fitting_level(spec, decision.level, request, supported)
                model = self.cache.get(spec.name, level, pin=True)  # stepping down may land on a cached level
                if model is not None:
                    lease = Lease(model, level, decision, reopt, 0.0, cache_hit=True)
                else:
                    if level != decision.level:
                        self._stage("loading", spec.name, level)
                    backend, before = self.backend(spec.backend_for(level)), self.manager.probes.footprint()
                    model = backend.load(spec, level)
                    if self.load_listener is not None:
                        measured = self.manager.probes.footprint() - before
                        self.load_listener(spec.name, level, measured, backend.estimate_bytes(spec, level))
                    self.cache.put(model, pin=True)
                    lease = Lease(model, level, decision, reopt, time.perf_counter() - started, cache_hit=False)
            pending.set_result(level)
            return lease
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._loading.pop(key, None)
                self._forget_uncached()

    def _held_level(self, name: str, decision: Decision) -> str:
        """The pressure-driven level the decision engine holds for a model (before the job's own wishes)."""
        if not decision.held_back:
            return decision.wanted
        return self.manager.stabilizer.current.get(name, decision.wanted)

    def _reoptimize(self, name: str, decision: Decision, request: Request, keep: bool) -> Reoptimization | None:
        """When pressure moved the model's level, report it, and drop the model's other levels unless they may stay.

        They stay resident (`keep`) while memory is comfortable and the cap has room for the new level beside
        them, so switching back costs nothing; otherwise they are evicted as the MiB freed says.
        """
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
        for lvl in [] if keep and decision.band == "comfortable" else others:
            mb = self.cache.evict(name, lvl)
            if mb == 0.0:
                self._doomed.add((name, lvl))  # a job still holds it: drop it when that job ends
            freed += mb
        from_level = previous if previous in others else min(others, key=rank)
        info = Reoptimization.model_validate(
            {"model": name, "from_level": from_level, "to_level": decision.level, "freed_mb": round(freed, 1)}
        )
        self.reoptimizations += 1
        self.last_reoptimization = info
        return info

    def _room_beside(self, need: int) -> bool:
        """Whether `need` more bytes fit beside every cached model: under the cap, in free memory above the
        reserve, and with memory still in the comfortable band once loaded."""
        if self.cache.current_size_mb + need / MIB > self.cache.max_size_mb:
            return False
        reading = self.manager.probes.memory()
        if need + int(self.settings.memory_reserve_mb * MIB) > reading.available_bytes:
            return False
        used = min((reading.used_bytes + need) / reading.total_bytes, 1.0) if reading.total_bytes else 1.0
        return memory_band(used, self.manager.thresholds) == "comfortable"

    def _preload_next(
        self, spec: ModelSpec, supported: tuple[str, ...], decision: Decision, estimates: dict[str, int]
    ) -> None:
        """When the load trend says the next job will want another level, load it in the background.

        Only while no load runs, the level is not cached, and it fits beside the cached models in the
        comfortable band; a job that wants it meanwhile waits on it like on any load in progress.
        """
        if not self.settings.preload or decision.band != "comfortable":
            return
        try:
            with self._lock:
                history = list(self._load_history)
            predicted = predicted_load(history)
            if predicted == decision.load:
                return
            cached = self.cache.levels_of(spec.name)
            target = self.manager.pressure_level(
                self.manager.probes.memory(),
                predicted,
                estimates,
                int(sum(cached.values()) * MIB),
                supported,
                self.manager.profiles_seen(spec.name),
                self._known(spec, supported, estimates)[1],
            ).level
            if target in cached or not self.ready(spec, target) or not self._room_beside(estimates[target]):
                return
            key = (spec.name, target)
            with self._lock:
                if self._loading or self._load_lock.locked():
                    return
                pending: Future[str] = Future()
                self._loading[key] = pending
            thread = threading.Thread(
                target=self._preload, args=(key, pending, spec, estimates[target]), name=f"preload {key}", daemon=True
            )
            self.preload_thread = thread
            thread.start()
        except Exception as exc:  # a forecast never fails the job it rides on
            log.warning("could not pre-load the next level of %s: %s", spec.name, exc)

    def _preload(self, key: Key, pending: Future[str], spec: ModelSpec, need: int) -> None:
        """The pre-load thread: one level loaded idle into the cache; a job waiting on it loads it itself on failure."""
        name, level = key
        try:
            if self._load_lock.acquire(blocking=False):  # a job's load started meanwhile: it goes first
                try:
                    self._preload_locked(key, spec, need)
                finally:
                    self._load_lock.release()
        except Exception as exc:
            log.warning("pre-loading %s at %s failed: %s", name, level, exc)
        finally:
            with self._lock:
                self._loading.pop(key, None)
                self._forget_uncached()
            pending.set_result(level)  # after the pop, so a waiting job that finds no model loads it at once

    def _preload_locked(self, key: Key, spec: ModelSpec, need: int) -> None:
        if key in self.cache or not self._room_beside(need):
            return
        model = self.backend(spec.backend_for(key[1])).load(spec, key[1])
        if self.cache.current_size_mb + model.size_bytes / MIB > self.cache.max_size_mb:
            model.close()  # larger than estimated: keeping it would push another model out
            return
        self.cache.put(model)
        self.preloads += 1
        self.last_preload = key

    def _fitting_level(self, spec: ModelSpec, level: str, request: Request, supported: tuple[str, ...]) -> str:
        """The level to load: `level` if it fits after evicting idle models, else the next lower one that does."""
        floor = rank(request.min_quantization) if request.min_quantization else len(LEVELS) - 1
        if request.force_quantization is not None:
            candidates = [level]
        else:
            candidates = [lvl for lvl in LEVELS[rank(level) : floor + 1] if lvl in supported]
        reserve = int(self.settings.memory_reserve_mb * MIB)
        tried: list[str] = []
        for candidate in candidates:
            lower_bound = int(estimate_weights_gb(spec.params_b, candidate) * 1e9)
            if not self._could_fit(lower_bound, reserve):  # hopeless: don't build a variant to find out
                tried.append(f"{candidate} >= {lower_bound / MIB:.0f} MiB")
                continue
            backend = self.backend(spec.backend_for(candidate))
            backend.prepare(spec, candidate)
            need = backend.estimate_bytes(spec, candidate)
            if self._make_room(need, reserve):
                return candidate
            tried.append(f"{candidate} ~{need / MIB:.0f} MiB")
        raise self._no_room(spec, tried, reserve)

    def _no_room(self, spec: ModelSpec, tried: list[str], reserve: int) -> InsufficientMemoryError:
        cache, reading = self.cache, self.manager.probes.memory()
        return InsufficientMemoryError(
            f"model {spec.name!r} does not fit at any allowed level ({', '.join(tried)}): the cache cap "
            f"MAX_MODEL_CACHE_MB is {cache.max_size_mb:.0f} MB with {cache.current_size_mb:.0f} MB held "
            f"({cache.current_size_mb - cache.idle_size_mb:.0f} MB by running jobs), and "
            f"{reading.available_bytes / MIB:.0f} MB of memory is free (keeping {reserve / MIB:.0f} MB in reserve). "
            "Raise MAX_MODEL_CACHE_MB, free memory, allow a lower min_quantization, or use a smaller model."
        )

    def _could_fit(self, need: int, reserve: int) -> bool:
        """Whether `need` bytes would fit the cap and the free memory once every idle model is evicted."""
        idle_mb = self.cache.idle_size_mb
        if self.cache.current_size_mb - idle_mb + need / MIB > self.cache.max_size_mb:
            return False
        return need + reserve <= self.manager.probes.memory().available_bytes + idle_mb * MIB

    def _make_room(self, need: int, reserve: int) -> bool:
        """Evict idle LRU models until `need` bytes fit the cap and free memory (False, evicting nothing, if never)."""
        if not self._could_fit(need, reserve):
            return False
        need_mb = need / MIB
        reading = self.manager.probes.memory()
        freed = 0.0
        while (
            self.cache.current_size_mb + need_mb > self.cache.max_size_mb
            or need + reserve > reading.available_bytes + freed * MIB
        ):
            victims = self.cache.evict_lru(1)
            if not victims:
                return False
            freed += victims[0].size_mb
        return True

    def _release(self, name: str, level: str) -> None:
        self.cache.release(name, level)
        with self._lock:
            if (name, level) in self._doomed and self.cache.evict(name, level) > 0:
                self._doomed.discard((name, level))
                self._forget_uncached()

    def _forget_uncached(self) -> None:
        """Drop decision state of models no longer cached at any level or being loaded (call under the lock)."""
        kept = {name for name, _ in self.cache.keys()} | {name for name, _ in self._loading}  # noqa: SIM118
        for name in [n for n in self._pressure_level if n not in kept]:
            del self._pressure_level[name]
            self.manager.forget(name)
