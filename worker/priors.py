"""What the project knows about a level before a host has measured it: shipped facts, no I/O.

The decision weighs a step down against the level's profile on this host (worker.profiles). A fresh host has
none, and the matrix alone would step down for load to levels that buy nothing (on CPU, llama.cpp's Q2_K is not
faster than Q4_K_M). Until the host's own profile of a level exists, the prior stands in for it: for the bundled
models, seconds per job and checker pass rates measured per level on the reference host (2 cores, llama.cpp,
first drafts of the tuning paragraphs); for any other GGUF model, time in proportion to the bytes each level
reads per token, with Q2_K never faster than Q4_K_M on CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.policy import LevelStats


@dataclass(frozen=True)
class KnownLevel:
    """One level of a known model on the reference CPU host: seconds per job and the checker's pass rate."""

    seconds_per_job: float
    pass_rate: float | None = None


KNOWN_ON_CPU: dict[str, dict[str, KnownLevel]] = {
    # Median seconds per first draft of the tuning and held-out paragraphs (bench/data/outputs/qwen2.5-1.5b.jsonl:
    # 42 each at int8, int4 and int2, 6 at fp16) and the checker's pass rate on the same drafts (42 each: 8, 13
    # and 11 pass; fp16's 6 drafts are too few to state one).
    "qwen2.5-1.5b": {
        "fp16": KnownLevel(14.41),
        "int8": KnownLevel(7.00, 0.19),
        "int4": KnownLevel(4.30, 0.31),
        "int2": KnownLevel(8.22, 0.26),
    },
    # Gated bursts of 40 jobs (docs/benchmarks.md, "Burst of 40 jobs in one batch"): 60 s over jobs/min.
    # Its pass rates (0-5%) say nothing about a level: it cannot simplify, so none are used.
    "gemma-3-270m": {
        "fp16": KnownLevel(1.06),
        "int8": KnownLevel(0.66),
        "int4": KnownLevel(0.77),
        "int2": KnownLevel(0.95),
    },
}

Q2K_NOT_FASTER_ON_CPU = 1.0
"""On CPU, Q2_K decodes no faster than Q4_K_M (its dequantisation costs what its fewer bytes save)."""


def prior_profiles(
    model: str, device: str, backends: Mapping[str, str], sizes: Mapping[str, int]
) -> dict[str, LevelStats]:
    """The prior of each GGUF level of a model on a device: shipped measurements, else its bytes per token.

    `backends` names the backend of each level the model can run at; `sizes` their expected bytes.
    Levels on other backends get no prior (their speed does not follow their size).
    """
    gguf = [level for level, backend in backends.items() if backend == "gguf"]
    known = KNOWN_ON_CPU.get(model, {}) if device == "cpu" else {}
    if known and all(level in known for level in gguf):
        return {
            level: LevelStats(0, known[level].seconds_per_job, known[level].pass_rate, prior=True) for level in gguf
        }
    by_bytes = {level: float(sizes[level]) for level in gguf if sizes.get(level)}
    if device == "cpu" and "int2" in by_bytes and "int4" in by_bytes:
        by_bytes["int2"] = max(by_bytes["int2"], by_bytes["int4"] * Q2K_NOT_FASTER_ON_CPU)
    return {level: LevelStats(0, seconds, None, prior=True) for level, seconds in by_bytes.items()}
