"""The quality gate: draft, check, and while the verdict is not `pass` retry within a bounded budget.

Retry strategies, tried in the order of DYNAQUANT_QUALITY_STRATEGIES (each only where it applies):
- escalate: run again one precision level up, when the draft ran below the model's top level here. The
  decision engine still rules: the higher level is asked for as a floor (`min_quantization`), so the loader
  loads it only if it fits in memory; never at the emergency memory band; never above the job's ceiling
  after a lost worker; never for a forced level (a forced level is checked and reported, not escalated);
- resimplify: a draft that is faithful but too hard becomes the input, for the same target;
- sample: a seeded sample (temperature > 0) at the best level so far.
The best candidate by the checks is kept. When none passes it is returned with verdict `needs_review`
and its reasons: quality alone never fails a job. Every attempt is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from worker.backends.base import Generation, Sampling, StopCheck
from worker.contracts import AttemptRecord, QualityReport, Reoptimization, Strategy
from worker.errors import InsufficientMemoryError, JobCancelled
from worker.policy import LEVELS, Request, UnsupportedLevelError, rank
from worker.quality import check, faithful, preference, too_hard
from worker.retry_budget import RetryDecision

if TYPE_CHECKING:
    from worker.settings import Settings

NO_ESCALATION_BANDS = ("emergency",)
"""Memory bands at which the decision matrix forces the lowest level: no escalation there."""


@dataclass(frozen=True)
class GateSettings:
    """How hard the gate tries for one job: on or off, attempts and seconds per paragraph part, strategies, sampling."""

    enabled: bool
    max_attempts: int
    max_seconds: float
    order: tuple[Strategy, ...]
    temperature: float

    @classmethod
    def from_settings(cls, settings: Settings, job_wants_it: bool = True) -> GateSettings:
        """The gate as the settings set it; off when the job (quality_check) or DYNAQUANT_QUALITY_GATE says so."""
        return cls(
            enabled=settings.quality_gate and job_wants_it,
            max_attempts=settings.quality_max_attempts,
            max_seconds=settings.quality_max_seconds,
            order=settings.quality_strategies,
            temperature=settings.quality_temperature,
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
    reoptimized: Reoptimization | None = None
    memory_used: float = 0.0
    load: int = 0


class RetryBudget(Protocol):
    """Says whether a failing draft is worth retrying, and learns from how the retries went."""

    def before_retry(self, draft: Draft) -> RetryDecision:
        """Retry this failing first draft or not."""
        ...

    def after_retries(self, draft: Draft, passed: Sequence[bool]) -> None:
        """Record whether each retry of this first draft passed."""
        ...


Drafter = Callable[[str, Request, Sampling | None], Draft]
"""Simplifies a text under a request (greedy, or sampled), on the model and level the loader gives."""


@dataclass(frozen=True)
class Step:
    """One retry to make: which strategy, on which input, with which request and sampling."""

    strategy: Strategy
    text: str
    request: Request
    sampling: Sampling | None = None


@dataclass
class GateResult:
    """The kept candidate, its report, and every attempt in order."""

    draft: Draft
    report: QualityReport
    attempts: list[AttemptRecord] = field(default_factory=list)
    drafts: list[Draft] = field(default_factory=list)
    skipped: str | None = None
    """Why the retries were skipped, when the retry budget said no."""


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
    escalation_pays: Callable[[str, str], bool] | None = None


def attempt_record(n: int, strategy: Strategy | None, draft: Draft, report: QualityReport) -> AttemptRecord:
    """What the result shows of one attempt (strategy None: the first draft)."""
    return AttemptRecord(
        attempt=n,
        strategy=strategy or "draft",
        level=draft.level,  # type: ignore[arg-type]
        grade=report.grade,
        verdict=report.verdict,
        seconds=round(draft.seconds, 3),
    )


def plan_escalate(state: _State) -> Step | None:
    """One level above the most precise level tried, as a floor the loader must fit; None where it cannot apply."""
    draft = state.best[0]
    if state.request.force_quantization is not None or state.escalation_blocked or draft.band in NO_ESCALATION_BANDS:
        return None
    ceiling = state.request.ceiling  # after a lost worker: escalation never goes above it
    higher = [
        lvl
        for lvl in state.levels
        if rank(lvl) < rank(state.reached) and (ceiling is None or rank(lvl) >= rank(ceiling))
    ]
    if not higher:
        return None
    target = max(higher, key=rank)  # the nearest more precise level
    if state.escalation_pays is not None and not state.escalation_pays(state.reached, target):
        return None  # measured on this host: the higher level passes no more often
    return Step("escalate", state.source, replace(state.reached_request, min_quantization=target))


def plan_resimplify(state: _State) -> Step | None:
    """The best draft as the new input, when it is faithful but too hard (once per draft)."""
    draft, report, request = state.best
    if not (faithful(report) and too_hard(report)) or draft.text in state.resimplified:
        return None
    return Step("resimplify", draft.text, request)


def plan_sample(state: _State) -> Step:
    """A seeded sample of the source at the best draft's level."""
    _, _, request = state.best
    return Step("sample", state.source, request, Sampling(state.temperature, seed=state.attempts))


PLANNERS: dict[Strategy, Callable[[_State], Step | None]] = {
    "escalate": plan_escalate,
    "resimplify": plan_resimplify,
    "sample": plan_sample,
}


def next_step(state: _State, order: Sequence[Strategy]) -> Step | None:
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
    budget: RetryBudget | None = None,
    should_stop: StopCheck | None = None,
    escalation_pays: Callable[[str, str], bool] | None = None,
) -> GateResult:
    """Draft and check `source`; while it fails and the budget lasts, retry; keep the best candidate.

    `levels` are the model's supported levels here (the most precise one is where escalation stops).
    With the gate off (settings.enabled False) the draft is checked and returned, never retried. A `budget`
    may skip the retries of a draft (on a model whose retries rarely pass); `should_stop` is asked before
    each retry, so a cancelled job or one past its time limit stops between attempts too. `escalation_pays`
    (lower, higher) says no where measured profiles show the higher level passes no more often.
    """
    started = time.monotonic()
    draft = drafter(source, request, None)
    report = checker(source, draft.text, grade_level)
    result = GateResult(draft, report, [attempt_record(1, None, draft, report)], [draft])
    if not settings.enabled or report.passed or settings.max_attempts <= 1:
        return result
    if budget is not None:
        decision = budget.before_retry(draft)
        if not decision.retry:
            result.skipped = decision.reason
            return result
    state = _State(
        source,
        request,
        tuple(levels),
        settings.temperature,
        (draft, report, request),
        draft.level,
        request,
        escalation_pays=escalation_pays,
    )
    passed = retry(state, result, grade_level, drafter, settings, started, checker, should_stop)
    if budget is not None:
        budget.after_retries(draft, passed)
    return result


def retry(
    state: _State,
    result: GateResult,
    grade_level: int,
    drafter: Drafter,
    settings: GateSettings,
    started: float,
    checker: Callable[[str, str, int], QualityReport],
    should_stop: StopCheck | None,
) -> list[bool]:
    """Retry while the best candidate fails and the budget lasts; whether each retry passed, in order."""
    passed: list[bool] = []
    while not result.report.passed and state.attempts < settings.max_attempts:
        if should_stop is not None and should_stop():
            raise JobCancelled("the job was stopped between quality-gate attempts")
        if time.monotonic() - started + result.drafts[-1].seconds > settings.max_seconds:
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
        cand_report = checker(state.source, candidate.text, grade_level)
        passed.append(cand_report.passed)
        result.attempts.append(attempt_record(state.attempts, step.strategy, candidate, cand_report))
        result.drafts.append(candidate)
        if rank(candidate.level) < rank(state.reached):
            state.reached, state.reached_request = candidate.level, step.request
        if preference(cand_report) > preference(result.report):
            result.draft, result.report = candidate, cand_report
            state.best = (candidate, cand_report, step.request)
    return passed
