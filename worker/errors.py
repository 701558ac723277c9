"""Errors a user can meet, each with a message that says what is wrong and what to do (stdlib only).

Every error a request, a job or a setting can cause derives from DynaquantError and carries a code;
anything else a job raises is a bug and is stored as `internal_error`.
"""

from __future__ import annotations


class DynaquantError(Exception):
    """Base of every error the service reports to a user."""

    code = "error"


class InputError(DynaquantError, ValueError):
    """A request field is missing or out of range; `field` is its path (`items[3].grade_level`)."""

    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class UnsupportedLevelError(DynaquantError, ValueError):
    """No level the device and backend can run satisfies the request."""

    code = "unsupported_level"


class ModelNotFoundError(DynaquantError, KeyError):
    """The model name is not in the registry."""

    code = "unknown_model"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model"


class ModelLoadError(DynaquantError):
    """A model's files are missing, corrupt or unreadable."""

    code = "model_load_failed"


class InsufficientMemoryError(DynaquantError, MemoryError):
    """Even the smallest level does not fit the cache cap or the free memory."""

    code = "insufficient_memory"


class JobCancelled(DynaquantError):
    """The job was cancelled while it ran."""

    code = "cancelled"


class JobGone(DynaquantError):
    """A job's record lost its request (it expired while the job waited): nothing is left to run."""

    code = "job_gone"
