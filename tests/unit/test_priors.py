"""The prior: what a fresh host knows of each level before it has measured any, and how its own profile replaces it."""

from __future__ import annotations

import pytest

from tests.conftest import Readings
from worker import policy
from worker.policy import LEVELS, LevelStats, ProfileRules, Request, apply_profile, skip_dominated, with_prior
from worker.priors import KNOWN_ON_CPU, prior_profiles
from worker.quantization import DynamicQuantizationManager
from worker.settings import Settings

RULES = ProfileRules(min_speedup=0.10, pass_margin=0.05, min_jobs=3)
GGUF = dict.fromkeys(LEVELS, "gguf")
SIZES = {"fp16": 3_560_000_000, "int8": 1_890_000_000, "int4": 1_120_000_000, "int2": 750_000_000}
"""Qwen2.5 1.5B's variant files (F16, Q8_0, Q4_K_M, Q2_K), as a model the prior does not know would have them."""


def test_a_fresh_cpu_host_does_not_step_down_to_q2k_for_load() -> None:
    """Under a burst the matrix asks for int2; on CPU it buys nothing over int4, so the prior stops at int4."""
    for model in ("qwen2.5-1.5b", "some-unknown-model"):
        profiles = with_prior({}, prior_profiles(model, "cpu", GGUF, SIZES), RULES)
        level, reasons = apply_profile("int2", "fp16", profiles, RULES)
        assert level in ("int4", "int8"), (model, reasons)
        assert level != "int2" and any("int2 skipped" in r and "shipped prior" in r for r in reasons), reasons
    assert apply_profile("int2", "fp16", {}, RULES)[0] == "int2"  # without the prior the matrix stood


def test_the_known_model_runs_int4_under_load_and_skips_int8_at_rest() -> None:
    profiles = with_prior({}, prior_profiles("qwen2.5-1.5b", "cpu", GGUF, SIZES), RULES)
    assert apply_profile("int2", "fp16", profiles, RULES)[0] == "int4"
    level, reasons = skip_dominated("int8", profiles, RULES)
    assert level == "int4" and "x int8's time per job" in reasons[0]
    assert skip_dominated("fp16", profiles, RULES)[0] == "fp16"  # fp16's pass rate is not known: it is kept


def test_on_a_gpu_the_bytes_decide_and_q2k_may_be_taken() -> None:
    profiles = with_prior({}, prior_profiles("qwen2.5-1.5b", "cuda", GGUF, SIZES), RULES)
    assert profiles["int2"].seconds_per_job < profiles["int4"].seconds_per_job
    assert apply_profile("int2", "fp16", profiles, RULES)[0] == "int2"


def test_levels_on_another_backend_get_no_prior() -> None:
    backends = {"fp16": "transformers", "int8": "transformers", "int4": "gguf", "int2": "gguf"}
    assert set(prior_profiles("some-unknown-model", "cpu", backends, SIZES)) == {"int4", "int2"}


def test_the_hosts_measured_profile_replaces_the_prior() -> None:
    """This host measured int2 twice as fast as int4: its figures win, and the step down is taken."""
    host = {
        "int4": LevelStats(jobs=5, seconds_per_job=2.0, pass_rate=0.2),
        "int2": LevelStats(jobs=5, seconds_per_job=1.0, pass_rate=0.2),
    }
    profiles = with_prior(host, prior_profiles("qwen2.5-1.5b", "cpu", GGUF, SIZES), RULES)
    assert profiles["int2"] == host["int2"] and not profiles["int4"].prior
    assert apply_profile("int2", "fp16", profiles, RULES)[0] == "int2"


def test_prior_times_are_scaled_to_the_hosts_by_a_level_both_have() -> None:
    host = {"int4": LevelStats(jobs=5, seconds_per_job=2.0), "int8": LevelStats(jobs=1, resident_bytes=7)}
    profiles = with_prior(host, prior_profiles("qwen2.5-1.5b", "cpu", GGUF, SIZES), RULES)
    known = KNOWN_ON_CPU["qwen2.5-1.5b"]
    scale = 2.0 / known["int4"].seconds_per_job
    assert profiles["int8"].seconds_per_job == pytest.approx(known["int8"].seconds_per_job * scale)
    assert profiles["int8"].prior and profiles["int8"].resident_bytes == 7  # too few jobs: prior, bytes kept


def test_the_manager_uses_the_prior_only_where_given(fixed_probes) -> None:
    manager = DynamicQuantizationManager(fixed_probes(Readings(queued=40)), Settings(consecutive=1))
    plain = manager.decide_for_model("m", SIZES, 0, Request(), LEVELS)
    prior = prior_profiles("qwen2.5-1.5b", "cpu", GGUF, SIZES)
    weighed = manager.decide_for_model("n", SIZES, 0, Request(), LEVELS, prior=prior)
    assert plain.level == "int2" and weighed.level == "int4"
    assert weighed.matrix_level == "int2" and any("shipped prior" in reason for reason in weighed.reasons)


def test_a_level_above_the_models_own_file_is_kept_only_where_it_is_faster() -> None:
    """A re-encoding of the file cannot be better: without a reason to think it faster it gives way to the file's
    level; where it is measurably faster (Gemma's Q8_0 on CPU) it may stay."""
    assert policy.apply_source_ceiling("fp16", "int4", {}, RULES) == (
        "int4",
        ["fp16 skipped: the model's file is int4; fp16 would re-encode it, no better and no faster"],
    )
    assert policy.apply_source_ceiling("int2", "int4", {}, RULES) == ("int2", [])
    assert policy.apply_source_ceiling("fp16", None, {}, RULES) == ("fp16", [])
    qwen = with_prior({}, prior_profiles("qwen2.5-1.5b", "cpu", GGUF, SIZES), RULES)
    assert policy.apply_source_ceiling("fp16", "int4", qwen, RULES)[0] == "int4"
    gemma = with_prior({}, prior_profiles("gemma-3-270m", "cpu", GGUF, SIZES), RULES)
    level, reasons = policy.apply_source_ceiling("fp16", "int4", gemma, RULES)
    assert level == "int8" and "int8 is faster (0.86x int4's time per job)" in reasons[0]
    assert policy.apply_source_ceiling("int8", "int4", gemma, RULES) == ("int8", [])


def test_the_manager_caps_pressure_and_task_priority_at_the_source_but_not_the_floor(fixed_probes) -> None:
    manager = DynamicQuantizationManager(fixed_probes(Readings()), Settings(consecutive=1))
    idle = manager.decide_for_model("m", SIZES, 0, Request(), LEVELS, source_level="int4")
    assert idle.matrix_level == "fp16" and idle.level == "int4" and idle.wanted == "int4"
    assert manager.level_choices()["m"].level == "int4", "the held level is the capped one"
    quality = manager.decide_for_model("m", SIZES, 0, Request(task_priority="quality"), LEVELS, source_level="int4")
    assert quality.level == "int4"
    floor = manager.decide_for_model("m", SIZES, 0, Request(min_quantization="int8"), LEVELS, source_level="int4")
    assert floor.level == "int8"
