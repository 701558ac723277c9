"""The quality gate: draft, check, and while the verdict is not `pass` fix or retry within a bounded budget.

Every draft's words are checked; the drafter also gives a draft whose words pass the meaning check (the model
asked whether the rewrite changes what the text says; worker/meaning.py), which can still send it to review.
Strategies, tried in the order of DYNAQUANT_QUALITY_STRATEGIES (each only where it applies):
- revise: the best draft goes back to the model with the checker's findings as concrete instructions
  (worker/feedback.py), at most DYNAQUANT_QUALITY_REVISE_ROUNDS times per part;
- best_of: more drafts of the source, sampled (temperature > 0, seeded), until DYNAQUANT_QUALITY_BEST_OF drafts
  exist; among the drafts that pass, the one closest to the source in content is kept;
- escalate: run again one precision level up, when the draft ran below the model's top level here. The
  decision engine still rules: the higher level is asked for as a floor (`min_quantization`), so the loader
  loads it only if it fits in memory; never at the emergency memory band; never above the job's ceiling
  after a lost worker; never for a forced level (a forced level is checked and reported, not escalated);
- resimplify: a draft that is faithful but too hard becomes the input, for the same target;
- sample: a seeded sample (temperature > 0) at the best level so far.
The kept draft is the passing draft closest to the source, or, when none passes, the best by the checks, returned
with verdict `needs_review` and its reasons: quality alone never fails a job. Every attempt is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from worker.backends.base import Generation, Sampling, StopCheck
from worker.contracts import AttemptRecord, QualityReport, Reoptimization, Strategy
from worker.errors import InsufficientMemoryError, JobCancelled
from worker.feedback import revision_notes
from worker.policy import LEVELS, Request, UnsupportedLevelError, as_level, rank
from worker.quality import check, closeness, faithful, preference, too_hard
from worker.retry_budget import RetryDecision

if TYPE_CHECKING:
    from worker.settings import Settings

NO_ESCALATION_BANDS = ("emergency",)
"""Memory bands at which the decision matrix forces the lowest level: no escalation there."""
Checker = Callable[[str, str, int, float | None], QualityReport]
"""(source, output, target grade, meaning score) -> the report; worker.quality.check."""


@dataclass(frozen=True)
class GateSettings:
    """How hard the gate tries for one job: on or off, attempts and seconds per paragraph part, strategies, sampling."""

    enabled: bool
    max_attempts: int
    max_seconds: float
    order: tuple[Strategy, ...]
    temperature: float
    revise_rounds: int
    best_of: int

    @classmethod
    def from_settings(cls, settings: Settings, job_wants_it: bool = True) -> GateSettings:
        """The gate as the settings set it; off when the job (quality_check) or DYNAQUANT_QUALITY_GATE says so."""
        return cls(
            enabled=settings.quality_gate and job_wants_it,
            max_attempts=settings.quality_max_attempts,
            max_seconds=settings.quality_max_seconds,
            order=settings.quality_strategies,
            temperature=settings.quality_temperature,
            revise_rounds=settings.quality_revise_rounds,
            best_of=settings.quality_best_of,
        )


@dataclass(frozen=True)
class Ask:
    """What one draft is asked for: a rewrite of the paragraph part `source` (or of `text` instead, a draft made
    simpler again), or, with `revise`, that draft revised with `notes`. The meaning check always compares with
    `source`."""

    source: str
    text: str | None = None
    revise: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def input(self) -> str:
        """The text the model rewrites."""
        return self.text if self.text is not None else self.source


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
    meaning: float | None = None
    """The meaning check's score, asked on the same model when the draft's words pass (None: not asked)."""


Drafter = Callable[[Ask, Request, Sampling | None], Draft]
"""Makes a draft (greedy, or sampled) on the model and level the loader gives for the request."""


class RetryBudget(Protocol):
    """Says whether a failing draft is worth retrying, and learns from how the retries went."""

    def before_retry(self, draft: Draft) -> RetryDecision:
        """Retry this failing first draft or not."""
        ...

    def after_retries(self, draft: Draft, passed: Sequence[bool]) -> None:
        """Record whether each retry of this first draft passed."""
        ...


@dataclass(frozen=True)
class Step:
    """One retry to make: which strategy, what to ask, with which request and sampling."""

    strategy: Strategy
    ask: Ask
    request: Request
    sampling: Sampling | None = None


@dataclass(frozen=True)
class Candidate:
    """A draft, its report, the request it ran under, and whether it is a draft of the source itself (not a
    revision or a rewrite of a draft)."""

    draft: Draft
    report: QualityReport
    request: Request
    fresh: bool = True


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
    levels: tuple[str, ...]
    settings: GateSettings
    candidates: list[Candidate]
    reached: str
    reached_request: Request
    escalation_blocked: bool = False
    revised: set[str] = field(default_factory=set)
    resimplified: set[str] = field(default_factory=set)
    best_of_started: bool = False
    attempts: int = 1
    escalation_pays: Callable[[str, str], bool] | None = None

    @property
    def best(self) -> Candidate:
        return choose(self.source, self.candidates)

    @property
    def first(self) -> Candidate:
        return self.candidates[0]

    def drafts_of_source(self) -> int:
        """Drafts made from the source itself (not revisions, not rewrites of a draft) at the first draft's level."""
        return sum(c.fresh and c.draft.level == self.first.draft.level for c in self.candidates)

    def collecting(self) -> bool:
        """best_of has started and wants more drafts."""
        return self.best_of_started and self.drafts_of_source() < self.settings.best_of


def choose(source: str, candidates: Sequence[Candidate]) -> Candidate:
    """The passing candidate closest to the source in content; with none passing, the best by the checks."""
    passing = [c for c in candidates if c.report.passed]
    if passing:
        return max(passing, key=lambda c: closeness(source, c.draft.text))
    return max(candidates, key=lambda c: preference(c.report))


def attempt_record(n: int, strategy: Strategy | None, draft: Draft, report: QualityReport) -> AttemptRecord:
    """What the result shows of one attempt (strategy None: the first draft)."""
    return AttemptRecord(
        attempt=n,
        strategy=strategy or "draft",
        level=as_level(draft.level),
        grade=report.grade,
        verdict=report.verdict,
        seconds=round(draft.seconds, 3),
    )


def plan_revise(state: _State) -> Step | None:
    """The best draft with the checker's notes, while revision rounds are left and there is something to say."""
    best = state.best
    if len(state.revised) >= state.settings.revise_rounds or best.draft.text in state.revised:
        return None
    notes = revision_notes(best.report, best.draft.text)
    if not notes:
        return None
    return Step("revise", Ask(state.source, revise=best.draft.text, notes=tuple(notes)), best.request)


def plan_best_of(state: _State) -> Step | None:
    """Another sampled draft of the source at the first draft's level, until best_of drafts exist."""
    if state.drafts_of_source() >= state.settings.best_of:
        return None
    state.best_of_started = True
    seed = state.attempts
    return Step("best_of", Ask(state.source), state.first.request, Sampling(state.settings.temperature, seed=seed))


def plan_escalate(state: _State) -> Step | None:
    """One level above the most precise level tried, as a floor the loader must fit; None where it cannot apply."""
    request = state.first.request
    draft = state.best.draft
    if request.force_quantization is not None or state.escalation_blocked or draft.band in NO_ESCALATION_BANDS:
        return None
    ceiling = request.ceiling  # after a lost worker: escalation never goes above it
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
    return Step("escalate", Ask(state.source), replace(state.reached_request, min_quantization=target))


def plan_resimplify(state: _State) -> Step | None:
    """The best draft as the new input, when it is faithful but too hard (once per draft)."""
    best = state.best
    if not (faithful(best.report) and too_hard(best.report)) or best.draft.text in state.resimplified:
        return None
    return Step("resimplify", Ask(state.source, text=best.draft.text), best.request)


def plan_sample(state: _State) -> Step:
    """A seeded sample of the source at the best draft's level."""
    sampling = Sampling(state.settings.temperature, seed=state.attempts)
    return Step("sample", Ask(state.source), state.best.request, sampling)


PLANNERS: dict[Strategy, Callable[[_State], Step | None]] = {
    "revise": plan_revise,
    "best_of": plan_best_of,
    "escalate": plan_escalate,
    "resimplify": plan_resimplify,
    "sample": plan_sample,
}


def next_step(state: _State, order: Sequence[Strategy]) -> Step | None:
    """Go on collecting best_of drafts once started; otherwise the first strategy in order that applies."""
    if state.collecting():
        return plan_best_of(state)
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
    checker: Checker = check,
    budget: RetryBudget | None = None,
    should_stop: StopCheck | None = None,
    escalation_pays: Callable[[str, str], bool] | None = None,
) -> GateResult:
    """Draft and check `source`; while it fails and the budget lasts, fix or retry; keep the best candidate.

    `levels` are the model's supported levels here (the most precise one is where escalation stops).
    With the gate off (settings.enabled False) the draft is checked and returned, never retried. A `budget`
    may skip the retries of a draft (on a model whose retries rarely pass); `should_stop` is asked before
    each retry, so a cancelled job or one past its time limit stops between attempts too. `escalation_pays`
    (lower, higher) says no where measured profiles show the higher level passes no more often.
    """
    started = time.monotonic()
    draft = drafter(Ask(source), request, None)
    report = checker(source, draft.text, grade_level, draft.meaning)
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
        tuple(levels),
        settings,
        [Candidate(draft, report, request)],
        draft.level,
        request,
        escalation_pays=escalation_pays,
    )
    passed = retry(state, result, grade_level, drafter, started, checker, should_stop)
    if budget is not None:
        budget.after_retries(draft, passed)
    return result


def retry(
    state: _State,
    result: GateResult,
    grade_level: int,
    drafter: Drafter,
    started: float,
    checker: Checker,
    should_stop: StopCheck | None,
) -> list[bool]:
    """Retry while the kept candidate fails (or best_of collects) and the budget lasts; whether each retry passed."""
    settings = state.settings
    passed: list[bool] = []
    while (not result.report.passed or state.collecting()) and state.attempts < settings.max_attempts:
        if should_stop is not None and should_stop():
            raise JobCancelled("the job was stopped between quality-gate attempts")
        if time.monotonic() - started + result.drafts[-1].seconds > settings.max_seconds:
            break  # the next attempt would likely run past the budget
        step = next_step(state, settings.order)
        if step is None:
            break
        try:
            candidate = drafter(step.ask, step.request, step.sampling)
        except (InsufficientMemoryError, UnsupportedLevelError):
            state.escalation_blocked = True  # the higher level does not fit: the decision engine says no
            continue
        if step.ask.revise is not None:
            state.revised.add(step.ask.revise)
        if step.ask.text is not None:
            state.resimplified.add(step.ask.text)
        state.attempts += 1
        report = checker(state.source, candidate.text, grade_level, candidate.meaning)
        passed.append(report.passed)
        result.attempts.append(attempt_record(state.attempts, step.strategy, candidate, report))
        result.drafts.append(candidate)
        fresh = step.ask.revise is None and step.ask.text is None
        state.candidates.append(Candidate(candidate, report, step.request, fresh))
        if rank(candidate.level) < rank(state.reached):
            state.reached, state.reached_request = candidate.level, step.request
        kept = state.best
        result.draft, result.report = kept.draft, kept.report
    return passed
