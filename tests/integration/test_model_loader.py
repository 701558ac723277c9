"""ModelLoader on the real bundled model: re-optimisation, memory safety, slow loads, bad input, simplify_text."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from tests.conftest import Readings
from tests.integration.conftest import PARAGRAPH
from worker.backends.llamacpp import LlamaCppBackend, LlamaCppModel
from worker.contracts import JobSpec, JobStatus
from worker.errors import InsufficientMemoryError, ModelLoadError, ModelNotFoundError
from worker.jobs import new_id
from worker.model_loader import Lease, ModelLoader
from worker.policy import Request, rank
from worker.recovery import Sweeper
from worker.registry import ModelSpec, Registry, load_models_file
from worker.runtime import WorkerRuntime
from worker.simplify import simplify_text
from worker.status import clear_acknowledgements, live_workers, request_cache_clear
from worker.tasks import run_job

MODEL = "gemma-3-270m"
MakeLoader = Callable[..., tuple[ModelLoader, Readings]]
MakeRuntime = Callable[..., WorkerRuntime]


def models_file(tmp_path: Path, entries: Any) -> Path:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(entries))
    return path


@pytest.mark.model
def test_pressure_rise_reoptimises_fp16_to_int4(make_loader: MakeLoader) -> None:
    loader, readings = make_loader()
    first = loader.load_model(MODEL)
    assert first.level == "fp16"
    fp16_mb = loader.cache.levels_of(MODEL)["fp16"]

    readings.used_fraction = 0.70  # tight memory: the matrix says int4
    second = loader.load_model(MODEL)
    assert rank(second.level) >= rank("int4")
    assert (MODEL, "fp16") not in loader.cache, "the fp16 entry is dropped"
    assert loader.reoptimizations == 1
    info = loader.last_reoptimization
    assert info is not None
    assert info.model_dump() == {
        "model": MODEL, "from_level": "fp16", "to_level": second.level, "freed_mb": round(fp16_mb, 1)
    }  # fmt: skip

    third = loader.load_model(MODEL)
    assert third is second and loader.reoptimizations == 1, "a steady level is a cache hit, not a reload"


@pytest.mark.model
def test_job_wishes_do_not_count_as_reoptimisation(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    with loader.acquire(MODEL, Request(task_priority="speed")) as lease:
        assert lease.level == "int8" and lease.reoptimization is None
        assert loader.cache.stats().models[0].status == "in_use"
    assert loader.cache.stats().models[0].status == "loaded"
    assert loader.load_model(MODEL).level == "fp16"
    assert loader.reoptimizations == 0
    assert set(loader.cache.levels_of(MODEL)) == {"int8", "fp16"}


@pytest.mark.model
def test_cap_below_fp16_gives_a_level_that_fits(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(max_cache_mb=500)
    with loader.acquire(MODEL) as lease:
        assert lease.decision.level == "fp16", "the matrix asked for fp16 at low pressure"
        assert lease.level == "int8"
        assert loader.cache.current_size_mb <= 500


@pytest.mark.model
def test_evicts_idle_models_before_stepping_down(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(max_cache_mb=800)
    assert loader.load_model(MODEL, force_quantization="int2").level == "int2"
    model = loader.load_model(MODEL)  # fp16 (~640 MB) fits only once the idle int2 entry goes
    assert model.level == "fp16"
    assert loader.cache.keys() == [(MODEL, "fp16")]


def test_cap_below_int2_is_a_clear_error(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(max_cache_mb=100)
    with pytest.raises(InsufficientMemoryError, match="MAX_MODEL_CACHE_MB is 100 MB") as err:
        loader.load_model(MODEL)
    assert "int2" in str(err.value) and "smaller model" in str(err.value)
    assert len(loader.cache) == 0


def test_too_little_free_memory_is_a_clear_error(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(readings=Readings(used_fraction=0.99, total_bytes=16 * 1024**3))
    with pytest.raises(InsufficientMemoryError, match="of memory is free"):
        loader.load_model(MODEL)


@pytest.mark.model
def test_floor_is_never_crossed_to_fit(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(max_cache_mb=500)
    with pytest.raises(InsufficientMemoryError, match="fp16"):
        loader.load_model(MODEL, min_quantization="fp16")


def test_unknown_model_names_the_known_ones(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'qwen-7b': known models are gemma-3-270m"):
        loader.load_model("qwen-7b", model_size_params=7.0)


def test_missing_gguf_names_the_path(make_loader: MakeLoader, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "qwen.gguf"
    loader, _ = make_loader(
        registry=Registry(models_file(tmp_path, {"qwen-7b": {"gguf": str(missing), "params_b": 7}}))
    )
    with pytest.raises(ModelLoadError, match=rf"{missing} does not exist"):
        loader.load_model("qwen-7b")


def test_corrupt_gguf_is_reported(make_loader: MakeLoader, tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"<html>not a model</html>" * 100)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)
    entries = {"junk": {"gguf": str(junk), "params_b": 1}, "cut": {"gguf": str(truncated), "params_b": 1}}
    loader, _ = make_loader(registry=Registry(models_file(tmp_path, entries)))
    with pytest.raises(ModelLoadError, match="is not a GGUF file"):
        loader.load_model("junk")
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        loader.load_model("cut")


def test_hf_dir_without_weights(make_loader: MakeLoader, tmp_path: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    loader, _ = make_loader(registry=Registry(models_file(tmp_path, {"tiny": {"hf": str(empty), "params_b": 0.1}})))
    with pytest.raises(ModelLoadError, match=r"has no weights \(\*\.safetensors"):
        loader.load_model("tiny")


def test_models_file_entries(tmp_path: Path) -> None:
    specs = load_models_file(
        models_file(
            tmp_path,
            {
                "q": {"gguf": "q.gguf", "params_b": 7},
                "both": {"gguf": "/m/x.gguf", "hf": "/m/x", "params_b": 3, "backend": "transformers"},
            },
        )
    )
    assert specs["q"].gguf_path == tmp_path / "q.gguf", "relative paths are read against the file's folder"
    both = specs["both"]
    assert [both.backend_for(level) for level in ("fp16", "int8", "int4", "int2")] == [
        "transformers",
        "transformers",
        "transformers",
        "gguf",
    ]
    assert ModelSpec("g", 1, Path("/x.gguf"), Path("/x")).backend_for("int8") == "gguf", "GGUF is the default"
    for bad, message in [
        ({"x": {"params_b": 1}}, "needs a 'gguf' file or an 'hf' directory"),
        ({"x": {"gguf": "a.gguf"}}, "params_b"),
        ({"x": {"gguf": "a.gguf", "params_b": 1, "backend": "onnx"}}, "backend"),
        ({"x": {"gguf": "a.gguf", "params_b": 1, "size": 3}}, "unknown keys"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_models_file(models_file(tmp_path, bad))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": " \n\t "}, "text"),
        ({"text": "x" * 61}, "text"),
        ({"grade_level": 0}, "grade_level"),
        ({"grade_level": 13}, "grade_level"),
        ({"grade_level": "5"}, "grade_level"),
        ({"subject": " "}, "subject"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 10_000}, "max_tokens"),
    ],
)
def test_a_bad_job_fails_before_loading(
    make_loader: MakeLoader, make_runtime: MakeRuntime, changes: dict[str, object], field: str
) -> None:
    loader, _ = make_loader()
    runtime = make_runtime(loader, max_text_chars=60)
    good = JobSpec(text="Plants make food from light.", grade_level=5, subject="Science", model=MODEL, max_tokens=8)
    runtime.store.create("bad-job", good)
    outcome = run_job(runtime, "bad-job", {**good.model_dump(mode="json"), **changes})
    record = runtime.store.get("bad-job")
    assert outcome["status"] == "failed" and record is not None and record.error is not None
    assert record.error.code == "invalid_input" and record.error.message.startswith(f"{field}: ")
    assert len(loader.cache) == 0, "nothing is loaded for a bad job"


def test_forcing_int2_on_an_hf_only_model_is_a_user_error(
    make_loader: MakeLoader, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    registry = Registry(models_file(tmp_path, {"hf-only": {"hf": str(tmp_path / "checkpoint"), "params_b": 0.27}}))
    loader, _ = make_loader(registry=registry)
    runtime = make_runtime(loader)
    spec = JobSpec(text="Plants make food.", grade_level=5, model="hf-only", force_quantization="int2", max_tokens=8)
    runtime.store.create("hf-int2", spec)
    assert run_job(runtime, "hf-int2", spec.model_dump(mode="json"))["status"] == "failed"
    record = runtime.store.get("hf-int2")
    assert record is not None and record.error is not None
    assert record.error.code == "unsupported_level", "a user's request the worker cannot run is not an internal error"
    assert "force_quantization 'int2'" in record.error.message and "fp16" in record.error.message


@pytest.mark.model
def test_simplify_text_result(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    job = JobSpec(
        text=PARAGRAPH, grade_level=6, subject="Science", force_quantization="int4", model=MODEL, max_tokens=24
    )
    result = simplify_text(loader, job)
    assert json.loads(result.model_dump_json()) == result.model_dump(mode="json"), "JSON-able"
    assert result.text and result.level == "int4" and result.model == MODEL and result.backend == "gguf"
    attempts = len(result.attempts)  # the quality gate may retry: tokens and seconds count every attempt
    assert attempts >= 1 and result.quality is not None and result.quality.target_grade == 6
    assert result.tokens_in > 200 * attempts and 0 < result.tokens_out <= 24 * attempts
    assert result.load_seconds > 0 and result.generation_seconds > 0 and result.tokens_per_second > 0
    assert isinstance(result.readability_grade, float)
    assert result.memory_used == pytest.approx(0.10, abs=0.01) and result.load == 0
    assert result.reoptimized is None and result.cache_hit is False
    again = simplify_text(loader, job)
    assert again.cache_hit is True and again.load_seconds == 0 and again.text == result.text


class SlowLoads(LlamaCppBackend):
    """The real GGUF backend, each load held for `seconds` first (as a large model on a slow disk would be)."""

    def __init__(self, variants_dir: Path, seconds: float = 0.0) -> None:
        super().__init__(variants_dir, n_ctx=1024)
        self.seconds = seconds
        self.loads: list[str] = []
        self.loading = threading.Event()

    def load(self, spec: ModelSpec, level: str) -> LlamaCppModel:
        self.loads.append(level)
        self.loading.set()
        time.sleep(self.seconds)
        return super().load(spec, level)


def seconds_for(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@pytest.mark.model
def test_a_slow_load_stalls_neither_the_heartbeat_nor_a_cache_clear_nor_other_models(
    make_loader: MakeLoader, make_runtime: MakeRuntime, variants_dir: Path
) -> None:
    slow = SlowLoads(variants_dir)
    loader, _ = make_loader(gguf=slow)
    runtime = make_runtime(loader)
    int2 = Request(force_quantization="int2")
    with loader.acquire(MODEL, int2):
        pass  # int2 loaded (quickly) and idle in the cache
    slow.seconds, slow.loading = 3.0, threading.Event()
    leases: dict[str, Lease] = {}

    def job(name: str) -> None:
        with loader.acquire(MODEL, Request(force_quantization="fp16")) as lease:
            leases[name] = lease

    first = threading.Thread(target=job, args=("first",))
    first.start()
    assert slow.loading.wait(30), "the fp16 load never started"
    second = threading.Thread(target=job, args=("second",))  # same model and level: waits for that load
    second.start()
    try:
        started = time.perf_counter()
        with loader.acquire(MODEL, int2) as lease:
            other_seconds = time.perf_counter() - started
        assert lease.cache_hit and other_seconds < 0.5, f"a job on a loaded model waited {other_seconds:.2f} s"

        generation = request_cache_clear(runtime.client)
        beat_seconds = seconds_for(runtime.heartbeat.beat)  # serves the clear request, then publishes the state
        assert loader.loading() == [(MODEL, "fp16")], "the load was still running during the beat"
        assert beat_seconds < 1.0, f"the heartbeat waited {beat_seconds:.2f} s for the load"
        assert (MODEL, "int2") not in loader.cache, "the clear freed the idle model"
        assert clear_acknowledgements(runtime.client, generation)["test-worker@it"].freed_mb > 0
        assert [w.worker for w in live_workers(runtime.client)] == ["test-worker@it"]
    finally:
        first.join(60)
        second.join(60)
    assert slow.loads == ["int2", "fp16"], "the second job for fp16 waited for the first load, not a second one"
    assert leases["second"].model is leases["first"].model and leases["second"].cache_hit
    assert leases["first"].load_seconds >= 3.0 and not leases["first"].cache_hit


@pytest.mark.model
def test_a_worker_slow_in_a_load_keeps_its_job_through_a_cache_clear(
    make_loader: MakeLoader, make_runtime: MakeRuntime, variants_dir: Path
) -> None:
    """A load longer than the heartbeat TTL, with a cache clear asked meanwhile: the heartbeat goes on renewing
    the job's lease, so a sweeper looking for dead workers' jobs never takes it from the living worker."""
    slow = SlowLoads(variants_dir)
    loader, _ = make_loader(gguf=slow)
    runtime = make_runtime(loader, heartbeat_seconds=0.25)
    with loader.acquire(MODEL, Request(force_quantization="int2")):
        pass  # an idle model for the clear to free
    ttl = runtime.settings.heartbeat_ttl
    slow.seconds, slow.loading = ttl + 3.0, threading.Event()
    job_id = new_id()
    runtime.store.create(job_id, JobSpec(text="x", grade_level=5, model=MODEL, max_tokens=4))
    assert runtime.store.start(job_id, runtime.name, ttl) == ("running", 1)
    runtime.begin_job(job_id)
    runtime.start()
    supervisor = Sweeper(runtime.client, runtime.settings)  # what `dynaquant up` runs on every tick

    def job() -> None:
        with loader.acquire(MODEL, Request(force_quantization="fp16")):
            pass

    loading = threading.Thread(target=job)
    loading.start()
    assert slow.loading.wait(30), "the fp16 load never started"
    generation = request_cache_clear(runtime.client)
    swept: list[str] = []
    while loading.is_alive():
        swept += supervisor.sweep()
        time.sleep(0.2)
    loading.join()
    record = runtime.store.get(job_id)
    assert swept == [] and record is not None, swept
    assert record.status == JobStatus.RUNNING and record.worker == runtime.name and record.history == []
    assert record.stage is not None and (record.stage.phase, record.stage.level) == ("running", "fp16")
    assert runtime.name in clear_acknowledgements(runtime.client, generation), "the clear was served during the load"
    assert slow.loads[-1] == "fp16" and runtime.store.lease_holder(job_id) == runtime.name


def test_the_settings_a_loader_is_given_reach_its_backend_and_the_model(
    variants_dir: Path, tmp_path: Path, make_loader: MakeLoader
) -> None:
    # mmap off, a small context, one thread: what the loader is given, not what the environment says
    given, _ = make_loader(mmap=False, n_ctx=512, threads=1, variants_dir=variants_dir, gguf=None)
    loader = ModelLoader(given.manager, given.registry, given.cache, settings=given.settings)
    backend = loader.backend("gguf")
    assert isinstance(backend, LlamaCppBackend)
    assert (backend.use_mmap, backend.n_ctx, backend.n_threads, backend.variants_dir) == (False, 512, 1, variants_dir)
    assert backend.build_for(loader.registry.get(), "int8").directory == variants_dir
    with loader.acquire(None, Request(force_quantization="int4")) as lease:
        model = lease.model
        assert isinstance(model, LlamaCppModel)
        llm = model._llm
        assert llm is not None and llm.n_ctx() == 512
        assert llm.model_params.load_mode == llama_cpp.LLAMA_LOAD_MODE_NONE  # read in, not mapped
