"""transformers + bitsandbytes backend for Hugging Face checkpoint directories.

fp16 runs in bfloat16 on CPU (float16 on CUDA and MPS), int8 is bitsandbytes LLM.int8 and int4 is
nf4 with float16 compute (the load settings /calculate shows). int2 is not served here: the registry routes it to the
GGUF backend when the model also has a GGUF file.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.backends.base import (
    Decoding,
    Generation,
    HeldModel,
    Message,
    chat_template_or_none,
    cut_at_stop,
    softmax_of,
)
from worker.errors import JobCancelled, ModelLoadError
from worker.policy import RUNTIME_OVERHEAD_FRACTION, check_level
from worker.probes import installed
from worker.registry import models_dir
from worker.variants import file_lock, source_fingerprint, temp_path_for

if TYPE_CHECKING:
    from worker.registry import ModelSpec

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from local directories only, never a hub

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
BITS: dict[str, float] = {"fp16": 16.0, "int8": 8.0, "int4": 4.5}
"""Storage bits per weight of quantized linear layers; embeddings stay in 16 bits under bitsandbytes."""
RUNTIME_OVERHEAD_BYTES = 64 * 1024 * 1024
"""Activations, KV cache for short prompts and allocator slack beyond the weights."""


def weight_files(directory: Path) -> list[Path]:
    """The checkpoint's weight files (safetensors or PyTorch .bin)."""
    found: list[Path] = []
    for pattern in WEIGHT_PATTERNS:
        found.extend(p for p in sorted(directory.glob(pattern)) if p not in found)
    return found


def check_checkpoint(directory: Path) -> list[Path]:
    """Raise ModelLoadError unless `directory` holds a config.json and weight files; return the weights."""
    if not directory.is_dir():
        raise ModelLoadError(
            f"HF checkpoint directory {directory} does not exist: check the 'hf' path in the models file"
        )
    if not (directory / "config.json").is_file():
        raise ModelLoadError(
            f"HF checkpoint directory {directory} has no config.json: save the model there with save_pretrained()"
        )
    files = weight_files(directory)
    if not files:
        raise ModelLoadError(
            f"HF checkpoint directory {directory} has no weights (*.safetensors or pytorch_model*.bin): "
            "copy the model's weight files into it or fix the 'hf' path in the models file"
        )
    return files


def safetensors_shapes(path: Path) -> dict[str, int]:
    """Tensor name -> element count, read from a safetensors header without loading the tensors."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in info["shape"]:
            n *= int(dim)
        counts[name] = n
    return counts


def checkpoint_params(directory: Path) -> tuple[int, int] | None:
    """(embedding params, other params) of a safetensors checkpoint, or None if it has no safetensors."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    embed = other = 0
    for f in files:
        for name, n in safetensors_shapes(f).items():
            if "embed" in name or "lm_head" in name or name.endswith("norm.weight"):
                embed += n
            else:
                other += n
    return embed, other


def torch_dtype_for(device: str) -> Any:
    """bfloat16 on CPU (fast there, same range as fp32), float16 on GPUs."""
    import torch

    return torch.bfloat16 if device == "cpu" else torch.float16


class TransformersModel(HeldModel):
    """A transformers causal LM loaded at one level."""

    backend = "transformers"

    def __init__(self, name: str, level: str, model: Any, tokenizer: Any, device: str) -> None:
        super().__init__(name, level, int(model.get_memory_footprint()) + RUNTIME_OVERHEAD_BYTES)
        self._model = model
        self._tokenizer = tokenizer
        self._device = device

    @property
    def model(self) -> Any:
        """The underlying transformers model (for benchmarks that inspect its weights)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer."""
        return self._tokenizer

    @property
    def chat_template(self) -> str | None:
        """The tokenizer's chat template (instruct checkpoints carry one), or None."""
        return chat_template_or_none(getattr(self._tokenizer, "chat_template", None))

    def chat(self, messages: Sequence[Message], decoding: Decoding) -> Generation:
        """The assistant's turn: the tokenizer's chat template renders the prompt, then a plain completion."""
        prompt = self._tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return self.generate(str(prompt), decoding)

    def answer_probabilities(self, messages: Sequence[Message], answers: Sequence[str]) -> dict[str, float]:
        """One forward pass over the chat prompt; the answers' first tokens read from the last position's logits."""
        import torch

        self._ensure_open(self._model)
        prompt = self._tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        inputs = self._tokenizer(str(prompt), return_tensors="pt").to(self._model.device)
        with self._lock, torch.inference_mode():
            logits = self._model(**inputs).logits[0, -1].float().cpu().numpy()
        ids = {a: int(self._tokenizer.encode(a, add_special_tokens=False)[0]) for a in answers}
        return softmax_of(logits, ids)

    def generate(self, prompt: str, decoding: Decoding) -> Generation:
        """Completion (greedy unless sampling), checking stop sequences and cancellation after every token."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        self._ensure_open(self._model)
        tok = self._tokenizer
        inputs = tok(prompt, return_tensors="pt").to(self._model.device)
        prompt_len = int(inputs["input_ids"].shape[1])
        state = {"cancelled": False, "stopped": False}
        stop = decoding.stop

        class Stopper(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = state["cancelled"]
                if not done and decoding.cancelled():
                    state["cancelled"] = done = True
                elif not done and stop:
                    text = tok.decode(input_ids[0, prompt_len:], skip_special_tokens=True)
                    state["stopped"] = done = cut_at_stop(text, stop)[1]
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

        started = time.perf_counter()
        sample_args: dict[str, Any] = {"do_sample": False}
        if decoding.sampling is not None:
            torch.manual_seed(decoding.sampling.seed)
            sample_args = {"do_sample": True, "temperature": decoding.sampling.temperature}
        with self._lock, torch.inference_mode():
            output = self._model.generate(
                **inputs,
                max_new_tokens=decoding.max_tokens,
                **sample_args,
                stopping_criteria=StoppingCriteriaList([Stopper()]),
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        seconds = time.perf_counter() - started
        if state["cancelled"]:
            raise JobCancelled("the job was cancelled during generation")
        new = output[0, prompt_len:]
        text, found = cut_at_stop(tok.decode(new, skip_special_tokens=True), stop)
        hit_eos = len(new) > 0 and int(new[-1]) == tok.eos_token_id
        finish = "stop" if found or hit_eos or len(new) < decoding.max_tokens else "length"
        return Generation(text, prompt_len, len(new), seconds, finish)

    def close(self) -> None:
        """Drop the weights and return the memory to the allocator."""
        self._model = None
        gc.collect()
        if self._device == "cuda":
            import torch

            torch.cuda.empty_cache()


class TransformersBackend:
    """Loads HF checkpoints with transformers, quantized by bitsandbytes for int8 and int4."""

    name = "transformers"

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def supported_levels(self, spec: ModelSpec) -> tuple[str, ...]:
        """fp16 always; int8 and int4 where bitsandbytes runs (CPU and CUDA)."""
        if spec.hf_dir is None:
            return ()
        bnb = installed("bitsandbytes") and self.device in ("cpu", "cuda")
        return ("fp16", "int8", "int4") if bnb else ("fp16",)

    def estimate_bytes(self, spec: ModelSpec, level: str) -> int:
        """Weights at the level (embeddings kept in 16 bits) plus runtime overhead."""
        check_level(level)
        if level not in BITS:
            raise ModelLoadError(f"the transformers backend has no {level}: int2 needs the model's GGUF file")
        counts = checkpoint_params(spec.hf_dir) if spec.hf_dir is not None and spec.hf_dir.is_dir() else None
        if counts is None:
            weights = spec.params_b * 1e9 * BITS[level] / 8
        else:
            embed, other = counts
            weights = embed * 2 + other * BITS[level] / 8
        return int(weights * (1 + RUNTIME_OVERHEAD_FRACTION) + RUNTIME_OVERHEAD_BYTES)

    def source_level(self, spec: ModelSpec) -> str | None:
        """None: a checkpoint's levels are quantized from its full-precision weights, each one real."""
        return None

    def ready(self, spec: ModelSpec, level: str) -> bool:
        """Always: bitsandbytes quantizes at load time, there is nothing to build."""
        return True

    def prepare(self, spec: ModelSpec, level: str) -> None:
        """Check the checkpoint directory (nothing to build: bitsandbytes quantizes at load time)."""
        if spec.hf_dir is None:
            raise ModelLoadError(f"model {spec.name!r} has no HF checkpoint directory ('hf' in the models file)")
        check_checkpoint(spec.hf_dir)

    def load(self, spec: ModelSpec, level: str) -> TransformersModel:
        """Load the checkpoint at `level` from its local directory (never from a hub)."""
        if spec.hf_dir is None:
            raise ModelLoadError(f"model {spec.name!r} has no HF checkpoint directory ('hf' in the models file)")
        if level not in self.supported_levels(spec):
            raise ModelLoadError(f"the transformers backend cannot run {spec.name!r} at {level} on {self.device}")
        check_checkpoint(spec.hf_dir)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"local_files_only": True, "device_map": self.device}
        # Unquantized layers stay in bfloat16 on CPU even at int8/int4: float16 overflows in some models (Gemma 3)
        kwargs["dtype"] = torch_dtype_for(self.device)
        if level != "fp16":
            kwargs["quantization_config"] = bnb_config(level)
            # LLM.int8 warns on every matmul that it casts bfloat16 inputs to float16; once is enough
            logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.hf_dir, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(spec.hf_dir, **kwargs)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelLoadError(
                f"loading HF checkpoint {spec.hf_dir} at {level} failed ({type(exc).__name__}: {exc}): "
                "check that the directory holds a complete transformers checkpoint and tokenizer"
            ) from exc
        model.eval()
        return TransformersModel(spec.name, level, model, tokenizer, self.device)


def bnb_config(level: str) -> Any:
    """bitsandbytes settings: LLM.int8 for int8, nf4 with float16 compute for int4."""
    import torch
    from transformers import BitsAndBytesConfig

    if level == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16)


def checkpoint_from_gguf(gguf: Path, name: str) -> Path:
    """An HF checkpoint of a GGUF model (dequantised to bf16 by transformers), built once per machine and kept.

    It lets the transformers backend serve a model that ships as GGUF only (the tests and benchmarks use it
    on the bundled model); it lives in <user cache>/dynaquant/test-checkpoints, keyed by the file's content.
    """
    import transformers

    key = f"{source_fingerprint(gguf)}-tf{transformers.__version__}"
    target = models_dir().parent / "test-checkpoints" / f"{name}-hf-{key}"
    if not (target / "model.safetensors").exists():
        with file_lock(target.with_name(target.name + ".lock")):
            if not (target / "model.safetensors").exists():
                _dequantize(gguf, target)
    return target


def _dequantize(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = temp_path_for(target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, quantization_config=GgufConfig(dequantize=True)
    )
    # The weights are plain tensors now; drop the GGUF quantizer so save_pretrained writes safetensors.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
