"""The one typed contract of the service: what clients send, what is stored and answered, what workers publish.

The web app validates requests with these models, the worker parses the job it is sent with them, the
CLI checks a batch file with them, and the OpenAPI document is generated from them. Field limits that
are settings (text length, new tokens, batch size, the known models) are checked by `resolve` and
`parse_batch` against a JobLimits; the rest is in the types. `input_error` turns a validation error
into the API's error shape: the field's path (`items[3].grade_level`) and what to send instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

from pydantic import (
    MISSING,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    Strict,
    StringConstraints,
    ValidationError,
    computed_field,
)
from pydantic.fields import FieldInfo

from worker.errors import InputError
from worker.policy import LEVELS, TASK_PRIORITIES, Level, Request, TaskPriority, Thresholds, memory_band

MIB = 1024**2
PROFILES_PATH = "/api/v1/quantization/profiles"
GIB = 1024**3
MIN_GRADE, MAX_GRADE = 1, 12
DEFAULT_PRIORITY = 5
DEFAULT_SUBJECT = "General"
MAX_SUBJECT_CHARS = 100
MAX_PARAMS_BILLIONS = 100_000.0
M = TypeVar("M", bound=BaseModel)
HEARTBEAT_VERSION: Literal[2] = 2
"""Version of the worker heartbeat; 1 was the untyped dict of earlier releases."""

_SPACES = "".join(f"\\u{c:04x}" for c in range(0x10000) if chr(c).isspace())
NON_BLANK = f"[^{_SPACES}]"
"""Matches a string holding at least one character Python's str.strip() keeps."""


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[str] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


def _whole(value: Any) -> Any:
    """JSON has one number type: 5.0 is the integer 5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Grade = Annotated[int, Strict(), Field(ge=MIN_GRADE, le=MAX_GRADE), BeforeValidator(_whole)]
QueuePriority = Annotated[int, Strict(), Field(ge=0, le=9), BeforeValidator(_whole)]
NewTokens = Annotated[int, Strict(), Field(ge=1), BeforeValidator(_whole)]
Text = Annotated[str, Strict(), StringConstraints(min_length=1, pattern=NON_BLANK)]
Subject = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_SUBJECT_CHARS, pattern=NON_BLANK)]
ModelName = Annotated[str, Strict()]
Switch = Annotated[bool, Strict()]
Backend = Literal["transformers", "gguf"]


def _info(description: str, **kwargs: Any) -> Any:
    """A job field that a batch item or the defaults may leave out (absent, which is not null)."""
    return Field(MISSING, description=description, **kwargs)


class JobFields(BaseModel):
    """A job's fields as a client sends them; a batch item or the batch's defaults may leave any out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: Text | MISSING = _info(
        "a non-empty string, the text to simplify (at most DYNAQUANT_MAX_TEXT_CHARS characters)"
    )
    grade_level: Grade | MISSING = _info(f"an integer from {MIN_GRADE} to {MAX_GRADE}, the school grade to write for")
    subject: Subject | MISSING = _info(
        f"a non-empty string of at most {MAX_SUBJECT_CHARS} characters, the subject (default {DEFAULT_SUBJECT})"
    )
    task_priority: TaskPriority | MISSING | None = _info(
        f"one of {', '.join(TASK_PRIORITIES)}, or null for balanced: quality runs one level more precise, "
        "speed one level less"
    )
    min_quantization: Level | MISSING | None = _info(
        f"one of {', '.join(LEVELS)}, or null: never run less precise than this level"
    )
    force_quantization: Level | MISSING | None = _info(
        f"one of {', '.join(LEVELS)}, or null: run at exactly this level"
    )
    model: ModelName | MISSING | None = _info(
        "a known model name (the default, one in DYNAQUANT_MODELS_FILE, or one a live worker offers), "
        "or empty or null for the default"
    )
    priority: QueuePriority | MISSING = _info(
        f"an integer from 0 to 9, the queue priority: 0 runs first, 9 last (default {DEFAULT_PRIORITY})"
    )
    max_tokens: NewTokens | MISSING = _info(
        "an integer of at least 1, the most new tokens (at most DYNAQUANT_MAX_TOKENS; "
        "default DYNAQUANT_DEFAULT_MAX_TOKENS)"
    )
    quality_check: Switch | MISSING = _info(
        "true or false: check the result's quality and retry a failing draft (default true; "
        "DYNAQUANT_QUALITY_GATE=0 switches retries off for every job)"
    )


class JobRequest(JobFields):
    """The body of POST /jobs: a job's fields with `text` and `grade_level` given."""

    text: Text = Field(description=JobFields.model_fields["text"].description)
    grade_level: Grade = Field(description=JobFields.model_fields["grade_level"].description)


class JobSpec(BaseModel):
    """A complete, checked job: what is stored with the job and what the worker runs."""

    model_config = ConfigDict(frozen=True)

    text: Text
    grade_level: Grade
    subject: Subject = DEFAULT_SUBJECT
    task_priority: TaskPriority = "balanced"
    min_quantization: Level | None = None
    force_quantization: Level | None = None
    model: ModelName
    priority: QueuePriority = DEFAULT_PRIORITY
    max_tokens: NewTokens
    quality_check: Switch = True

    @property
    def request(self) -> Request:
        """What the decision policy needs from this job."""
        return Request(self.task_priority, self.min_quantization, self.force_quantization)


def _required_unless_default(field: str) -> dict[str, Any]:
    """Every item must give `field` unless the batch's defaults give it."""
    return {
        "if": {"required": ["defaults"], "properties": {"defaults": {"type": "object", "required": [field]}}},
        "else": {"properties": {"items": {"items": {"required": [field]}}}},
    }


class BatchRequest(BaseModel):
    """The body of POST /batches: items, each completed by the defaults; all are checked before any is queued."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"allOf": [_required_unless_default("text"), _required_unless_default("grade_level")]},
    )

    items: list[JobFields] = Field(
        min_length=1,
        description="a non-empty list of job objects (at most DYNAQUANT_MAX_BATCH); an item may leave out "
        "the fields that defaults gives",
    )
    defaults: JobFields | None = Field(None, description="an object of job fields for every item that leaves them out")


@dataclass(frozen=True)
class JobLimits:
    """The job limits that are settings, and the model names a job may ask for (None: not checked here)."""

    max_text_chars: int
    max_tokens: int
    default_max_tokens: int
    default_model: str
    max_batch: int
    models: tuple[str, ...] | None = None


def check_limits(job: JobFields | JobSpec, limits: JobLimits, where: str = "") -> None:
    """Raise InputError for a given field past a limit that is a setting (or an unknown model)."""
    if job.text is not MISSING and len(job.text) > limits.max_text_chars:
        raise InputError(
            f"{where}text",
            f"is {len(job.text)} characters; the limit is {limits.max_text_chars} (DYNAQUANT_MAX_TEXT_CHARS): "
            "split it into several jobs",
        )
    if job.max_tokens is not MISSING and job.max_tokens > limits.max_tokens:
        raise InputError(
            f"{where}max_tokens", f"must be from 1 to {limits.max_tokens} (DYNAQUANT_MAX_TOKENS), got {job.max_tokens}"
        )
    model = job.model if isinstance(job.model, str) else ""
    if model and limits.models is not None and model not in limits.models:
        known = ", ".join(limits.models) or "none"
        raise InputError(f"{where}model", f"unknown model {model!r}: known models are {known}")


def resolve(job: JobFields, limits: JobLimits, where: str = "") -> JobSpec:
    """The complete job a client's fields ask for (defaults filled in), or InputError naming the field."""
    check_limits(job, limits, where)
    given = job.model_dump()
    for name in ("text", "grade_level"):
        if name not in given:
            raise InputError(where + name, f"is required: {JobFields.model_fields[name].description}")
    return JobSpec.model_construct(  # every field was validated as a JobFields: filled in, not validated again
        text=given["text"].strip(),
        grade_level=given["grade_level"],
        subject=given.get("subject", DEFAULT_SUBJECT).strip(),
        task_priority=given.get("task_priority") or "balanced",
        min_quantization=given.get("min_quantization"),
        force_quantization=given.get("force_quantization"),
        model=given.get("model") or limits.default_model,
        priority=given.get("priority", DEFAULT_PRIORITY),
        max_tokens=given.get("max_tokens", limits.default_max_tokens),
        quality_check=given.get("quality_check", True),
    )


def validated(model: type[M], payload: Any, where: str = "") -> M:
    """`payload` as a `model`, or InputError naming the first bad field (prefixed with `where`)."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise input_error(exc, model, where) from None


def parse_job(payload: Any, limits: JobLimits) -> JobSpec:
    """A POST /jobs body as a complete job, or InputError naming the field."""
    return resolve(validated(JobRequest, payload), limits)


def parse_batch(payload: Any, limits: JobLimits) -> list[JobSpec]:
    """Every job of a POST /batches body, each item completed by the defaults, or InputError naming the field.

    Each default is checked on its own, so a bad one is named even when every item overrides it.
    """
    batch = validated(BatchRequest, payload)
    if len(batch.items) > limits.max_batch:
        raise InputError(
            "items", f"has {len(batch.items)} jobs; a batch takes at most {limits.max_batch} (DYNAQUANT_MAX_BATCH)"
        )
    defaults = batch.defaults or JobFields()
    check_limits(defaults, limits, "defaults.")
    return [
        resolve(defaults.model_copy(update=item.model_dump()), limits, f"items[{index}].")
        for index, item in enumerate(batch.items)
    ]


def field_path(loc: tuple[int | str, ...]) -> str:
    """('items', 3, 'grade_level') -> 'items[3].grade_level'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation holds (directly, in a list, or in a union)."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _locate(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model that holds the field at `loc`, and that field's declaration."""
    parent: type[BaseModel] | None = model
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if field is not None:
            parent = _model_of(field.annotation)
        field = parent.model_fields.get(part) if parent is not None else None
    return parent, field


def input_error(exc: ValidationError, model: type[BaseModel], where: str = "") -> InputError:
    """The first problem of a validation error as InputError: the field's path and what to send instead."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    parent, field = _locate(model, loc)
    shown = repr(error["input"])
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(parent.model_fields) if parent is not None else "none"
        reason = f"is not a known field; allowed are {allowed}"
    elif error["type"] == "string_unicode":
        reason = "holds a lone UTF-16 surrogate (\\ud800-\\udfff): send valid Unicode text"
    elif not loc or isinstance(loc[-1], int):
        reason = f"must be a JSON object; got {shown}"
    elif error["type"] == "missing":
        reason = f"is required: {field.description if field else 'see /openapi.json'}"
    else:
        reason = f"must be {field.description if field else 'as /openapi.json says'}; got {shown}"
    return InputError(where + (field_path(loc) or "body"), reason)


class CalculateRequest(BaseModel):
    """The body of POST /quantization/calculate."""

    model_config = ConfigDict(extra="forbid")

    model_size_params: Annotated[float, Strict()] = Field(
        gt=0,
        le=MAX_PARAMS_BILLIONS,
        allow_inf_nan=False,
        description=f"a number above 0 and at most {MAX_PARAMS_BILLIONS:g}, the model's size in billions of "
        "weights (7.0 for a 7B model, 1.54 for the bundled qwen2.5-1.5b)",
    )
    task_priority: TaskPriority = Field("balanced", description=f"one of {', '.join(TASK_PRIORITIES)}")
    backend: Backend = Field("transformers", description="one of transformers, gguf: whose load settings to show")


class CalculationBasis(BaseModel):
    """What a /calculate answer rests on: whose memory, which thresholds, what load."""

    source: Literal["worker", "api_host"]
    worker: str | None
    note: str
    memory_used: float
    memory_status: str
    load: int
    backend: Backend
    task_priority: TaskPriority
    thresholds: Thresholds


class Calculation(BaseModel):
    """The level a model of a size would get now, and its cost."""

    level: Level
    precision: Level
    compression_ratio: str
    estimated_memory_gb: float
    estimated_weights_gb: float
    config: dict[str, Any]
    basis: CalculationBasis


class ErrorDetail(BaseModel):
    """What went wrong and what to do; `field` names the input at fault."""

    code: str
    message: str
    field: str | None


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer (some add top-level keys, such as the job's status on a 409)."""

    model_config = ConfigDict(extra="allow")

    error: ErrorDetail


class JobAccepted(BaseModel):
    """The answer to a queued job."""

    job_id: str
    status_url: str
    status: JobStatus


class BatchAccepted(BaseModel):
    """The answer to a queued batch."""

    batch_id: str
    job_ids: list[str]
    status_url: str
    status: JobStatus


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
    paragraph: Annotated[int, Strict(), Field(ge=1), BeforeValidator(_whole)] | None = Field(
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


MarkKind = Literal["invented", "rare", "long_sentence", "missing", "dropped"]


class Mark(BaseModel):
    """Where a finding of the checker is in a text: characters [start, end) and what is wrong there."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    kind: MarkKind = Field(
        description="in the result: invented (a term the source does not have), rare (a hard word), long_sentence; "
        "in the source: missing (a key term the result lost), dropped (a number or name it lost)"
    )
    note: str = Field(description="the finding in words")


class ParagraphView(ParagraphReview):
    """One paragraph on the review page: its source and text with the findings marked, and the drafts it took."""

    source: str
    source_marks: list[Mark] = Field(default_factory=list)
    marks: list[Mark] = Field(default_factory=list, description="findings in `text`")
    attempts: list[AttemptRecord] = Field(default_factory=list, description="the drafts the gate made for it")


class GradeTolerance(BaseModel):
    """How far a text's grade may stand from its target and still pass the checker."""

    above: float
    below: float


class ReviewView(BaseModel):
    """GET /jobs/<id>/review: a succeeded job's paragraphs beside their sources, findings marked, and its review."""

    job_id: str
    model: str
    subject: str
    grade_level: int
    priority: int
    level: Level = Field(description="the level the job started at")
    review_state: ReviewState
    grade_tolerance: GradeTolerance
    updated_at: float | None = Field(description="the last reviewer action (null: none yet)")
    paragraphs: list[ParagraphView]
    actions: list[ReviewAction]


class ReviewAnswer(BaseModel):
    """What POST /jobs/<id>/review answers: the job's review after the action, and a redraft's job when it made one."""

    job_id: str
    review_state: ReviewState
    paragraph: ParagraphReview | None = Field(description="the paragraph acted on (null for the whole job)")
    redraft_job: str | None = Field(default=None, description="the queued job writing the new draft (redraft)")
    status_url: str | None = Field(default=None, description="where to poll the redraft")


class ReviewLabels(BaseModel):
    """GET /reviews/labels: reviewers' verdicts as rows of the checker's hand-label files, oldest first."""

    labels: list[dict[str, Any]] = Field(
        description="pid (<job>#<paragraph>), model, level, grade_level, subject, source, output, "
        "labels.teacher_accept, checker_verdict, edited, reviewer, at, note"
    )
    count: int


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


class JobList(BaseModel):
    """The latest jobs, newest first."""

    jobs: list[JobRecord]
    count: int


def verdict_of(result: JobResult | None) -> Verdict | None:
    """The quality verdict of a job's result, when it has one."""
    return result.quality.verdict if result is not None and result.quality is not None else None


class Cancelled(BaseModel):
    """The answer to a cancelled job."""

    job_id: str
    status: Literal[JobStatus.CANCELLED]


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


class MemoryReading(BaseModel):
    """Memory of the pool that holds model weights, and this process's share of it, in bytes (no rounding)."""

    model_config = ConfigDict(frozen=True)

    pool: str
    total_bytes: int = Field(ge=0)
    available_bytes: int = Field(ge=0)
    process_bytes: int = Field(ge=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def used_bytes(self) -> int:
        """Bytes in use in the pool."""
        return max(self.total_bytes - self.available_bytes, 0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def used_fraction(self) -> float:
        """Share of the pool in use, 0 to 1."""
        return min(self.used_bytes / self.total_bytes, 1.0) if self.total_bytes else 1.0


def gib(count: int) -> float:
    """Bytes as GiB, to three decimals, for display."""
    return round(count / GIB, 3)


class LoadReading(BaseModel):
    """Requests waiting in the queue and requests being run."""

    model_config = ConfigDict(frozen=True)

    queued: int = Field(ge=0)
    running: int = Field(ge=0)

    @property
    def total(self) -> int:
        """The load the decision matrix counts."""
        return self.queued + self.running


class CachedModel(BaseModel):
    """One model in a worker's cache."""

    name: str
    level: Level
    size_mb: float = Field(description="MiB")
    access_count: int
    in_use: bool
    last_used: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> Literal["in_use", "loaded"]:
        """'in_use' while a job holds it, else 'loaded'."""
        return "in_use" if self.in_use else "loaded"


def utilization(current_mb: float | None, max_mb: float | None) -> str | None:
    """'3.2%' of the cap in use, when both are known."""
    return f"{current_mb / max_mb * 100:.1f}%" if current_mb is not None and max_mb else None


class CacheStats(BaseModel):
    """A worker's model cache: MiB held, the cap, and each model."""

    current_size_mb: float
    max_size_mb: float
    models: list[CachedModel]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def utilization(self) -> str | None:
        """Share of the cap in use."""
        return utilization(self.current_size_mb, self.max_size_mb)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def models_cached(self) -> int:
        """How many models are cached."""
        return len(self.models)


class JobSummary(BaseModel):
    """The few facts of a worker's last job that its status shows."""

    job_id: str
    status: str
    level: Level | None = None
    model: str | None = None
    generation_seconds: float | None = None
    readability_grade: float | None = None
    finished_at: float


class WorkerModel(CachedModel):
    """A cached model with the worker that holds it."""

    worker: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def profiles(self) -> str:
        """Where the model's measured level profiles on the worker's host are (GET)."""
        host = self.worker.split("@", 1)[1] if "@" in self.worker else self.worker
        return f"{PROFILES_PATH}?{urlencode({'model': self.name, 'host': host})}"


class LevelProfile(BaseModel):
    """One model at one level on one host and device, as measured by real, calibration and shadow jobs."""

    host: str
    device: str
    model: str
    level: Level
    jobs: int = Field(0, ge=0, description="jobs measured: real, calibration and shadow together")
    real_jobs: int = Field(0, ge=0)
    calibration_jobs: int = Field(0, ge=0)
    shadow_jobs: int = Field(0, ge=0)
    seconds_per_job: float | None = Field(None, description="rolling mean of generation seconds per job")
    prompt_tokens_per_second: float | None = Field(None, description="rolling mean of prompt evaluation speed")
    decode_tokens_per_second: float | None = Field(None, description="rolling mean of generation speed")
    resident_mb: float | None = Field(None, description="memory the load took, measured (RSS or GPU memory delta)")
    estimated_mb: float | None = Field(None, description="what the loader estimated the load would take")
    estimate_error: float | None = Field(None, description="(estimated - measured) / measured")
    checked: int = Field(0, ge=0, description="jobs with a quality verdict")
    pass_rate: float | None = Field(None, description="share of checked jobs whose first draft passed")
    grade_error: float | None = Field(None, description="rolling mean of the absolute grade error")
    reviewed: int = Field(0, ge=0, description="drafts of this level a reviewer accepted or changed")
    review_accept_rate: float | None = Field(None, description="share of reviewed drafts a reviewer took as they were")
    reviewed_pass_rate: float | None = Field(
        None,
        description="pass_rate corrected by the reviews: the share of checker passes reviewers accepted, and of "
        "checker flags they accepted anyway, weighted by pass_rate (null until a draft is reviewed)",
    )
    updated_at: float


PROFILE_FILTER = r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,199}$"
"""What a model or host filter of GET /quantization/profiles may be."""


class ProfileQuery(BaseModel):
    """GET /quantization/profiles: optional filters."""

    model: str | None = Field(None, pattern=PROFILE_FILTER, description="only this model's profiles")
    host: str | None = Field(None, pattern=PROFILE_FILTER, description="only this host's profiles")


class ProfileList(BaseModel):
    """GET /quantization/profiles: every measured level profile, by host, device, model and level."""

    profiles: list[LevelProfile]
    count: int


class LevelChoice(BaseModel):
    """The level a worker holds a model at and why, in words."""

    model: str
    level: Level
    matrix_level: Level = Field(description="what the decision matrix alone asked for")
    reasons: list[str] = Field(default_factory=list)
    at: float


class HostCeiling(BaseModel):
    """A model a host runs at most at a level for a while, because a worker died running it higher there."""

    model: str
    level: Level
    reason: str
    since: float
    until: float


class WorkerState(BaseModel):
    """A worker's heartbeat: published to Redis every few seconds, read by the status API and the metrics."""

    version: Literal[2] = HEARTBEAT_VERSION
    worker: str
    heartbeat_at: float
    pid: int
    host: str
    started_at: float
    device: str
    memory: MemoryReading
    capabilities: dict[str, bool]
    thresholds: Thresholds
    recommended_level: Level = Field(description="the level the default model's next balanced job would run at")
    recommended_reasons: list[str] = Field(default_factory=list, description="why: the decision's own reasons")
    active_job: str | None = None
    queue: LoadReading
    current_levels: dict[str, Level] = {}
    cache: CacheStats
    models_available: list[str]
    last_job: JobSummary | None = None
    jobs_done: int = 0
    reoptimizations: int = 0
    cache_clear_seen: int = 0
    threads: int | None = Field(None, description="llama.cpp threads this worker runs")
    ceilings: dict[str, HostCeiling] = Field({}, description="per model: the ceiling this host runs it under now")
    choices: dict[str, LevelChoice] = Field({}, description="per model: the level held now and why")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def memory_status(self) -> str:
        """The worker's memory band, under its own thresholds."""
        return memory_band(self.memory.used_fraction, self.thresholds)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active_requests(self) -> int:
        """Jobs this worker runs now (one at most)."""
        return 1 if self.active_job else 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def current_models(self) -> list[WorkerModel]:
        """The models in this worker's cache, each tagged with the worker."""
        return [WorkerModel(**m.model_dump(exclude={"status"}), worker=self.worker) for m in self.cache.models]


class QueueSummary(BaseModel):
    """Jobs waiting (in total and per priority step, 0 first) and jobs running."""

    name: str
    depth: int
    by_priority: dict[str, int]
    running: int


class MemoryFigures(BaseModel):
    """A memory pool's size, free and used memory, in GiB."""

    total_gb: float
    available_gb: float
    used_gb: float


class WorkerMemory(MemoryFigures):
    """One worker's memory pool and band."""

    worker: str
    host: str
    device: str
    pool: str
    percent_used: str
    process_memory_gb: float
    status: str


class StatusMemory(MemoryFigures):
    """The memory of the fullest worker, as the status shows it."""

    worker: str
    used_percent: str
    process_gb: float


ProcessRole = Literal["redis", "worker", "web", "flower"]
ProcessStatus = Literal["new", "running", "backoff", "given_up", "stopped"]


class SupervisedProcess(BaseModel):
    """One process `dynaquant up` supervises: running, waiting to restart (backoff), or given up, and why."""

    name: str
    role: ProcessRole
    state: ProcessStatus
    pid: int | None
    restarts: int
    started_at: float | None
    last_exit_code: int | None
    threads: int | None = Field(None, description="a worker's llama.cpp threads")
    message: str | None = Field(description="what happened and what to check, while it is not running")


class SupervisorState(BaseModel):
    """What one `dynaquant up` publishes about its processes (with a TTL, like a heartbeat)."""

    host: str
    pid: int
    started_at: float
    url: str
    processes: list[SupervisedProcess]


class ServiceProcess(SupervisedProcess):
    """A supervised process, with the host of its supervisor."""

    host: str


class ServiceSummary(BaseModel):
    """What `dynaquant up` supervises: degraded when a process is down (given up or restarting), and why."""

    supervised: bool = Field(description="whether any `dynaquant up` publishes its processes")
    degraded: bool
    messages: list[str] = Field(description="one sentence per process that is not running")
    processes: list[ServiceProcess]

    @classmethod
    def of(cls, supervisors: list[SupervisorState]) -> ServiceSummary:
        """The supervisors' processes in one view."""
        messages = [
            p.message for s in supervisors for p in s.processes if p.state != "running" and p.message is not None
        ]
        processes = [ServiceProcess(**p.model_dump(), host=s.host) for s in supervisors for p in s.processes]
        return cls(supervised=bool(supervisors), degraded=bool(messages), messages=messages, processes=processes)


class StatusView(BaseModel):
    """GET /quantization/status: the whole service, every live worker's state, the queue and the supervision."""

    status: Literal["ok", "no_workers"]
    message: str | None
    device: str | None
    devices: list[str]
    active_requests: int | None
    memory: StatusMemory | None
    memory_status: str | None
    capabilities: dict[str, bool] | None
    recommended_level: Level | None
    current_models: list[WorkerModel]
    workers: list[WorkerState]
    queue: QueueSummary
    service: ServiceSummary


class MemoryView(BaseModel):
    """GET /quantization/memory: pools summed once each (workers on one host share its RAM)."""

    total_gb: float | None
    available_gb: float | None
    used_gb: float | None
    percent_used: str | None
    process_memory_gb: float | None
    status: str | None
    message: str | None
    most_pressured_worker: str | None
    workers: list[WorkerMemory]


class WorkerCache(BaseModel):
    """One worker's cache, with its name."""

    worker: str
    current_size_mb: float
    max_size_mb: float
    utilization: str | None
    models_cached: int
    models: list[WorkerModel]


class CacheView(BaseModel):
    """GET /quantization/cache: every live worker's cache, summed, with each worker's own."""

    current_size_mb: float | None
    max_size_mb: float | None
    utilization: str | None
    models_cached: int
    models: list[WorkerModel]
    status: Literal["ok", "no_workers"]
    message: str | None
    workers: list[WorkerCache]


class ClearReport(BaseModel):
    """What one worker freed for a cache-clear request."""

    freed_mb: float
    at: float


class ClearResult(BaseModel):
    """POST /quantization/cache/clear: what each worker freed, and who did not answer in time."""

    status: Literal["success", "partial"]
    message: str
    generation: int | None
    workers: dict[str, ClearReport]
    pending: list[str]


class Health(BaseModel):
    """GET /healthz."""

    status: Literal["ok"]


class Check(BaseModel):
    """One readiness check; one that is not required (the supervised processes) only makes the service degraded."""

    ok: bool
    message: str | None
    count: int | None = None
    required: bool = True


class Ready(BaseModel):
    """GET /readyz when ready: "degraded" when a supervised process is down but the API and a worker are up."""

    status: Literal["ready", "degraded"]
    checks: dict[str, Check]


class Document(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""
