"""GGUF backend through llama-cpp-python: fp16/int8/int4/int2 are the F16/Q8_0/Q4_K_M/Q2_K variants."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.backends.base import Generation, StopCheck
from worker.errors import InputError, JobCancelled, ModelLoadError
from worker.policy import BITS_PER_WEIGHT, GGUF_TYPES, LEVELS, RUNTIME_OVERHEAD_FRACTION, check_level
from worker.settings import get_settings
from worker.variants import check_gguf, ensure_variant, existing_variant, gguf_metadata

if TYPE_CHECKING:
    from worker.registry import ModelSpec

COMPUTE_BUFFER_BYTES = 48 * 1024 * 1024
"""llama.cpp's scratch buffers for a batch of 512 on CPU, beyond the weights and the KV cache."""


def kv_bytes_per_token(path: Path) -> int:
    """KV cache bytes per token of context (f16 K and V over every layer), read from GGUF metadata."""
    meta = gguf_metadata(path)
    arch = meta.get("general.architecture", "")

    def value(key: str, default: int) -> int:
        content = meta.get(f"{arch}.{key}")
        if isinstance(content, list):  # per-layer values: take the largest
            content = max(content) if content else None
        return int(content) if isinstance(content, (int, float)) else default

    layers = value("block_count", 0)
    heads = value("attention.head_count", 1)
    kv_heads = value("attention.head_count_kv", heads)
    k_len = value("attention.key_length", value("embedding_length", 0) // max(heads, 1))
    v_len = value("attention.value_length", k_len)
    return 2 * layers * kv_heads * (k_len + v_len)


class LlamaCppModel:
    """A GGUF variant loaded by llama.cpp (memory-mapped unless DYNAQUANT_MMAP=0)."""

    backend = "gguf"

    def __init__(self, name: str, level: str, path: Path, llm: Any, size_bytes: int) -> None:
        self.name = name
        self.level = level
        self.path = path
        self.size_bytes = size_bytes
        self._llm = llm
        self._lock = threading.Lock()  # a llama.cpp context serves one generation at a time

    @property
    def n_ctx(self) -> int:
        """The context window the model was loaded with."""
        return int(self._llm.n_ctx())

    def generate(
        self, prompt: str, max_tokens: int, stop: Sequence[str], should_stop: StopCheck | None = None
    ) -> Generation:
        """Greedy completion; a stopping criterion checks should_stop() after every token."""
        if self._llm is None:
            raise RuntimeError(f"model {self.name} at {self.level} was closed")
        cancelled = False

        def check(_ids: Any, _logits: Any) -> bool:
            nonlocal cancelled
            if not cancelled and should_stop is not None:
                cancelled = bool(should_stop())
            return cancelled

        import llama_cpp

        started = time.perf_counter()
        with self._lock:
            try:
                result = self._llm.create_completion(
                    prompt,
                    max_tokens=max_tokens,
                    temperature=0.0,
                    stop=list(stop),
                    stopping_criteria=llama_cpp.StoppingCriteriaList([check]),
                )
            except ValueError as exc:
                if "context window" in str(exc):
                    raise InputError(
                        "text", f"prompt and max_tokens do not fit the model's {self.n_ctx}-token context: {exc}"
                    ) from exc
                raise
        seconds = time.perf_counter() - started
        if cancelled:
            raise JobCancelled("the job was cancelled during generation")
        choice = result["choices"][0]
        usage = result["usage"]
        return Generation(
            choice["text"],
            int(usage["prompt_tokens"]),
            int(usage["completion_tokens"]),
            seconds,
            str(choice.get("finish_reason") or "stop"),
        )

    def close(self) -> None:
        """Free the llama.cpp model and context."""
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None


class LlamaCppBackend:
    """Serves a model's GGUF source at every level, building variants on first use."""

    name = "gguf"

    def __init__(
        self,
        variants_dir: Path | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        settings = get_settings()
        self.variants_dir = variants_dir
        self.device = device
        self.n_ctx = settings.n_ctx if n_ctx is None else n_ctx
        self.n_threads = settings.thread_count if n_threads is None else n_threads
        self.use_mmap = settings.mmap

    def supported_levels(self, spec: ModelSpec) -> tuple[str, ...]:
        """Every level, when the model has a GGUF file."""
        return LEVELS if spec.gguf_path is not None else ()

    def estimate_bytes(self, spec: ModelSpec, level: str) -> int:
        """The variant file's size if it is on disk, else params x bits per weight; plus KV cache and buffers."""
        check_level(level)
        source = self._source(spec)
        path = existing_variant(source, GGUF_TYPES[level], self.variants_dir)
        if path is not None:
            weights = path.stat().st_size
        else:
            weights = int(spec.params_b * 1e9 * BITS_PER_WEIGHT[level] / 8 * (1 + RUNTIME_OVERHEAD_FRACTION))
        return weights + self.runtime_bytes(source)

    def runtime_bytes(self, source: Path) -> int:
        """KV cache for the context window plus llama.cpp's compute buffers."""
        return kv_bytes_per_token(source) * self.n_ctx + COMPUTE_BUFFER_BYTES

    def prepare(self, spec: ModelSpec, level: str) -> None:
        """Build the level's variant if it is not on disk yet."""
        self.variant(spec, level)

    def variant(self, spec: ModelSpec, level: str) -> Path:
        """Path of the model's GGUF at a level, built from its source the first time."""
        return ensure_variant(self._source(spec), GGUF_TYPES[check_level(level)], self.variants_dir).path

    def load(self, spec: ModelSpec, level: str) -> LlamaCppModel:
        """Build the variant if needed and load it with llama.cpp (mmap unless DYNAQUANT_MMAP=0, DYNAQUANT_THREADS)."""
        path = self.variant(spec, level)
        import llama_cpp

        try:
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_gpu_layers=-1 if self.device in ("cuda", "mps") else 0,  # all layers on the GPU if llama.cpp has one
                use_mmap=self.use_mmap,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {path} ({exc}): the file is corrupt, truncated or of an unsupported "
                f"architecture; replace it (or delete it if it is a built variant in the variants dir, to rebuild it)"
            ) from exc
        size = path.stat().st_size + self.runtime_bytes(self._source(spec))
        return LlamaCppModel(spec.name, level, path, llm, size)

    @staticmethod
    def _source(spec: ModelSpec) -> Path:
        if spec.gguf_path is None:
            raise ModelLoadError(f"model {spec.name!r} has no GGUF file: add a 'gguf' path to its models file entry")
        check_gguf(spec.gguf_path)
        return spec.gguf_path
