"""The dynaquant web app: an HTTP API for simplification jobs and the workers' quantization state."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from webapp import dashboard, health, jobs, openapi, quantization
from webapp.errors import register_error_handlers
from webapp.settings import from_env


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with `test_config` overriding any setting."""
    app = Flask(__name__)
    app.config.from_mapping(from_env())
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_error_handlers(app)
    for blueprint in (jobs.bp, quantization.bp, health.bp, openapi.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    logging.getLogger(__name__).debug("dynaquant web app created for Redis %s", app.config["REDIS_URL"])
    return app
