"""The pure parts of level profiles: what a job's result says about its level, the profile record, shadow picks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.states import job_result
from worker.contracts import AttemptRecord, JobSpec, WorkerModel
from worker.profiles import job_sample as sample_of
from worker.profiles import parse_profile, profile_key, stats_of
from worker.shadow import ShadowSampler, neighbour, shadow_spec


def attempt(level: str, verdict: str = "pass", grade: float | None = 6.0, n: int = 1, **extra: Any) -> AttemptRecord:
    """One draft of the gate."""
    strategy = "draft" if n == 1 else "escalate"
    return AttemptRecord.model_validate(
        {
            "attempt": n,
            "strategy": strategy,
            "level": level,
            "grade": grade,
            "verdict": verdict,
            "seconds": 1.0,
            **extra,
        }
    )


def test_a_job_at_one_level_gives_speed_and_first_draft_quality() -> None:
    result = job_result(
        generation_seconds=2.0,
        prompt_seconds=0.5,
        tokens_in=200,
        tokens_out=30,
        attempts=[attempt("int4", "pass", 6.0), attempt("int4", "needs_review", 9.0)],  # two parts, one each
    )
    sample = sample_of(result)
    assert sample.level == "int4" and sample.seconds == 2.0
    assert sample.prompt_tokens_per_second == 400.0 and sample.decode_tokens_per_second == 20.0
    assert sample.passed == 0.5 and sample.grade_error == 2.5  # |6-5| and |9-5|, averaged


def test_an_escalated_job_gives_quality_only() -> None:
    result = job_result(attempts=[attempt("int4", "needs_review", 8.0), attempt("int8", "pass", 5.0, n=2)])
    sample = sample_of(result)
    assert sample.passed == 0.0 and sample.grade_error == 3.0
    assert sample.seconds is None and sample.decode_tokens_per_second is None, "int8's retry is not charged to int4"


def test_without_prompt_timing_decode_speed_spans_the_whole_call() -> None:
    sample = sample_of(job_result(generation_seconds=0.5, tokens_out=10, prompt_seconds=None))
    assert sample.prompt_tokens_per_second is None and sample.decode_tokens_per_second == 20.0
    assert sample.passed is None, "no attempt and no report: nothing said about quality"


def test_a_profile_hash_reads_as_the_record_with_the_estimate_error() -> None:
    raw = {
        "host": "h", "device": "cpu", "model": "m", "level": "int2", "jobs": "3", "real": "1", "shadow": "2",
        "seconds_per_job": "1.23456", "resident_mb": "200", "estimated_mb": "150", "pass_rate": "0.5",
        "updated_at": "10",
    }  # fmt: skip
    profile = parse_profile(raw)
    assert profile is not None
    assert (profile.jobs, profile.real_jobs, profile.calibration_jobs, profile.shadow_jobs) == (3, 1, 0, 2)
    assert profile.seconds_per_job == 1.2346 and profile.estimate_error == -0.25
    stats = stats_of(profile)
    assert stats.jobs == 3 and stats.pass_rate == 0.5 and stats.resident_bytes == 200 * 1024**2
    assert parse_profile({**raw, "level": "int3"}) is None and parse_profile({"jobs": "1"}) is None


def test_profile_keys_name_host_device_model_and_level() -> None:
    assert profile_key("h", "cuda", "m", "int8") == "dq:profile:h:cuda:m:int8"


@pytest.mark.parametrize(
    ("level", "supported", "jobs", "ceiling", "expected"),
    [
        ("int4", ("fp16", "int8", "int4", "int2"), {}, None, "int2"),  # a tie goes to the step down
        ("int4", ("fp16", "int8", "int4", "int2"), {"int2": 9, "int8": 1}, None, "int8"),
        ("fp16", ("fp16", "int8", "int4", "int2"), {}, None, "int8"),
        ("int2", ("fp16", "int8", "int4", "int2"), {}, None, "int4"),
        ("fp16", ("fp16", "int8"), {"int8": 50}, None, "int8"),
        ("fp16", ("fp16", "int4"), {}, None, "int4"),  # neighbours among the supported levels
        ("int4", ("fp16", "int8", "int4", "int2"), {"int2": 5}, "int4", "int2"),  # never above the ceiling
        ("int4", ("int4",), {}, None, None),
        ("int8", ("int4", "int2"), {}, None, None),
    ],
)
def test_the_shadow_level_is_a_neighbour_with_fewer_jobs(
    level: str, supported: tuple[str, ...], jobs: dict[str, int], ceiling: str | None, expected: str | None
) -> None:
    assert neighbour(level, supported, jobs, ceiling) == expected


def test_the_sampler_keeps_a_share_of_jobs_bounded_and_never_forced_ones() -> None:
    spec = JobSpec(text="Plants grow.", grade_level=5, model="m", max_tokens=16)
    sampler = ShadowSampler(share=0.5, keep=4, rng=random.Random(1))
    kept = sum(sampler.offer(spec, job_result()) for _ in range(200))
    assert 60 < kept < 140 and len(sampler) == 4, "about half kept, at most `keep` held"
    always = ShadowSampler(share=1.0)
    assert not always.offer(spec.model_copy(update={"force_quantization": "int4"}), job_result())
    assert not ShadowSampler(share=0.0).offer(spec, job_result())
    assert always.offer(spec, job_result(level="int8"))
    taken = always.take()
    assert taken is not None and taken.level == "int8" and always.take() is None


def test_a_shadow_job_is_the_same_text_forced_with_one_draft() -> None:
    spec = JobSpec(text="Plants grow.", grade_level=5, model="m", max_tokens=16, min_quantization="int8")
    shadow = shadow_spec(spec, "int2")
    assert (shadow.text, shadow.grade_level, shadow.model) == (spec.text, 5, "m")
    assert shadow.force_quantization == "int2" and shadow.min_quantization is None and shadow.quality_check is False


def test_a_cached_model_links_to_its_hosts_profiles() -> None:
    model = WorkerModel.model_validate(
        {
            "name": "a b",
            "level": "int4",
            "size_mb": 1,
            "access_count": 1,
            "in_use": False,
            "last_used": 0,
            "worker": "w@h",
        }
    )
    assert model.profiles == "/api/v1/quantization/profiles?model=a+b&host=h"
