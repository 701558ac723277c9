"""GGUF backend through llama-cpp-python: fp16/int8/int4/int2 are the F16/Q8_0/Q4_K_M/Q2_K variants."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.backends.base import Decoding, Generation, HeldModel, Message, chat_template_or_none, softmax_of
from worker.builder import Build
from worker.errors import InputError, JobCancelled, ModelLoadError
from worker.policy import BITS_PER_WEIGHT, GGUF_TYPES, LEVELS, RUNTIME_OVERHEAD_FRACTION, check_level
from worker.settings import DEFAULT_N_CTX, Settings, available_cores
from worker.variants import check_gguf, ensure_variant, existing_variant, gguf_metadata, source_file_type

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


def _decoding_args(decoding: Decoding) -> dict[str, Any]:
    """llama.cpp's arguments for the token budget, the stop sequences and greedy or seeded sampling."""
    args: dict[str, Any] = {"max_tokens": decoding.max_tokens, "stop": list(decoding.stop)}
    if decoding.sampling is None:
        return args | {"temperature": 0.0}
    return args | {"temperature": decoding.sampling.temperature, "seed": decoding.sampling.seed}


class _Watch:
    """Polls should_stop() once per token: as a stopping criterion (completions) or a logits processor (chat)."""

    def __init__(self, decoding: Decoding) -> None:
        self.decoding = decoding
        self.cancelled = False
        self.first_at: float | None = None  # when llama.cpp first asked: the prompt has been read

    def criterion(self, _ids: Any, _logits: Any) -> bool:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        if not self.cancelled:
            self.cancelled = self.decoding.cancelled()
        return self.cancelled

    def processor(self, _ids: Any, logits: Any) -> Any:
        if self.criterion(_ids, logits):
            raise JobCancelled("the job was cancelled during generation")  # chat completion takes no criterion
        return logits


class LlamaCppModel(HeldModel):
    """A GGUF variant loaded by llama.cpp (memory-mapped unless DYNAQUANT_MMAP=0)."""

    backend = "gguf"

    def __init__(self, name: str, level: str, path: Path, llm: Any, size_bytes: int) -> None:
        super().__init__(name, level, size_bytes)  # its lock: a llama.cpp context serves one generation at a time
        self.path = path
        self._llm = llm

    @property
    def n_ctx(self) -> int:
        """The context window the model was loaded with."""
        return int(self._llm.n_ctx())

    @property
    def chat_template(self) -> str | None:
        """The GGUF's `tokenizer.chat_template` (instruct models carry one), or None."""
        if self._llm is None:
            return None
        return chat_template_or_none(self._llm.metadata.get("tokenizer.chat_template"))

    def generate(self, prompt: str, decoding: Decoding) -> Generation:
        """Completion (greedy unless sampling); a stopping criterion checks should_stop() after every token."""
        import llama_cpp

        watch = _Watch(decoding)
        criteria = llama_cpp.StoppingCriteriaList([watch.criterion])
        return self._run(
            lambda llm: llm.create_completion(prompt, stopping_criteria=criteria, **_decoding_args(decoding)), watch
        )

    def chat(self, messages: Sequence[Message], decoding: Decoding) -> Generation:
        """The assistant's turn through llama.cpp's chat completion, which applies the GGUF's own template."""
        import llama_cpp

        watch = _Watch(decoding)
        processors = llama_cpp.LogitsProcessorList([watch.processor])
        return self._run(
            lambda llm: llm.create_chat_completion(
                list(messages), logits_processor=processors, **_decoding_args(decoding)
            ),
            watch,
        )

    def answer_probabilities(self, messages: Sequence[Message], answers: Sequence[str]) -> dict[str, float]:
        """One step of chat completion whose logits a processor keeps; the answers' first tokens read from them."""
        import llama_cpp

        self._ensure_open(self._llm)
        kept: list[Any] = []

        def keep(_ids: Any, logits: Any) -> Any:
            kept.append(logits.copy())
            return logits

        with self._lock:
            self._llm.create_chat_completion(
                list(messages), max_tokens=1, temperature=0.0, logits_processor=llama_cpp.LogitsProcessorList([keep])
            )
            ids = {a: self._llm.tokenize(a.encode(), add_bos=False, special=False)[0] for a in answers}
        return softmax_of(kept[0], ids)

    def _run(self, call: Callable[[Any], Any], watch: _Watch) -> Generation:
        """One llama.cpp call under the model's lock, timed, with cancellation and context errors translated."""
        self._ensure_open(self._llm)
        started = time.perf_counter()
        with self._lock:
            try:
                result = call(self._llm)
            except ValueError as exc:
                if "context window" in str(exc):
                    raise InputError(
                        "text", f"prompt and max_tokens do not fit the model's {self.n_ctx}-token context: {exc}"
                    ) from exc
                raise
            except JobCancelled:
                watch.cancelled = True
        seconds = time.perf_counter() - started
        prompt_seconds = watch.first_at - started if watch.first_at is not None else None
        if watch.cancelled:
            raise JobCancelled("the job was cancelled during generation")
        choice = result["choices"][0]
        usage = result["usage"]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        return Generation(
            text or "",
            int(usage["prompt_tokens"]),
            int(usage["completion_tokens"]),
            seconds,
            str(choice.get("finish_reason") or "stop"),
            prompt_seconds,
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
        variants_dir: Path,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        use_mmap: bool = True,
        device: str = "cpu",
    ) -> None:
        self.variants_dir = variants_dir
        self.device = device
        self.n_ctx = n_ctx
        self.n_threads = available_cores() if n_threads is None else n_threads
        self.use_mmap = use_mmap

    @classmethod
    def from_settings(cls, settings: Settings, device: str = "cpu") -> LlamaCppBackend:
        """The backend a worker's settings describe: its variants folder, context, threads and mmap."""
        return cls(settings.variants_path, settings.n_ctx, settings.thread_count, settings.mmap, device)

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

    def build_for(self, spec: ModelSpec, level: str) -> Build:
        """What building the level's variant takes: source, GGUF type and this backend's variants folder."""
        return Build(spec.name, self._source(spec), GGUF_TYPES[check_level(level)], self.variants_dir)

    def source_level(self, spec: ModelSpec) -> str | None:
        """The level of the GGUF file the variants are built from (int4 for a Q4_K_M file), if it is one of ours."""
        gguf_type = source_file_type(self._source(spec))
        return next((level for level, name in GGUF_TYPES.items() if name == gguf_type), None)

    def ready(self, spec: ModelSpec, level: str) -> bool:
        """Whether the level's variant is on disk (the source itself counts for its own type)."""
        return existing_variant(self._source(spec), GGUF_TYPES[check_level(level)], self.variants_dir) is not None

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
