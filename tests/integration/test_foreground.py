"""Jobs own the cores: a level not built yet never makes a job wait, builds run at the lowest priority and die when a
job comes, the shipped prior keeps a fresh host off levels that buy nothing, and a cache clear stays cleared."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Readings
from tests.integration.conftest import PARAGRAPH
from worker.backends.llamacpp import LlamaCppBackend
from worker.builder import Build, VariantBuilds
from worker.contracts import JobSpec
from worker.model_loader import ModelLoader
from worker.policy import Request
from worker.registry import Registry
from worker.runtime import WorkerRuntime
from worker.settings import SMALL_MODEL
from worker.tasks import run_job

MakeLoader = Callable[..., tuple[ModelLoader, Readings]]
MakeRuntime = Callable[..., WorkerRuntime]
MODEL = SMALL_MODEL


def job(**changes: object) -> JobSpec:
    """A short job on the small model."""
    fields = {"text": PARAGRAPH, "grade_level": 5, "subject": "Science", "model": MODEL, "max_tokens": 24}
    return JobSpec.model_validate({**fields, **changes})


def test_a_level_not_built_yet_runs_at_a_built_one_and_is_asked_of_idle_work(
    make_loader: MakeLoader, tmp_path: Path
) -> None:
    """An idle host wants fp16; its F16 file does not exist: the job runs now at the bundled int4, nothing is built."""
    empty = tmp_path / "variants"
    loader, _ = make_loader(gguf=LlamaCppBackend(empty, n_ctx=1024))
    asked: list[tuple[str, str]] = []
    loader.variant_wanted = lambda model, level: asked.append((model, level))
    with loader.acquire(MODEL, Request()) as lease:
        assert lease.decision.wanted == "fp16" and lease.level == "int4"
        assert any("fp16 is not built on this host yet: int4 now" in r for r in lease.decision.reasons)
    assert asked == [(MODEL, "fp16")]
    assert not any(empty.glob("*.F16.gguf")), "no build in the job's path"
    with loader.acquire(MODEL, Request(force_quantization="int8")) as lease:
        assert lease.level == "int8", "a forced level is the user's word: it is built for the job"
    with loader.acquire(MODEL, Request(ceiling="int2")) as lease:
        assert lease.level == "int2", "after a death at int4 the job never goes back above its ceiling for a build"


def test_the_shipped_prior_keeps_a_fresh_host_off_levels_that_buy_nothing(make_loader: MakeLoader) -> None:
    """A burst on a host with no profile: the matrix says int2; on CPU the prior knows int8 is this model's fastest."""
    loader, readings = make_loader(prior=True)
    readings.queued = 40
    with loader.acquire(MODEL, Request()) as lease:
        decision = lease.decision
    assert decision.matrix_level == "int2" and lease.level == "int8", decision.reasons
    assert any("by the shipped prior" in r for r in decision.reasons)
    plain, plain_readings = make_loader(prior=False)
    plain_readings.queued = 40
    with plain.acquire(MODEL, Request()) as lease:
        assert lease.level == "int2"


def test_a_reencoding_of_the_models_file_is_chosen_only_where_it_is_faster(make_loader: MakeLoader) -> None:
    """The small model ships as Q4_K_M: F16 and Q8_0 re-encode the same weights. F16 is slower, so an idle host and a
    job asking for quality never get it; Q8_0 is faster on CPU (shipped prior), so it may stand in. Force still wins."""
    loader, _ = make_loader(prior=True)
    with loader.acquire(MODEL, Request()) as lease:
        assert lease.decision.matrix_level == "fp16" and lease.level == "int8", lease.decision.reasons
        assert any(
            "fp16 skipped: it re-encodes the model's int4 file; int8 is faster" in r for r in lease.decision.reasons
        )
    with loader.acquire(MODEL, Request(task_priority="quality")) as lease:
        assert lease.level == "int8"
    with loader.acquire(MODEL, Request(force_quantization="fp16")) as lease:
        assert lease.level == "fp16"
    spec = loader.registry.get(MODEL)
    assert loader.source_level(spec, ("fp16", "int8", "int4", "int2")) == "int4"
    assert loader.worth_having(spec) == ["int8", "int4", "int2"], "idle work never builds or calibrates F16 here"


def test_a_build_runs_at_the_lowest_priority_and_dies_when_a_job_arrives(tmp_path: Path) -> None:
    source = Registry().get(MODEL).gguf_path
    assert source is not None
    build = Build(MODEL, source, "F16", tmp_path)
    builds = VariantBuilds(threads=2)
    builds.want(build)
    seen: list[int] = []
    started = time.monotonic()

    def job_after_half_a_second() -> bool:
        if builds.running is not None and not seen:
            time.sleep(0.2)  # let the child set its own priority
            seen.append(os.sched_getscheduler(builds.running.pid))
        return time.monotonic() - started > 0.5

    assert builds.run_next(job_after_half_a_second) == f"build of F16 of {MODEL} stopped for a job"
    assert seen == [os.SCHED_IDLE], "the build ran under SCHED_IDLE"
    assert list(tmp_path.iterdir()) in ([], [build.target.with_name(build.target.name + ".lock")]), "nothing left"
    assert builds.pending() == [build], "a stopped build goes back to the front of the line"
    assert builds.run_next(lambda: False) == f"built F16 of {MODEL}"
    assert build.done() and build.target.stat().st_size > 400e6
    builds.want(build)
    assert builds.pending() == [], "a built variant is not queued again"


def test_an_idle_worker_builds_what_a_job_lacked_then_calibrates_on_it(
    make_loader: MakeLoader, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    loader, _ = make_loader(gguf=LlamaCppBackend(tmp_path, n_ctx=1024), default_max_tokens=16)
    runtime = make_runtime(loader, calibration_seconds=60.0, shadow_share=0.0, prior=False)
    spec = job()
    runtime.store.create("f1", spec)
    outcome = run_job(runtime, "f1", spec.model_dump(mode="json"))
    assert outcome["status"] == "succeeded" and outcome["result"]["level"] == "int4"
    assert [b.gguf_type for b in runtime.idle.builds.pending()] == ["F16", "Q8_0", "Q2_K"]
    assert runtime.idle.step() == f"built F16 of {MODEL}"
    assert runtime.idle.step() == f"built Q8_0 of {MODEL}"
    assert runtime.idle.step() == f"built Q2_K of {MODEL}"
    assert runtime.idle.step() == f"calibrated {MODEL}"
    assert set(runtime.profiles.profiles(MODEL)) == {"fp16", "int8", "int4", "int2"}


def test_after_a_cache_clear_idle_work_loads_nothing_until_a_job_ran(
    make_loader: MakeLoader, make_runtime: MakeRuntime
) -> None:
    """Calibration is running (it loaded a model) when the user clears the cache: it stops, and stays stopped."""
    loader, _ = make_loader(default_max_tokens=16)
    runtime = make_runtime(loader, calibration_seconds=120.0, shadow_share=0.0)
    runtime.idle.want_calibration(MODEL)
    runtime.idle.start()
    deadline = time.monotonic() + 60
    while len(loader.cache) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(loader.cache) >= 1, "calibration loaded a model"
    runtime.clear_cache()
    assert len(loader.cache) == 0
    time.sleep(3)
    assert len(loader.cache) == 0, "3 s after the clear, idle work has loaded nothing"
    assert runtime.idle.held() and not runtime.idle.idle()
    assert runtime.idle.calibrator.due(MODEL), "the calibration cut short is still due"
    runtime.idle.note_job_end()
    assert not runtime.idle.held(), "a job ended the quiet period"
