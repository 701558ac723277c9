"""Reading a batch file (JSON Lines or CSV) and checking every line before anything is sent."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.contracts import JobFields, JobLimits, check_limits, resolve, validated
from worker.errors import InputError
from worker.settings import get_settings

FIELDS: tuple[str, ...] = tuple(JobFields.model_fields)
INTEGER_FIELDS: tuple[str, ...] = ("grade_level", "priority", "max_tokens")
TEXT_FIELDS: tuple[str, ...] = ("text", "subject")
BOOLEAN_FIELDS: tuple[str, ...] = ("quality_check",)
BOOLEAN_CELLS: dict[str, bool] = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
"""How a CSV cell spells a yes/no field (any case); anything else is sent as given and named in the error."""
CSV_SUFFIXES = frozenset({".csv"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
SHOWN_PROBLEMS = 20


@dataclass(frozen=True)
class JobLine:
    """One job of the file: the line it starts on and its fields as given (typed, empty cells left out)."""

    line: int
    job: dict[str, Any]


class JobFileError(ValueError):
    """The file cannot be submitted; `problems` says where and why, one message per bad line."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        shown = problems[:SHOWN_PROBLEMS]
        more = len(problems) - len(shown)
        lines = [f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}; nothing was submitted"]
        lines += [f"  {problem}" for problem in shown]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


def detect_format(path: Path, text: str) -> str:
    """'csv' or 'jsonl': by the file's suffix, else by its first visible character ('{' means JSON Lines)."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _describe(exc: InputError) -> str:
    """'grade_level must be an integer from 1 to 12 ...' (a whole-line problem has no field name in front)."""
    return exc.reason if exc.field == "body" else f"{exc.field} {exc.reason}"


def _jsonl_rows(text: str) -> Iterator[tuple[int, Any, str | None]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw), None
        except json.JSONDecodeError as exc:
            yield number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"


def _csv_rows(text: str) -> Iterator[tuple[int, Any, str | None]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    names = [name.strip() for name in header]
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        yield 1, None, f"unknown column {unknown[0]!r}; allowed columns are {', '.join(FIELDS)}"
        return
    if len(set(names)) != len(names):
        yield 1, None, f"a column appears twice in the header ({', '.join(names)})"
        return
    end = reader.line_num
    for cells in reader:
        start, end = end + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(names):
            yield start, None, f"has {len(cells)} cells; the header has {len(names)} columns"
        else:
            yield start, _typed_csv(dict(zip(names, cells, strict=False))), None


def _typed_csv(row: Mapping[str, Any]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for name, cell in row.items():
        if cell is None or not str(cell).strip():
            continue  # an empty cell leaves the field to the defaults
        value: Any = cell if name in TEXT_FIELDS else str(cell).strip()
        if name in INTEGER_FIELDS:
            with contextlib.suppress(ValueError):  # validation names the field and shows the bad value
                value = int(value)
        elif name in BOOLEAN_FIELDS:
            value = BOOLEAN_CELLS.get(value.lower(), value)
        typed[name] = value
    return typed


def limits() -> JobLimits:
    """The job limits this machine's settings set (the service checks its own again)."""
    return get_settings().job_limits()


def check_defaults(defaults: Mapping[str, Any]) -> JobFields:
    """The batch defaults, each checked on its own (before any line is read), or InputError naming the field."""
    checked = validated(JobFields, dict(defaults))
    check_limits(checked, limits())
    return checked


def parse_text(text: str, fmt: str, defaults: Mapping[str, Any] | None = None, where: str = "<input>") -> list[JobLine]:
    """Every job of a file's text, each checked as the service would; JobFileError lists every bad line."""
    rows = _csv_rows(text) if fmt == "csv" else _jsonl_rows(text)
    base, bounds = validated(JobFields, dict(defaults or {})), limits()
    jobs: list[JobLine] = []
    problems: list[str] = []
    for number, row, problem in rows:
        if problem is not None:
            problems.append(f"line {number}: {problem}")
            continue
        try:
            fields = validated(JobFields, row)
            resolve(base.model_copy(update=fields.model_dump()), bounds)
        except InputError as exc:
            problems.append(f"line {number}: {_describe(exc)}")
            continue
        jobs.append(JobLine(number, fields.model_dump(mode="json")))
    if not problems and not jobs:
        problems.append("no jobs: the file is empty" + (" apart from its header" if text.strip() else ""))
    if problems:
        raise JobFileError(where, problems)
    return jobs


def load_jobs(path: Path, defaults: Mapping[str, Any] | None = None, fmt: str | None = None) -> list[JobLine]:
    """Read and check a JSONL or CSV batch file; JobFileError when it cannot be read or any line is bad."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobFileError(str(path), [f"not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise JobFileError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None
    return parse_text(text, fmt or detect_format(path, text), defaults, str(path))
