"""The quantization decision policy: pure functions over explicit facts, no I/O.

Every outside fact (memory reading, load, device capabilities, the clock) is an argument,
so the rule can be tested exhaustively and reused by the web app without importing a runtime.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from worker.errors import UnsupportedLevelError

Level = Literal["fp16", "int8", "int4", "int2"]
LEVELS: tuple[Level, ...] = get_args(Level)
"""Precision levels, most precise first."""

TaskPriority = Literal["quality", "balanced", "speed"]
TASK_PRIORITIES: tuple[TaskPriority, ...] = get_args(TaskPriority)

BITS_PER_WEIGHT: dict[str, float] = {"fp16": 16.0, "int8": 8.5, "int4": 4.9, "int2": 3.2}
"""Real storage cost per weight: F16, Q8_0, Q4_K_M and Q2_K as llama.cpp writes them."""

GGUF_TYPES: dict[str, str] = {"fp16": "F16", "int8": "Q8_0", "int4": "Q4_K_M", "int2": "Q2_K"}

NOMINAL_BITS: dict[str, int] = {"fp16": 16, "int8": 8, "int4": 4, "int2": 2}

RUNTIME_OVERHEAD_FRACTION = 0.10
"""KV cache, activations and allocator slack, as a share of the weights (see README)."""

RUNTIME_OVERHEAD_GB = 0.25
"""Fixed runtime cost: compute buffers and the tokenizer, independent of model size."""

BANDS: tuple[str, ...] = ("comfortable", "moderate", "tight", "critical", "emergency")


@dataclass(frozen=True)
class Thresholds:
    """Memory-band edges (fractions used) and load edges (requests) of the decision matrix."""

    memory_comfortable: float = 0.40
    memory_moderate: float = 0.60
    memory_tight: float = 0.75
    memory_critical: float = 0.85
    load_low: int = 2
    load_moderate: int = 5
    load_high: int = 10

    def __post_init__(self) -> None:
        edges = (self.memory_comfortable, self.memory_moderate, self.memory_tight, self.memory_critical)
        for value in edges:
            check_fraction(value, "memory threshold")
        if list(edges) != sorted(edges):
            raise ValueError(f"memory thresholds must rise: comfortable <= moderate <= tight <= critical, got {edges}")
        loads = (self.load_low, self.load_moderate, self.load_high)
        if any(not isinstance(v, int) or v < 0 for v in loads) or list(loads) != sorted(loads):
            raise ValueError(f"load thresholds must be integers with 0 <= low <= moderate <= high, got {loads}")


def check_level(level: str, what: str = "level") -> str:
    """Return the level if known, else raise ValueError naming it and the allowed ones."""
    if level not in LEVELS:
        raise ValueError(f"unknown {what} {level!r}: allowed are {', '.join(LEVELS)}")
    return level


def as_level(value: str) -> Level:
    """A level name known to be valid, typed as one (ValueError otherwise)."""
    return LEVELS[rank(value)]


def check_priority(task_priority: str) -> str:
    """Return the task priority if known, else raise ValueError naming the allowed ones."""
    if task_priority not in TASK_PRIORITIES:
        raise ValueError(f"unknown task_priority {task_priority!r}: allowed are {', '.join(TASK_PRIORITIES)}")
    return task_priority


def check_fraction(value: float, what: str = "memory_used") -> float:
    """Return a fraction in [0, 1], else raise ValueError naming the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be a fraction between 0 and 1, got {value!r}")
    return float(value)


def check_load(load: int) -> int:
    """Return a non-negative integer load, else raise ValueError naming the value."""
    if isinstance(load, bool) or not isinstance(load, int) or load < 0:
        raise ValueError(f"load must be a non-negative integer count of requests, got {load!r}")
    return load


def rank(level: str) -> int:
    """0 for fp16 up to 3 for int2: a higher rank is less precise."""
    return LEVELS.index(check_level(level))


def shift(level: str, steps: int) -> str:
    """Move a level `steps` towards less precision (negative: more), clamped to the ends."""
    return LEVELS[min(max(rank(level) + steps, 0), len(LEVELS) - 1)]


def memory_band(memory_used: float, t: Thresholds) -> str:
    """Name the band a memory reading falls in."""
    m = check_fraction(memory_used)
    edges = (t.memory_comfortable, t.memory_moderate, t.memory_tight, t.memory_critical)
    return BANDS[sum(1 for edge in edges if m >= edge)]


def matrix_level(memory_used: float, load: int, t: Thresholds) -> str:
    """The decision matrix itself: memory band and load to a level."""
    band = memory_band(memory_used, t)
    n = check_load(load)
    if band == "comfortable":
        if n < t.load_low:
            return "fp16"
        if n <= t.load_moderate:
            return "int8"
        return "int4" if n <= t.load_high else "int2"
    if band == "moderate":
        if n < t.load_low:
            return "int8"
        return "int4" if n <= t.load_high else "int2"
    if band == "tight":
        return "int4" if n <= t.load_high else "int2"
    if band == "critical":
        return "int4" if n < t.load_high else "int2"
    return "int2"


def apply_task_priority(level: str, task_priority: str) -> str:
    """quality: one level more precise; speed: one level less; balanced: unchanged."""
    steps = {"quality": -1, "balanced": 0, "speed": 1}[check_priority(task_priority)]
    return shift(level, steps)


def apply_ceiling(level: str, ceiling: str | None) -> str:
    """Never more precise than the ceiling (set after a worker died at a higher level)."""
    if ceiling is None:
        return level
    return ceiling if rank(level) < rank(check_level(ceiling, "ceiling")) else level


def apply_source_ceiling(
    level: str, source: str | None, profiles: Mapping[str, LevelStats], rules: ProfileRules
) -> tuple[str, list[str]]:
    """A level above the model's own file (`source`; None: every level is real) re-encodes the same weights: it
    cannot be better, so it is kept only where it is measurably faster than the file's level; the first such level
    from `level` down, else the file's. Why, in words, when it moved the level."""
    if source is None or rank(level) >= rank(check_level(source, "source level")):
        return level, []
    base = profiles.get(source)
    for candidate in LEVELS[rank(level) : rank(source)]:
        stats = profiles.get(candidate)
        if stats is None or base is None or not measurably_faster(stats, base, rules):
            continue
        if candidate == level:
            return level, []
        speed = time_compared(
            stats.seconds_per_job or 0.0, base.seconds_per_job or 1.0, source, stats.prior or base.prior
        )
        return candidate, [f"{level} skipped: it re-encodes the model's {source} file; {candidate} is faster ({speed})"]
    return source, [
        f"{level} skipped: the model's file is {source}; {level} would re-encode it, no better and no faster"
    ]


def apply_floor(level: str, min_quantization: str | None) -> str:
    """Never less precise than the floor."""
    if min_quantization is None:
        return level
    floor = check_level(min_quantization, "min_quantization")
    return floor if rank(level) > rank(floor) else level


def apply_capabilities(level: str, supported: Iterable[str], floor: str | None = None) -> str:
    """Move an unsupported level to the nearest supported one, lower first, never below the floor."""
    allowed = {check_level(s, "supported level") for s in supported}
    if level in allowed:
        return level
    lowest = rank(floor) if floor is not None else len(LEVELS) - 1
    r = rank(level)
    candidates = [LEVELS[i] for i in range(r + 1, lowest + 1)] + [LEVELS[i] for i in range(r - 1, -1, -1)]
    for candidate in candidates:
        if candidate in allowed:
            return candidate
    raise UnsupportedLevelError(
        f"no supported level satisfies {level!r} with floor {floor!r}: this device and backend run "
        f"{', '.join(sorted(allowed, key=rank)) or 'nothing'}"
    )


@dataclass(frozen=True)
class LevelStats:
    """What one model at one level measured on this host: the profile the policy weighs a step down against."""

    jobs: int = 0
    seconds_per_job: float | None = None
    pass_rate: float | None = None
    resident_bytes: int | None = None
    prior: bool = False
    """Shipped knowledge of the model and device (worker.priors), standing in until this host has measured it."""


@dataclass(frozen=True)
class ProfileRules:
    """When a measured profile lets a step down for load happen: it must buy speed and keep quality."""

    min_speedup: float = 0.10
    pass_margin: float = 0.05
    min_jobs: int = 3


def measured(stats: LevelStats | None, rules: ProfileRules) -> bool:
    """Whether a level's profile counts: enough jobs measured on this host, or the shipped prior."""
    return stats is not None and (stats.prior or stats.jobs >= rules.min_jobs)


def measurably_faster(low: LevelStats, high: LevelStats, rules: ProfileRules) -> bool:
    """Whether `low` runs a job at least `rules.min_speedup` faster than `high`, both counting (measured or prior)."""
    if not (measured(low, rules) and measured(high, rules)):
        return False
    low_s, high_s = low.seconds_per_job, high.seconds_per_job
    return low_s is not None and high_s is not None and low_s <= high_s * (1.0 - rules.min_speedup)


def where(*stats: LevelStats) -> str:
    """Where compared figures come from, in words."""
    return "by the shipped prior for this model and device" if any(s.prior for s in stats) else "on this host"


def time_compared(low_s: float, high_s: float, higher: str, prior: bool) -> str:
    """Two levels' times per job in words: seconds when measured here, a ratio when a prior stands in."""
    if prior:
        return f"{low_s / high_s:.2f}x {higher}'s time per job"
    return f"{low_s:.2f} s vs {high_s:.2f} s per job"


def with_prior(
    host: Mapping[str, LevelStats], prior: Mapping[str, LevelStats], rules: ProfileRules
) -> dict[str, LevelStats]:
    """The host's profiles where measured, the prior elsewhere: its times scaled to the host's by a level both have.

    A level the host has measured replaces its prior; the resident bytes the host saw are kept either way.
    """
    merged = {level: stats for level, stats in host.items() if measured(stats, rules) and not stats.prior}
    scale = 1.0
    for level, stats in prior.items():
        own = merged[level].seconds_per_job if level in merged else None
        if own and stats.seconds_per_job:
            scale = own / stats.seconds_per_job
            break
    for level, stats in prior.items():
        if level in merged:
            continue
        seen = host.get(level)
        seconds = stats.seconds_per_job * scale if stats.seconds_per_job is not None else None
        resident = seen.resident_bytes if seen is not None and seen.resident_bytes else stats.resident_bytes
        merged[level] = LevelStats(0, seconds, stats.pass_rate, resident, prior=True)
    for level, stats in host.items():
        merged.setdefault(level, stats)
    return merged


def step_down_refusal(
    lower: str, higher: str, profiles: Mapping[str, LevelStats], rules: ProfileRules
) -> tuple[str | None, str]:
    """Why a step down for load from `higher` to `lower` is refused (None: taken), and what was compared, in words.

    With too few measured jobs on either side the matrix's prior stands and the step is taken.
    """
    low, high = profiles.get(lower), profiles.get(higher)
    if low is None or high is None or not (measured(low, rules) and measured(high, rules)):
        return None, f"{lower} for load: fewer than {rules.min_jobs} measured jobs to weigh it against {higher}"
    compared: list[str] = []
    if low.seconds_per_job is not None and high.seconds_per_job is not None:
        speed = time_compared(low.seconds_per_job, high.seconds_per_job, higher, low.prior or high.prior)
        faster = low.seconds_per_job < high.seconds_per_job
        if not faster or low.seconds_per_job > high.seconds_per_job * (1.0 - rules.min_speedup):
            wanted = f"{rules.min_speedup:.0%} faster" if rules.min_speedup > 0 else "faster"
            return f"{lower} skipped: not {wanted} than {higher} {where(low, high)} ({speed})", speed
        compared.append(speed)
    if low.pass_rate is not None and high.pass_rate is not None:
        rates = f"pass rate {low.pass_rate:.0%} vs {high.pass_rate:.0%} at {higher}"
        if low.pass_rate < high.pass_rate - rules.pass_margin:
            return f"{lower} skipped: {rates}", rates
        compared.append(rates)
    return None, f"{lower} for load: " + (", ".join(compared) or f"nothing measured to weigh it against {higher}")


def apply_profile(
    level: str,
    unloaded: str,
    profiles: Mapping[str, LevelStats],
    rules: ProfileRules,
    supported: Iterable[str] = LEVELS,
) -> tuple[str, list[str]]:
    """The level a load step down lands on once measured profiles are weighed, and why, in words.

    `level` is what the matrix asks for; `unloaded` is what it asks for at the same memory with no load, so
    every level between them is a step down for load. Each is taken only if it is measurably faster than
    the level kept so far and its pass rate is within the margin; otherwise the kept level stays. Memory
    steps are already in `unloaded` and are never undone. Without measured profiles `level` is returned.
    """
    if rank(level) <= rank(unloaded):
        return level, []
    kept = unloaded
    reasons: list[str] = []
    runnable = set(supported)
    for lower in [lvl for lvl in LEVELS[rank(unloaded) + 1 : rank(level) + 1] if lvl in runnable]:
        refusal, compared = step_down_refusal(lower, kept, profiles, rules)
        if refusal is None:
            kept = lower
            reasons.append(compared)
        else:
            reasons.append(refusal)
    return kept, reasons


def skip_dominated(
    level: str, profiles: Mapping[str, LevelStats], rules: ProfileRules, supported: Iterable[str] = LEVELS
) -> tuple[str, list[str]]:
    """Step below a level that buys nothing on this host: the next lower level is measurably faster and passes as often.

    This holds at any load: a level that is slower and no better is never the right choice. Quality allows no
    margin here (that is only for steps taken for load). Without measured profiles `level` is returned.
    """
    runnable = [lvl for lvl in LEVELS[rank(level) + 1 :] if lvl in set(supported)]
    kept, reasons = level, []
    for lower in runnable:
        low, high = profiles.get(lower), profiles.get(kept)
        if not (measured(low, rules) and measured(high, rules)) or low is None or high is None:
            break
        low_s, high_s, low_p, high_p = low.seconds_per_job, high.seconds_per_job, low.pass_rate, high.pass_rate
        if low_s is None or high_s is None or low_p is None or high_p is None:
            break
        if not measurably_faster(low, high, rules) or low_p < high_p:
            break
        reasons.append(
            f"{kept} skipped: {lower} is faster {where(low, high)} "
            f"({time_compared(low_s, high_s, kept, low.prior or high.prior)}) "
            f"and passes as often ({low_p:.0%} vs {high_p:.0%})"
        )
        kept = lower
    return kept, reasons


def escalation_pays(lower: str, higher: str, profiles: Mapping[str, LevelStats], rules: ProfileRules) -> bool:
    """Whether retrying a failed draft at `higher` may help: False only where measured to pass no more often."""
    low, high = profiles.get(lower), profiles.get(higher)
    if not (measured(low, rules) and measured(high, rules)) or low is None or high is None:
        return True
    if low.pass_rate is None or high.pass_rate is None:
        return True
    return high.pass_rate > low.pass_rate


def measured_bytes(estimates: Mapping[str, int], profiles: Mapping[str, LevelStats]) -> dict[str, int]:
    """Each level's expected footprint: the measured resident bytes where a profile has them, else the estimate."""
    sized = dict(estimates)
    for level in estimates:
        stats = profiles.get(level)
        if stats is not None and stats.resident_bytes is not None and stats.resident_bytes > 0:
            sized[level] = stats.resident_bytes
    return sized


TREND_WINDOW = 4
"""Load readings the pre-load trend looks back over."""


def predicted_load(history: Sequence[int]) -> int:
    """The load the next job is likely to meet: the last reading moved on by the mean step of the recent ones."""
    recent = [check_load(n) for n in history[-TREND_WINDOW:]]
    if not recent:
        return 0
    if len(recent) == 1:
        return recent[0]
    step = (recent[-1] - recent[0]) / (len(recent) - 1)
    return max(0, round(recent[-1] + step))


@dataclass(frozen=True)
class Request:
    """What a job asks of the policy, and the ceiling it runs under after a worker died on a higher level.

    The ceiling gives way to the floor (`min_quantization` is the user's word) and to force.
    """

    task_priority: str = "balanced"
    min_quantization: str | None = None
    force_quantization: str | None = None
    ceiling: str | None = None

    def __post_init__(self) -> None:
        check_priority(self.task_priority)
        if self.ceiling is not None:
            check_level(self.ceiling, "ceiling")
        if self.min_quantization is not None:
            check_level(self.min_quantization, "min_quantization")
        if self.force_quantization is not None:
            check_level(self.force_quantization, "force_quantization")


def decide(
    memory_used: float,
    load: int,
    t: Thresholds,
    request: Request = Request(),
    supported: Iterable[str] = LEVELS,
) -> str:
    """The whole rule: matrix, task priority, ceiling, floor, then capabilities; force overrides all but capability."""
    supported = tuple(supported)
    if request.force_quantization is not None:
        if request.force_quantization not in supported:
            raise UnsupportedLevelError(
                f"force_quantization {request.force_quantization!r} is not supported here: "
                f"choose one of {', '.join(sorted(supported, key=rank))}"
            )
        return request.force_quantization
    level = matrix_level(memory_used, load, t)
    level = apply_task_priority(level, request.task_priority)
    level = apply_ceiling(level, request.ceiling)
    level = apply_floor(level, request.min_quantization)
    return apply_capabilities(level, supported, request.min_quantization)


def projected_memory_used(used_bytes: int, total_bytes: int, resident_bytes: int, candidate_bytes: int) -> float:
    """Memory fraction as it would read with the resident model swapped for the candidate."""
    if total_bytes <= 0:
        raise ValueError(f"total memory must be positive, got {total_bytes}")
    projected = used_bytes - resident_bytes + candidate_bytes
    return min(max(projected / total_bytes, 0.0), 1.0)


def decide_projected(
    used_bytes: int,
    total_bytes: int,
    resident_bytes: int,
    candidate_bytes: Mapping[str, int],
    load: int,
    t: Thresholds,
    request: Request = Request(),
    supported: Iterable[str] = LEVELS,
) -> str:
    """Most precise level that the rule still accepts once the model is loaded at that level.

    Judging memory with the candidate loaded keeps a model's own footprint from pushing the reading
    into another band and back after every reload.
    """
    supported = tuple(supported)
    if request.force_quantization is not None:
        return decide(0.0, load, t, request, supported)
    level: str = LEVELS[-1]
    for candidate in LEVELS:
        if candidate not in supported:
            continue
        memory = projected_memory_used(used_bytes, total_bytes, resident_bytes, candidate_bytes.get(candidate, 0))
        level = decide(memory, load, t, request, supported)
        if rank(level) <= rank(candidate):
            return candidate
    return level


def estimate_weights_gb(model_size_params: float, level: str) -> float:
    """Weight bytes in GB (1e9) for a model of `model_size_params` billion weights at a level."""
    if isinstance(model_size_params, bool) or not isinstance(model_size_params, (int, float)) or model_size_params <= 0:
        raise ValueError(f"model_size_params must be a positive number of billions, got {model_size_params!r}")
    return model_size_params * BITS_PER_WEIGHT[check_level(level)] / 8.0


def estimate_memory_gb(model_size_params: float, level: str) -> float:
    """Weights plus runtime overhead: what loading the model at a level is expected to take."""
    weights = estimate_weights_gb(model_size_params, level)
    return weights * (1.0 + RUNTIME_OVERHEAD_FRACTION) + RUNTIME_OVERHEAD_GB


def compression_ratio(level: str) -> float:
    """Size reduction against fp32 weights: 2x for fp16 up to 16x for int2."""
    return 32.0 / NOMINAL_BITS[check_level(level)]


def loader_config(level: str, backend: str = "transformers") -> dict[str, object]:
    """The load-time settings a backend needs for a level (bitsandbytes keys or a GGUF type)."""
    check_level(level)
    if backend == "gguf":
        return {"gguf_type": GGUF_TYPES[level]}
    if level == "fp16":
        return {"torch_dtype": "float16"}
    if level == "int8":
        return {"load_in_8bit": True}
    if level == "int4":
        return {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float16", "bnb_4bit_quant_type": "nf4"}
    return {"gguf_type": GGUF_TYPES[level], "note": "int2 is served by the GGUF backend"}


@dataclass
class PendingChange:
    """A level the rule has asked for but that has not yet held long enough to be adopted."""

    level: str
    since: float
    count: int


@dataclass
class Stabilizer:
    """Hysteresis for re-optimisation: a model changes level only when the new level holds.

    A change is adopted after `consecutive` decisions in a row or `dwell_seconds` of asking for it,
    whichever comes first; a downgrade at critical memory is adopted at once.
    """

    dwell_seconds: float = 30.0
    consecutive: int = 3
    current: dict[str, str] = field(default_factory=dict)
    pending: dict[str, PendingChange] = field(default_factory=dict)

    def propose(self, model: str, level: str, now: float, critical: bool = False) -> str:
        """Record a decision for a model and return the level it should run at now."""
        check_level(level)
        held = self.current.get(model)
        if held is None or held == level or (critical and rank(level) > rank(held)):
            return self._adopt(model, level)
        pending = self.pending.get(model)
        if pending is None or pending.level != level:
            pending = self.pending[model] = PendingChange(level, now, 0)
        pending.count += 1
        if pending.count >= self.consecutive or now - pending.since >= self.dwell_seconds:
            return self._adopt(model, level)
        return held

    def peek(self, model: str, level: str, now: float, critical: bool = False) -> str:
        """The level `propose` would return now, without recording the decision."""
        held = self.current.get(model)
        if held is None or held == level or (critical and rank(level) > rank(held)):
            return level
        pending = self.pending.get(model)
        count, since = (pending.count, pending.since) if pending is not None and pending.level == level else (0, now)
        return level if count + 1 >= self.consecutive or now - since >= self.dwell_seconds else held

    def forget(self, model: str) -> None:
        """Drop what is known of a model (it was unloaded)."""
        self.current.pop(model, None)
        self.pending.pop(model, None)

    def _adopt(self, model: str, level: str) -> str:
        self.current[model] = level
        self.pending.pop(model, None)
        return level
