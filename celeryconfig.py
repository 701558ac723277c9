"""Celery settings, from this process's settings (worker/settings.py).

Redis is the broker; job results live in the job records (worker/jobs.py), so Celery keeps none
(`task_ignore_result`). Priorities 0 (first) to 9 (last) each get their own Redis list; prefetch 1
with late acks keeps a waiting high-priority job from being stuck behind a message a busy worker
already took.

Delivery is at least once: a worker acknowledges a job only when it ends, so a job whose worker
dies stays in Redis's `unacked` hash and is put back on the queue once it has been out for
`visibility_timeout` seconds (an idle worker sweeps for such jobs every `unacked_restore_interval`).
The timeout must outlast the longest job (DYNAQUANT_TASK_TIME_LIMIT, which the worker itself enforces
between generated tokens: the solo pool runs no Celery time limits); a job still running when it
expires is leased to its worker and not run a second time (worker/jobs.py).
"""

from __future__ import annotations

from worker.settings import get_settings

_settings = get_settings()
visibility_timeout = _settings.visibility_seconds

broker_url = _settings.redis_url
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep trying while Redis restarts

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True

task_default_queue = _settings.queue
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

worker_prefetch_multiplier = 1
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = True
task_acks_on_timeout = True

worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False
worker_cancel_long_running_tasks_on_connection_loss = False
