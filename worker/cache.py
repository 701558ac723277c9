"""Per-process LRU cache of loaded models keyed by (model, level), capped in MiB, with refcount pins.

An entry a job holds (refcount > 0) is never evicted. Evicted models are closed outside the lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from worker.backends.base import LoadedModel
from worker.contracts import MIB, CachedModel, CacheStats
from worker.policy import as_level

Key = tuple[str, str]


@dataclass
class CacheEntry:
    """One loaded model and its bookkeeping."""

    name: str
    level: str
    model: LoadedModel
    size_mb: float
    access_count: int = 0
    refcount: int = 0
    last_used: float = field(default_factory=time.time)

    def view(self) -> CachedModel:
        """The entry as a worker publishes it."""
        return CachedModel(
            name=self.name,
            level=as_level(self.level),
            size_mb=round(self.size_mb, 1),
            access_count=self.access_count,
            in_use=self.refcount > 0,
            last_used=self.last_used,
        )


class ModelCache:
    """Thread-safe LRU of loaded models; least recently used first in iteration order."""

    def __init__(self, max_size_mb: float) -> None:
        self.max_size_mb = float(max_size_mb)
        self._entries: OrderedDict[Key, CacheEntry] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def current_size_mb(self) -> float:
        """MiB held by every cached model."""
        with self._lock:
            return sum(e.size_mb for e in self._entries.values())

    @property
    def idle_size_mb(self) -> float:
        """MiB that evicting every entry no job holds would free."""
        with self._lock:
            return sum(e.size_mb for e in self._entries.values() if e.refcount == 0)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list[Key]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def levels_of(self, name: str) -> dict[str, float]:
        """Levels a model is cached at, with their sizes in MiB."""
        with self._lock:
            return {e.level: e.size_mb for e in self._entries.values() if e.name == name}

    def get(self, name: str, level: str, pin: bool = False) -> LoadedModel | None:
        """The cached model (counted as an access and made most recent), pinned if asked; None on a miss."""
        with self._lock:
            entry = self._entries.get((name, level))
            if entry is None:
                return None
            self._touch(entry)
            if pin:
                entry.refcount += 1
            return entry.model

    def put(self, model: LoadedModel, size_mb: float | None = None, pin: bool = False) -> list[CacheEntry]:
        """Add a loaded model (counted as its first access), evicting idle LRU entries to respect the cap.

        Returns the evicted entries (already closed). A model the cap cannot hold beside the pinned
        ones is still added: the loader checks the cap before loading, so this only happens when
        pins changed meanwhile.
        """
        key = (model.name, model.level)
        size = model.size_bytes / MIB if size_mb is None else float(size_mb)
        with self._lock:
            old = self._entries.pop(key, None)
            victims = self._evict_for(size)
            entry = CacheEntry(model.name, model.level, model, size)
            self._touch(entry)
            if pin:
                entry.refcount = 1
            self._entries[key] = entry
        if old is not None and old.model is not model:
            victims.append(old)
        self._close(victims)
        return victims

    def release(self, name: str, level: str) -> None:
        """Drop one hold on an entry (no-op if it is gone)."""
        with self._lock:
            entry = self._entries.get((name, level))
            if entry is not None and entry.refcount > 0:
                entry.refcount -= 1

    def evict(self, name: str, level: str) -> float:
        """Remove and close an entry no job holds; returns MiB freed (0 if absent or in use)."""
        with self._lock:
            entry = self._entries.get((name, level))
            if entry is None or entry.refcount > 0:
                return 0.0
            del self._entries[(name, level)]
        self._close([entry])
        return entry.size_mb

    def make_room(self, needed_mb: float) -> list[CacheEntry]:
        """Evict idle LRU entries until `needed_mb` more fits under the cap (as far as idle entries allow)."""
        with self._lock:
            victims = self._evict_for(needed_mb)
        self._close(victims)
        return victims

    def evict_lru(self, count: int = 1) -> list[CacheEntry]:
        """Evict up to `count` idle entries, least recently used first."""
        with self._lock:
            idle = [k for k, e in self._entries.items() if e.refcount == 0][:count]
            victims = [self._entries.pop(k) for k in idle]
        self._close(victims)
        return victims

    def clear(self) -> float:
        """Evict every entry no job holds; returns MiB freed."""
        with self._lock:
            idle = [k for k, e in self._entries.items() if e.refcount == 0]
            victims = [self._entries.pop(k) for k in idle]
        self._close(victims)
        return sum(v.size_mb for v in victims)

    def stats(self) -> CacheStats:
        """Size, cap and one row per cached model, as the worker's heartbeat carries them."""
        with self._lock:
            current = sum(e.size_mb for e in self._entries.values())
            models = [e.view() for e in self._entries.values()]
        return CacheStats(current_size_mb=round(current, 1), max_size_mb=round(self.max_size_mb, 1), models=models)

    def _touch(self, entry: CacheEntry) -> None:
        entry.access_count += 1
        entry.last_used = time.time()
        key = (entry.name, entry.level)
        if key in self._entries:
            self._entries.move_to_end(key)

    def _evict_for(self, needed_mb: float) -> list[CacheEntry]:
        victims: list[CacheEntry] = []
        current = sum(e.size_mb for e in self._entries.values())
        for key in [k for k, e in self._entries.items() if e.refcount == 0]:
            if current + needed_mb <= self.max_size_mb:
                break
            entry = self._entries.pop(key)
            current -= entry.size_mb
            victims.append(entry)
        return victims

    @staticmethod
    def _close(victims: list[CacheEntry]) -> None:
        for entry in victims:
            entry.model.close()
