"""Celery settings, read from the environment once at import.

Redis is both broker and result backend. Priorities 0 (first) to 9 (last) each get their own
Redis list; prefetch 1 with late acks keeps a waiting high-priority job from being stuck behind
a message a busy worker already took.
"""

from __future__ import annotations

import os

redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
task_time_limit = int(os.environ.get("DYNAQUANT_TASK_TIME_LIMIT", "600"))

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
    "visibility_timeout": task_time_limit + 300,
}
result_backend_transport_options = {"retry_policy": {"max_retries": 5}}

worker_prefetch_multiplier = 1
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = True
task_acks_on_timeout = True
task_time_limit = task_time_limit
task_soft_time_limit = max(task_time_limit - 30, 1)
task_track_started = True

worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False
worker_cancel_long_running_tasks_on_connection_loss = False

result_expires = int(os.environ.get("DYNAQUANT_RESULT_TTL", "86400"))
result_extended = True

max_redeliveries = int(os.environ.get("DYNAQUANT_MAX_REDELIVERIES", "3"))
