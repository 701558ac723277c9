"""The quality gate: draft, check, and while the verdict is not `pass` retry within a bounded budget.

Retry strategies, tried in the order of DYNAQUANT_QUALITY_STRATEGIES (each only where it applies):
- escalate: run again one precision level up, when the draft ran below the model's top level here. The
  decision engine still rules: the higher level is asked for as a floor (`min_quantization`), so the loader
  loads it only if it fits in memory; never at the emergency memory band; never for a forced level (a
  forced level is checked and reported, not escalated);
- resimplify: a draft that is faithful but too hard becomes the input, for the same target;
- sample: a seeded sample (temperature > 0) at the best level so far.
The best candidate by the checks is kept. When none passes it is returned with verdict `needs_review`
and its reasons: quality alone never fails a job. Every attempt is recorded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from worker.backends.base import Generation, Sampling
from worker.errors import InsufficientMemoryError
from worker.policy import LEVELS, Request, UnsupportedLevelError, rank
from worker.quality import QualityReport, check, preference
from worker.settings import env_float, env_int

STRATEGIES = ("escalate", "resimplify", "sample")
DEFAULT_ORDER = ("escalate", "resimplify", "sample")
"""The order measured best on the tuning paragraphs (bench/gate_order.py)."""
NO_ESCALATION_BANDS = ("emergency",)
"""Memory bands at which the decision matrix forces the lowest level: no escalation there."""


@dataclass(frozen=True)
class GateSettings:
    """How hard the gate tries: on or off, attempts and seconds per paragraph, strategies and sampling."""

    enabled: bool = True
    max_attempts: int = 3
    max_seconds: float = 30.0
    order: tuple[str, ...] = DEFAULT_ORDER
    temperature: float = 0.7


def gate_settings() -> GateSettings:
    """Every quality-gate setting, read from the environment here and only here.

    DYNAQUANT_QUALITY_GATE (1/0, on/off; default on), DYNAQUANT_QUALITY_MAX_ATTEMPTS (default 3, the first
    draft included), DYNAQUANT_QUALITY_MAX_SECONDS (default 30, per paragraph: no retry starts after it),
    DYNAQUANT_QUALITY_STRATEGIES (comma-separated order, default escalate,resimplify,sample) and
    DYNAQUANT_QUALITY_TEMPERATURE (sampling temperature, default 0.7).
    """
    raw_switch = os.environ.get("DYNAQUANT_QUALITY_GATE", "").strip().lower()
    if raw_switch not in ("", "1", "0", "on", "off", "true", "false", "yes", "no"):
        raise ValueError(f"DYNAQUANT_QUALITY_GATE={raw_switch!r}: use 1 or 0 (on or off)")
    raw_order = os.environ.get("DYNAQUANT_QUALITY_STRATEGIES", "").strip()
    order = tuple(s.strip() for s in raw_order.split(",") if s.strip()) if raw_order else DEFAULT_ORDER
    unknown = [s for s in order if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"DYNAQUANT_QUALITY_STRATEGIES has {unknown}: allowed are {', '.join(STRATEGIES)}")
    return GateSettings(
        enabled=raw_switch not in ("0", "off", "false", "no"),
        max_attempts=env_int("DYNAQUANT_QUALITY_MAX_ATTEMPTS", 3),
        max_seconds=env_float("DYNAQUANT_QUALITY_MAX_SECONDS", 30.0),
        order=order,
        temperature=env_float("DYNAQUANT_QUALITY_TEMPERATURE", 0.7, minimum=0.01),
    )


@dataclass(frozen=True)
class Draft:
    """One simplification of one paragraph and where it ran."""

    text: str
    level: str
    seconds: float
    generation: Generation
    model: str = ""
    backend: str = ""
    band: str = "comfortable"
    load_seconds: float = 0.0
    cache_hit: bool = True
    reoptimized: dict[str, Any] | None = None
    memory_used: float = 0.0
    load: int = 0


Drafter = Callable[[str, Request, Sampling | None], Draft]
"""Simplifies a text under a request (greedy, or sampled), on the model and level the loader gives."""


@dataclass(frozen=True)
class Step:
    """One retry to make: which strategy, on which input, with which request and sampling."""

    strategy: str
    text: str
    request: Request
    sampling: Sampling | None = None


@dataclass
class GateResult:
    """The kept candidate, its report, and every attempt in order."""

    draft: Draft
    report: QualityReport
    attempts: list[dict[str, Any]] = field(default_factory=list)
    drafts: list[Draft] = field(default_factory=list)


@dataclass
class _State:
    source: str
    request: Request
    levels: tuple[str, ...]
    temperature: float
    best: tuple[Draft, QualityReport, Request]
    reached: str
    reached_request: Request
    escalation_blocked: bool = False
    resimplified: set[str] = field(default_factory=set)
    attempts: int = 1


def attempt_record(n: int, strategy: str, draft: Draft, report: QualityReport) -> dict[str, Any]:
    """What the result shows of one attempt."""
    return {
        "attempt": n,
        "strategy": strategy,
        "level": draft.level,
        "grade": report.grade,
        "verdict": report.verdict,
        "seconds": round(draft.seconds, 3),
    }


def plan_escalate(state: _State) -> Step | None:
    """One level above the most precise level tried, as a floor the loader must fit; None where it cannot apply."""
    draft = state.best[0]
    if state.request.force_quantization is not None or state.escalation_blocked or draft.band in NO_ESCALATION_BANDS:
        return None
    higher = [lvl for lvl in state.levels if rank(lvl) < rank(state.reached)]
    if not higher:
        return None
    target = max(higher, key=rank)  # the nearest more precise level
    return Step("escalate", state.source, replace(state.reached_request, min_quantization=target))


def plan_resimplify(state: _State) -> Step | None:
    """The best draft as the new input, when it is faithful but too hard (once per draft)."""
    draft, report, request = state.best
    if not (report.faithful and report.too_hard) or draft.text in state.resimplified:
        return None
    return Step("resimplify", draft.text, request)


def plan_sample(state: _State) -> Step:
    """A seeded sample of the source at the best draft's level."""
    _, _, request = state.best
    return Step("sample", state.source, request, Sampling(state.temperature, seed=state.attempts))


PLANNERS: dict[str, Callable[[_State], Step | None]] = {
    "escalate": plan_escalate,
    "resimplify": plan_resimplify,
    "sample": plan_sample,
}


def next_step(state: _State, order: Sequence[str]) -> Step | None:
    """The first strategy in order that applies."""
    for strategy in order:
        step = PLANNERS[strategy](state)
        if step is not None:
            return step
    return None


def run(
    source: str,
    grade_level: int,
    drafter: Drafter,
    request: Request,
    settings: GateSettings,
    levels: Sequence[str] = LEVELS,
    checker: Callable[[str, str, int], QualityReport] = check,
) -> GateResult:
    """Draft and check `source`; while it fails and the budget lasts, retry; keep the best candidate.

    `levels` are the model's supported levels here (the most precise one is where escalation stops).
    With the gate off (settings.enabled False) the draft is checked and returned, never retried.
    """
    started = time.monotonic()
    draft = drafter(source, request, None)
    report = checker(source, draft.text, grade_level)
    result = GateResult(draft, report, [attempt_record(1, "draft", draft, report)], [draft])
    state = _State(source, request, tuple(levels), settings.temperature, (draft, report, request), draft.level, request)
    while settings.enabled and not result.report.passed and state.attempts < settings.max_attempts:
        elapsed = time.monotonic() - started
        if elapsed + result.drafts[-1].seconds > settings.max_seconds:
            break  # the next attempt would likely run past the budget
        step = next_step(state, settings.order)
        if step is None:
            break
        try:
            candidate = drafter(step.text, step.request, step.sampling)
        except (InsufficientMemoryError, UnsupportedLevelError):
            state.escalation_blocked = True  # the higher level does not fit: the decision engine says no
            continue
        if step.strategy == "resimplify":
            state.resimplified.add(step.text)
        state.attempts += 1
        cand_report = checker(source, candidate.text, grade_level)
        result.attempts.append(attempt_record(state.attempts, step.strategy, candidate, cand_report))
        result.drafts.append(candidate)
        if rank(candidate.level) < rank(state.reached):
            state.reached, state.reached_request = candidate.level, step.request
        if preference(cand_report) > preference(result.report):
            result.draft, result.report = candidate, cand_report
            state.best = (candidate, cand_report, step.request)
    return result
