"""What each precision level costs and gives on the bundled Gemma 3 270M, on both backends.

    .venv/bin/python -m bench.levels [--quick] [--no-hf] [--hf-paragraphs N] [--wait-quiet SECONDS]

GGUF (llama.cpp, 2 threads): variant build time from a fresh variants dir, cold load (page cache dropped,
fresh process) and warm load, resident memory, file size, prompt and decode tokens/s (llama.cpp's own
counters, median of 5 runs after a reset so the whole prompt is evaluated), and quality on the 24 paragraphs
of bench.paragraphs: ROUGE-L F1 of each level's output against the fp16 output, and the Flesch-Kincaid grade
(worker.simplify.readability_grade) of outputs and inputs. The transformers backend (bf16 / LLM.int8 / nf4 on
CPU) runs on the HF checkpoint made from the same GGUF, with fewer paragraphs (it is slower).
Writes bench/results/levels.json and bench/results/reference.json (the fp16 outputs bench.serving scores against).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    LEVEL_ORDER,
    QUALITY_MAX_TOKENS,
    RESULTS,
    ROOT,
    THREADS,
    VARIANTS,
    Recorder,
    bench_parser,
    bundled_source,
    captured_stderr,
    drop_page_cache,
    ensure_variants,
    median,
    python,
    rouge_l_f1,
    rss_bytes,
    save_reference,
    start_run,
    table,
    wait_for_idle_cpu,
)
from bench.paragraphs import PARAGRAPHS, Paragraph

SPEED_RUNS = 5
SPEED_TOKENS = 64
WARM_LOADS = 3
HF_LEVELS = ("fp16", "int8", "int4")
MB = 1024 * 1024
SPEED_PARAGRAPH = PARAGRAPHS[0]


def prompt_for(paragraph: Paragraph) -> str:
    """The service's few-shot prompt for a paragraph."""
    from worker.simplify import build_prompt

    return build_prompt(paragraph.text, paragraph.grade_level, paragraph.subject)


def bundled_spec() -> Any:
    """The registry entry of the bundled model (GGUF source)."""
    from worker.registry import Registry

    return Registry().get()


def gguf_backend(directory: Path = VARIANTS) -> Any:
    """The service's GGUF backend (context from DYNAQUANT_N_CTX, default 4096) on THREADS threads."""
    from worker.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(directory, n_threads=THREADS)


def llama_of(model: Any) -> Any:
    """The llama_cpp.Llama object inside a loaded GGUF model (for its performance counters)."""
    return model._llm


# ---------------------------------------------------------------- GGUF: builds


def build_times() -> dict[str, dict[str, Any]]:
    """Build every level's variant into a fresh, empty variants dir; seconds and size per level."""
    from worker.policy import GGUF_TYPES
    from worker.variants import ensure_variant

    source = bundled_source()
    out: dict[str, dict[str, Any]] = {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RESULTS, prefix="fresh-variants-") as fresh:
        for level in LEVEL_ORDER:
            with captured_stderr() as log:
                variant = ensure_variant(source, GGUF_TYPES[level], Path(fresh), THREADS)
            fallback = [line.strip() for line in log if "fallback quantization" in line]
            out[level] = {
                "quantize_fallback": fallback[0] if fallback else None,
                "gguf_type": GGUF_TYPES[level],
                "built": variant.built,
                "build_s": round(variant.seconds, 3) if variant.built else None,
                "note": None if variant.built else "the bundled source already has this type: nothing to build",
                "file_bytes": variant.size_bytes,
            }
    return out


# ---------------------------------------------------------------- GGUF: loads (child process)


def load_probe(level: str) -> dict[str, Any]:
    """In a fresh process: load time, first 1-token call, RSS delta, then the median of warm reloads."""
    from worker.backends.base import Decoding

    importlib.import_module("llama_cpp")  # imported before the baseline so the library itself is not counted
    backend = gguf_backend()
    spec = bundled_spec()
    prompt = prompt_for(SPEED_PARAGRAPH)
    before = rss_bytes()
    started = time.perf_counter()
    model = backend.load(spec, level)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    model.generate(prompt, Decoding(1))
    first_s = time.perf_counter() - started
    rss_delta = rss_bytes() - before
    model.close()
    warm = []
    for _ in range(WARM_LOADS):
        started = time.perf_counter()
        again = backend.load(spec, level)
        warm.append(time.perf_counter() - started)
        again.close()
    return {"load_s": load_s, "first_call_s": first_s, "rss_delta_bytes": rss_delta, "warm_load_s": warm}


def run_load_probe(level: str, cold: bool) -> dict[str, Any]:
    """Run load_probe in a child process, after dropping the page cache when asked and allowed."""
    dropped = drop_page_cache() if cold else False
    out = subprocess.run(
        [python(), "-m", "bench.levels", "--load-probe", level], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"load probe for {level} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["page_cache_dropped"] = dropped
    return result


# ---------------------------------------------------------------- GGUF: speed and quality (this process)


def speed_runs(model: Any, runs: int = SPEED_RUNS) -> dict[str, Any]:
    """Prompt and decode tokens/s from llama.cpp's counters, whole prompt evaluated each run (cache reset)."""
    import llama_cpp

    llm = llama_of(model)
    prompt = prompt_for(SPEED_PARAGRAPH)
    samples: list[dict[str, float]] = []
    for i in range(runs + 1):  # the first run warms up and is dropped
        llm.reset()
        llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
        started = time.perf_counter()
        result = llm.create_completion(prompt, max_tokens=SPEED_TOKENS, temperature=0.0, stop=[])
        wall = time.perf_counter() - started
        perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
        if i == 0:
            continue
        p_s, d_s = perf.t_p_eval_ms / 1000, perf.t_eval_ms / 1000
        n_out = int(result["usage"]["completion_tokens"])
        samples.append(
            {
                "prompt_tokens": perf.n_p_eval,
                "prompt_tok_s": perf.n_p_eval / p_s if p_s > 0 else 0.0,
                "decode_tokens": perf.n_eval,
                "decode_tok_s": perf.n_eval / d_s if d_s > 0 else 0.0,
                "completion_tokens": n_out,
                "wall_s": wall,
                # tokens after the first over the wall time after the prompt: decode + sampling + Python per token
                "generation_tok_s": n_out / (wall - p_s) if wall > p_s else 0.0,
            }
        )
    keys = ("prompt_tok_s", "decode_tok_s", "generation_tok_s")
    return {
        "runs": samples,
        **{k: median([s[k] for s in samples]) for k in keys},
        "prompt_tokens": samples[0]["prompt_tokens"],
        "decode_tokens": median([s["decode_tokens"] for s in samples]),
    }


def simplify_all(
    model: Any, paragraphs: tuple[Paragraph, ...], deadline: float | None = None, at_least: int = 2
) -> list[dict[str, Any]]:
    """Each paragraph through the service's prompt, stop strings and output cleaning, in order.

    With a deadline (time.monotonic()), stops after the paragraph that passes it (at least `at_least` done).
    """
    from worker.backends.base import Decoding
    from worker.simplify import STOP, clean_output

    rows: list[dict[str, Any]] = []
    for p in paragraphs:
        if deadline is not None and len(rows) >= at_least and time.monotonic() > deadline:
            break
        gen = model.generate(prompt_for(p), Decoding(QUALITY_MAX_TOKENS, STOP))
        rows.append(
            {
                "pid": p.pid,
                "text": clean_output(gen.text, gen.finish_reason),
                "tokens_in": gen.tokens_in,
                "tokens_out": gen.tokens_out,
                "seconds": round(gen.seconds, 4),
                "finish_reason": gen.finish_reason,
            }
        )
    return rows


def gguf_level(level: str, paragraphs: tuple[Paragraph, ...], runs: int) -> dict[str, Any]:
    """Speed and outputs of one GGUF level, loaded as the service loads it."""
    backend = gguf_backend()
    model = backend.load(bundled_spec(), level)
    try:
        speed = speed_runs(model, runs)
        llama_of(model).reset()  # every level starts the quality run from the same empty cache
        outputs = simplify_all(model, paragraphs)
    finally:
        model.close()
    return {"speed": speed, "outputs": outputs}


# ---------------------------------------------------------------- quality


def quality(outputs: list[dict[str, Any]], reference: dict[str, str]) -> dict[str, Any]:
    """ROUGE-L F1 against the reference outputs and the mean Flesch-Kincaid grade of the outputs."""
    from worker.quality import readability_grade

    scores = [rouge_l_f1(o["text"], reference[o["pid"]]) for o in outputs if o["pid"] in reference]
    grades = [g for g in (readability_grade(o["text"]) for o in outputs) if g is not None]
    return {
        "rouge_l_vs_fp16": statistics.fmean(scores) if scores else None,
        "identical_to_fp16": sum(1 for o in outputs if reference.get(o["pid"]) == o["text"]),
        "fk_grade_out": statistics.fmean(grades) if grades else None,
        "mean_tokens_out": statistics.fmean(o["tokens_out"] for o in outputs) if outputs else None,
        "paragraphs": len(outputs),
    }


def input_grade(paragraphs: tuple[Paragraph, ...]) -> float:
    """Mean Flesch-Kincaid grade of the input paragraphs."""
    from worker.quality import readability_grade

    return statistics.fmean(g for g in (readability_grade(p.text) for p in paragraphs) if g is not None)


# ---------------------------------------------------------------- transformers backend (child process)


def hf_checkpoint() -> Path:
    """The HF checkpoint of the bundled GGUF, built once per machine (the same one the tests use)."""
    from worker.backends.hf import checkpoint_from_gguf
    from worker.settings import DEFAULT_MODEL

    return checkpoint_from_gguf(bundled_source(), DEFAULT_MODEL)


def hf_speed(model: Any, runs: int, deadline: float) -> dict[str, Any]:
    """Prefill tokens/s (one forward over the prompt) and decode tokens/s (33 vs 1 new tokens), medians."""
    import torch

    tok, net = model.tokenizer, model.model
    inputs = tok(prompt_for(SPEED_PARAGRAPH), return_tensors="pt").to(net.device)
    n_prompt = int(inputs["input_ids"].shape[1])
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def gen(n: int) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            net.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad)
        return time.perf_counter() - started

    def prefill() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            net(**inputs)
        return time.perf_counter() - started

    gen(2)  # warm-up
    pre, one, long = [], [], []
    for _ in range(runs):  # at least one run; more while the level's time budget lasts
        pre.append(prefill())
        one.append(gen(1))
        long.append(gen(SPEED_TOKENS // 2 + 1))
        if time.monotonic() > deadline:
            break
    decode_s = (median(long) or 0) - (median(one) or 0)
    return {
        "prompt_tokens": n_prompt,
        "prompt_tok_s": n_prompt / (median(pre) or 1),
        "decode_tok_s": (SPEED_TOKENS // 2) / decode_s if decode_s > 0 else None,
        "prefill_s": pre,
        "gen1_s": one,
        f"gen{SPEED_TOKENS // 2 + 1}_s": long,
    }


def hf_probe(level: str, n_paragraphs: int, runs: int, budget_s: float) -> dict[str, Any]:
    """In a fresh process: load the HF checkpoint at a level, its RSS delta, speed and outputs."""
    import torch

    from worker.backends.hf import TransformersBackend

    importlib.import_module("transformers")  # imported before the baseline so the libraries are not counted
    from worker.registry import ModelSpec, Registry

    torch.set_num_threads(THREADS)
    default = Registry().peek()
    spec = ModelSpec(default.name, default.params_b, None, hf_checkpoint(), backend="transformers")
    backend = TransformersBackend("cpu")
    before = rss_bytes()
    started = time.perf_counter()
    model = backend.load(spec, level)
    load_s = time.perf_counter() - started
    rss_load = rss_bytes() - before
    deadline = time.monotonic() + budget_s
    speed = hf_speed(model, runs, deadline - budget_s / 2)
    rss_delta = rss_bytes() - before
    outputs = simplify_all(model, PARAGRAPHS[:n_paragraphs], deadline)
    return {
        "load_s": load_s,
        "budget_s": budget_s,
        "rss_after_load_bytes": rss_load,
        "rss_delta_bytes": rss_delta,
        "footprint_bytes": int(model.model.get_memory_footprint()),
        "speed": speed,
        "outputs": outputs,
    }


def run_hf_probe(level: str, n_paragraphs: int, runs: int, budget_s: float) -> dict[str, Any]:
    """hf_probe in a child process (so each level's memory is measured alone)."""
    argv = [python(), "-m", "bench.levels", "--hf-probe", level, "--hf-paragraphs", str(n_paragraphs)]
    argv += ["--runs", str(runs), "--hf-budget", str(budget_s)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"HF probe for {level} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- main


def gguf_table(levels: dict[str, dict[str, Any]]) -> str:
    """The GGUF table."""
    rows = []
    for level, r in levels.items():
        q = r["quality"]
        rows.append(
            [
                level,
                r["gguf_type"],
                r["file_bytes"] / MB,
                r["build_s"],
                r["cold"]["load_s"],
                r["cold"]["first_call_s"],
                median(r["cold"]["warm_load_s"]),
                r["cold"]["rss_delta_bytes"] / MB,
                r["speed"]["prompt_tok_s"],
                r["speed"]["decode_tok_s"],
                r["speed"]["generation_tok_s"],
                q["rouge_l_vs_fp16"],
                f"{q['identical_to_fp16']}/{q['paragraphs']}",
                q["fk_grade_out"],
                q["mean_tokens_out"],
            ]
        )
    headers = [
        "level", "type", "file MB", "build s", "cold load s", "cold 1st call s", "warm load s", "RSS MB",
        "prompt tok/s", "decode tok/s", "gen tok/s (wall)", "ROUGE-L vs fp16", "same as fp16", "FK grade out",
        "tokens out",
    ]  # fmt: skip
    return table(headers, rows)


def hf_table(levels: dict[str, dict[str, Any]]) -> str:
    """The transformers-backend table."""
    rows = [
        [
            level,
            r["load_s"],
            r["rss_delta_bytes"] / MB,
            r["footprint_bytes"] / MB,
            r["speed"]["prompt_tok_s"],
            r["speed"]["decode_tok_s"],
            r["quality"]["rouge_l_vs_fp16"],
            r["rouge_l_vs_gguf_fp16"],
            r["quality"]["fk_grade_out"],
            r["quality"]["paragraphs"],
        ]
        for level, r in levels.items()
    ]
    headers = [
        "level", "load s", "RSS MB", "weights MB", "prompt tok/s", "decode tok/s", "ROUGE-L vs HF fp16",
        "ROUGE-L vs GGUF fp16", "FK grade out", "paragraphs",
    ]  # fmt: skip
    return table(headers, rows)


def measure_gguf(rec: Recorder, paragraphs: tuple[Paragraph, ...], runs: int, wait_s: float) -> dict[str, str]:
    """The GGUF part; returns the fp16 reference outputs."""
    builds = build_times()
    ensure_variants()
    levels: dict[str, dict[str, Any]] = {}
    for level in LEVEL_ORDER:
        print(f"GGUF {level}: cold and warm loads", flush=True)
        cold = run_load_probe(level, cold=True)
        print(f"GGUF {level}: speed and {len(paragraphs)} paragraphs", flush=True)
        cpu_before = wait_for_idle_cpu(wait_s)
        measured = gguf_level(level, paragraphs, runs)
        measured["cpu_busy_before_percent"] = cpu_before
        levels[level] = {**builds[level], "cold": cold, **measured}
    reference = {o["pid"]: o["text"] for o in levels["fp16"]["outputs"]}
    for r in levels.values():
        r["quality"] = quality(r["outputs"], reference)
    rec.data["gguf"] = levels
    rec.data["input_fk_grade"] = input_grade(paragraphs)
    rec.data["cold_method"] = (
        "page cache dropped (echo 3 > /proc/sys/vm/drop_caches), then a fresh process"
        if all(r["cold"]["page_cache_dropped"] for r in levels.values())
        else "first load in a fresh process (the page cache could not be dropped)"
    )
    if len(paragraphs) == len(PARAGRAPHS):
        save_reference(reference, "bench.levels (GGUF F16 variant through LlamaCppBackend)")
    return reference


def measure_hf(
    rec: Recorder, n_paragraphs: int, runs: int, reference: dict[str, str], budget_s: float, wait_s: float
) -> None:
    """The transformers part (each level bounded by budget_s after its load)."""
    hf: dict[str, dict[str, Any]] = {}
    for level in HF_LEVELS:
        print(f"transformers {level}: load, speed and up to {n_paragraphs} paragraphs in {budget_s:g} s", flush=True)
        cpu_before = wait_for_idle_cpu(wait_s)
        hf[level] = run_hf_probe(level, n_paragraphs, runs, budget_s)
        hf[level]["cpu_busy_before_percent"] = cpu_before
    hf_ref = {o["pid"]: o["text"] for o in hf["fp16"]["outputs"]}
    common = set(hf_ref).intersection(*({o["pid"] for o in r["outputs"]} for r in hf.values()))
    for r in hf.values():
        r["outputs"] = [o for o in r["outputs"] if o["pid"] in common]  # the paragraphs every level finished
        r["quality"] = quality(r["outputs"], hf_ref)
        r["rouge_l_vs_gguf_fp16"] = quality(r["outputs"], reference)["rouge_l_vs_fp16"]
    rec.data["transformers"] = hf


def main(argv: list[str] | None = None) -> int:
    """Run the levels benchmark and print its tables."""
    parser = bench_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="6 paragraphs, 2 speed runs (development)")
    parser.add_argument("--no-hf", action="store_true", help="skip the transformers backend")
    parser.add_argument("--hf-paragraphs", type=int, default=6, help="transformers: at most N paragraphs (6)")
    parser.add_argument("--hf-budget", type=float, default=60.0, help="transformers: seconds per level after load")
    parser.add_argument("--runs", type=int, default=SPEED_RUNS)
    parser.add_argument("--load-probe", metavar="LEVEL", help=argparse.SUPPRESS)
    parser.add_argument("--hf-probe", metavar="LEVEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_probe:
        print(json.dumps(load_probe(args.load_probe)))
        return 0
    if args.hf_probe:
        print(json.dumps(hf_probe(args.hf_probe, args.hf_paragraphs, args.runs, args.hf_budget)))
        return 0
    runs = 2 if args.quick else args.runs
    paragraphs = PARAGRAPHS[:6] if args.quick else PARAGRAPHS
    rec = start_run("levels", args, argv)
    rec.data.update(
        threads=THREADS,
        quality_max_tokens=QUALITY_MAX_TOKENS,
        speed={"runs": runs, "new_tokens": SPEED_TOKENS, "paragraph": SPEED_PARAGRAPH.pid},
        paragraphs=len(paragraphs),
    )
    reference = measure_gguf(rec, paragraphs, runs, args.wait_idle)
    print("\nGGUF (llama.cpp, 2 threads)\n" + gguf_table(rec.data["gguf"]))
    print(f"inputs: mean Flesch-Kincaid grade {rec.data['input_fk_grade']:.2f} over {len(paragraphs)} paragraphs")
    if not args.no_hf:
        hf_runs = 2 if args.quick else 3
        n_hf = min(args.hf_paragraphs, len(paragraphs))
        measure_hf(rec, n_hf, hf_runs, reference, args.hf_budget, args.wait_idle)
        print("\ntransformers (CPU, 2 threads)\n" + hf_table(rec.data["transformers"]))
    rec.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
