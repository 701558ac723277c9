"""Level profiles on real Redis and the bundled model: jobs, loads, calibration and shadow runs write them."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from tests.conftest import Readings
from tests.integration.conftest import PARAGRAPH
from worker.calibration import Calibrator
from worker.contracts import JobSpec
from worker.idle import QUEUE_CHECK_SECONDS
from worker.model_loader import ModelLoader
from worker.profiles import ProfileStore, Sample, profile_key
from worker.runtime import WorkerRuntime
from worker.settings import SMALL_MODEL
from worker.shadow import Finished
from worker.tasks import run_job

MakeLoader = Callable[..., tuple[ModelLoader, Readings]]
MakeRuntime = Callable[..., WorkerRuntime]
MODEL = SMALL_MODEL


def job(**changes: object) -> JobSpec:
    """A short job on the bundled model."""
    fields: dict[str, object] = {"text": PARAGRAPH, "grade_level": 5, "subject": "Science", "model": MODEL}
    return JobSpec.model_validate({"max_tokens": 40, **fields, **changes})


def test_a_job_updates_its_levels_profile_and_the_load_is_measured(
    make_loader: MakeLoader, make_runtime: MakeRuntime
) -> None:
    loader, _ = make_loader()
    runtime = make_runtime(loader, shadow_share=0.0)
    spec = job(force_quantization="int4")
    runtime.store.create("p1", spec)
    outcome = run_job(runtime, "p1", spec.model_dump(mode="json"))
    assert outcome["status"] == "succeeded"
    result = outcome["result"]
    assert result["prompt_seconds"] is not None and 0 < result["prompt_seconds"] < result["generation_seconds"]
    profile = runtime.profiles.profiles(MODEL)["int4"]
    assert (profile.jobs, profile.real_jobs, profile.calibration_jobs, profile.shadow_jobs) == (1, 1, 0, 0)
    assert profile.seconds_per_job is not None and profile.seconds_per_job > 0
    assert profile.decode_tokens_per_second is not None and profile.decode_tokens_per_second > 0
    assert profile.prompt_tokens_per_second is not None and profile.prompt_tokens_per_second > 0
    assert profile.checked == 1 and profile.pass_rate in (0.0, 1.0)
    assert profile.resident_mb is not None and profile.resident_mb > 0, "the load's RSS delta is recorded"
    assert profile.estimated_mb is not None and profile.estimate_error is not None
    assert profile.host == "it" and profile.device == "cpu"
    stats = runtime.profiles.level_stats(MODEL)
    assert set(stats) == {"int4"} and stats["int4"].jobs == 1 and stats["int4"].resident_bytes
    runtime.store.create("p2", spec)
    run_job(runtime, "p2", spec.model_dump(mode="json"))
    assert runtime.profiles.profiles(MODEL)["int4"].real_jobs == 2


def test_calibration_seeds_every_supported_level_within_the_bound(
    make_loader: MakeLoader, make_runtime: MakeRuntime
) -> None:
    loader, _ = make_loader(default_max_tokens=24)
    runtime = make_runtime(loader, calibration_seconds=300.0)
    levels = loader.supported_levels(loader.registry.get(MODEL))
    assert runtime.idle.calibrator.due(MODEL)
    report = runtime.idle.calibrator.run(MODEL, levels, lambda: False)
    assert report is not None and report.stopped in (None, "time")
    profiles = runtime.profiles.profiles(MODEL)
    assert set(profiles) == set(levels), "every supported level is measured"
    for profile in profiles.values():
        assert profile.calibration_jobs >= 1 and profile.real_jobs == 0
        assert profile.checked == profile.calibration_jobs, "each calibration output went through the checker"
        assert profile.pass_rate is not None and profile.grade_error is not None
    assert not runtime.idle.calibrator.due(MODEL), "a finished calibration is not run again"


def test_calibration_stops_at_its_bound_and_when_a_job_waits(
    make_loader: MakeLoader, make_runtime: MakeRuntime
) -> None:
    loader, _ = make_loader(default_max_tokens=24)
    runtime = make_runtime(loader)
    stopped = Calibrator(runtime.client, runtime.profiles, loader, seconds=300).run(MODEL, ("fp16",), lambda: True)
    assert stopped is not None and stopped.stopped == "job" and stopped.jobs == {}
    bounded = Calibrator(runtime.client, runtime.profiles, loader, seconds=0.5)
    assert bounded.due(MODEL), "a calibration a job cut short is resumed later"
    report = bounded.run(MODEL, ("int8", "int4", "int2"), lambda: False)
    assert report is not None and report.stopped == "time" and sum(report.jobs.values()) < 9
    assert not bounded.due(MODEL), "a calibration that ran to its bound is done"


def test_calibration_is_skipped_when_set_off(make_loader: MakeLoader, make_runtime: MakeRuntime) -> None:
    loader, _ = make_loader()
    runtime = make_runtime(loader, calibrate=False)
    runtime.idle.want_calibration(MODEL)
    assert runtime.idle.step() is None, "nothing to do: calibration is off"
    assert runtime.profiles.profiles(MODEL) == {}
    assert len(loader.cache) == 0


def test_two_workers_on_one_host_do_not_both_calibrate(make_loader: MakeLoader, make_runtime: MakeRuntime) -> None:
    loader, _ = make_loader()
    runtime = make_runtime(loader)
    lock = f"dq:calibrating:{runtime.profiles.host}:cpu:{MODEL}"
    runtime.client.set(lock, "another-worker", ex=60)
    assert runtime.idle.calibrator.run(MODEL, ("int4",), lambda: False) is None
    assert runtime.profiles.profiles(MODEL) == {}


def test_a_shadow_run_records_a_shadow_job_and_leaves_the_stored_result(
    make_loader: MakeLoader, make_runtime: MakeRuntime
) -> None:
    loader, _ = make_loader()
    runtime = make_runtime(loader, shadow_share=1.0, calibrate=False)
    spec = job(min_quantization="int4")
    runtime.store.create("s1", spec)
    outcome = run_job(runtime, "s1", spec.model_dump(mode="json"))
    assert outcome["status"] == "succeeded"
    stored = runtime.store.get("s1")
    assert stored is not None and stored.result is not None
    level = stored.result.level
    assert len(runtime.idle.sampler) == 1, "share 1: the finished job is kept for a shadow run"
    done = runtime.idle.step()
    assert done is not None and done.startswith("shadow run at "), done
    shadow_level = done.removeprefix("shadow run at ")
    assert shadow_level != level
    profiles = runtime.profiles.profiles(MODEL)
    assert profiles[shadow_level].shadow_jobs == 1 and profiles[shadow_level].real_jobs == 0
    assert profiles[level].real_jobs == 1 and profiles[level].shadow_jobs == 0
    after = runtime.store.get("s1")
    assert after is not None and after.result == stored.result and after.status == "succeeded"


def test_a_shadow_run_stops_when_a_job_arrives(make_loader: MakeLoader, make_runtime: MakeRuntime) -> None:
    loader, readings = make_loader()
    runtime = make_runtime(loader, shadow_share=1.0, calibrate=False)
    asked: list[int] = []

    def active() -> bool:  # the idle work asks after every token: the job arrives at the second one
        asked.append(1)
        if len(asked) == 2:
            runtime.begin_job("real-job")
        return runtime.active_job is not None

    runtime.idle._active = active
    loader.load_model(MODEL, force_quantization="int2")  # loaded up front: the stop lands in generation
    outcome = runtime.idle.shadow(Finished(job(max_tokens=400), "int4"))
    assert outcome == "shadow run stopped" and len(asked) == 2, "stopped at the token after the job came"
    assert runtime.profiles.profiles(MODEL)["int2"].jobs == 0, "a stopped shadow run records nothing (the load only)"
    runtime.active_job = None
    readings.queued = 1
    time.sleep(QUEUE_CHECK_SECONDS)  # the queue is read at most this often
    assert runtime.idle.busy(), "a job waiting in the queue counts as busy too"


def test_rolling_figures_are_the_mean_then_exponentially_weighted(worker_redis: redis.Redis) -> None:
    store = ProfileStore(worker_redis, "h", "cpu", ttl_days=1)
    for value in range(1, 11):  # the first ten: their plain mean
        store.record("m", Sample("int4", seconds=float(value)))
    assert store.profiles("m")["int4"].seconds_per_job == 5.5
    store.record("m", Sample("int4", seconds=16.5))  # then each new sample moves it a tenth of the way
    profile = store.profiles("m")["int4"]
    assert profile.seconds_per_job == 6.6 and profile.jobs == 11 and profile.checked == 0
    assert 0 < worker_redis.ttl(profile_key("h", "cpu", "m", "int4")) <= 86400, "it expires a TTL after its update"
    store.record("m", Sample("int4", passed=1.0))
    assert store.profiles("m")["int4"].seconds_per_job == 6.6, "a sample without a figure leaves it alone"


def test_an_idle_worker_runs_its_shadow_jobs_by_itself(make_loader: MakeLoader, make_runtime: MakeRuntime) -> None:
    loader, _ = make_loader()
    runtime = make_runtime(loader, shadow_share=1.0, calibrate=False)
    runtime.start()
    spec = job(force_quantization=None, task_priority="quality", max_tokens=24)
    runtime.store.create("idle-1", spec)
    assert run_job(runtime, "idle-1", spec.model_dump(mode="json"))["status"] == "succeeded"
    deadline = time.monotonic() + 120
    while runtime.idle.shadow_runs == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runtime.idle.shadow_runs == 1 and len(runtime.idle.sampler) == 0
    assert sum(p.shadow_jobs for p in runtime.profiles.profiles(MODEL).values()) == 1


def test_calibration_skips_levels_a_worker_died_calibrating(make_loader: MakeLoader, make_runtime: MakeRuntime) -> None:
    loader, _ = make_loader(default_max_tokens=16)
    runtime = make_runtime(loader)
    runtime.client.hset(f"dq:calibration-open:{runtime.profiles.host}:cpu:{MODEL}", "int8", 1)  # a death at int8
    report = runtime.idle.calibrator.run(MODEL, ("fp16", "int8", "int4"), lambda: False)
    assert report is not None and report.levels == ("int4",), "fp16 and int8 are not tried again"
    assert set(runtime.profiles.profiles(MODEL)) == {"int4"}


def test_the_status_shows_the_level_the_next_job_runs_at_profiles_and_hysteresis_included(
    make_loader: MakeLoader, make_runtime: MakeRuntime, worker_redis: redis.Redis
) -> None:
    from tests.conftest import redis_db_url
    from webapp import create_app
    from worker.status import publish

    loader, _ = make_loader(default_model=MODEL)  # comfortable memory, nothing queued: the matrix says fp16
    runtime = make_runtime(loader, shadow_share=0.0, default_model=MODEL)
    for _ in range(3):  # on this host fp16 is 3x slower than int8 and passes no more often
        runtime.profiles.record(MODEL, Sample("fp16", seconds=3.0, passed=0.5))
        runtime.profiles.record(MODEL, Sample("int8", seconds=1.0, passed=0.5))
    state = runtime.snapshot()
    assert state.recommended_level == "int8" and state.recommended_level != loader.manager.select_level(0.1, 0)
    assert any("fp16 skipped: int8 is faster" in reason for reason in state.recommended_reasons)
    publish(worker_redis, state, 30)
    status = create_app({"TESTING": True, "REDIS_URL": redis_db_url(12)}).test_client()
    shown = status.get("/api/v1/quantization/status").get_json()
    assert shown["recommended_level"] == "int8"

    spec = job()
    runtime.store.create("next", spec)
    outcome = run_job(runtime, "next", spec.model_dump(mode="json"))
    assert outcome["status"] == "succeeded" and outcome["result"]["level"] == state.recommended_level
