"""What clients send: a job's fields, a batch, and the checks that make them a complete job (or an error
naming the field). Field limits that are settings are checked by `resolve` and `parse_batch` against a JobLimits;
`input_error` turns a validation error into the API's error shape: the field's path and what to send instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    MISSING,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
)
from pydantic.fields import FieldInfo

from worker.errors import InputError
from worker.policy import LEVELS, TASK_PRIORITIES, Level, Request, TaskPriority

MIN_GRADE, MAX_GRADE = 1, 12


DEFAULT_PRIORITY = 5


DEFAULT_SUBJECT = "General"


MAX_SUBJECT_CHARS = 100


MAX_PARAMS_BILLIONS = 100_000.0


M = TypeVar("M", bound=BaseModel)


_SPACES = "".join(f"\\u{c:04x}" for c in range(0x10000) if chr(c).isspace())


NON_BLANK = f"[^{_SPACES}]"
"""Matches a string holding at least one character Python's str.strip() keeps."""


def whole_number(value: Any) -> Any:
    """JSON has one number type: 5.0 is the integer 5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Grade = Annotated[int, Strict(), Field(ge=MIN_GRADE, le=MAX_GRADE), BeforeValidator(whole_number)]


QueuePriority = Annotated[int, Strict(), Field(ge=0, le=9), BeforeValidator(whole_number)]


NewTokens = Annotated[int, Strict(), Field(ge=1), BeforeValidator(whole_number)]


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
