"""Bearer-token guard for the endpoints that change state (reads stay open)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from webapp.errors import ApiError
from webapp.extensions import current_settings

F = TypeVar("F", bound=Callable[..., Any])


def check_token() -> None:
    """Raise 401 unless API_TOKEN is unset or the request carries `Authorization: Bearer <token>`."""
    token = current_settings().api_token
    if not token:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), str(token).encode()):
        return
    message = "this endpoint needs `Authorization: Bearer <API_TOKEN>`" + (
        "" if header else " (no Authorization header was sent)"
    )
    raise ApiError(401, "unauthorized", message, "Authorization", {"WWW-Authenticate": 'Bearer realm="dynaquant"'})


def token_required(view: F) -> F:
    """Decorate a view so it runs only for a caller holding the API token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_token()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
