"""What workers and `dynaquant up` publish: memory and load readings, cache, level profiles and choices, the
worker state of a heartbeat, and supervised processes."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
)

from worker.policy import Level, Thresholds, memory_band

MIB = 1024**2


PROFILES_PATH = "/api/v1/quantization/profiles"


GIB = 1024**3


HEARTBEAT_VERSION: Literal[2] = 2
"""Version of the worker heartbeat; 1 was the untyped dict of earlier releases."""


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
