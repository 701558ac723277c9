"""Request validation that needs no server: jobs, batches, /calculate bodies and headers."""

from __future__ import annotations

from typing import Any

import pytest

from webapp.calculate import calculation, parse_request
from webapp.errors import ApiError
from webapp.extensions import redacted_url
from webapp.idempotency import idempotency_key
from webapp.settings import from_env
from webapp.validation import parse_batch, parse_one
from worker.policy import Thresholds

KNOWN = ["gemma-3-270m", "qwen-7b"]
JOB = {"text": "Cells divide by mitosis.", "grade_level": 6}


def field_of(call: Any) -> str | None:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status == 400
    return caught.value.field


def test_parse_one_normalizes_integral_floats() -> None:
    spec = parse_one({**JOB, "priority": 3.0, "grade_level": 6.0}, KNOWN)
    assert spec.priority == 3 and isinstance(spec.priority, int) and spec.grade_level == 6


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**JOB, "model": 0}, "model"),
        ({**JOB, "model": False}, "model"),
        ({**JOB, "model": "gpt-9"}, "model"),
        ({**JOB, "text": "ok \udc80"}, "text"),
        ({**JOB, "subject": "\ud800"}, "subject"),
        ({**JOB, "priority": 2.5}, "priority"),
    ],
)
def test_parse_one_refuses(payload: dict[str, Any], field: str) -> None:
    assert field_of(lambda: parse_one(payload, KNOWN)) == field


def test_parse_one_takes_empty_or_null_model_as_default() -> None:
    assert parse_one({**JOB, "model": ""}, KNOWN).model == "gemma-3-270m"
    assert parse_one({**JOB, "model": None}, KNOWN).model == "gemma-3-270m"


def test_parse_batch_merges_defaults() -> None:
    specs = parse_batch({"items": [{"text": "a"}, {"text": "b", "priority": 0}], "defaults": {"grade_level": 3,
                        "priority": 7}}, KNOWN, 10)  # fmt: skip
    assert [(s.text, s.grade_level, s.priority) for s in specs] == [("a", 3, 7), ("b", 3, 0)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"items": [JOB], "defaults": {"grade_level": "x"}}, "defaults.grade_level"),
        ({"items": [JOB], "defaults": {"model": 3}}, "defaults.model"),
        ({"items": [JOB, {**JOB, "model": "nope"}]}, "items[1].model"),
        ({"items": [JOB, JOB, {"text": "c"}]}, "items[2].grade_level"),
        ({"items": [JOB] * 11}, "items"),
        ({"items": None}, "items"),
    ],
)
def test_parse_batch_refuses(payload: dict[str, Any], field: str) -> None:
    assert field_of(lambda: parse_batch(payload, KNOWN, 10)) == field


@pytest.mark.parametrize("value", ["", " ", "é", "a" * 256, "tab\tkey"])
def test_idempotency_key_refuses(value: str) -> None:
    assert field_of(lambda: idempotency_key({"Idempotency-Key": value})) == "Idempotency-Key"


def test_idempotency_key_accepts() -> None:
    assert idempotency_key({}) is None
    assert idempotency_key({"Idempotency-Key": "3f1c-ok_~!"}) == "3f1c-ok_~!"


def test_calculate_request_defaults() -> None:
    assert parse_request({"model_size_params": 7}) == (7.0, "balanced", "transformers")


def test_calculation_at_low_memory_and_high_load() -> None:
    basis = {"source": "worker", "worker": "w", "note": "", "used_bytes": 1 * 2**30, "total_bytes": 64 * 2**30,
             "supported": ["fp16", "int8", "int4", "int2"]}  # fmt: skip
    idle = calculation(1.0, "balanced", "transformers", basis, 0, Thresholds())
    assert (
        idle["level"] == "fp16" and idle["compression_ratio"] == "2.0x" and idle["config"] == {"torch_dtype": "float16"}
    )
    busy = calculation(1.0, "balanced", "gguf", basis, 11, Thresholds())
    assert busy["level"] == "int2" and busy["compression_ratio"] == "16.0x" and busy["config"] == {"gguf_type": "Q2_K"}
    assert busy["basis"]["load"] == 11 and busy["basis"]["memory_status"] == "comfortable"


def test_calculation_respects_what_the_worker_supports() -> None:
    basis = {"source": "worker", "worker": "w", "note": "", "used_bytes": 0, "total_bytes": 64 * 2**30,
             "supported": ["int4", "int2"]}  # fmt: skip
    assert calculation(1.0, "quality", "gguf", basis, 0, Thresholds())["level"] == "int4"


def test_redacted_url_hides_only_the_password() -> None:
    assert redacted_url("redis://:pw@h:6380/2") == "redis://:***@h:6380/2"
    assert redacted_url("rediss://user:pw@host/0") == "rediss://user:***@host/0"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_settings_from_env() -> None:
    defaults = from_env({})
    assert defaults["REDIS_URL"] == "redis://127.0.0.1:6379/0" and defaults["API_TOKEN"] is None
    assert defaults["MAX_CONTENT_LENGTH"] == 1024 * 1024 and defaults["MAX_QUEUE"] == 10000
    assert defaults["MAX_BATCH"] == 500 and defaults["CLEAR_WAIT_SECONDS"] == 5.0
    custom = from_env({"API_TOKEN": " t ", "DYNAQUANT_MAX_QUEUE": "7", "DYNAQUANT_MODELS_FILE": "/m.json"})
    assert custom["API_TOKEN"] == "t" and custom["MAX_QUEUE"] == 7 and custom["MODELS_FILE"] == "/m.json"
    with pytest.raises(ValueError, match="DYNAQUANT_MAX_QUEUE"):
        from_env({"DYNAQUANT_MAX_QUEUE": "lots"})
    with pytest.raises(ValueError, match="DYNAQUANT_MAX_BATCH"):
        from_env({"DYNAQUANT_MAX_BATCH": "0"})
