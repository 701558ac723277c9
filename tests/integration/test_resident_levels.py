"""Levels stay resident while memory is comfortable, a trend pre-loads the next level, and the measured profile
steers the level: all on the real bundled model, with injected memory and load readings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Readings
from worker.model_loader import ModelLoader
from worker.policy import LEVELS, LevelStats
from worker.runtime import WorkerRuntime
from worker.status import live_workers

MODEL = "gemma-3-270m"
MakeLoader = Callable[..., tuple[ModelLoader, Readings]]
MakeRuntime = Callable[..., WorkerRuntime]

pytestmark = pytest.mark.model


def run(loader: ModelLoader, readings: Readings, queued: int) -> tuple[str, bool]:
    """One job's lease at the given queue length, with any pre-load it started finished: (level, cache hit)."""
    readings.queued = queued
    with loader.acquire(MODEL) as lease:
        level, hit = lease.level, lease.cache_hit
    if loader.preload_thread is not None:
        loader.preload_thread.join(120)
    return level, hit


def test_a_switch_back_to_a_resident_level_is_a_cache_hit(make_loader: MakeLoader) -> None:
    loader, readings = make_loader(preload=False)
    assert run(loader, readings, 0) == ("fp16", False)
    assert run(loader, readings, 12) == ("int2", False), "load moves the level; int2 is loaded once"
    assert set(loader.cache.levels_of(MODEL)) == {"fp16", "int2"}, "fp16 stays resident: memory is comfortable"
    info = loader.last_reoptimization
    assert info is not None and (info.from_level, info.to_level, info.freed_mb) == ("fp16", "int2", 0.0)
    assert run(loader, readings, 0) == ("fp16", True), "back to fp16: a cache hit, no load"
    assert run(loader, readings, 12) == ("int2", True)
    assert loader.reoptimizations == 3, "every level change still counts"
    assert set(loader.cache.levels_of(MODEL)) == {"fp16", "int2"}


@pytest.mark.parametrize(("memory", "level"), [(0.50, "int8"), (0.70, "int4")])
def test_moderate_or_worse_memory_evicts_the_other_levels(make_loader: MakeLoader, memory: float, level: str) -> None:
    loader, readings = make_loader(preload=False)
    assert run(loader, readings, 0) == ("fp16", False)
    fp16_mb = loader.cache.levels_of(MODEL)["fp16"]
    readings.used_fraction = memory
    assert run(loader, readings, 0) == (level, False)
    assert set(loader.cache.levels_of(MODEL)) == {level}, f"at {memory:.0%} used the fp16 entry goes"
    info = loader.last_reoptimization
    assert info is not None and info.freed_mb == round(fp16_mb, 1)


def test_a_cap_with_no_room_beside_evicts_as_before(make_loader: MakeLoader) -> None:
    probe, r = make_loader(preload=False)
    run(probe, r, 0)
    fp16_mb = probe.cache.levels_of(MODEL)["fp16"]
    loader, readings = make_loader(max_cache_mb=fp16_mb + 50, preload=False)  # int2 does not fit beside fp16
    assert run(loader, readings, 0) == ("fp16", False)
    assert run(loader, readings, 12) == ("int2", False)
    assert set(loader.cache.levels_of(MODEL)) == {"int2"}
    assert loader.cache.current_size_mb <= loader.cache.max_size_mb


def test_a_rising_queue_preloads_the_next_level_and_the_next_job_hits_it(make_loader: MakeLoader) -> None:
    loader, readings = make_loader()
    assert run(loader, readings, 0) == ("fp16", False)
    assert loader.preloads == 0, "a flat trend pre-loads nothing"
    assert run(loader, readings, 4) == ("int8", False)  # readings 0, 4: the next job is likely to meet 8
    assert loader.last_preload == (MODEL, "int4") and loader.preloads == 1
    assert loader.cache.stats().models[-1].status == "loaded", "pre-loaded idle, held by no job"
    assert run(loader, readings, 8) == ("int4", True), "the switch was paid before the job came"
    assert loader.last_preload == (MODEL, "int2") and loader.preloads == 2  # 0, 4, 8: next is 12
    assert run(loader, readings, 12) == ("int2", True)
    assert set(loader.cache.levels_of(MODEL)) == set(LEVELS)
    assert loader.cache.current_size_mb <= loader.cache.max_size_mb


def test_a_falling_queue_preloads_the_more_precise_level(make_loader: MakeLoader) -> None:
    loader, readings = make_loader(preload=False)
    assert run(loader, readings, 12) == ("int2", False)
    loader.settings = loader.settings.model_copy(update={"preload": True})
    assert run(loader, readings, 8) == ("int4", False)  # 12, 8: the next job is likely to meet 4
    assert loader.last_preload == (MODEL, "int8")
    assert run(loader, readings, 4) == ("int8", True)


def test_a_preload_never_goes_past_the_cap(make_loader: MakeLoader) -> None:
    probe, r = make_loader(preload=False)
    run(probe, r, 0)
    run(probe, r, 4)
    sizes = probe.cache.levels_of(MODEL)
    cap = sizes["fp16"] + sizes["int8"] + 20  # room for the two levels a job asks for, not for a third
    loader, readings = make_loader(max_cache_mb=cap)
    run(loader, readings, 0)
    run(loader, readings, 4)  # the trend calls for int4, which does not fit beside fp16 and int8
    assert loader.preloads == 0 and loader.last_preload is None
    assert set(loader.cache.levels_of(MODEL)) == {"fp16", "int8"}
    assert loader.cache.current_size_mb <= cap
    assert run(loader, readings, 8) == ("int4", False), "the job loads it itself, evicting as before"
    assert loader.cache.current_size_mb <= cap


def test_no_preload_when_switched_off_or_memory_is_not_comfortable(make_loader: MakeLoader) -> None:
    off, readings = make_loader(preload=False)
    run(off, readings, 0)
    run(off, readings, 4)
    assert off.preloads == 0 and off.preload_thread is None
    moderate, readings = make_loader(readings=Readings(used_fraction=0.5))
    run(moderate, readings, 0)
    run(moderate, readings, 4)
    run(moderate, readings, 8)
    assert moderate.preloads == 0 and moderate.preload_thread is None


def test_the_profile_steers_the_level_and_the_heartbeat_says_why(
    make_loader: MakeLoader, make_runtime: MakeRuntime
) -> None:
    loader, readings = make_loader(preload=False)
    runtime = make_runtime(loader)
    seconds = {"fp16": 1.0, "int8": 0.8, "int4": 0.6, "int2": 0.6}
    asked: list[str] = []

    def profiles(model: str) -> dict[str, LevelStats]:
        asked.append(model)
        return {lvl: LevelStats(jobs=20, seconds_per_job=s, pass_rate=0.5) for lvl, s in seconds.items()}

    runtime.manager.profile_source = profiles
    assert run(loader, readings, 12) == ("int4", False), "the matrix asks for int2, which is no faster than int4"
    assert asked == [MODEL]
    runtime.heartbeat.beat()
    [state] = live_workers(runtime.client)
    choice = state.choices[MODEL]
    assert (choice.level, choice.matrix_level) == ("int4", "int2")
    assert "int2 skipped: not 10% faster than int4 on this host (0.60 s vs 0.60 s per job)" in choice.reasons

    def down(model: str) -> dict[str, LevelStats]:
        raise ConnectionError("profile store unreachable")

    runtime.manager.profile_source = down
    assert run(loader, readings, 12)[0] == "int2", "without its profile the worker decides by the matrix"
