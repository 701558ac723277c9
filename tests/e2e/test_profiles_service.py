"""Level profiles with real processes: a worker calibrates its default model at start, and a job stops it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.e2e.conftest import Service, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.model]
LEVELS = ("fp16", "int8", "int4", "int2")


def profiles(service: Service) -> dict[str, dict[str, Any]]:
    """The default model's profiles on this host, by level."""
    answer = requests.get(service.url("/api/v1/quantization/profiles?model=gemma-3-270m&host=e2e"), timeout=10)
    assert answer.status_code == 200, answer.text
    return {p["level"]: p for p in answer.json()["profiles"]}


def test_a_worker_calibrates_its_default_model_at_start_then_real_jobs_add_to_it(service: Service) -> None:
    service.start_worker(extra_env={"DYNAQUANT_CALIBRATE": "1", "DYNAQUANT_DEFAULT_MAX_TOKENS": "16"})
    service.start_web()
    wait_until(
        lambda: all(profiles(service).get(lvl, {}).get("calibration_jobs") for lvl in LEVELS),
        300,
        "every level calibrated at worker start",
    )
    seeded = profiles(service)
    for level in LEVELS:
        p = seeded[level]
        assert p["real_jobs"] == 0 and p["checked"] == p["calibration_jobs"]
        assert p["resident_mb"] and p["estimated_mb"] and p["decode_tokens_per_second"], p
        print(
            level,
            {
                k: p[k]
                for k in (
                    "jobs",
                    "seconds_per_job",
                    "decode_tokens_per_second",
                    "prompt_tokens_per_second",
                    "resident_mb",
                    "estimated_mb",
                    "estimate_error",
                    "pass_rate",
                    "grade_error",
                )
            },
        )
    body = {"text": "Bees carry pollen from flower to flower, which helps plants make seeds.", "grade_level": 4,
            "max_tokens": 16, "force_quantization": "int4"}  # fmt: skip
    job_id = requests.post(service.url("/api/v1/jobs"), json=body, timeout=10).json()["job_id"]
    assert service.wait_job(job_id)["status"] == "succeeded"
    wait_until(lambda: profiles(service)["int4"]["real_jobs"] == 1, 30, "the job counted in int4's profile")
