"""The decision policy: the project's decision vectors, the rules on top of the matrix, and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from worker import policy
from worker.errors import DynaquantError
from worker.policy import LEVELS, Request, Stabilizer, Thresholds, UnsupportedLevelError
from worker.quantization import DynamicQuantizationManager
from worker.settings import Settings

CASES = Path(__file__).resolve().parents[1] / "data" / "decision_cases.csv"
"""Every cell of the decision matrix (README, "The decision rule") with each task priority and floor."""


def load_cases() -> list[dict[str, str]]:
    with CASES.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_decision_vectors_file_is_present_and_large() -> None:
    assert len(load_cases()) >= 700, f"expected the full decision matrix in {CASES}"


@pytest.mark.parametrize("case", load_cases(), ids=lambda c: "-".join(c.values()))
def test_every_decision_vector(case: dict[str, str], manager: DynamicQuantizationManager) -> None:
    level = manager.select_level(
        float(case["memory_used"]),
        int(case["load"]),
        task_priority=case["task_priority"],
        min_quantization=case["min_quantization"] or None,
    )
    assert level == case["expected_level"]


@pytest.fixture
def manager(fixed_probes) -> DynamicQuantizationManager:
    return DynamicQuantizationManager(fixed_probes(), Settings())


def test_env_thresholds_move_the_bands(fixed_probes, monkeypatch: pytest.MonkeyPatch) -> None:
    default = DynamicQuantizationManager(fixed_probes(), Settings())
    monkeypatch.setenv("QUANTIZE_MEMORY_COMFORTABLE", "0.3")
    monkeypatch.setenv("QUANTIZE_LOAD_LOW", "4")
    tuned = DynamicQuantizationManager(fixed_probes(), Settings())
    assert tuned.MEMORY_COMFORTABLE == 0.3 and tuned.LOAD_LOW == 4
    assert default.select_level(0.35, 0) == "fp16"
    assert tuned.select_level(0.35, 0) == "int8"
    assert default.select_level(0.1, 3) == "int8"
    assert tuned.select_level(0.1, 3) == "fp16"


def test_instance_overrides_apply_at_once(manager: DynamicQuantizationManager) -> None:
    assert manager.select_level(0.35, 0) == "fp16"
    manager.MEMORY_COMFORTABLE = 0.3
    assert manager.select_level(0.35, 0) == "int8"
    manager.LOAD_HIGH = 15
    assert manager.select_level(0.65, 12) == "int4"


@pytest.mark.parametrize("var", ["QUANTIZE_MEMORY_TIGHT", "QUANTIZE_LOAD_HIGH"])
def test_env_threshold_that_is_not_a_number_is_named(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(var, "lots")
    with pytest.raises(ValueError, match=var):
        Settings()


def test_thresholds_must_rise() -> None:
    with pytest.raises(ValueError, match="must rise"):
        Thresholds(memory_comfortable=0.7, memory_moderate=0.6)


def test_force_overrides_matrix_priority_and_floor() -> None:
    t = Thresholds()
    assert policy.decide(0.95, 50, t, Request("quality", "int8", "fp16")) == "fp16"
    assert policy.decide(0.0, 0, t, Request("quality", None, "int2")) == "int2"


def test_forced_level_the_device_cannot_run_is_refused_as_a_user_error() -> None:
    with pytest.raises(UnsupportedLevelError, match=r"force_quantization 'int2'.*fp16, int8, int4") as caught:
        policy.decide(0.0, 0, Thresholds(), Request(force_quantization="int2"), ["fp16", "int8", "int4"])
    assert isinstance(caught.value, DynaquantError) and caught.value.code == "unsupported_level"


def test_floor_applies_after_task_priority() -> None:
    t = Thresholds()
    assert policy.decide(0.9, 0, t, Request("speed", "int4")) == "int4"
    assert policy.decide(0.9, 0, t, Request("quality", "int8")) == "int8"


def test_capability_moves_lower_first_but_never_below_floor() -> None:
    assert policy.apply_capabilities("int8", ["fp16", "int4", "int2"]) == "int4"
    assert policy.apply_capabilities("int8", ["fp16", "int4"], floor="int8") == "fp16"
    assert policy.apply_capabilities("int2", ["fp16", "int8"]) == "int8"
    with pytest.raises(UnsupportedLevelError, match=r"floor 'int8'.*run int4, int2"):
        policy.apply_capabilities("int8", ["int4", "int2"], floor="int8")


def test_capability_rule_inside_decide() -> None:
    transformers_only = ["fp16", "int8", "int4"]
    assert policy.decide(0.95, 0, Thresholds(), Request(), transformers_only) == "int4"


@pytest.mark.parametrize(("level", "weights_gb"), [("fp16", 14.0), ("int8", 7.44), ("int4", 4.29), ("int2", 2.8)])
def test_seven_billion_estimates_use_real_bits_per_weight(level: str, weights_gb: float) -> None:
    assert policy.estimate_weights_gb(7.0, level) == pytest.approx(weights_gb, abs=0.01)
    total = policy.estimate_memory_gb(7.0, level)
    assert total == pytest.approx(weights_gb * 1.10 + 0.25, abs=0.01)


def test_compression_ratio_is_against_fp32() -> None:
    assert [policy.compression_ratio(level) for level in LEVELS] == [2.0, 4.0, 8.0, 16.0]


def test_loader_config_gives_each_backends_load_settings() -> None:
    assert policy.loader_config("int4") == {
        "load_in_4bit": True,
        "bnb_4bit_compute_dtype": "float16",
        "bnb_4bit_quant_type": "nf4",
    }
    assert policy.loader_config("int8") == {"load_in_8bit": True}
    assert policy.loader_config("int2", "gguf") == {"gguf_type": "Q2_K"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.select_level(0.5, 0, min_quantization="int3"), "min_quantization 'int3'.*fp16, int8, int4, int2"),
        (lambda m: m.select_level(0.5, 0, task_priority="fast"), "task_priority 'fast'.*quality, balanced, speed"),
        (lambda m: m.select_level(1.2, 0), r"between 0 and 1, got 1\.2"),
        (lambda m: m.select_level(-0.1, 0), "between 0 and 1, got -0.1"),
        (lambda m: m.select_level(0.5, -1), "non-negative integer.*-1"),
        (lambda m: m.select_level(0.5, 2.5), "non-negative integer.*2.5"),
    ],
)
def test_bad_input_names_the_value_and_the_allowed_ones(manager, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(manager)


def test_projection_keeps_a_model_from_flapping_on_its_own_footprint() -> None:
    gib = 1024**3
    total, others = 16 * gib, int(5.6 * gib)
    sizes = {"fp16": 2 * gib, "int8": 1 * gib, "int4": gib // 2, "int2": gib // 4}
    # Without the model, 35% used: the naive rule says fp16; with fp16 loaded, 47.5%: it says int8.
    assert policy.decide(others / total, 0, Thresholds()) == "fp16"
    assert policy.decide((others + sizes["fp16"]) / total, 0, Thresholds()) == "int8"
    for resident_level in ("fp16", "int8"):
        used = others + sizes[resident_level]
        level = policy.decide_projected(used, total, sizes[resident_level], sizes, 0, Thresholds())
        assert level == "int8", f"with {resident_level} resident"


def test_hysteresis_holds_the_level_through_a_flapping_reading() -> None:
    t = Thresholds()
    stabilizer = Stabilizer(dwell_seconds=60, consecutive=3)
    chosen = []
    for i, memory in enumerate([0.38, 0.42, 0.38, 0.42, 0.38, 0.42, 0.38]):
        chosen.append(stabilizer.propose("m", policy.decide(memory, 0, t), now=float(i)))
    assert chosen == ["fp16"] * 7


def test_hysteresis_adopts_a_level_that_holds() -> None:
    stabilizer = Stabilizer(dwell_seconds=60, consecutive=3)
    assert stabilizer.propose("m", "fp16", now=0) == "fp16"
    assert [stabilizer.propose("m", "int4", now=i) for i in (1, 2, 3)] == ["fp16", "fp16", "int4"]


def test_hysteresis_adopts_after_the_dwell_time() -> None:
    stabilizer = Stabilizer(dwell_seconds=5, consecutive=100)
    stabilizer.propose("m", "fp16", now=0)
    assert stabilizer.propose("m", "int8", now=1) == "fp16"
    assert stabilizer.propose("m", "int8", now=6.5) == "int8"


def test_hysteresis_downgrades_at_once_at_critical_memory() -> None:
    stabilizer = Stabilizer(dwell_seconds=60, consecutive=3)
    stabilizer.propose("m", "fp16", now=0)
    assert stabilizer.propose("m", "int2", now=1, critical=True) == "int2"


def test_a_ceiling_caps_precision_after_a_lost_worker() -> None:
    t = Thresholds()
    assert policy.decide(0.1, 0, t, Request(ceiling="int8")) == "int8"  # the matrix says fp16
    assert policy.decide(0.1, 20, t, Request(ceiling="int8")) == "int2", "a ceiling never raises precision"
    assert policy.decide(0.1, 0, t, Request("quality", ceiling="int4")) == "int4"
    assert policy.decide(0.1, 0, t, Request(min_quantization="fp16", ceiling="int8")) == "fp16", "the user's floor wins"
    assert policy.decide(0.1, 0, t, Request(force_quantization="fp16", ceiling="int2")) == "fp16", "force wins"
    assert policy.apply_ceiling("fp16", None) == "fp16" and policy.apply_ceiling("int2", "int8") == "int2"
    with pytest.raises(ValueError, match="ceiling"):
        Request(ceiling="int3")


def test_the_seed_python_api_runs_as_written() -> None:
    """The spec's examples, statement for statement: a device by keyword, thresholds tuned on the instance, status."""
    from worker.quantization import get_quantization_manager, set_quantization_manager

    manager = DynamicQuantizationManager(device="mps")
    manager.MEMORY_COMFORTABLE = 0.3  # More aggressive
    manager.LOAD_HIGH = 15  # Higher load threshold
    assert manager.device == "mps" and manager.probes.memory().pool == "unified"
    assert manager.select_level(0.35, 0) == "int8"
    assert manager.select_level(0.65, 12) == "int4"
    set_quantization_manager(manager)
    try:
        status = get_quantization_manager().get_status()
    finally:
        set_quantization_manager(None)
    assert status["device"] == "mps"
    assert status["thresholds"]["memory_comfortable"] == 0.3 and status["thresholds"]["load_high"] == 15
    assert status["recommended_level"] in LEVELS and status["memory_band"] in policy.BANDS


def test_an_unknown_device_is_named() -> None:
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        DynamicQuantizationManager(device="tpu")
