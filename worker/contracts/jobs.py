"""What is stored of a job: its status, result and quality report, the events of its life, its review, and
its batch."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)

from worker.contracts.requests import DEFAULT_PRIORITY, JobSpec, whole_number
from worker.policy import LEVELS, Level


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[str] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class Reoptimization(BaseModel):
    """A model's other levels dropped because memory pressure moved its level."""

    model: str
    from_level: Level
    to_level: Level
    freed_mb: float


Verdict = Literal["pass", "needs_review"]


VERDICTS: tuple[Verdict, ...] = ("pass", "needs_review")


Strategy = Literal["revise", "best_of", "escalate", "resimplify", "sample"]


RETRY_STRATEGIES: tuple[Strategy, ...] = ("sample", "best_of", "resimplify", "revise", "escalate")
"""The default order: by the pass rate each strategy added alone on the default model, then by its cost
(bench.quality_gate strategies; docs/benchmarks.md)."""
"""The gate's retry strategies, in the order measured best on the tuning paragraphs (bench.quality_gate order)."""


class InventedContent(BaseModel):
    """What the output says that the source does not: the offending terms by kind."""

    model_config = ConfigDict(frozen=True)

    numbers: list[str] = Field(default_factory=list, description="numbers and years the source does not have")
    names: list[str] = Field(default_factory=list, description="names the source does not mention")
    words: list[str] = Field(default_factory=list, description="rare content words the source does not use")

    @property
    def facts(self) -> list[str]:
        """The added numbers and names: the terms that are made-up facts."""
        return [*self.numbers, *self.names]


class QualityReport(BaseModel):
    """The checks of one output against its source and target grade, and the verdict they give."""

    model_config = ConfigDict(frozen=True)

    target_grade: int = Field(description="the grade the reader asked for")
    grade: float | None = Field(description="Flesch-Kincaid grade of the output (null when it is empty)")
    grade_error: float | None = Field(description="grade minus target: above zero is harder than asked")
    grade_ok: bool = Field(description="the Flesch-Kincaid grade is within the tolerance of the target")
    rare_word_share: float = Field(description="share of the output's words that are rare (by word frequency)")
    rare_words: list[str] = Field(default_factory=list, description="the output's rare words")
    vocabulary_ok: bool = Field(description="the rare-word share is within what the target grade allows")
    invented: InventedContent = Field(default_factory=InventedContent)
    copy_similarity: float = Field(description="share of the output's word trigrams found in the source")
    copied: bool = Field(description="the output repeats the source nearly word for word")
    coverage: float = Field(description="share of the source's sentences whose key terms the output keeps")
    missing: list[str] = Field(default_factory=list, description="key terms of the source the output lost")
    coverage_ok: bool = Field(description="the output keeps enough of the source's key content")
    length_ratio: float = Field(default=1.0, description="the output's words over the source's")
    dropped_facts: list[str] = Field(
        default_factory=list, description="numbers and names of the source that the output leaves out"
    )
    over_simplified: bool = Field(
        default=False, description="much shorter than the source, or leaves out several of its numbers and names"
    )
    meaning_score: float | None = Field(
        default=None,
        description="the model's own judgement, asked separately, that the output changes what the source says "
        "(0-1); null when the model was not asked (a base model, or word checks already failed)",
    )
    meaning_ok: bool = Field(default=True, description="the meaning score is below the limit (or was not asked)")
    verdict: Verdict = Field(description="pass, or needs_review when any check fails")
    reasons: list[str] = Field(default_factory=list, description="why the verdict is needs_review, in plain words")

    @property
    def passed(self) -> bool:
        """Whether the verdict is pass."""
        return self.verdict == "pass"


class AttemptRecord(BaseModel):
    """One draft the quality gate made: how, where it ran, what it scored and what it cost."""

    attempt: int = Field(ge=1, description="1 for the first draft of a paragraph part, then each retry")
    strategy: Strategy | Literal["draft"] = Field(description="draft, or the retry strategy that made it")
    level: Level
    grade: float | None
    verdict: Verdict
    seconds: float
    paragraph: int | None = Field(default=None, description="the paragraph (from 1) in a text of several")


class ParagraphResult(BaseModel):
    """One paragraph of a document: its simplified text, the level its kept draft ran at, and its report."""

    index: int = Field(ge=1)
    text: str
    level: Level
    quality: QualityReport


class GateSummary(BaseModel):
    """What the quality gate did for a job: whether it ran, how many drafts it made, and retries it skipped."""

    enabled: bool = Field(description="false when the job (quality_check) or DYNAQUANT_QUALITY_GATE switched it off")
    drafts: int = Field(ge=0, description="drafts made, over every paragraph")
    retries: int = Field(ge=0, description="drafts after the first of each paragraph part")
    retries_skipped: str | None = Field(
        default=None, description="why failing drafts were not retried, when the retry budget said no"
    )


class AppliedCeiling(BaseModel):
    """The most precise level a job could run at because a worker died running it (or this model on this host)."""

    level: Level
    reasons: list[str] = Field(description="why: the job's own earlier attempt, the host's recent loss, or both")


class JobResult(BaseModel):
    """What a succeeded job produced, and what it cost; fields a newer worker adds are kept."""

    model_config = ConfigDict(extra="allow")

    text: str
    level: Level
    model: str
    backend: str
    tokens_in: int
    tokens_out: int
    generation_seconds: float
    load_seconds: float
    tokens_per_second: float
    prompt_seconds: float | None = Field(
        default=None, description="of generation_seconds, the time to the first token (reading the prompts)"
    )
    finish_reason: str
    readability_grade: float | None
    grade_level: int
    subject: str
    memory_used: float
    load: int
    cache_hit: bool
    reoptimized: Reoptimization | None = None
    attempt: int | None = None
    quality: QualityReport | None = Field(default=None, description="the quality report of the whole text")
    attempts: list[AttemptRecord] = Field(default_factory=list, description="every draft the quality gate made")
    output_level: Level | None = Field(
        default=None, description="the level whose draft was kept (an escalated retry may run above `level`)"
    )
    paragraphs: list[ParagraphResult] | None = Field(
        default=None, description="each paragraph's result, for a document"
    )
    gate: GateSummary | None = None
    ceiling: AppliedCeiling | None = Field(None, description="set when a lost worker capped the level")
    host: str | None = Field(
        default=None, description="the host that ran it: its level profiles hold the job's figures"
    )
    device: str | None = Field(default=None, description="the device it ran on (cpu, cuda:0, ...)")


class JobError(BaseModel):
    """Why a job failed."""

    code: str
    message: str


Phase = Literal["loading", "running"]


class JobStage(BaseModel):
    """What a running job's worker does now: loading or running a model at a level (so a death is traced to it)."""

    phase: Phase
    model: str
    level: Level
    at: float


class JobEvent(BaseModel):
    """Something that happened to a job besides its run: a requeue after its worker was lost."""

    event: Literal["requeued"]
    reason: str = Field(description="why, e.g. 'worker lost'")
    worker: str = Field(description="the worker that was running the job")
    attempt: int = Field(description="the attempt that was cut short")
    phase: Phase | None = Field(description="what the worker was doing then, if it said")
    model: str | None
    level: Level | None
    ceiling: Level | None = Field(description="the most precise level the next attempt may run at")
    detected_by: str = Field(description="the worker or supervisor that requeued the job")
    at: float


ReviewState = Literal["unreviewed", "in_review", "accepted", "edited"]


REVIEW_STATES: tuple[ReviewState, ...] = ("unreviewed", "in_review", "accepted", "edited")


ParagraphState = Literal["unreviewed", "accepted", "edited", "redrafting", "redrafted"]


SETTLED: frozenset[str] = frozenset({"accepted", "edited", "redrafted"})
"""Paragraph states a reviewer has decided: the text stands (as the model wrote it, edited, or a new draft)."""


ReviewKind = Literal["accept", "edit", "redraft", "use_redraft"]


MAX_REVIEWER_CHARS = 100


Reviewer = Annotated[str, Strict(), StringConstraints(max_length=MAX_REVIEWER_CHARS, strip_whitespace=True)]


class ReviewRequest(BaseModel):
    """The body of POST /jobs/<id>/review: one reviewer action on a paragraph, or `accept` on the whole job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: ReviewKind = Field(
        description="accept: the text stands as it is; edit: replace it with `text` (re-checked); redraft: ask the "
        "model again at `level` (queued at the job's priority); use_redraft: take the finished redraft's text"
    )
    paragraph: Annotated[int, Strict(), Field(ge=1), BeforeValidator(whole_number)] | None = Field(
        default=None, description="the paragraph (from 1); leave it out to accept every paragraph not yet reviewed"
    )
    text: Annotated[str, Strict()] | None = Field(
        default=None, description="for edit: the paragraph's new text (non-blank, at most DYNAQUANT_MAX_TEXT_CHARS)"
    )
    level: Level | None = Field(
        default=None,
        description=f"for redraft: one of {', '.join(LEVELS)} (default: one level more precise than the draft)",
    )
    reviewer: Reviewer | None = Field(
        default=None, description=f"who reviews (any name, at most {MAX_REVIEWER_CHARS} chars)"
    )


class ReviewAction(BaseModel):
    """One stored reviewer action: who, when, on which paragraph, and the text before and after."""

    action: ReviewKind
    paragraph: int | None = Field(description="the paragraph (from 1); null for the whole job")
    reviewer: str | None = None
    at: float
    before: str | None = Field(default=None, description="the paragraph's text before an edit or a redraft taken")
    after: str | None = Field(default=None, description="its text after")
    level: Level | None = Field(default=None, description="the level asked for (redraft) or of the draft taken")
    redraft_job: str | None = Field(default=None, description="the job that makes (or made) the new draft")


class ParagraphReview(BaseModel):
    """Where the review of one paragraph stands: its text now, the draft the model first kept, and their levels."""

    index: int = Field(ge=1)
    state: ParagraphState = "unreviewed"
    text: str = Field(description="the paragraph as it stands now")
    level: Level = Field(description="the level that wrote `text` (the draft's, for an edit)")
    quality: QualityReport = Field(description="the checker's report of `text`")
    draft: str = Field(description="the model's kept draft, as the job first returned it")
    draft_level: Level
    draft_verdict: Verdict = Field(description="the checker's verdict of the draft")
    redraft_job: str | None = Field(default=None, description="the job asked to write a new draft, while it is pending")


class JobReview(BaseModel):
    """A job's review: each paragraph's state and text, and every action in order."""

    state: ReviewState
    updated_at: float
    paragraphs: list[ParagraphReview]
    actions: list[ReviewAction] = Field(default_factory=list)


class JobRecord(BaseModel):
    """A job as the API shows it."""

    job_id: str
    status: JobStatus
    batch_id: str | None = None
    priority: int = DEFAULT_PRIORITY
    model: str | None = None
    request: JobSpec | None = None
    attempts: int = 0
    worker: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: JobResult | None = None
    error: JobError | None = None
    stage: JobStage | None = Field(None, description="what the worker is loading or running now")
    history: list[JobEvent] = Field([], description="each requeue after a lost worker, oldest first")
    ceiling: Level | None = Field(None, description="the most precise level left to the job after a lost worker")
    review_state: ReviewState | None = Field(
        None, description="for a succeeded job: unreviewed, in_review, accepted (as the model wrote it) or edited"
    )
    review: JobReview | None = Field(None, description="each paragraph's review and every reviewer action")


def verdict_of(result: JobResult | None) -> Verdict | None:
    """The quality verdict of a job's result, when it has one."""
    return result.quality.verdict if result is not None and result.quality is not None else None


class BatchEntry(BaseModel):
    """One job of a batch: its status ('expired' once its record is gone) and its result once done."""

    job_id: str
    status: JobStatus | Literal["expired"]
    result: JobResult | None = None


class BatchRecord(BaseModel):
    """A batch: counts by status and each job's entry, in submission order."""

    batch_id: str
    created_at: float
    total: int
    counts: dict[str, int]
    verdicts: dict[str, int] = Field(
        default_factory=dict, description="succeeded jobs by the verdict of their quality report (pass, needs_review)"
    )
    done: bool
    jobs: list[BatchEntry]
