"""Celery settings, read from the environment once at import.

Redis is both broker and result backend. Priorities 0 (first) to 9 (last) each get their own
Redis list; prefetch 1 with late acks keeps a waiting high-priority job from being stuck behind
a message a busy worker already took.

Delivery is at least once: a worker acknowledges a job only when it ends, so a job whose worker
dies stays in Redis's `unacked` hash and is put back on the queue once it has been out for
`visibility_timeout` seconds (an idle worker sweeps for such jobs every `unacked_restore_interval`).
The timeout must outlast the longest job (DYNAQUANT_TASK_TIME_LIMIT, which the worker enforces);
a job still running when it expires is leased to its worker and not run a second time (worker/jobs.py).
"""

from __future__ import annotations

import os

from worker.settings import env_int

visibility_margin_seconds = 120

redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
task_time_limit = env_int("DYNAQUANT_TASK_TIME_LIMIT", 600)
visibility_timeout = env_int("DYNAQUANT_VISIBILITY_TIMEOUT", task_time_limit + visibility_margin_seconds)
if visibility_timeout <= task_time_limit:
    raise ValueError(
        f"DYNAQUANT_VISIBILITY_TIMEOUT={visibility_timeout} must exceed DYNAQUANT_TASK_TIME_LIMIT={task_time_limit}: "
        "a job still running when its visibility timeout passes is handed out again"
    )

broker_url = redis_url
result_backend = os.environ.get("RESULT_BACKEND_URL", redis_url)
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep trying while Redis restarts

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

task_default_queue = os.environ.get("DYNAQUANT_QUEUE", "simplify")
task_default_priority = 5
task_queue_max_priority = 9
broker_transport_options = {
    "priority_steps": list(range(10)),
    "sep": "\x06\x16",
    "queue_order_strategy": "priority",
    # Must exceed the longest job, or Redis hands the job to a second worker while the first runs.
    "visibility_timeout": visibility_timeout,
    # Sweep for jobs of dead workers every few seconds (kombu's default is every 100 s).
    "unacked_restore_interval": min(10, max(1, visibility_timeout // 10)),
    "unacked_restore_throttle": 1,
}
result_backend_transport_options = {"retry_policy": {"max_retries": 5}}

worker_prefetch_multiplier = 1
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = True
task_acks_on_timeout = True
task_time_limit = task_time_limit
task_soft_time_limit = max(task_time_limit - min(30, max(task_time_limit // 10, 1)), 1)  # prefork only
task_track_started = True

worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False
worker_cancel_long_running_tasks_on_connection_loss = False

result_expires = int(os.environ.get("DYNAQUANT_RESULT_TTL", "86400"))
result_extended = True

max_redeliveries = env_int("DYNAQUANT_MAX_REDELIVERIES", 3, minimum=0)
