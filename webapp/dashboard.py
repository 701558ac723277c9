"""The dashboard page at `/`: one HTML page whose scripts poll the JSON API (no CDN, no build step)."""

from __future__ import annotations

from flask import Blueprint, make_response, render_template
from flask.typing import ResponseReturnValue

from webapp.extensions import current_settings

bp = Blueprint("dashboard", __name__)

POLL_MS = 2000
HISTORY_MINUTES = 10
# Everything the page loads comes from this origin; its scripts and styles are files, never inline.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/")
def index() -> ResponseReturnValue:
    """The dashboard: workers, memory, levels, cache, queue, recent jobs and a form to simplify a text."""
    settings = current_settings()
    page = render_template(
        "dashboard.html",
        poll_ms=POLL_MS,
        history_minutes=HISTORY_MINUTES,
        heartbeat_ttl=settings.heartbeat_ttl,
        queue=settings.queue,
    )
    return secured(page)


def secured(page: str) -> ResponseReturnValue:
    """A page of ours as a response: only this origin's scripts and styles, never framed, never cached."""
    response = make_response(page)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response
