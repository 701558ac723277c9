"""Reading a request's JSON body strictly: the right media type, valid JSON, an object."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flask import request

from webapp.errors import ApiError


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def json_object(allow_empty: bool = False) -> dict[str, Any]:
    """The body as a JSON object, or an ApiError (415 wrong media type, 400 bad JSON) naming 'body'."""
    data = request.get_data(cache=True)
    if not data and allow_empty:
        return {}
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        shown = request.content_type or "none"
        message = f"send JSON with Content-Type: application/json (got {shown})"
        raise ApiError(415, "unsupported_media_type", message, "body")
    if not data:
        raise ApiError(400, "invalid_json", "the body is empty: send a JSON object", "body")
    try:
        payload = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}"[:300], "body") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_input", f"the body must be a JSON object, got {type(payload).__name__}", "body")
    return payload
