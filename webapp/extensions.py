"""Per-app connections, made on first use: the Redis client, the job store and the Celery sender."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import Celery
from flask import Flask, current_app

import celeryconfig
from worker.celery_app import app as shared_celery
from worker.jobs import JobStore
from worker.settings import Settings

_lock = threading.RLock()


def redacted_url(url: str) -> str:
    """A Redis URL with its password replaced, safe to show to a client or write to a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _state(app: Flask) -> dict[str, Any]:
    state: dict[str, Any] = app.extensions.setdefault("dynaquant", {})
    return state


def per_app(name: str, build: Any) -> Any:
    """One object per app, made by `build(app)` on first use (a client, a store, a cache)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = _state(app)
    if name not in state:
        with _lock:
            if name not in state:
                state[name] = build(app)
    return state[name]


def settings_of(app: Flask) -> Settings:
    """An app's settings (the environment's, with create_app's overrides)."""
    settings: Settings = app.config["SETTINGS"]
    return settings


def current_settings() -> Settings:
    """The settings of the app handling this request."""
    return settings_of(current_app)


def broker_url(app: Flask) -> str:
    """Where jobs are sent: REDIS_URL, unless a test points CELERY_BROKER_URL elsewhere."""
    return str(app.config.get("CELERY_BROKER_URL") or settings_of(app).redis_url)


def _make_redis(app: Flask) -> redis.Redis:
    return redis.Redis.from_url(
        settings_of(app).redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def _make_celery(app: Flask) -> Celery:
    url = broker_url(app)
    if url == shared_celery.conf.broker_url:
        return shared_celery
    sender = Celery("dynaquant-web", set_as_current=False)
    sender.config_from_object(celeryconfig)
    sender.conf.broker_url = url
    return sender


def get_redis() -> redis.Redis:
    """This app's Redis client (REDIS_URL)."""
    client: redis.Redis = per_app("redis", _make_redis)
    return client


def get_store() -> JobStore:
    """This app's job and batch records."""
    store: JobStore = per_app("store", lambda app: JobStore(get_redis(), settings_of(app).result_ttl))
    return store


def get_celery() -> Celery:
    """The Celery app that sends tasks to this app's broker."""
    sender: Celery = per_app("celery", _make_celery)
    return sender
