"""This machine's memory read bandwidth and the decode ceiling it sets for each GGUF level.

    .venv/bin/python -m bench.bandwidth [--gib 1.0] [--no-thread-check]

Read bandwidth: numpy reductions (sum and max of float32) over a 1 GiB array, far larger than the 32 MiB
L3, on one thread and on two (each thread reduces half; numpy releases the GIL); the best of 5 runs per
kernel, the best kernel counts. A copy (np.copyto, read + write bytes) is shown for reference.

Decode ceiling at batch 1: every generated token reads every weight once, so
    tokens/s <= bandwidth / bytes read per token,
    bytes read per token = sum of the GGUF's tensor bytes - input-embedding bytes + one embedding row
                           + output-matrix bytes + KV-cache bytes per context token x context length.
Gemma 3 ties its embeddings: there is no output.weight, llama.cpp multiplies by token_embd (262144 x 640)
for the logits of every token, so the whole embedding table is read per token after all and the formula is
the sum of all tensor bytes (the one-row lookup is noise) plus the KV cache. The tensor sizes are read from
the file's tensor infos (the tokenizer metadata, 6.5 MB, is not read per token). Achieved decode tokens/s
come from bench/results/levels.json (llama.cpp's own decode counter, 2 threads); without it they are measured
here. A 1- vs 2-thread decode at int4 shows whether the cores or the memory limit decode.
Writes bench/results/bandwidth.json.
"""

from __future__ import annotations

import functools
import mmap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    LEVEL_ORDER,
    THREADS,
    VARIANTS,
    bench_parser,
    ensure_variants,
    read_result,
    start_run,
    table,
    wait_for_idle_cpu,
)

RUNS = 5
GGML_BLOCK: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    30: (1, 2),  # BF16
}
"""ggml type id -> (elements per block, bytes per block), as ggml lays them out."""


# ---------------------------------------------------------------- bandwidth


def best_seconds(fn: Callable[[], Any], runs: int = RUNS) -> float:
    """The fastest of several runs of fn."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def read_bandwidth(gib: float = 1.0) -> dict[str, Any]:
    """Read GB/s (1e9 bytes) on 1 and 2 threads per kernel, and copy GB/s on one thread."""
    n = int(gib * 1024**3) // 4
    a = np.ones(n, dtype=np.float32)
    kernels: dict[str, Callable[[np.ndarray], Any]] = {"sum": np.sum, "max": np.max}
    out: dict[str, Any] = {"array_bytes": a.nbytes, "runs": RUNS, "one_thread": {}, "two_threads": {}}
    halves = [a[: n // 2], a[n // 2 :]]
    with ThreadPoolExecutor(2) as pool:
        for name, kernel in kernels.items():
            kernel(a)  # touch every page once
            out["one_thread"][name] = a.nbytes / best_seconds(functools.partial(kernel, a)) / 1e9
            both = functools.partial(lambda k, parts: list(pool.map(k, parts)), kernel, halves)
            out["two_threads"][name] = a.nbytes / best_seconds(both) / 1e9
    b = np.empty_like(a)
    np.copyto(b, a)
    out["copy_one_thread"] = 2 * a.nbytes / best_seconds(lambda: np.copyto(b, a)) / 1e9
    out["read_1t_gb_s"] = max(out["one_thread"].values())
    out["read_2t_gb_s"] = max(out["two_threads"].values())
    return out


# ---------------------------------------------------------------- bytes per token


def tensor_bytes(path: Path) -> dict[str, dict[str, int]]:
    """name -> {'bytes', 'type', 'elements', 'rows'} for every tensor of a GGUF file, from its tensor infos."""
    from worker.variants import GGUF_MAGIC, _HeaderReader

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != GGUF_MAGIC:
            raise ValueError(f"{path} is not a GGUF file")
        reader = _HeaderReader(data, path)
        reader.pos = 4
        reader.unpack("I")  # version
        n_tensors, n_kv = reader.unpack("Q"), reader.unpack("Q")
        for _ in range(n_kv):
            reader.string()
            reader.value(reader.unpack("I"))
        tensors: dict[str, dict[str, int]] = {}
        for _ in range(n_tensors):
            name = reader.string()
            dims = [reader.unpack("Q") for _ in range(reader.unpack("I"))]
            ggml_type = reader.unpack("I")
            reader.unpack("Q")  # offset
            elements = int(np.prod(dims, dtype=np.int64))
            if ggml_type not in GGML_BLOCK:
                raise ValueError(f"{path}: tensor {name} has ggml type {ggml_type} that this table lacks")
            block, size = GGML_BLOCK[ggml_type]
            tensors[name] = {
                "bytes": elements // block * size,
                "type": ggml_type,
                "elements": elements,
                "rows": int(np.prod(dims[1:], dtype=np.int64)),
            }
    return tensors


def bytes_per_token(path: Path, context_tokens: float) -> dict[str, Any]:
    """Bytes one decoded token reads: weights (tied embeddings counted as the output matrix) plus the KV cache."""
    from worker.backends.llamacpp import kv_bytes_per_token

    tensors = tensor_bytes(path)
    total = sum(t["bytes"] for t in tensors.values())
    embd = tensors.get("token_embd.weight", {"bytes": 0, "rows": 1})
    tied = "output.weight" not in tensors
    row = embd["bytes"] // max(embd["rows"], 1)
    weights = total if tied else total - embd["bytes"] + row
    kv = kv_bytes_per_token(path) * context_tokens
    return {
        "tensor_bytes": total,
        "embedding_bytes": embd["bytes"],
        "tied_embeddings": tied,
        "weight_bytes_per_token": weights,
        "kv_bytes_per_token": kv,
        "context_tokens": context_tokens,
        "bytes_per_token": weights + kv,
        "file_bytes": path.stat().st_size,
    }


# ---------------------------------------------------------------- achieved decode


def decode_rates(threads: int, levels: tuple[str, ...], runs: int = 3) -> dict[str, float]:
    """Median decode tok/s (llama.cpp counter) per level with a given thread count."""
    from bench.levels import bundled_spec, speed_runs
    from worker.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(VARIANTS, n_threads=threads)
    rates = {}
    for level in levels:
        model = backend.load(bundled_spec(), level)
        try:
            rates[level] = float(speed_runs(model, runs)["decode_tok_s"])
        finally:
            model.close()
    return rates


def main(argv: list[str] | None = None) -> int:
    """Measure bandwidth, compute the ceilings and print achieved / ceiling."""
    parser = bench_parser(__doc__)
    parser.add_argument("--gib", type=float, default=1.0, help="array size in GiB (default 1)")
    parser.add_argument("--no-thread-check", action="store_true", help="skip the 1- vs 2-thread decode at int4")
    args = parser.parse_args(argv)
    rec = start_run("bandwidth", args, argv)
    rec.data["cpu_busy_before_percent"] = wait_for_idle_cpu(args.wait_idle)
    bw = read_bandwidth(args.gib)
    rec.data["bandwidth"] = bw
    print(
        table(
            ["kernel", "1 thread GB/s", "2 threads GB/s"],
            [[k, bw["one_thread"][k], bw["two_threads"][k]] for k in bw["one_thread"]]
            + [["copy (read+write)", bw["copy_one_thread"], None]],
            1,
        )
    )
    levels_json = read_result("levels")
    paths = ensure_variants()
    if levels_json and "gguf" in levels_json:
        speed = {lvl: levels_json["gguf"][lvl]["speed"] for lvl in LEVEL_ORDER}
        achieved = {lvl: float(s["decode_tok_s"]) for lvl, s in speed.items()}
        context = {lvl: s["prompt_tokens"] + s["decode_tokens"] / 2 for lvl, s in speed.items()}
        rec.data["achieved_from"] = f"bench/results/levels.json ({levels_json['started_at']})"
    else:
        achieved = decode_rates(THREADS, LEVEL_ORDER)
        context = dict.fromkeys(LEVEL_ORDER, 282 + 32.0)
        rec.data["achieved_from"] = "measured here (no levels.json)"
    bandwidth = bw["read_2t_gb_s"] * 1e9
    rows, per_level = [], {}
    for level in LEVEL_ORDER:
        b = bytes_per_token(paths[level], context[level])
        ceiling = bandwidth / b["bytes_per_token"]
        per_level[level] = {**b, "ceiling_tok_s": ceiling, "achieved_tok_s": achieved[level]}
        per_level[level]["achieved_over_ceiling"] = achieved[level] / ceiling
        per_level[level]["achieved_gb_s"] = achieved[level] * b["bytes_per_token"] / 1e9
        rows.append(
            [
                level,
                b["weight_bytes_per_token"] / 1e6,
                b["embedding_bytes"] / 1e6,
                b["kv_bytes_per_token"] / 1e6,
                ceiling,
                achieved[level],
                per_level[level]["achieved_gb_s"],
                f"{100 * achieved[level] / ceiling:.0f}%",
            ]
        )
    rec.data["levels"] = per_level
    rec.data["ceiling_bandwidth_gb_s"] = bw["read_2t_gb_s"]
    print(f"\nDecode ceiling = {bw['read_2t_gb_s']:.1f} GB/s (2-thread read) / bytes read per token")
    headers = [
        "level", "weights MB/token", "of which embedding MB", "KV MB/token", "ceiling tok/s", "achieved tok/s",
        "achieved GB/s", "achieved / ceiling",
    ]  # fmt: skip
    print(table(headers, rows, 1))
    if not args.no_thread_check:
        one = decode_rates(1, ("int4",))["int4"]
        two = decode_rates(THREADS, ("int4",))["int4"]
        rec.data["thread_check"] = {"int4_decode_1t": one, "int4_decode_2t": two, "speedup": two / one}
        print(f"\nint4 decode: 1 thread {one:.1f} tok/s, 2 threads {two:.1f} tok/s (x{two / one:.2f})")
    rec.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
