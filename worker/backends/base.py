"""The small interface every runtime implements: estimate, load at a level, generate, close."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from worker.prompts import Message

if TYPE_CHECKING:
    from worker.registry import ModelSpec

StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class Sampling:
    """Random sampling instead of greedy decoding: a temperature above zero and a seed, so a run can be repeated."""

    temperature: float
    seed: int


@dataclass(frozen=True)
class Decoding:
    """How to decode one completion: the token budget, stop sequences, a cancellation check and sampling."""

    max_tokens: int
    stop: tuple[str, ...] = ()
    should_stop: StopCheck | None = None
    """Asked after every token; when it turns true the call raises JobCancelled."""
    sampling: Sampling | None = None
    """None decodes greedily."""

    def cancelled(self) -> bool:
        """Whether should_stop() says to give up now (False when there is no check)."""
        return self.should_stop is not None and bool(self.should_stop())


@dataclass(frozen=True)
class Generation:
    """One completion and what it cost."""

    text: str
    tokens_in: int
    tokens_out: int
    seconds: float
    finish_reason: str
    prompt_seconds: float | None = None
    """Time to the first token: reading the prompt (a reused prefix is not read again); None when not measured."""

    @property
    def tokens_per_second(self) -> float:
        """Decode speed over the whole call (prompt processing included)."""
        return self.tokens_out / self.seconds if self.seconds > 0 else 0.0


@runtime_checkable
class LoadedModel(Protocol):
    """A model held in memory at one precision level."""

    name: str
    level: str
    size_bytes: int
    backend: str

    @property
    def chat_template(self) -> str | None:
        """The model's own chat template (an instruct model), or None for a base model."""
        ...

    def generate(self, prompt: str, decoding: Decoding) -> Generation:
        """Completion of `prompt` (greedy unless sampling); raises JobCancelled as soon as should_stop() turns true."""
        ...

    def chat(self, messages: Sequence[Message], decoding: Decoding) -> Generation:
        """The assistant's next turn after `messages`, through the model's chat template."""
        ...

    def answer_probabilities(self, messages: Sequence[Message], answers: Sequence[str]) -> dict[str, float]:
        """The probability of each answer as the first token of the assistant's next turn (greedy, one step)."""
        ...

    def close(self) -> None:
        """Free the model's memory; the object is unusable afterwards."""
        ...


def softmax_of(logits: Sequence[float] | Any, token_ids: dict[str, int]) -> dict[str, float]:
    """Each named token's probability under the softmax of a next-token logits vector."""
    import numpy as np

    values = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(values - values.max())
    total = float(shifted.sum())
    return {name: float(shifted[token] / total) for name, token in token_ids.items()}


class HeldModel:
    """What every runtime's loaded model keeps: name, level, size, and a lock so one generation runs at a time."""

    backend: str

    def __init__(self, name: str, level: str, size_bytes: int) -> None:
        self.name = name
        self.level = level
        self.size_bytes = size_bytes
        self._lock = threading.Lock()

    def _ensure_open(self, handle: object) -> None:
        """Raise if the runtime's model object is gone (the model was closed)."""
        if handle is None:
            raise RuntimeError(f"model {self.name} at {self.level} was closed")


class Backend(Protocol):
    """A runtime that can load models at some precision levels."""

    name: str

    def supported_levels(self, spec: ModelSpec) -> tuple[str, ...]:
        """Levels this backend can serve the model at on this device."""
        ...

    def estimate_bytes(self, spec: ModelSpec, level: str) -> int:
        """Memory the model is expected to take once loaded at `level` (weights plus runtime)."""
        ...

    def prepare(self, spec: ModelSpec, level: str) -> None:
        """Make the level's files ready on disk (a GGUF variant) so estimate_bytes is exact; check the sources."""
        ...

    def ready(self, spec: ModelSpec, level: str) -> bool:
        """Whether loading the level needs no build first (a GGUF variant not on disk yet does)."""
        ...

    def source_level(self, spec: ModelSpec) -> str | None:
        """The level of the model's own weights when the more precise levels are re-encodings of them, else None."""
        ...

    def load(self, spec: ModelSpec, level: str) -> LoadedModel:
        """Load the model at `level`; raises ModelLoadError naming the file and the fix."""
        ...


def chat_template_or_none(template: object) -> str | None:
    """A model's chat template when it carries a non-blank one, else None (a base model)."""
    return template if isinstance(template, str) and template.strip() else None


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text up to the first stop sequence, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)
