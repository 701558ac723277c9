"""The measured-profile rule: a step down for load only where it buys speed and keeps quality; memory never waits."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import Readings
from worker import policy
from worker.contracts import GIB
from worker.policy import LEVELS, LevelStats, ProfileRules, Request, apply_profile, rank
from worker.probes import Probes
from worker.quantization import DynamicQuantizationManager
from worker.settings import Settings

RULES = ProfileRules(min_speedup=0.10, pass_margin=0.05, min_jobs=5)
levels = st.sampled_from(LEVELS)
stats = st.builds(
    LevelStats,
    jobs=st.integers(0, 50),
    seconds_per_job=st.none() | st.floats(0.05, 10.0),
    pass_rate=st.none() | st.floats(0.0, 1.0),
    resident_bytes=st.none() | st.integers(1, 4 * GIB),
)
profile_maps = st.dictionaries(levels, stats)


def manager(readings: Readings, **changes: object) -> DynamicQuantizationManager:
    caps = {"gguf": dict.fromkeys(LEVELS, True)}
    probes = Probes(device="cpu", memory=readings.memory, load=readings.load, capabilities=caps)
    return DynamicQuantizationManager(probes, Settings(consecutive=1, **changes))


def flat(
    seconds: Mapping[str, float], passes: Mapping[str, float] | None = None, jobs: int = 20
) -> dict[str, LevelStats]:
    """Profiles with the given seconds per job (and pass rates), all measured enough to count."""
    return {
        lvl: LevelStats(jobs=jobs, seconds_per_job=s, pass_rate=(passes or {}).get(lvl)) for lvl, s in seconds.items()
    }


@given(level=levels, unloaded=levels, profiles=profile_maps)
def test_the_profile_lands_between_the_unloaded_level_and_the_matrix(
    level: str, unloaded: str, profiles: dict[str, LevelStats]
) -> None:
    chosen, reasons = apply_profile(level, unloaded, profiles, RULES)
    if rank(level) <= rank(unloaded):
        assert (chosen, reasons) == (level, []), "no step down for load: nothing to weigh"
    else:
        assert rank(unloaded) <= rank(chosen) <= rank(level), "never above the no-load level, never below the matrix"
        assert len(reasons) == rank(level) - rank(unloaded), "one reason per step weighed"


@given(level=levels, unloaded=levels, profiles=profile_maps)
def test_without_enough_measured_jobs_the_matrix_stands(
    level: str, unloaded: str, profiles: dict[str, LevelStats]
) -> None:
    thin = {
        lvl: LevelStats(min(s.jobs, RULES.min_jobs - 1), s.seconds_per_job, s.pass_rate) for lvl, s in profiles.items()
    }
    assert apply_profile(level, unloaded, thin, RULES)[0] == level
    assert apply_profile(level, unloaded, {}, RULES)[0] == level


@given(level=levels, unloaded=levels, profiles=profile_maps)
def test_a_step_taken_on_measurements_is_at_least_the_speedup_faster(
    level: str, unloaded: str, profiles: dict[str, LevelStats]
) -> None:
    chosen, _ = apply_profile(level, unloaded, profiles, RULES)
    top, low = profiles.get(unloaded), profiles.get(chosen)
    all_measured = all(
        policy.measured(profiles.get(lvl), RULES) and profiles[lvl].seconds_per_job is not None for lvl in LEVELS
    )
    stepped = rank(level) > rank(unloaded) and chosen != unloaded
    if stepped and all_measured and top is not None and low is not None:
        assert top.seconds_per_job is not None and low.seconds_per_job is not None
        assert low.seconds_per_job <= top.seconds_per_job * (1 - RULES.min_speedup) + 1e-12


@given(level=levels, unloaded=levels, base=st.floats(0.1, 5.0), slower=st.floats(1.0, 1.5))
def test_a_lower_level_that_is_not_faster_is_never_taken_for_load(
    level: str, unloaded: str, base: float, slower: float
) -> None:
    profiles = flat({lvl: base * slower**i for i, lvl in enumerate(LEVELS)})
    chosen, _ = apply_profile(level, unloaded, profiles, RULES)
    assert chosen == (unloaded if rank(level) > rank(unloaded) else level)


def test_the_reasons_say_why_in_words() -> None:
    profiles = flat({"int8": 1.0, "int4": 1.00, "int2": 1.02}, {"int8": 0.42, "int4": 0.40, "int2": 0.40})
    chosen, reasons = apply_profile("int2", "int8", profiles, RULES)
    assert chosen == "int8"
    assert reasons == [
        "int4 skipped: not 10% faster than int8 on this host (1.00 s vs 1.00 s per job)",
        "int2 skipped: not 10% faster than int8 on this host (1.02 s vs 1.00 s per job)",
    ]
    poor = flat({"int4": 1.0, "int2": 0.5}, {"int4": 0.40, "int2": 0.12})
    assert apply_profile("int2", "int4", poor, RULES) == ("int4", ["int2 skipped: pass rate 12% vs 40% at int4"])
    good = flat({"int4": 1.0, "int2": 0.8}, {"int4": 0.40, "int2": 0.37})
    assert apply_profile("int2", "int4", good, RULES) == (
        "int2",
        ["int2 for load: 0.80 s vs 1.00 s per job, pass rate 37% vs 40% at int4"],
    )


def test_a_step_is_weighed_against_the_level_kept_so_far() -> None:
    # int8 buys nothing over fp16, int4 does: the worker goes straight from fp16 to int4.
    profiles = flat({"fp16": 1.0, "int8": 0.99, "int4": 0.7, "int2": 0.68})
    chosen, reasons = apply_profile("int2", "fp16", profiles, RULES)
    assert chosen == "int4"
    assert reasons[0].startswith("int8 skipped") and reasons[1].startswith("int4 for load")
    assert reasons[2] == "int2 skipped: not 10% faster than int4 on this host (0.68 s vs 0.70 s per job)"


def test_unsupported_levels_are_not_stepped_through() -> None:
    profiles = flat({"fp16": 1.0, "int8": 0.5, "int4": 0.45})
    assert apply_profile("int4", "fp16", profiles, RULES, ["fp16", "int4"]) == (
        "int4",
        ["int4 for load: 0.45 s vs 1.00 s per job"],
    )


def test_a_zero_speedup_setting_asks_only_for_faster() -> None:
    rules = ProfileRules(min_speedup=0.0, pass_margin=0.05, min_jobs=5)
    assert apply_profile("int4", "int8", flat({"int8": 1.0, "int4": 0.99}), rules)[0] == "int4"
    level, reasons = apply_profile("int4", "int8", flat({"int8": 1.0, "int4": 1.0}), rules)
    assert level == "int8" and "not faster than int8" in reasons[0]


def test_measured_footprints_replace_the_estimates() -> None:
    estimates = {"fp16": 1000, "int8": 600, "int4": 400}
    profiles = {"fp16": LevelStats(jobs=0, resident_bytes=1500), "int4": LevelStats(jobs=9)}
    assert policy.measured_bytes(estimates, profiles) == {"fp16": 1500, "int8": 600, "int4": 400}


@pytest.mark.parametrize(
    ("history", "expected"),
    [([], 0), ([3], 3), ([2, 2, 2], 2), ([0, 2, 4, 6], 8), ([9, 6, 3], 0), ([12, 10, 8, 6], 4), ([1, 1, 1, 1, 9], 12)],
)
def test_the_trend_extends_the_recent_load_readings(history: list[int], expected: int) -> None:
    assert policy.predicted_load(history) == expected


@given(st.lists(st.integers(0, 100), max_size=20))
def test_the_trend_is_never_negative_and_follows_the_direction(history: list[int]) -> None:
    predicted = policy.predicted_load(history)
    assert predicted >= 0
    recent = history[-policy.TREND_WINDOW :]
    if len(recent) >= 2 and recent[-1] > recent[0]:
        assert predicted >= recent[-1]
    if len(recent) >= 2 and recent[-1] < recent[0]:
        assert predicted <= recent[-1]


def test_a_negative_load_in_the_trend_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        policy.predicted_load([1, -2])


ESTIMATES = {"fp16": 640 * 1024**2, "int8": 360 * 1024**2, "int4": 250 * 1024**2, "int2": 200 * 1024**2}


@settings(max_examples=200, deadline=None)
@given(memory=st.floats(0.0, 0.99), load=st.integers(0, 30))
def test_with_no_profile_the_manager_decides_as_the_matrix(memory: float, load: int) -> None:
    readings = Readings(used_fraction=memory, queued=load)
    m = manager(readings)
    reading = readings.memory()
    expected = policy.decide_projected(reading.used_bytes, reading.total_bytes, 0, ESTIMATES, load, m.thresholds)
    decision = m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS)
    assert decision.level == decision.wanted == decision.matrix_level == expected
    choice = m.level_choices()["m"]
    assert (choice.level, choice.matrix_level) == (expected, expected)


@settings(max_examples=200, deadline=None)
@given(memory=st.floats(0.0, 0.99), load=st.integers(0, 30), base=st.floats(0.2, 3.0))
def test_with_flat_profiles_load_never_steps_down_and_memory_always_does(memory: float, load: int, base: float) -> None:
    readings = Readings(used_fraction=memory, queued=load)
    m = manager(readings)
    m.profile_source = lambda model: flat(dict.fromkeys(LEVELS, base))
    reading = readings.memory()
    unloaded = policy.decide_projected(reading.used_bytes, reading.total_bytes, 0, ESTIMATES, 0, m.thresholds)
    matrix = policy.decide_projected(reading.used_bytes, reading.total_bytes, 0, ESTIMATES, load, m.thresholds)
    decision = m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS)
    assert decision.level == unloaded, "no level is faster: the worker stays at the no-load level"
    assert decision.matrix_level == matrix
    assert rank(decision.level) >= rank(unloaded), "a memory step is never undone"


def test_a_measured_footprint_that_does_not_fit_is_never_chosen() -> None:
    total, others = 16 * GIB, 5 * GIB
    readings = Readings(used_fraction=others / total)
    m = manager(readings)
    estimates = {"fp16": GIB, "int8": GIB // 2, "int4": GIB // 4, "int2": GIB // 8}
    assert m.decide_for_model("m", estimates, 0, Request(), LEVELS).level == "fp16", "estimated: 6 of 16 GiB"
    m.forget("m")
    m.profile_source = lambda model: {"fp16": LevelStats(jobs=1, resident_bytes=3 * GIB)}  # measured: 8 of 16 GiB
    decision = m.decide_for_model("m", estimates, 0, Request(), LEVELS)
    assert decision.level == "int8"
    assert "fp16 does not fit its measured footprint here: int8 for memory" in decision.reasons


def test_job_wishes_apply_after_the_profile() -> None:
    readings = Readings(used_fraction=0.1, queued=12)  # the matrix says int2 for load
    m = manager(readings)
    m.profile_source = lambda model: flat({"fp16": 1.0, "int8": 0.8, "int4": 0.6, "int2": 0.6})
    assert m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS).level == "int4"
    assert m.decide_for_model("m", ESTIMATES, 0, Request("speed"), LEVELS).level == "int2"
    assert m.decide_for_model("m", ESTIMATES, 0, Request("quality"), LEVELS).level == "int8"
    assert m.decide_for_model("m", ESTIMATES, 0, Request(min_quantization="fp16"), LEVELS).level == "fp16"
    assert m.decide_for_model("m", ESTIMATES, 0, Request(ceiling="int2"), LEVELS).level == "int2"
    forced = m.decide_for_model("m", ESTIMATES, 0, Request(force_quantization="fp16"), LEVELS)
    assert forced.level == "fp16"
    choice = m.level_choices()["m"]
    assert (choice.level, choice.matrix_level) == ("int4", "int2"), "a forced job leaves the model's choice alone"
    assert choice.reasons[0] == "matrix: int2 at comfortable memory and load 12"
    assert "int2 skipped: not 10% faster than int4 on this host (0.60 s vs 0.60 s per job)" in choice.reasons


def test_profile_settings_reach_the_rule() -> None:
    m = manager(Readings(used_fraction=0.1, queued=12), profile_min_speedup=0.5, profile_min_jobs=30)
    assert m.profile_rules == ProfileRules(min_speedup=0.5, pass_margin=0.05, min_jobs=30)
    m.profile_source = lambda model: flat({"fp16": 1.0, "int8": 0.8, "int4": 0.45, "int2": 0.4}, jobs=29)
    assert m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS).level == "int2", "29 jobs: too few to count"
    m.profile_source = lambda model: flat({"fp16": 1.0, "int8": 0.8, "int4": 0.45, "int2": 0.4}, jobs=30)
    assert m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS).level == "int4", "int4 is the first 50% faster"


def test_a_failing_profile_source_never_fails_a_decision(caplog: pytest.LogCaptureFixture) -> None:
    m = manager(Readings(used_fraction=0.1, queued=12))

    def down(model: str) -> Mapping[str, LevelStats]:
        raise ConnectionError("Redis is down")

    m.profile_source = down
    with caplog.at_level(logging.WARNING, logger="worker.quantization"):
        decision = m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS)
    assert decision.level == "int2", "the matrix alone decides"
    assert "could not read the level profiles of m (Redis is down)" in caplog.text


def test_hysteresis_is_named_in_the_choice() -> None:
    readings = Readings(used_fraction=0.1)
    caps = {"gguf": dict.fromkeys(LEVELS, True)}
    probes = Probes(device="cpu", memory=readings.memory, load=readings.load, capabilities=caps)
    m = DynamicQuantizationManager(probes, Settings(consecutive=3))
    assert m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS, now=0).level == "fp16"
    readings.queued = 12
    decision = m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS, now=1)
    assert decision.level == "fp16" and decision.held_back
    assert m.level_choices()["m"].reasons[-1] == "held at fp16: int2 must hold a while first (hysteresis)"


@given(level=levels, profiles=profile_maps)
def test_a_dominated_level_is_left_only_for_a_faster_level_that_passes_as_often(
    level: str, profiles: dict[str, LevelStats]
) -> None:
    chosen, reasons = policy.skip_dominated(level, profiles, RULES)
    assert rank(chosen) >= rank(level) and len(reasons) == rank(chosen) - rank(level)
    for higher, lower in zip(
        LEVELS[rank(level) : rank(chosen)], LEVELS[rank(level) + 1 : rank(chosen) + 1], strict=True
    ):
        low, high = profiles[lower], profiles[higher]
        assert low.jobs >= RULES.min_jobs and high.jobs >= RULES.min_jobs
        assert low.seconds_per_job is not None and high.seconds_per_job is not None
        assert low.seconds_per_job <= high.seconds_per_job * 0.9, "at least the speedup faster"
        assert low.pass_rate is not None and high.pass_rate is not None and low.pass_rate >= high.pass_rate


def test_with_no_load_a_level_that_buys_nothing_here_is_skipped() -> None:
    m = manager(Readings(used_fraction=0.1, queued=0))  # the matrix says fp16
    m.profile_source = lambda model: flat(
        {"fp16": 0.86, "int8": 0.60, "int4": 0.63, "int2": 0.64},
        {"fp16": 0.0, "int8": 0.04, "int4": 0.05, "int2": 0.01},
    )
    decision = m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS)
    assert (decision.level, decision.matrix_level) == ("int8", "fp16")
    assert "fp16 skipped: int8 is faster on this host (0.60 s vs 0.86 s per job) and passes as often (4% vs 0%)" in (
        decision.reasons
    )
    assert m.decide_for_model("m", ESTIMATES, 0, Request("quality"), LEVELS).level == "fp16", "a job may still ask"


def test_with_no_load_a_more_precise_level_that_passes_more_often_is_kept() -> None:
    m = manager(Readings(used_fraction=0.1, queued=0))
    m.profile_source = lambda model: flat({"fp16": 0.86, "int8": 0.60}, {"fp16": 0.40, "int8": 0.38})
    decision = m.decide_for_model("m", ESTIMATES, 0, Request(), LEVELS)
    assert decision.level == "fp16", "2 points of pass rate are worth more than speed when nothing waits"


def test_escalation_pays_unless_measured_to_pass_no_more_often() -> None:
    rates = flat({"fp16": 0.9, "int8": 0.6, "int4": 0.6}, {"fp16": 0.0, "int8": 0.05, "int4": 0.02})
    assert not policy.escalation_pays("int8", "fp16", rates, RULES), "fp16 passes less often than int8 here"
    assert policy.escalation_pays("int4", "int8", rates, RULES), "int8 passes more often than int4"
    assert policy.escalation_pays("int2", "int4", rates, RULES), "int2 unmeasured: the gate may try"
    few = flat({"fp16": 0.9, "int8": 0.6}, {"fp16": 0.0, "int8": 0.5}, jobs=RULES.min_jobs - 1)
    assert policy.escalation_pays("int8", "fp16", few, RULES), "too few jobs to say"
