"""JSON Schemas of the API's bodies, built from the live limits so the document matches the server exactly."""

from __future__ import annotations

from typing import Any

from worker.jobs import STATUSES
from worker.jobspec import MAX_GRADE, MIN_GRADE, max_text_chars, max_tokens_limit
from worker.policy import LEVELS, TASK_PRIORITIES

Schema = dict[str, Any]

_SPACES = [c for c in range(0x10000) if chr(c).isspace()]
NON_BLANK = "[^" + "".join(f"\\u{c:04x}" for c in _SPACES) + "]"
"""Matches a string holding at least one character Python's str.strip() keeps."""


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """The schema, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def job_fields(models: list[str]) -> dict[str, Schema]:
    """Each job field with the exact range the server accepts."""
    return {
        "text": {
            "type": "string",
            "minLength": 1,
            "maxLength": max_text_chars(),
            "pattern": NON_BLANK,
            "description": "The text to simplify (DYNAQUANT_MAX_TEXT_CHARS characters at most).",
        },
        "grade_level": {"type": "integer", "minimum": MIN_GRADE, "maximum": MAX_GRADE},
        "subject": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": NON_BLANK, "default": "General"},
        "task_priority": {
            "enum": [*TASK_PRIORITIES, None],
            "default": "balanced",
            "description": "quality: one level more precise; speed: one less; balanced: the decision matrix.",
        },
        "min_quantization": {"enum": [*LEVELS, None], "description": "Never run less precise than this level."},
        "force_quantization": {"enum": [*LEVELS, None], "description": "Run at exactly this level."},
        "model": {
            "enum": [*models, "", None],
            "description": "A known model (the default, DYNAQUANT_MODELS_FILE, or one a live worker offers); "
            "empty or null means the default.",
        },
        "priority": {
            "type": "integer",
            "minimum": 0,
            "maximum": 9,
            "default": 5,
            "description": "Queue priority: 0 runs first, 9 last.",
        },
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": max_tokens_limit()},
    }


def _required_unless_default(field: str) -> Schema:
    """Every item must give `field` unless the batch's defaults give it."""
    return {
        "if": {"required": ["defaults"], "properties": {"defaults": {"type": "object", "required": [field]}}},
        "else": {"properties": {"items": {"items": {"required": [field]}}}},
    }


def components(models: list[str], max_batch: int) -> dict[str, Schema]:
    """Every component schema of the document."""
    fields = job_fields(models)
    job_item = {"type": "object", "properties": fields, "additionalProperties": False}
    stamp = nullable({"type": "number"})
    optional_string = nullable({"type": "string"})
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "field"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": optional_string,
                    },
                }
            },
        },
        "JobRequest": {**job_item, "required": ["text", "grade_level"]},
        "JobItem": job_item,
        "BatchRequest": {
            "type": "object",
            "required": ["items"],
            "additionalProperties": False,
            "allOf": [_required_unless_default("text"), _required_unless_default("grade_level")],
            "properties": {
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_batch,
                    "items": ref("JobItem"),
                    "description": "Every item is validated before any is queued; an item may leave out "
                    "fields that defaults gives.",
                },
                "defaults": nullable(ref("JobItem")),
            },
        },
        "JobAccepted": {
            "type": "object",
            "required": ["job_id", "status_url", "status"],
            "properties": {
                "job_id": {"type": "string"},
                "status_url": {"type": "string"},
                "status": {"type": "string"},
            },
        },
        "BatchAccepted": {
            "type": "object",
            "required": ["batch_id", "job_ids", "status_url", "status"],
            "properties": {
                "batch_id": {"type": "string"},
                "job_ids": {"type": "array", "items": {"type": "string"}},
                "status_url": {"type": "string"},
                "status": {"type": "string"},
            },
        },
        "Job": {
            "type": "object",
            "required": ["job_id", "status", "created_at"],
            "properties": {
                "job_id": {"type": "string"},
                "status": {"enum": list(STATUSES)},
                "batch_id": optional_string,
                "priority": {"type": "integer"},
                "model": optional_string,
                "request": nullable({"type": "object"}),
                "attempts": {"type": "integer"},
                "worker": optional_string,
                "created_at": stamp,
                "started_at": stamp,
                "finished_at": stamp,
                "result": {"description": "The worker's result: text, level, model and timings."},
                "error": nullable({"type": "object"}),
                "stage": nullable({"type": "object", "description": "What the worker is loading or running now."}),
                "history": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "What happened besides the normal run: each requeue after a lost worker.",
                },
                "ceiling": nullable({"type": "string", "description": "Most precise level left after a lost worker."}),
            },
        },
        "JobList": {
            "type": "object",
            "required": ["jobs", "count"],
            "properties": {"jobs": {"type": "array", "items": ref("Job")}, "count": {"type": "integer"}},
        },
        "Cancelled": {
            "type": "object",
            "required": ["job_id", "status"],
            "properties": {"job_id": {"type": "string"}, "status": {"const": "cancelled"}},
        },
        "Batch": {
            "type": "object",
            "required": ["batch_id", "total", "counts", "done", "jobs"],
            "properties": {
                "batch_id": {"type": "string"},
                "created_at": {"type": "number"},
                "total": {"type": "integer"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "done": {"type": "boolean"},
                "jobs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["job_id", "status"],
                        "properties": {"job_id": {"type": "string"}, "status": {"type": "string"}},
                    },
                },
            },
        },
        **status_components(),
        "CalculateRequest": {
            "type": "object",
            "required": ["model_size_params"],
            "additionalProperties": False,
            "properties": {
                "model_size_params": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 100000,
                    "description": "Billions of weights (7.0 for a 7B model).",
                },
                "task_priority": {"enum": list(TASK_PRIORITIES), "default": "balanced"},
                "backend": {"enum": ["transformers", "gguf"], "default": "transformers"},
            },
        },
        "Calculation": {
            "type": "object",
            "required": ["level", "precision", "compression_ratio", "estimated_memory_gb", "config", "basis"],
            "properties": {
                "level": {"enum": list(LEVELS)},
                "precision": {"enum": list(LEVELS)},
                "compression_ratio": {"type": "string", "pattern": "^[0-9.]+x$"},
                "estimated_memory_gb": {"type": "number"},
                "estimated_weights_gb": {"type": "number"},
                "config": {"type": "object"},
                "basis": {
                    "type": "object",
                    "required": ["source", "memory_used", "load"],
                    "properties": {
                        "source": {"enum": ["worker", "api_host"]},
                        "worker": optional_string,
                        "note": {"type": "string"},
                        "memory_used": {"type": "number"},
                        "memory_status": {"type": "string"},
                        "load": {"type": "integer"},
                        "backend": {"type": "string"},
                        "task_priority": {"type": "string"},
                    },
                },
            },
        },
        "ClearResult": {
            "type": "object",
            "required": ["status", "message", "workers", "pending"],
            "properties": {
                "status": {"enum": ["success", "partial"]},
                "message": {"type": "string"},
                "generation": nullable({"type": "integer"}),
                "workers": {"type": "object", "additionalProperties": {"type": "object"}},
                "pending": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
        "Ready": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
        },
    }


def status_components() -> dict[str, Schema]:
    """Schemas of the quantization status, memory and cache views."""
    number = nullable({"type": "number"})
    text = nullable({"type": "string"})
    memory_fields: dict[str, Schema] = {
        "worker": {"type": "string"},
        "host": {},
        "device": {},
        "pool": {},
        "total_gb": number,
        "available_gb": number,
        "used_gb": number,
        "percent_used": text,
        "process_memory_gb": number,
        "status": text,
    }
    memory = {"type": "object", "properties": memory_fields}
    cache_fields = {
        "current_size_mb": number,
        "max_size_mb": number,
        "utilization": text,
        "models_cached": {"type": "integer"},
        "models": {"type": "array", "items": {"type": "object"}},
    }
    return {
        "Queue": {
            "type": "object",
            "required": ["depth", "by_priority", "running"],
            "properties": {
                "name": {"type": "string"},
                "depth": {"type": "integer"},
                "by_priority": {"type": "object", "additionalProperties": {"type": "integer"}},
                "running": {"type": "integer"},
            },
        },
        "Status": {
            "type": "object",
            "required": [
                "status",
                "device",
                "active_requests",
                "memory",
                "capabilities",
                "recommended_level",
                "current_models",
                "workers",
                "queue",
            ],
            "properties": {
                "status": {"enum": ["ok", "no_workers"]},
                "message": text,
                "device": text,
                "devices": {"type": "array", "items": {"type": "string"}},
                "active_requests": nullable({"type": "integer"}),
                "memory": nullable({"type": "object"}),
                "memory_status": text,
                "capabilities": nullable({"type": "object", "additionalProperties": {"type": "boolean"}}),
                "recommended_level": text,
                "current_models": {"type": "array", "items": {"type": "object"}},
                "workers": {"type": "array", "items": {"type": "object"}},
                "queue": ref("Queue"),
                "service": {
                    "type": "object",
                    "description": "What `dynaquant up` supervises: degraded when a process is down, and why.",
                    "properties": {
                        "supervised": {"type": "boolean"},
                        "degraded": {"type": "boolean"},
                        "messages": {"type": "array", "items": {"type": "string"}},
                        "processes": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
        "Memory": {
            "type": "object",
            "required": [
                "total_gb",
                "available_gb",
                "used_gb",
                "percent_used",
                "process_memory_gb",
                "status",
                "workers",
            ],
            "properties": {
                **memory_fields,
                "message": text,
                "most_pressured_worker": text,
                "workers": {"type": "array", "items": memory},
            },
        },
        "Cache": {
            "type": "object",
            "required": ["current_size_mb", "max_size_mb", "utilization", "models_cached", "models", "workers"],
            "properties": {
                **cache_fields,
                "status": {"type": "string"},
                "message": text,
                "workers": {"type": "array", "items": {"type": "object", "properties": cache_fields}},
            },
        },
    }
