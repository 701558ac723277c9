"""Turning request bodies into validated jobs, with errors that name the field (items[3].grade_level)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webapp.body import reject_unknown
from webapp.errors import ApiError
from worker.errors import InputError
from worker.jobspec import FIELDS, MIN_GRADE, JobSpec, parse_job

INTEGER_FIELDS: tuple[str, ...] = ("grade_level", "priority", "max_tokens")
TEXT_FIELDS: tuple[str, ...] = ("text", "subject")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_input", f"{field}: {message}", field)


def _message(exc: InputError) -> str:
    return str(exc).split(": ", 1)[-1]


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalize(payload: dict[str, Any]) -> dict[str, Any]:
    """Apply JSON's types (5.0 is 5), allow only string or null model names, and refuse lone surrogates."""
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise InputError("model", f"must be a model name (a string) or null, got {model!r}")
    for field in TEXT_FIELDS:
        value = payload.get(field)
        if isinstance(value, str) and not _encodable(value):
            raise InputError(field, "holds a lone UTF-16 surrogate (\\ud800-\\udfff): send valid Unicode text")
    fixed = dict(payload)
    for field in INTEGER_FIELDS:
        value = fixed.get(field)
        if isinstance(value, float) and value.is_integer():
            fixed[field] = int(value)
    return fixed


def parse_one(payload: dict[str, Any], known_models: Iterable[str]) -> JobSpec:
    """A job from a POST /jobs body, or a 400 naming the field."""
    try:
        return parse_job(normalize(payload), None, known_models)
    except InputError as exc:
        raise _invalid(exc.field, _message(exc)) from None


def parse_batch(payload: dict[str, Any], known_models: Iterable[str], max_items: int) -> list[JobSpec]:
    """Every job of a POST /batches body, all validated before any is accepted, or a 400 naming the field."""
    reject_unknown(payload, ("items", "defaults"))
    items = payload.get("items")
    if not isinstance(items, list) or not items:
        raise _invalid("items", "is required: a non-empty list of job objects")
    if len(items) > max_items:
        raise _invalid("items", f"has {len(items)} jobs; a batch takes at most {max_items} (DYNAQUANT_MAX_BATCH)")
    raw_defaults = payload.get("defaults")
    if raw_defaults is None:
        raw_defaults = {}
    if not isinstance(raw_defaults, dict):
        raise _invalid("defaults", "must be an object of job fields applied to every item")
    reject_unknown(raw_defaults, FIELDS, "defaults.")
    known = sorted(set(known_models))
    defaults = _check_defaults(raw_defaults, known)
    specs = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            raise _invalid(where, "must be a job object with at least 'text' and 'grade_level'")
        try:
            specs.append(parse_job(normalize(item), defaults, known))
        except InputError as exc:
            raise _invalid(f"{where}.{exc.field}", _message(exc)) from None
    return specs


def _check_defaults(defaults: dict[str, Any], known: list[str]) -> dict[str, Any]:
    """Each default checked on its own, so a bad one is named even when every item overrides it."""
    try:
        fixed = normalize(defaults)
        parse_job({"text": "probe", "grade_level": MIN_GRADE, **fixed}, None, known)
    except InputError as exc:
        raise _invalid(f"defaults.{exc.field}", _message(exc)) from None
    return fixed
