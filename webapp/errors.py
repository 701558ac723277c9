"""JSON errors: every 4xx and 5xx answer is {"error": {"code", "message", "field"}}, never HTML."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from webapp.extensions import current_settings, redacted_url
from worker.errors import InputError

log = logging.getLogger(__name__)

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API answers with a status, a code, a message and the field at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}


def error_body(
    code: str, message: str, field: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The error object every failing answer carries, with any extra top-level keys."""
    return {"error": {"code": code, "message": message, "field": field}, **(extra or {})}


def error_response(error: ApiError) -> ResponseReturnValue:
    """The JSON answer of an error, with its status and headers."""
    response = jsonify(error_body(error.code, error.message, error.field, error.extra))
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def redis_unreachable_message() -> str:
    """What to tell a client when Redis does not answer."""
    url = redacted_url(current_settings().redis_url)
    return (
        f"Redis at {url} is unreachable: start it (`redis-server`, `dynaquant up` or `docker compose up redis`) "
        "or point REDIS_URL at a running one, then retry"
    )


def _api_error(exc: ApiError) -> ResponseReturnValue:
    return error_response(exc)


def _input_error(exc: InputError) -> ResponseReturnValue:
    return error_response(ApiError(400, exc.code, str(exc), exc.field))


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if status == 404:
        message = f"nothing at {request.method} {request.path}: see /openapi.json for the endpoints"
    elif status == 405:
        allowed = exc.valid_methods if hasattr(exc, "valid_methods") else None
        message = f"{request.method} is not allowed on {request.path}" + (
            f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
        )
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"the request body is larger than the limit of {limit} bytes (DYNAQUANT_MAX_BODY_BYTES)"
    else:
        message = exc.description or exc.name
    skip = ("content-type", "content-length")
    headers = {k: v for k, v in exc.get_response().headers.items() if k.lower() not in skip}
    field = "body" if status in (413, 415) else None
    return error_response(
        ApiError(status, HTTP_CODES.get(status, exc.name.lower().replace(" ", "_")), message, field, headers)
    )


def _redis_error(exc: redis.RedisError) -> ResponseReturnValue:
    settings = current_settings()
    url, retry = redacted_url(settings.redis_url), {"Retry-After": str(settings.retry_after_seconds)}
    if isinstance(exc, redis.AuthenticationError):
        log.warning("Redis refused the credentials: %s", exc)
        message = f"Redis at {url} refused the credentials in REDIS_URL: set the password it expects"
        return error_response(ApiError(503, "redis_auth_failed", message, None, retry))
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        log.warning("Redis unreachable: %s", exc)
        return error_response(ApiError(503, "redis_unavailable", redis_unreachable_message(), None, retry))
    log.error("Redis error: %s", exc)
    return error_response(ApiError(503, "redis_error", f"Redis at {url} answered with an error: {exc}", None, retry))


def _unexpected(exc: Exception) -> ResponseReturnValue:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(ApiError(500, "internal_error", "unexpected server error; the server log has the details"))


def register_error_handlers(app: Flask) -> None:
    """Answer every error, expected or not, with the JSON error object."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(InputError, _input_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(redis.RedisError, _redis_error)
    app.register_error_handler(Exception, _unexpected)
