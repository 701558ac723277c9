"""The Python client: `await get_unified_client().simplify_text(...)` submits a job over HTTP and polls it.

    from dynaquant.client import get_unified_client

    client = get_unified_client()  # URL from DYNAQUANT_URL, else http://127.0.0.1:8000
    result = await client.simplify_text(text="Complex content...", grade_level=8, subject="Science")
    print(result["text"], result["level"])

Blocking HTTP calls run in a thread (asyncio.to_thread), so many calls can wait at once on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from dynaquant.api import ServiceClient, ServiceError, ServiceUnreachable, resolve_token, resolve_url
from worker.contracts import TERMINAL

DEFAULT_TIMEOUT = 300.0

__all__ = [
    "JobCancelled",
    "JobFailed",
    "JobTimeout",
    "ServiceError",
    "ServiceUnreachable",
    "SimplificationError",
    "UnifiedModelClient",
    "get_unified_client",
]


class SimplificationError(RuntimeError):
    """A submitted job did not produce a result; `job_id` says which, `job` holds its last record."""

    def __init__(self, message: str, job_id: str, job: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.job = job or {}


class JobFailed(SimplificationError):
    """The job failed on the worker; `code` is the service's error code."""

    def __init__(self, job_id: str, job: dict[str, Any]) -> None:
        error = job["error"] if isinstance(job.get("error"), dict) else {}
        self.code = str(error.get("code") or "failed")
        super().__init__(f"job {job_id} failed: {error.get('message') or self.code}", job_id, job)


class JobCancelled(SimplificationError):
    """The job was cancelled before it finished."""

    def __init__(self, job_id: str, job: dict[str, Any]) -> None:
        super().__init__(f"job {job_id} was cancelled", job_id, job)


class JobTimeout(SimplificationError, TimeoutError):
    """The job did not finish in time (it was cancelled on the service, where it had not ended)."""

    def __init__(self, job_id: str, timeout: float, job: dict[str, Any] | None) -> None:
        status = (job or {}).get("status", "unknown")
        super().__init__(f"job {job_id} did not finish within {timeout:g} s (last status: {status})", job_id, job)


class UnifiedModelClient:
    """Simplifies texts on a dynaquant service over HTTP."""

    def __init__(self, url: str | None = None, token: str | None = None, poll_interval: float = 0.25) -> None:
        self.http = ServiceClient(resolve_url(url), resolve_token(token))
        self.poll_interval = poll_interval

    @property
    def url(self) -> str:
        """The service URL this client talks to."""
        return self.http.url

    async def submit(self, job: dict[str, Any]) -> str:
        """Queue one job (fields as in POST /api/v1/jobs); returns its id."""
        answer = await asyncio.to_thread(self.http.submit_job, job)
        return str(answer["job_id"])

    async def job(self, job_id: str) -> dict[str, Any]:
        """One job's current record."""
        return await asyncio.to_thread(self.http.job, job_id)

    async def cancel(self, job_id: str) -> None:
        """Cancel a job that has not ended (a job that already ended is left as it is)."""
        with contextlib.suppress(ServiceError):
            await asyncio.to_thread(self.http.cancel, job_id)

    async def wait(self, job_id: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Poll a job until it ends; its final record. JobTimeout (after cancelling it) when time runs out."""
        deadline = time.monotonic() + timeout
        record: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            record = await self.job(job_id)
            if record.get("status") in TERMINAL:
                return record
            await asyncio.sleep(min(self.poll_interval, max(deadline - time.monotonic(), 0)))
        await self.cancel(job_id)
        raise JobTimeout(job_id, timeout, record)

    async def simplify_text(
        self,
        text: str,
        grade_level: int,
        subject: str,
        task_priority: str = "balanced",
        min_quantization: str | None = None,
        force_quantization: str | None = None,
        model: str | None = None,
        priority: int | None = None,
        max_tokens: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """Simplify a text for a grade and return the result (text, level, model, readability_grade, ...).

        Raises ServiceError when the service refuses the job (400 names the field), ServiceUnreachable
        when nothing answers, JobFailed, JobCancelled or JobTimeout when it does not produce a result.
        """
        optional = {
            "min_quantization": min_quantization,
            "force_quantization": force_quantization,
            "model": model,
            "priority": priority,
            "max_tokens": max_tokens,
        }
        job = {"text": text, "grade_level": grade_level, "subject": subject, "task_priority": task_priority}
        job.update({k: v for k, v in optional.items() if v is not None})
        job_id = await self.submit(job)
        record = await self.wait(job_id, timeout)
        if record["status"] == "succeeded":
            result: dict[str, Any] = record.get("result") or {}
            return {**result, "job_id": job_id}
        if record["status"] == "cancelled":
            raise JobCancelled(job_id, record)
        raise JobFailed(job_id, record)


_clients: dict[tuple[str, str | None], UnifiedModelClient] = {}
_clients_lock = threading.Lock()


def get_unified_client(url: str | None = None, token: str | None = None) -> UnifiedModelClient:
    """The shared client for a service URL and token (defaults: DYNAQUANT_URL, DYNAQUANT_TOKEN)."""
    key = (resolve_url(url), resolve_token(token))
    with _clients_lock:
        if key not in _clients:
            _clients[key] = UnifiedModelClient(*key)
        return _clients[key]
