"""A small synchronous HTTP client for the dynaquant API, shared by the CLI and the async client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from worker.settings import get_settings


def resolve_url(url: str | None = None) -> str:
    """The service URL: the argument, else DYNAQUANT_URL, else http://127.0.0.1:8000 (no trailing slash)."""
    return (url or get_settings().url).rstrip("/")


def resolve_token(token: str | None = None) -> str | None:
    """The API token: the argument, else DYNAQUANT_TOKEN, else none."""
    return token or get_settings().token


class ServiceUnreachable(ConnectionError):
    """Nothing answers HTTP at the service URL."""

    def __init__(self, url: str, detail: str = "") -> None:
        message = (
            f"no dynaquant service answers at {url}: start it with `make run` or `dynaquant up`, or pass --url "
            "(or set DYNAQUANT_URL)"
        )
        super().__init__(message + (f" ({detail})" if detail else ""))
        self.url = url


class ServiceError(RuntimeError):
    """The service answered with an error: its HTTP status, code, message and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def _error_from(response: requests.Response) -> ServiceError:
    try:
        body = response.json()
        error = body["error"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    except ValueError:
        error = {}
    code = str(error.get("code") or f"http_{response.status_code}")
    message = str(error.get("message") or response.text[:200] or response.reason)
    if response.status_code == 401 and "DYNAQUANT_TOKEN" not in message:
        message += " (pass --token or set DYNAQUANT_TOKEN)"
    field = error.get("field")
    return ServiceError(response.status_code, code, message, field if isinstance(field, str) else None)


@dataclass
class ServiceClient:
    """Blocking calls to one dynaquant service; every failure is a ServiceUnreachable or a ServiceError."""

    url: str
    token: str | None = None
    timeout: float = 15.0

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None) -> ServiceClient:
        """A client for the URL and token given, else those of the environment."""
        return cls(resolve_url(url), resolve_token(token))

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        """Send one request and return its JSON body, raising on a network failure or an error status."""
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        try:
            response = requests.request(method, self.url + path, json=body, headers=sent, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ServiceUnreachable(self.url, type(exc).__name__) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceError(response.status_code, "not_json", f"{self.url}{path} did not answer JSON") from exc

    def submit_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """POST one job; the answer holds its job_id."""
        answer: dict[str, Any] = self.request("POST", "/api/v1/jobs", job, self._idempotency())
        return answer

    def submit_batch(self, items: list[dict[str, Any]], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a batch (all jobs or none); retried once after a read timeout, without duplicating it."""
        headers = self._idempotency()
        body = {"items": items, "defaults": defaults or {}}
        try:
            answer: dict[str, Any] = self.request("POST", "/api/v1/batches", body, headers)
        except ServiceUnreachable as first:
            if not isinstance(first.__cause__, requests.ReadTimeout):
                raise
            answer = self.request("POST", "/api/v1/batches", body, headers)  # same key: never a second batch
        return answer

    def job(self, job_id: str) -> dict[str, Any]:
        """One job's record."""
        answer: dict[str, Any] = self.request("GET", f"/api/v1/jobs/{quote(job_id, safe='')}")
        return answer

    def batch(self, batch_id: str) -> dict[str, Any]:
        """One batch's counts and jobs."""
        answer: dict[str, Any] = self.request("GET", f"/api/v1/batches/{quote(batch_id, safe='')}")
        return answer

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job."""
        answer: dict[str, Any] = self.request("DELETE", f"/api/v1/jobs/{quote(job_id, safe='')}")
        return answer

    def status(self) -> dict[str, Any]:
        """The quantization status: workers, models, levels and queue."""
        answer: dict[str, Any] = self.request("GET", "/api/v1/quantization/status")
        return answer

    def review_labels(self, model: str | None = None) -> list[dict[str, Any]]:
        """Reviewers' verdicts as hand-label rows, oldest first (one model's when given)."""
        query = f"?model={quote(model, safe='')}" if model else ""
        answer: dict[str, Any] = self.request("GET", f"/api/v1/reviews/labels{query}")
        labels: list[dict[str, Any]] = answer["labels"]
        return labels

    @staticmethod
    def _idempotency() -> dict[str, str]:
        return {"Idempotency-Key": uuid.uuid4().hex}
