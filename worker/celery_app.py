"""The Celery application shared by workers and the web app (which only sends tasks by name)."""

from __future__ import annotations

from celery import Celery

import celeryconfig

SIMPLIFY_TASK = "worker.tasks.simplify_text"

app = Celery("dynaquant")
app.config_from_object(celeryconfig)
