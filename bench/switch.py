"""How long a loaded model takes to change level: variant on disk (page cache warm or dropped), and to be built.

    .venv/bin/python -m bench.switch [--cold-switches 4] [--build-reps 2]

Runs the worker's own ModelLoader (decision engine, cache, re-optimisation, GGUF backend on 2 threads)
with memory fixed at 10 % of 16 GiB and the load reading set per step (0 -> fp16, 3 -> int8, 8 -> int4,
12 -> int2), hysteresis off (QUANTIZE_CONSECUTIVE=1), so each step is one re-optimisation. A switch is the
wall time of loader.acquire() for the first job at the new level: evicting (closing) the old level and
loading the new one (the job's generation is not included). The 12 warm switches cover every ordered pair
of levels once; the level switched to is evicted first if the loader kept it resident, so each is a load from
disk (issue 12's "cold switch with the variant on disk", target <= 0.5 s). Resident: int4 and fp16 both loaded
through the decision engine, then switches back and forth; where the loader keeps levels resident each is a
cache hit in loader.acquire (target < 10 ms; the cache-hit column says whether the level was still there).
The first 1-token call after the switch is timed too (pages of the new file fault in there).
--quick: 4 warm, 1 cold and 6 resident switches, no builds. Writes bench/results/switch.json.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS,
    THREADS,
    VARIANTS,
    bench_parser,
    captured_stderr,
    checks_table,
    drop_page_cache,
    ensure_variants,
    median,
    start_run,
    table,
    wait_for_idle_cpu,
)

LOAD_FOR = {"fp16": 0, "int8": 3, "int4": 8, "int2": 12}
EVERY_PAIR = ("fp16", "int8", "fp16", "int4", "fp16", "int2", "int8", "int4", "int8", "int2", "int4", "int2", "fp16")
"""A walk over the four levels that makes each of the 12 ordered switches once."""
GIB = 1024**3


class Knob:
    """The load reading the loader sees; memory stays comfortable."""

    def __init__(self) -> None:
        self.load = 0

    def memory(self) -> Any:
        """10 % of 16 GiB used."""
        from worker.contracts import MemoryReading

        return MemoryReading(pool="bench", total_bytes=16 * GIB, available_bytes=int(16 * GIB * 0.9), process_bytes=0)

    def load_reading(self) -> Any:
        """The current load, all of it queued."""
        from worker.contracts import LoadReading

        return LoadReading(queued=self.load, running=0)


def make_loader(variants_dir: Path) -> tuple[Any, Knob]:
    """The worker's ModelLoader on fixed readings, re-optimising on the first decision that asks for it."""
    from worker.backends.llamacpp import LlamaCppBackend
    from worker.cache import ModelCache
    from worker.model_loader import ModelLoader
    from worker.policy import LEVELS
    from worker.probes import Probes
    from worker.quantization import DynamicQuantizationManager
    from worker.registry import Registry
    from worker.settings import Settings

    knob = Knob()
    caps = {"gguf": dict.fromkeys(LEVELS, True)}
    probes = Probes(device="cpu", memory=knob.memory, load=knob.load_reading, capabilities=caps)
    manager = DynamicQuantizationManager(probes, Settings(consecutive=1))
    backend = LlamaCppBackend(variants_dir, n_threads=THREADS)
    loader = ModelLoader(manager, Registry(), ModelCache(8000), backends={"gguf": backend})
    return loader, knob


def switch_to(loader: Any, knob: Knob, level: str, first_call: bool = True) -> dict[str, Any]:
    """Move the load so the decision becomes `level`; time acquire() and the first 1-token call."""
    from worker.backends.base import Decoding
    from worker.simplify import build_prompt

    knob.load = LOAD_FOR[level]
    started = time.perf_counter()
    with loader.acquire(None) as lease:
        acquire_s = time.perf_counter() - started
        first_s = None
        if first_call:
            started = time.perf_counter()
            lease.model.generate(build_prompt("A short text.", 5, "Science"), Decoding(1))
            first_s = time.perf_counter() - started
        got, reopt = lease.level, lease.reoptimization.model_dump() if lease.reoptimization else None
        hit = lease.cache_hit
    if got != level:
        raise RuntimeError(f"asked the loader for {level} (load {knob.load}) and got {got}")
    return {"to": level, "switch_s": acquire_s, "first_call_s": first_s, "reoptimized": reopt, "cache_hit": hit}


def walk(loader: Any, knob: Knob, levels: tuple[str, ...], cold: bool = False) -> list[dict[str, Any]]:
    """Load levels[0], then switch along the rest; each step's timing (page cache dropped first when cold).

    The level switched to is evicted first if the loader kept it resident, so every step loads it from disk.
    """
    switch_to(loader, knob, levels[0])
    name = loader.registry.get(None).name
    steps = []
    for previous, level in itertools.pairwise(levels):
        loader.cache.evict(name, level)
        if cold:
            drop_page_cache()
        step = switch_to(loader, knob, level)
        step["from"] = previous
        steps.append(step)
    return steps


def resident_switches(loader: Any, knob: Knob, pair: tuple[str, str], n: int) -> list[dict[str, Any]]:
    """Both levels of `pair` loaded through the decision engine, then n switches back and forth between them
    (the load reading moves the decision): with levels kept resident, each is a cache hit in loader.acquire."""
    switch_to(loader, knob, pair[0])
    switch_to(loader, knob, pair[1])
    steps = []
    for i in range(n):
        previous, level = pair[(i + 1) % 2], pair[i % 2]
        step = switch_to(loader, knob, level)
        step["from"] = previous
        steps.append(step)
    return steps


def cached_switches(loader: Any, levels: tuple[str, ...]) -> list[dict[str, Any]]:
    """Switches between levels all held in the cache (forced per job, so nothing is evicted): a cache lookup."""
    from worker.backends.base import Decoding
    from worker.policy import Request
    from worker.simplify import build_prompt

    for level in LOAD_FOR:  # load every level once
        with loader.acquire(None, Request(force_quantization=level)):
            pass
    steps = []
    for previous, level in itertools.pairwise(levels):
        started = time.perf_counter()
        with loader.acquire(None, Request(force_quantization=level)) as lease:
            switch_s = time.perf_counter() - started
            started = time.perf_counter()
            lease.model.generate(build_prompt("A short text.", 5, "Science"), Decoding(1))
            first_s = time.perf_counter() - started
            hit = lease.cache_hit
        steps.append({"from": previous, "to": level, "switch_s": switch_s, "first_call_s": first_s,
                      "reoptimized": None, "cache_hit": hit})  # fmt: skip
    return steps


def builds(reps: int) -> list[dict[str, Any]]:
    """Switch int4 (the bundled source) -> fp16 -> int8 -> int2 in a fresh variants dir: each must be built."""
    out = []
    for rep in range(reps):
        with tempfile.TemporaryDirectory(dir=RESULTS, prefix="switch-build-") as fresh:
            loader, knob = make_loader(Path(fresh))
            with captured_stderr():  # llama_model_quantize's per-tensor fallback warnings
                steps = walk(loader, knob, ("int4", "fp16", "int8", "int2"))
            for step in steps:
                step["rep"] = rep
                out.append(step)
            loader.clear_cache()
    return out


def load_anatomy(path: Path, reps: int = 3) -> dict[str, Any]:
    """Where a load's time goes: llama.cpp with only the vocabulary, a full load (context 4096), and close()."""
    import llama_cpp

    from worker.settings import get_settings

    n_ctx = get_settings().n_ctx

    def load(vocab_only: bool) -> tuple[float, float]:
        started = time.perf_counter()
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=THREADS, n_threads_batch=THREADS,
                              vocab_only=vocab_only, verbose=False)  # fmt: skip
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        llm.close()
        return loaded, time.perf_counter() - started

    with captured_stderr():
        vocab = [load(True)[0] for _ in range(reps)]
        full = [load(False) for _ in range(reps)]
    return {
        "file": path.name,
        "vocab_only_load_s": median(vocab),
        "full_load_s": median([f[0] for f in full]),
        "close_s": median([f[1] for f in full]),
    }


def summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of switch and first-call times."""
    switch = [s["switch_s"] for s in steps]
    first = [s["first_call_s"] for s in steps if s["first_call_s"] is not None]
    return {
        "n": len(steps),
        "median_switch_s": median(switch),
        "min_switch_s": min(switch, default=None),
        "max_switch_s": max(switch, default=None),
        "median_first_call_s": median(first),
        "reoptimizations": sum(1 for s in steps if s["reoptimized"]),
        "cache_hits": sum(1 for s in steps if s.get("cache_hit")),
    }


RESIDENT_TARGET_S = 0.010
DISK_TARGET_S = 0.5


def switch_checks(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 12's switch targets: to a resident level < 10 ms; from disk (level not loaded) <= 0.5 s."""
    out = []
    r = s.get("resident")
    if r and r["n"]:
        all_hits = r["cache_hits"] == r["n"]
        out.append({
            "check": "switch to a resident level (cache hit in loader.acquire) < 10 ms",
            "measured": f"median {1000 * r['median_switch_s']:.2f} ms, max {1000 * r['max_switch_s']:.2f} ms; "
                        f"{r['cache_hits']}/{r['n']} cache hits",
            "passed": all_hits and r["median_switch_s"] < RESIDENT_TARGET_S,
        })  # fmt: skip
    w = s.get("warm")
    if w and w["n"]:
        out.append({
            "check": "cold switch, variant on disk (level not loaded) <= 0.5 s",
            "measured": f"median {w['median_switch_s']:.3f} s, max {w['max_switch_s']:.3f} s (n={w['n']})",
            "passed": w["median_switch_s"] <= DISK_TARGET_S,
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the switch benchmark and print its table."""
    parser = bench_parser(__doc__)
    parser.add_argument("--cold-switches", type=int, default=4, help="switches with the page cache dropped")
    parser.add_argument("--build-reps", type=int, default=2, help="fresh variants dirs to build in")
    parser.add_argument("--resident-switches", type=int, default=12, help="switches between two loaded levels")
    parser.add_argument("--quick", action="store_true", help="4 warm, 1 cold, 6 resident switches, no builds")
    args = parser.parse_args(argv)
    steps = EVERY_PAIR
    if args.quick:
        steps, args.cold_switches, args.build_reps, args.resident_switches = EVERY_PAIR[:5], 1, 0, 6
    ensure_variants()
    rec = start_run("switch", args, argv)
    loader, knob = make_loader(VARIANTS)
    rec.data["cpu_busy_before_percent"] = wait_for_idle_cpu(args.wait_idle)
    print(f"warm: {len(steps) - 1} switches, variants on disk and in the page cache", flush=True)
    warm = walk(loader, knob, steps)
    print(f"cold: {args.cold_switches} switches, page cache dropped before each", flush=True)
    cold = walk(loader, knob, EVERY_PAIR[: args.cold_switches + 1], cold=True)
    loader.clear_cache()
    print(f"resident: {args.resident_switches} switches between int4 and fp16, both loaded", flush=True)
    resident = resident_switches(loader, knob, ("int4", "fp16"), args.resident_switches)
    loader.clear_cache()
    print("cached: 12 switches between levels all kept loaded (what keeping idle levels would give)", flush=True)
    cached = cached_switches(loader, EVERY_PAIR)
    loader.clear_cache()
    print(f"build: {args.build_reps} x 3 switches that must build their variant", flush=True)
    built = builds(args.build_reps)
    rec.data["load_anatomy"] = load_anatomy(ensure_variants(("int4",))["int4"])
    rec.data.update(threads=THREADS, warm=warm, cold=cold, resident=resident, cached=cached, build=built)
    rec.data["summary"] = {
        "warm": summary(warm),
        "cold": summary(cold),
        "resident": summary(resident),
        "cached": summary(cached),
        "build": summary(built),
    }
    for level in ("fp16", "int8", "int2"):
        rec.data["summary"][f"build_{level}"] = summary([s for s in built if s["to"] == level])
    rows = []
    labels = {
        "warm": "variant on disk, page cache warm",
        "cold": "variant on disk, page cache dropped",
        "resident": "to a resident level (decision engine, both loaded)",
        "cached": "level still loaded in the cache (forced)",
        "build_fp16": "variant built first: -> fp16 (F16)",
        "build_int8": "variant built first: -> int8 (Q8_0)",
        "build_int2": "variant built first: -> int2 (Q2_K)",
    }
    for key, label in labels.items():
        s = rec.data["summary"][key]
        if not s["n"]:
            continue
        rows.append([label, s["n"], s["median_switch_s"], s["min_switch_s"], s["max_switch_s"],
                     s["median_first_call_s"], f"{s['cache_hits']}/{s['n']}"])  # fmt: skip
    headers = ["switch", "n", "median s", "min s", "max s", "first 1-token call s (median)", "cache hits"]
    print("\n" + table(headers, rows, 4))
    rec.data["checks"] = switch_checks(rec.data["summary"])
    print("\nIssue 12 switch targets" + (" (--quick)" if args.quick else "") + "\n" + checks_table(rec.data["checks"]))
    a = rec.data["load_anatomy"]
    print(
        f"\nllama.cpp load of {a['file']}: vocabulary only {a['vocab_only_load_s']:.3f} s, full load "
        f"{a['full_load_s']:.3f} s, close {a['close_s']:.3f} s (medians of 3)"
    )
    rec.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
