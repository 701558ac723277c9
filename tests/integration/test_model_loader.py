"""ModelLoader on the real bundled model: re-optimisation, memory safety, bad input, simplify_text."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Readings
from tests.integration.conftest import PARAGRAPH
from worker.errors import InputError, InsufficientMemoryError, ModelLoadError, ModelNotFoundError
from worker.model_loader import ModelLoader
from worker.policy import Request, rank
from worker.registry import ModelSpec, Registry, load_models_file
from worker.simplify import simplify_text

MODEL = "gemma-3-270m"
MakeLoader = Callable[..., tuple[ModelLoader, Readings]]


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
    assert info == {"model": MODEL, "from_level": "fp16", "to_level": second.level, "freed_mb": round(fp16_mb, 1)}

    third = loader.load_model(MODEL)
    assert third is second and loader.reoptimizations == 1, "a steady level is a cache hit, not a reload"


@pytest.mark.model
def test_job_wishes_do_not_count_as_reoptimisation(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    with loader.acquire(MODEL, Request(task_priority="speed")) as lease:
        assert lease.level == "int8" and lease.reoptimization is None
        assert loader.cache.stats()["models"][0]["status"] == "in_use"
    assert loader.cache.stats()["models"][0]["status"] == "loaded"
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
    ("kwargs", "field"),
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
def test_bad_input_is_rejected_before_loading(
    make_loader: MakeLoader, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, object], field: str
) -> None:
    monkeypatch.setenv("DYNAQUANT_MAX_TEXT_CHARS", "60")
    loader, _ = make_loader()
    args: dict[str, object] = {"text": "Plants make food from light.", "grade_level": 5, "subject": "Science"}
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        simplify_text(loader, **args)  # type: ignore[arg-type]
    assert err.value.field == field
    assert len(loader.cache) == 0, "nothing is loaded for a bad request"


@pytest.mark.model
def test_simplify_text_result(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    result = simplify_text(loader, PARAGRAPH, 6, "Science", Request(force_quantization="int4"), max_tokens=24)
    assert json.loads(json.dumps(result)) == result, "JSON-able"
    assert result["text"] and result["level"] == "int4" and result["model"] == MODEL and result["backend"] == "gguf"
    attempts = len(result["attempts"])  # the quality gate may retry: tokens and seconds count every attempt
    assert result["tokens_in"] > 200 * attempts and 0 < result["tokens_out"] <= 24 * attempts
    assert result["load_seconds"] > 0 and result["generation_seconds"] > 0 and result["tokens_per_second"] > 0
    assert isinstance(result["readability_grade"], float)
    assert result["memory_used"] == pytest.approx(0.10, abs=0.01) and result["load"] == 0
    assert result["reoptimized"] is None and result["cache_hit"] is False
    again = simplify_text(loader, PARAGRAPH, 6, "Science", Request(force_quantization="int4"), max_tokens=24)
    assert again["cache_hit"] is True and again["load_seconds"] == 0 and again["text"] == result["text"]
