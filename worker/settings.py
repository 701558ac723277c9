"""Every setting of the service, read from the environment once per process (pydantic-settings).

Each variable is declared once below with its default, bounds and meaning; the web app keeps the
object in its config and the worker runtime holds it. An empty variable counts as unset. A bad value
stops the process with an error naming the variable.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.json_schema import JsonDict
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.contracts import RETRY_STRATEGIES, JobLimits, Strategy
from worker.policy import ProfileRules, Thresholds

DEFAULT_MODEL = "qwen2.5-1.5b"
"""The bundled model jobs run on unless they name another: Qwen2.5-Coder-1.5B-Instruct Q4_K_M."""
SMALL_MODEL = "gemma-3-270m"
"""The bundled small, fast base model (Gemma 3 270M): for work whose output content does not matter."""
BOUND_SYMBOLS: tuple[tuple[str, str], ...] = (("ge", ">="), ("gt", ">"), ("le", "<="))
DEFAULT_N_CTX = 4096
DEFAULT_RESULT_TTL = 86400
CHAPTER_PARAGRAPHS = 20
CHAPTER_PARAGRAPH_CHARS = 900
CHAPTER_CHARS = 20_000
"""The default text limit: a chapter of CHAPTER_PARAGRAPHS paragraphs of CHAPTER_PARAGRAPH_CHARS characters (18,000
with the blank lines between them), with room to spare."""
VISIBILITY_MARGIN_SECONDS = 120
"""How much longer than the time limit a job may be out before Redis hands it out again, by default."""


def var(name: str, default: Any, description: str, shown: str | None = None, **bounds: Any) -> Any:
    """A setting read from the environment variable `name`; `shown` is the default as the README writes it."""
    extra: JsonDict | None = {"shown_default": shown} if shown is not None else None
    return Field(default, validation_alias=name, description=description, json_schema_extra=extra, **bounds)


class Settings(BaseSettings):
    """The service's configuration; `Settings(max_batch=3)` overrides a value by its field name."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True, str_strip_whitespace=True, validate_by_name=True, extra="ignore", frozen=True
    )

    redis_url: str = var(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "broker, job records and worker state; a password goes in the URL (`redis://:pw@host:6379/0`)",
    )
    queue: str = var("DYNAQUANT_QUEUE", "simplify", "the Celery queue jobs go to")
    api_token: str | None = var(
        "API_TOKEN",
        None,
        "when set, submitting, cancelling and clearing the cache need `Authorization: Bearer <token>`; reads stay open",
    )
    memory_comfortable: float = var(
        "QUANTIZE_MEMORY_COMFORTABLE", 0.40, "memory band edge: comfortable below", ge=0, le=1
    )
    memory_moderate: float = var("QUANTIZE_MEMORY_MODERATE", 0.60, "memory band edge: moderate below", ge=0, le=1)
    memory_tight: float = var("QUANTIZE_MEMORY_TIGHT", 0.75, "memory band edge: tight below", ge=0, le=1)
    memory_critical: float = var(
        "QUANTIZE_MEMORY_CRITICAL", 0.85, "memory band edge: critical below, emergency from", ge=0, le=1
    )
    load_low: int = var("QUANTIZE_LOAD_LOW", 2, "load edge (requests): low below", ge=0)
    load_moderate: int = var("QUANTIZE_LOAD_MODERATE", 5, "load edge (requests): moderate up to", ge=0)
    load_high: int = var("QUANTIZE_LOAD_HIGH", 10, "load edge (requests): high up to", ge=0)
    consecutive: int = var("QUANTIZE_CONSECUTIVE", 3, "decisions in a row before a loaded model changes level", ge=1)
    dwell_seconds: float = var("QUANTIZE_DWELL_SECONDS", 30.0, "or seconds of asking for it, whichever is first", ge=0)
    max_cache_mb: float = var("MAX_MODEL_CACHE_MB", 8000.0, "per-worker model cache cap, in MiB", ge=1)
    memory_reserve_mb: float = var("DYNAQUANT_MEMORY_RESERVE_MB", 256.0, "free memory (MiB) a load must leave", ge=0)
    models_file: Path | None = var("DYNAQUANT_MODELS_FILE", None, "JSON file of extra models (see Adding a model)")
    default_model: str = var("DYNAQUANT_DEFAULT_MODEL", DEFAULT_MODEL, "model for jobs that name none")
    variants_dir: Path | None = var(
        "DYNAQUANT_VARIANTS_DIR",
        None,
        "where level variants of GGUF models are written",
        shown="`~/.cache/dynaquant/variants`",
    )
    cache_home: Path | None = var(
        "XDG_CACHE_HOME",
        None,
        "the user cache: the bundled models and the variants go under `dynaquant/` in it",
        shown="`~/.cache`",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = var(
        "DYNAQUANT_DEVICE", "auto", "`cpu`, `cuda` or `mps` instead of detecting"
    )
    threads: int | None = var(
        "DYNAQUANT_THREADS",
        None,
        "llama.cpp threads per worker; `dynaquant up --workers N` gives each worker its share of the cores",
        shown="CPU count (a share of it under `up`)",
        ge=1,
    )
    mmap: bool = var(
        "DYNAQUANT_MMAP",
        True,
        "map GGUF weights from disk; `0` reads them into the worker's own memory, where a memory limit sees them",
        shown="`1`",
    )
    n_ctx: int = var("DYNAQUANT_N_CTX", DEFAULT_N_CTX, "llama.cpp context length (tokens)", ge=256)
    max_text_chars: int = var(
        "DYNAQUANT_MAX_TEXT_CHARS",
        CHAPTER_CHARS,
        f"longest text accepted (characters): a school chapter of {CHAPTER_PARAGRAPHS} paragraphs of about "
        f"{CHAPTER_PARAGRAPH_CHARS} characters fits",
        ge=1,
    )
    max_tokens: int = var("DYNAQUANT_MAX_TOKENS", 512, "most new tokens a job may ask for", ge=1)
    default_max_tokens: int = var(
        "DYNAQUANT_DEFAULT_MAX_TOKENS", 160, "new tokens for a job that does not say (capped by the limit)", ge=1
    )
    max_batch: int = var("DYNAQUANT_MAX_BATCH", 500, "jobs per batch; more gets 400", ge=1)
    max_queue: int = var("DYNAQUANT_MAX_QUEUE", 10000, "jobs waiting; more gets 429", ge=1)
    max_body_bytes: int = var("DYNAQUANT_MAX_BODY_BYTES", 1024 * 1024, "request body; larger gets 413", ge=1)
    retry_after_seconds: int = var("DYNAQUANT_RETRY_AFTER_SECONDS", 5, "`Retry-After` sent with 429 and 503", ge=1)
    clear_wait_seconds: float = var("DYNAQUANT_CLEAR_WAIT_SECONDS", 5.0, "how long cache/clear waits for workers", ge=0)
    task_time_limit: int = var(
        "DYNAQUANT_TASK_TIME_LIMIT", 600, "seconds a job may run, then it fails `time_limit`", ge=1
    )
    visibility_timeout: int | None = var(
        "DYNAQUANT_VISIBILITY_TIMEOUT",
        None,
        "seconds before a job whose worker vanished is handed out again; must exceed the time limit",
        shown="time limit + 120",
        ge=1,
    )
    max_redeliveries: int = var(
        "DYNAQUANT_MAX_REDELIVERIES", 3, "times a job whose worker died is tried again, then `redelivery_limit`", ge=0
    )
    result_ttl: int = var(
        "DYNAQUANT_RESULT_TTL", DEFAULT_RESULT_TTL, "seconds finished jobs, results and Idempotency-Keys are kept", ge=1
    )
    heartbeat_seconds: float = var(
        "DYNAQUANT_HEARTBEAT_SECONDS", 2.0, "worker state refresh; a worker silent for 4 beats drops out", gt=0
    )
    crash_ceiling_seconds: int = var(
        "DYNAQUANT_CRASH_CEILING_SECONDS",
        900,
        "after a worker died loading or running a model, its host runs that model a level lower this long",
        ge=0,
    )
    url: str = var("DYNAQUANT_URL", "http://127.0.0.1:8000", "where the CLI and the client send requests")
    token: str | None = var("DYNAQUANT_TOKEN", None, "the API token the CLI and the client send")
    home: Path | None = var(
        "DYNAQUANT_HOME", None, "where `dynaquant up` keeps the Redis it starts", shown="`~/.local/share/dynaquant`"
    )
    data_home: Path | None = var(
        "XDG_DATA_HOME",
        None,
        "the user data folder: `dynaquant up` keeps its Redis under `dynaquant/` in it",
        shown="`~/.local/share`",
    )
    quality_gate: bool = var(
        "DYNAQUANT_QUALITY_GATE",
        True,
        "`1`/`0`: retry a draft whose quality check fails (every result is checked either way)",
        shown="`1`",
    )
    quality_max_attempts: int = var(
        "DYNAQUANT_QUALITY_MAX_ATTEMPTS", 3, "drafts per paragraph part, the first included", ge=1
    )
    quality_max_seconds: float = var(
        "DYNAQUANT_QUALITY_MAX_SECONDS", 30.0, "seconds per paragraph part after which no retry starts", gt=0
    )
    quality_strategies: Annotated[tuple[Strategy, ...], NoDecode] = var(
        "DYNAQUANT_QUALITY_STRATEGIES",
        RETRY_STRATEGIES,
        "retry strategies in the order tried, comma-separated (each only where it applies)",
        shown="`sample,best_of,resimplify,revise,escalate`",
        min_length=1,
    )
    quality_temperature: float = var(
        "DYNAQUANT_QUALITY_TEMPERATURE",
        0.7,
        "sampling temperature of the `best_of` and `sample` strategies",
        ge=0.01,
        le=2.0,
    )
    quality_revise_rounds: int = var(
        "DYNAQUANT_QUALITY_REVISE_ROUNDS", 2, "revisions of a draft with the checker's notes, per paragraph part", ge=0
    )
    quality_best_of: int = var(
        "DYNAQUANT_QUALITY_BEST_OF",
        3,
        "drafts the `best_of` strategy makes of a paragraph part (the first included); the passing draft closest "
        "to the source is kept",
        ge=1,
    )
    meaning_check: bool = var(
        "DYNAQUANT_MEANING_CHECK",
        False,
        "`1`/`0`: ask the model whether a draft whose words pass the checks changes what the text says (off: on the "
        "bundled model it ranks drafts with meaning faults no better than chance, see docs/benchmarks.md)",
        shown="`0`",
    )
    quality_adaptive: bool = var(
        "DYNAQUANT_QUALITY_ADAPTIVE",
        True,
        "`1`/`0`: skip retries on a model and level whose recent retries rarely pass (figures shared in Redis)",
        shown="`1`",
    )
    quality_retry_window: int = var(
        "DYNAQUANT_QUALITY_RETRY_WINDOW", 200, "recent retries per model and level the budget counts", ge=1
    )
    quality_retry_min_sample: int = var(
        "DYNAQUANT_QUALITY_RETRY_MIN_SAMPLE", 20, "retries on record before the budget may skip any", ge=0
    )
    quality_retry_min_pass_rate: float = var(
        "DYNAQUANT_QUALITY_RETRY_MIN_PASS_RATE",
        0.10,
        "share of recent retries that must pass for retries to go on",
        ge=0,
        le=1,
    )
    quality_explore_share: float = var(
        "DYNAQUANT_QUALITY_EXPLORE_SHARE",
        0.10,
        "share of failing drafts retried anyway, so the figures stay current",
        ge=0,
        le=1,
    )
    part_max_chars: int = var(
        "DYNAQUANT_PART_MAX_CHARS",
        700,
        "longest piece of a paragraph simplified in one prompt; a longer one is cut at sentence ends",
        ge=80,
    )
    profile_min_speedup: float = var(
        "DYNAQUANT_PROFILE_MIN_SPEEDUP",
        ProfileRules.min_speedup,
        "a step down for load is taken only when the lower level's measured jobs are at least this much faster",
        ge=0,
        le=1,
    )
    profile_pass_margin: float = var(
        "DYNAQUANT_PROFILE_PASS_MARGIN",
        ProfileRules.pass_margin,
        "and its measured quality pass rate is at most this far below the level above",
        ge=0,
        le=1,
    )
    profile_min_jobs: int = var(
        "DYNAQUANT_PROFILE_MIN_JOBS",
        ProfileRules.min_jobs,
        "measured jobs a level needs before its profile counts",
        ge=1,
    )
    profile_ttl_days: float = var(
        "DYNAQUANT_PROFILE_TTL_DAYS", 30.0, "days a level profile is kept after its last update", gt=0
    )
    calibrate: bool = var(
        "DYNAQUANT_CALIBRATE",
        True,
        "`1`/`0`: a worker that meets a model with no profile on its host measures each level on a few fixed prompts",
        shown="`1`",
    )
    calibration_seconds: float = var(
        "DYNAQUANT_CALIBRATION_SECONDS", 120.0, "most seconds one calibration may take", gt=0
    )
    shadow_share: float = var(
        "DYNAQUANT_SHADOW_SHARE",
        0.02,
        "share of finished jobs an idle worker re-runs at a neighbouring level to keep the profiles current",
        ge=0,
        le=1,
    )
    quiet_after_clear_seconds: float = var(
        "DYNAQUANT_QUIET_AFTER_CLEAR",
        600.0,
        "seconds after a cache clear in which no idle work (calibration, shadow runs, builds) loads a model, "
        "unless a job runs first",
        ge=0,
    )
    prior: bool = var(
        "DYNAQUANT_PRIOR",
        True,
        "`1`/`0`: before a level is measured on this host, weigh it by the shipped prior (`worker/priors.py`)",
        shown="`1`",
    )
    preload: bool = var(
        "DYNAQUANT_PRELOAD",
        True,
        "`1`/`0`: load the level the queue trend calls for in the background, within the cache cap and memory band",
        shown="`1`",
    )
    flower_basic_auth: str | None = var(
        "FLOWER_BASIC_AUTH", None, "`user:password` for Flower and its API under `dynaquant up`"
    )

    @field_validator("quality_strategies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        self.thresholds  # noqa: B018 - Thresholds checks that the edges rise
        if self.visibility_seconds <= self.task_time_limit:
            raise ValueError(
                f"DYNAQUANT_VISIBILITY_TIMEOUT={self.visibility_seconds} must exceed DYNAQUANT_TASK_TIME_LIMIT="
                f"{self.task_time_limit}: a job still running when its visibility timeout passes is handed out again"
            )
        return self

    def override(self, **changes: Any) -> Settings:
        """A checked copy with some fields changed (by field name)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    @property
    def thresholds(self) -> Thresholds:
        """The decision matrix's band and load edges."""
        return Thresholds(**{name: getattr(self, name) for name in Thresholds.__dataclass_fields__})

    @property
    def profile_rules(self) -> ProfileRules:
        """When a measured profile lets the policy step down for load."""
        return ProfileRules(self.profile_min_speedup, self.profile_pass_margin, self.profile_min_jobs)

    @property
    def visibility_seconds(self) -> int:
        """The visibility timeout: as set, else the time limit plus a margin."""
        return self.visibility_timeout or self.task_time_limit + VISIBILITY_MARGIN_SECONDS

    @property
    def heartbeat_ttl(self) -> int:
        """Seconds after which a silent worker counts as dead: a few missed heartbeats."""
        return max(int(self.heartbeat_seconds * 4), 5)

    @property
    def job_default_max_tokens(self) -> int:
        """New tokens for a job that names none, never above the limit."""
        return min(self.default_max_tokens, self.max_tokens)

    @property
    def cache_root(self) -> Path:
        """<user cache>/dynaquant."""
        return (self.cache_home or Path.home() / ".cache") / "dynaquant"

    @property
    def variants_path(self) -> Path:
        """Where GGUF variants are written."""
        return self.variants_dir.expanduser() if self.variants_dir else self.cache_root / "variants"

    @property
    def home_path(self) -> Path:
        """Where `dynaquant up` keeps Redis data and logs."""
        return self.home or (self.data_home or Path.home() / ".local" / "share") / "dynaquant"

    @property
    def thread_count(self) -> int:
        """Threads for llama.cpp work: as set, else every core this process may run on."""
        return self.threads or available_cores()

    def job_limits(self, models: tuple[str, ...] | None = None) -> JobLimits:
        """The job limits these settings set, with the model names a job may ask for (None: not checked)."""
        return JobLimits(
            self.max_text_chars,
            self.max_tokens,
            self.job_default_max_tokens,
            self.default_model,
            self.max_batch,
            models,
        )

    def worker_threads(self, workers: int) -> list[int]:
        """Threads for each of `workers` workers started together: as set, else shares that add up to the cores."""
        if self.threads:
            return [self.threads] * workers
        return split_evenly(available_cores(), workers)


def available_cores() -> int:
    """How many cores this process may run on (its affinity set, which a container or taskset may narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` split into `parts` shares as even as can be, each at least 1 (7, 3 -> [3, 2, 2])."""
    size, extra = divmod(total, parts) if parts else (0, 0)
    return [max(size + (1 if i < extra else 0), 1) for i in range(parts)]


@functools.cache
def get_settings() -> Settings:
    """This process's settings, read from the environment on first use."""
    return Settings()


def settings_table() -> str:
    """The README's configuration table, one row per variable, made from the declarations above."""
    rows = ["| variable | default | bounds | what it sets |", "|---|---|---|---|"]
    for field in Settings.model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = extra.get("shown_default", "unset" if field.default is None else f"`{field.default}`")
        limits = [
            f"{symbol} {getattr(m, name)}" for m in field.metadata for name, symbol in BOUND_SYMBOLS if hasattr(m, name)
        ]
        rows.append(f"| `{field.validation_alias}` | {default} | {', '.join(limits) or '-'} | {field.description} |")
    return "\n".join(rows)
