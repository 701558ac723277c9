"""The dynaquant web app: an HTTP API for simplification jobs and the workers' quantization state."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from webapp import apidoc, dashboard, health, jobs, quantization, review
from webapp.errors import register_error_handlers
from webapp.extensions import redacted_url
from worker.settings import Settings, get_settings


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app on this process's settings; a `test_config` key named like a setting (MAX_BATCH) overrides it.

    Other keys go to Flask's config as they are (TESTING, or CELERY_BROKER_URL to send jobs elsewhere).
    """
    app = Flask(__name__)
    config = dict(test_config or {})
    changes = {key.lower(): config.pop(key) for key in list(config) if key.lower() in Settings.model_fields}
    settings = get_settings().override(**changes) if changes else get_settings()
    app.config.from_mapping({"SETTINGS": settings, "MAX_CONTENT_LENGTH": settings.max_body_bytes, **config})
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_error_handlers(app)
    for blueprint in (jobs.bp, review.bp, quantization.bp, health.bp, apidoc.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    logging.getLogger(__name__).debug("dynaquant web app created for Redis %s", redacted_url(settings.redis_url))
    return app
