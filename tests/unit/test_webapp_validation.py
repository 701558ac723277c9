"""Request validation that needs no server: jobs, batches, /calculate bodies, headers and settings."""

from __future__ import annotations

from typing import Any

import pytest

from webapp.calculate import calculate
from webapp.errors import ApiError
from webapp.extensions import redacted_url
from webapp.idempotency import idempotency_key
from worker.contracts import GIB, CalculateRequest, MemoryReading, parse_batch, parse_job, validated
from worker.errors import InputError
from worker.policy import LEVELS, Thresholds
from worker.settings import DEFAULT_MODEL, Settings

LIMITS = Settings(max_batch=10, default_model="gemma-3-270m").job_limits(("gemma-3-270m", "qwen-7b"))
JOB = {"text": "Cells divide by mitosis.", "grade_level": 6}


def field_of(call: Any) -> str | None:
    with pytest.raises((ApiError, InputError)) as caught:
        call()
    if isinstance(caught.value, ApiError):
        assert caught.value.status == 400
    return caught.value.field


def test_parse_job_normalizes_integral_floats() -> None:
    spec = parse_job({**JOB, "priority": 3.0, "grade_level": 6.0}, LIMITS)
    assert spec.priority == 3 and isinstance(spec.priority, int) and spec.grade_level == 6


def test_parse_job_takes_empty_or_null_model_as_default() -> None:
    assert parse_job({**JOB, "model": ""}, LIMITS).model == "gemma-3-270m"
    assert parse_job({**JOB, "model": None}, LIMITS).model == "gemma-3-270m"


def test_parse_job_fills_the_defaults_from_the_limits() -> None:
    settings = Settings(default_model="qwen-7b", default_max_tokens=99)
    spec = parse_job(JOB, settings.job_limits(("qwen-7b",)))
    assert (spec.model, spec.max_tokens, spec.subject, spec.task_priority, spec.priority) == (
        "qwen-7b", 99, "General", "balanced", 5,
    )  # fmt: skip


def test_parse_batch_merges_defaults() -> None:
    specs = parse_batch({"items": [{"text": "a"}, {"text": "b", "priority": 0}], "defaults": {"grade_level": 3,
                        "priority": 7}}, LIMITS)  # fmt: skip
    assert [(s.text, s.grade_level, s.priority) for s in specs] == [("a", 3, 7), ("b", 3, 0)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"items": [JOB], "defaults": {"grade_level": "x"}}, "defaults.grade_level"),
        ({"items": [JOB], "defaults": {"model": 3}}, "defaults.model"),
        ({"items": [JOB], "defaults": {"model": "nope"}}, "defaults.model"),
        ({"items": [JOB, {**JOB, "model": "nope"}]}, "items[1].model"),
        ({"items": [JOB, JOB, {"text": "c"}]}, "items[2].grade_level"),
        ({"items": [JOB] * 11}, "items"),
        ({"items": None}, "items"),
    ],
)
def test_parse_batch_refuses(payload: dict[str, Any], field: str) -> None:
    assert field_of(lambda: parse_batch(payload, LIMITS)) == field


@pytest.mark.parametrize("value", ["", " ", "é", "a" * 256, "tab\tkey"])
def test_idempotency_key_refuses(value: str) -> None:
    assert field_of(lambda: idempotency_key({"Idempotency-Key": value})) == "Idempotency-Key"


def test_idempotency_key_accepts() -> None:
    assert idempotency_key({}) is None
    assert idempotency_key({"Idempotency-Key": "3f1c-ok_~!"}) == "3f1c-ok_~!"


def test_calculate_request_defaults() -> None:
    ask = validated(CalculateRequest, {"model_size_params": 7})
    assert (ask.model_size_params, ask.task_priority, ask.backend) == (7.0, "balanced", "transformers")


def memory(used_gib: float, total_gib: float = 64.0) -> MemoryReading:
    total = int(total_gib * GIB)
    return MemoryReading(pool="system", total_bytes=total, available_bytes=total - int(used_gib * GIB), process_bytes=0)


def test_calculation_at_low_memory_and_high_load() -> None:
    ask = CalculateRequest(model_size_params=1.0)
    idle = calculate(ask, memory(1), 0, Thresholds(), LEVELS, "w", "")
    assert idle.level == "fp16" and idle.compression_ratio == "2.0x" and idle.config == {"torch_dtype": "float16"}
    busy = calculate(ask.model_copy(update={"backend": "gguf"}), memory(1), 11, Thresholds(), LEVELS, "w", "")
    assert busy.level == "int2" and busy.compression_ratio == "16.0x" and busy.config == {"gguf_type": "Q2_K"}
    assert busy.basis.load == 11 and busy.basis.memory_status == "comfortable" and busy.basis.source == "worker"


def test_calculation_respects_what_the_worker_supports_and_its_thresholds() -> None:
    ask = CalculateRequest(model_size_params=1.0, task_priority="quality", backend="gguf")
    assert calculate(ask, memory(0), 0, Thresholds(), ["int4", "int2"], "w", "").level == "int4"
    strict = Thresholds(memory_comfortable=0.01, memory_moderate=0.02, memory_tight=0.03, memory_critical=0.04)
    answer = calculate(CalculateRequest(model_size_params=1.0), memory(6.4), 0, strict, LEVELS, "w", "")
    assert answer.level == "int2" and answer.basis.memory_status == "emergency" and answer.basis.thresholds == strict


def test_redacted_url_hides_only_the_password() -> None:
    assert redacted_url("redis://:pw@h:6380/2") == "redis://:***@h:6380/2"
    assert redacted_url("rediss://user:pw@host/0") == "rediss://user:***@host/0"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "API_TOKEN", "DYNAQUANT_MAX_QUEUE", "DYNAQUANT_MODELS_FILE", "DYNAQUANT_DEFAULT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    assert defaults.redis_url == "redis://127.0.0.1:6379/0" and defaults.api_token is None
    assert defaults.max_body_bytes == 1024 * 1024 and defaults.max_queue == 10000
    assert defaults.max_batch == 500 and defaults.clear_wait_seconds == 5.0
    monkeypatch.setenv("API_TOKEN", " t ")
    monkeypatch.setenv("DYNAQUANT_MAX_QUEUE", "7")
    monkeypatch.setenv("DYNAQUANT_MODELS_FILE", "/m.json")
    monkeypatch.setenv("DYNAQUANT_DEFAULT_MODEL", "")
    custom = Settings()
    assert custom.api_token == "t" and custom.max_queue == 7 and str(custom.models_file) == "/m.json"
    assert custom.default_model == DEFAULT_MODEL, "an empty variable means the default, for every reader"
    monkeypatch.setenv("DYNAQUANT_MAX_QUEUE", "lots")
    with pytest.raises(ValueError, match="DYNAQUANT_MAX_QUEUE"):
        Settings()


BAD_SETTINGS = {
    "DYNAQUANT_MAX_BATCH=0": "DYNAQUANT_MAX_BATCH",
    "QUANTIZE_MEMORY_TIGHT=0.3": "must rise",
    "DYNAQUANT_VISIBILITY_TIMEOUT=60": "must exceed DYNAQUANT_TASK_TIME_LIMIT",
    "DYNAQUANT_DEVICE=tpu": "DYNAQUANT_DEVICE",
}


@pytest.mark.parametrize("assignment", BAD_SETTINGS)
def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, assignment: str) -> None:
    variable, value = assignment.split("=", 1)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=BAD_SETTINGS[assignment]):
        Settings()
