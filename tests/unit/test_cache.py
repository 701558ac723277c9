"""The LRU model cache on its own: cap, order, pins, clear, counters (tiny stand-in models)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from worker.backends.base import Decoding, Generation, LoadedModel, Message
from worker.cache import ModelCache
from worker.contracts import MIB
from worker.settings import Settings


class TinyModel:
    """A stand-in LoadedModel of a given size that records whether it was closed."""

    backend = "fake"
    chat_template = None

    def __init__(self, name: str, level: str, size_mb: float) -> None:
        self.name = name
        self.level = level
        self.size_bytes = int(size_mb * MIB)
        self.closed = False

    def generate(self, prompt: str, decoding: Decoding) -> Generation:
        return Generation("ok", 1, 1, 0.0, "stop")

    def chat(self, messages: Sequence[Message], decoding: Decoding) -> Generation:
        return Generation("ok", 1, 1, 0.0, "stop")

    def answer_probabilities(self, messages: Sequence[Message], answers: Sequence[str]) -> dict[str, float]:
        return dict.fromkeys(answers, 1 / len(answers))

    def close(self) -> None:
        self.closed = True


def test_tiny_model_satisfies_the_interface() -> None:
    assert isinstance(TinyModel("m", "int4", 1), LoadedModel)


def test_cap_is_respected_by_evicting_least_recently_used() -> None:
    cache = ModelCache(max_size_mb=1000)
    a, b, c = TinyModel("a", "int4", 400), TinyModel("b", "int4", 400), TinyModel("c", "int4", 400)
    cache.put(a)
    cache.put(b)
    evicted = cache.put(c)
    assert [e.name for e in evicted] == ["a"]
    assert a.closed and not b.closed and not c.closed
    assert cache.current_size_mb <= cache.max_size_mb
    assert cache.keys() == [("b", "int4"), ("c", "int4")]


def test_get_refreshes_recency() -> None:
    cache = ModelCache(max_size_mb=1000)
    for name in "abc":
        cache.put(TinyModel(name, "int8", 300))
    assert cache.get("a", "int8") is not None  # a becomes the most recent
    evicted = cache.put(TinyModel("d", "int8", 300))
    assert [e.name for e in evicted] == ["b"]
    assert cache.keys() == [("c", "int8"), ("a", "int8"), ("d", "int8")]


def test_same_model_at_two_levels_is_two_entries() -> None:
    cache = ModelCache(max_size_mb=1000)
    cache.put(TinyModel("m", "fp16", 500))
    cache.put(TinyModel("m", "int4", 200))
    assert cache.levels_of("m") == {"fp16": 500, "int4": 200}


def test_pinned_entry_is_never_evicted() -> None:
    cache = ModelCache(max_size_mb=1000)
    pinned = TinyModel("p", "fp16", 600)
    cache.put(pinned, pin=True)
    cache.put(TinyModel("q", "int4", 300))
    evicted = cache.put(TinyModel("r", "int4", 300))
    assert [e.name for e in evicted] == ["q"]
    assert not pinned.closed
    assert cache.evict("p", "fp16") == 0.0, "evicting a pinned entry must be refused"
    cache.make_room(900)
    assert ("p", "fp16") in cache, "make_room must not evict a pinned entry"
    cache.release("p", "fp16")
    assert cache.evict("p", "fp16") == 600
    assert pinned.closed


def test_pins_are_counted() -> None:
    cache = ModelCache(max_size_mb=100)
    cache.put(TinyModel("m", "int2", 50), pin=True)
    assert cache.get("m", "int2", pin=True) is not None
    cache.release("m", "int2")
    assert cache.stats().models[0].status == "in_use", "one hold is left"
    cache.release("m", "int2")
    assert cache.stats().models[0].status == "loaded"
    cache.release("m", "int2")  # an extra release does not go negative
    assert cache.clear() == 50


def test_clear_spares_models_in_use() -> None:
    cache = ModelCache(max_size_mb=2000)
    busy, idle1, idle2 = TinyModel("busy", "int8", 300), TinyModel("i1", "int4", 200), TinyModel("i2", "int2", 100)
    cache.put(busy, pin=True)
    cache.put(idle1)
    cache.put(idle2)
    freed = cache.clear()
    assert freed == 300
    assert idle1.closed and idle2.closed and not busy.closed
    assert cache.keys() == [("busy", "int8")]


def test_access_counts_and_stats_shape() -> None:
    cache = ModelCache(max_size_mb=8000)
    cache.put(TinyModel("qwen-7b", "int4", 3500))
    cache.get("qwen-7b", "int4")
    cache.get("qwen-7b", "int4")
    assert cache.get("qwen-7b", "fp16") is None
    stats = cache.stats().model_dump()
    assert stats["current_size_mb"] == 3500
    assert stats["max_size_mb"] == 8000
    assert stats["utilization"] == "43.8%"
    assert stats["models_cached"] == 1
    (row,) = stats["models"]
    assert row["name"] == "qwen-7b" and row["level"] == "int4" and row["size_mb"] == 3500
    assert row["access_count"] == 3, "the load counts as the first access"
    assert row["status"] == "loaded" and row["in_use"] is False
    assert isinstance(row["last_used"], float)


def test_make_room_evicts_only_what_is_needed() -> None:
    cache = ModelCache(max_size_mb=1000)
    for name in "abcd":
        cache.put(TinyModel(name, "int4", 250))
    evicted = cache.make_room(400)
    assert [e.name for e in evicted] == ["a", "b"]
    assert cache.current_size_mb == 500


def test_replacing_an_entry_closes_the_old_model() -> None:
    cache = ModelCache(max_size_mb=1000)
    old, new = TinyModel("m", "int4", 100), TinyModel("m", "int4", 100)
    cache.put(old)
    cache.put(new)
    assert old.closed and not new.closed
    assert len(cache) == 1


def test_cap_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_MODEL_CACHE_MB", "1234")
    assert ModelCache(Settings().max_cache_mb).max_size_mb == 1234
    monkeypatch.setenv("MAX_MODEL_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="MAX_MODEL_CACHE_MB"):
        Settings()
