"""What a simplification job asks for, validated field by field (pure: no I/O)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from worker.errors import InputError
from worker.policy import LEVELS, TASK_PRIORITIES, Request
from worker.settings import env_int

FIELDS: tuple[str, ...] = (
    "text",
    "grade_level",
    "subject",
    "task_priority",
    "min_quantization",
    "force_quantization",
    "model",
    "priority",
    "max_tokens",
    "quality_check",
)
DEFAULT_PRIORITY = 5
MIN_GRADE, MAX_GRADE = 1, 12


def max_text_chars() -> int:
    """Longest text accepted, from DYNAQUANT_MAX_TEXT_CHARS."""
    return env_int("DYNAQUANT_MAX_TEXT_CHARS", 8000)


def max_tokens_limit() -> int:
    """Most new tokens a job may ask for, from DYNAQUANT_MAX_TOKENS."""
    return env_int("DYNAQUANT_MAX_TOKENS", 512)


def default_max_tokens() -> int:
    """New tokens when a job does not say, from DYNAQUANT_DEFAULT_MAX_TOKENS."""
    return min(env_int("DYNAQUANT_DEFAULT_MAX_TOKENS", 160), max_tokens_limit())


def default_model() -> str:
    """Model used when a job names none, from DYNAQUANT_DEFAULT_MODEL."""
    return os.environ.get("DYNAQUANT_DEFAULT_MODEL", "gemma-3-270m")


@dataclass(frozen=True)
class JobSpec:
    """A validated job: every field present and within its range."""

    text: str
    grade_level: int
    subject: str
    task_priority: str = "balanced"
    min_quantization: str | None = None
    force_quantization: str | None = None
    model: str = "gemma-3-270m"
    priority: int = DEFAULT_PRIORITY
    max_tokens: int = 160
    quality_check: bool = True

    @property
    def request(self) -> Request:
        """What the decision policy needs from this job."""
        return Request(self.task_priority, self.min_quantization, self.force_quantization)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored with the job and sent to the worker."""
        return asdict(self)


def _integer(payload: Mapping[str, Any], field: str, low: int, high: int, default: int | None = None) -> int:
    value = payload.get(field, default)
    if value is None:
        raise InputError(field, f"is required: an integer from {low} to {high}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(field, f"must be an integer from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise InputError(field, f"must be from {low} to {high}, got {value}")
    return value


def _choice(payload: Mapping[str, Any], field: str, allowed: Iterable[str], default: str | None) -> str | None:
    value = payload.get(field, default)
    allowed = tuple(allowed)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise InputError(field, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _boolean(payload: Mapping[str, Any], field: str, default: bool) -> bool:
    value = payload.get(field, default)
    if not isinstance(value, bool):
        raise InputError(field, f"must be true or false, got {value!r}")
    return value


def _text(payload: Mapping[str, Any]) -> str:
    text = payload.get("text")
    limit = max_text_chars()
    if not isinstance(text, str) or not text.strip():
        raise InputError("text", "is required: a non-empty string to simplify")
    if len(text) > limit:
        raise InputError("text", f"is {len(text)} characters; the limit is {limit} (split it into several jobs)")
    return text.strip()


def _subject(payload: Mapping[str, Any]) -> str:
    subject = payload.get("subject", "General")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 100:
        raise InputError("subject", f"must be a non-empty string of at most 100 characters, got {subject!r}")
    return subject.strip()


def _model(payload: Mapping[str, Any], known_models: Iterable[str] | None) -> str:
    model = payload.get("model") or default_model()
    if not isinstance(model, str):
        raise InputError("model", f"must be a model name, got {model!r}")
    if known_models is not None:
        known = sorted(set(known_models))
        if model not in known:
            raise InputError("model", f"unknown model {model!r}: known models are {', '.join(known) or 'none'}")
    return model


def parse_job(
    payload: Any,
    defaults: Mapping[str, Any] | None = None,
    known_models: Iterable[str] | None = None,
) -> JobSpec:
    """Validate a job body (with batch defaults under it) or raise InputError naming the field."""
    if not isinstance(payload, Mapping):
        raise InputError("body", "must be a JSON object with at least 'text' and 'grade_level'")
    merged = {**(defaults or {}), **payload}
    unknown = sorted(set(merged) - set(FIELDS))
    if unknown:
        raise InputError(unknown[0], f"is not a job field; allowed fields are {', '.join(FIELDS)}")
    return JobSpec(
        text=_text(merged),
        grade_level=_integer(merged, "grade_level", MIN_GRADE, MAX_GRADE),
        subject=_subject(merged),
        task_priority=_choice(merged, "task_priority", TASK_PRIORITIES, "balanced") or "balanced",
        min_quantization=_choice(merged, "min_quantization", LEVELS, None),
        force_quantization=_choice(merged, "force_quantization", LEVELS, None),
        model=_model(merged, known_models),
        priority=_integer(merged, "priority", 0, 9, DEFAULT_PRIORITY),
        max_tokens=_integer(merged, "max_tokens", 1, max_tokens_limit(), default_max_tokens()),
        quality_check=_boolean(merged, "quality_check", True),
    )
