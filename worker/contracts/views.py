"""What the HTTP API answers besides the records: accepted jobs, errors, calculations, the status, memory and
cache views, health, the review page's view, and documents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    Strict,
)

from worker.contracts.jobs import AttemptRecord, JobRecord, JobStatus, ParagraphReview, ReviewAction, ReviewState
from worker.contracts.requests import MAX_PARAMS_BILLIONS, Backend
from worker.contracts.workers import (
    LevelProfile,
    MemoryFigures,
    SupervisedProcess,
    SupervisorState,
    WorkerMemory,
    WorkerModel,
    WorkerState,
)
from worker.policy import TASK_PRIORITIES, Level, TaskPriority, Thresholds


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


class JobList(BaseModel):
    """The latest jobs, newest first."""

    jobs: list[JobRecord]
    count: int


class Cancelled(BaseModel):
    """The answer to a cancelled job."""

    job_id: str
    status: Literal[JobStatus.CANCELLED]


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


class QueueSummary(BaseModel):
    """Jobs waiting (in total and per priority step, 0 first) and jobs running."""

    name: str
    depth: int
    by_priority: dict[str, int]
    running: int


class StatusMemory(MemoryFigures):
    """The memory of the fullest worker, as the status shows it."""

    worker: str
    used_percent: str
    process_gb: float


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
