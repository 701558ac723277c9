"""Prometheus exposition built from Redis at each scrape: the counters live there, shared by every process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from worker.contracts import MIB, WorkerState
from worker.jobs import COUNTS_KEY, LATENCY_BUCKETS, LATENCY_KEY, LEVELS_KEY, REOPT_KEY, STATUSES
from worker.queues import jobs_running, queue_depth_by_priority
from worker.status import live_workers


def _decode_hash(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in raw.items()
    }


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


class RedisCollector(Collector):
    """Reads queue lists, job counters and worker states from Redis each time it is collected."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.client = client
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        """Yield every dynaquant metric family."""
        yield from self._queue()
        yield from self._jobs()
        yield from self._workers(live_workers(self.client))
        yield self._latency()

    def _queue(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "dynaquant_queue_depth", "Jobs waiting in the queue, per priority (0 runs first).", labels=["priority"]
        )
        for priority, count in sorted(queue_depth_by_priority(self.client, [self.queue]).items()):
            depth.add_metric([str(priority)], count)
        yield depth
        running = jobs_running(self.client)
        yield GaugeMetricFamily(
            "dynaquant_jobs_running", "Jobs taken by a worker and not yet acknowledged.", value=running
        )

    def _jobs(self) -> Iterator[Metric]:
        counts = _decode_hash(self.client.hgetall(COUNTS_KEY))
        total = CounterMetricFamily(
            "dynaquant_jobs", "Jobs by status reached (submitted counts every accepted job).", labels=["status"]
        )
        for status in ("submitted", *[s for s in STATUSES if s not in ("queued", "running")]):
            total.add_metric([status], _float(counts.pop(status, None)))
        for status, value in sorted(counts.items()):
            total.add_metric([status], _float(value))
        yield total
        levels = CounterMetricFamily(
            "dynaquant_jobs_by_level", "Succeeded jobs by the level they ran at.", labels=["level"]
        )
        for level, value in sorted(_decode_hash(self.client.hgetall(LEVELS_KEY)).items()):
            levels.add_metric([level], _float(value))
        yield levels
        raw = self.client.get(REOPT_KEY)
        yield CounterMetricFamily(
            "dynaquant_reoptimizations",
            "Times a worker reloaded a model at another level.",
            value=_float(raw.decode() if isinstance(raw, bytes) else raw),
        )

    def _workers(self, workers: list[WorkerState]) -> Iterator[Metric]:
        yield GaugeMetricFamily("dynaquant_workers_alive", "Workers with a fresh heartbeat.", value=len(workers))
        level = GaugeMetricFamily(
            "dynaquant_worker_level", "1 for each worker's level per model.", labels=["worker", "model", "level"]
        )
        cache = GaugeMetricFamily("dynaquant_cache_bytes", "Bytes of models in each worker's cache.", labels=["worker"])
        for state in workers:
            for model, lvl in sorted(state.current_levels.items()):
                level.add_metric([state.worker, model, lvl], 1)
            cache.add_metric([state.worker], state.cache.current_size_mb * MIB)
        yield level
        yield cache

    def _latency(self) -> Metric:
        raw = _decode_hash(self.client.hgetall(LATENCY_KEY))
        buckets = [(str(float(bound)), _float(raw.get(str(bound)))) for bound in LATENCY_BUCKETS]
        count = _float(raw.get("+Inf"))
        buckets.append(("+Inf", count))
        histogram = HistogramMetricFamily(
            "dynaquant_job_latency_seconds", "Seconds from submission to result, succeeded jobs."
        )
        histogram.add_metric([], buckets, _float(raw.get("sum")))
        return histogram


def exposition(client: redis.Redis, queue: str) -> bytes:
    """The Prometheus text format for one scrape (a fresh registry each time: no state in this process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(client, queue))
    return generate_latest(registry)
