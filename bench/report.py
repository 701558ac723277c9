"""Writes docs/benchmarks.md from the benchmarks' JSON (running any that has no results yet, or all with --run).

    .venv/bin/python -m bench.report [--run] [--wait-quiet SECONDS] [--wait-idle SECONDS]

The tables are the latest results in bench/results/*.json; the targets of issue 5 are judged from them.
The dynamic-burst plot is copied to docs/img/serving_dynamic_burst.png.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from bench import firstbatch
from bench.common import LEVEL_ORDER, RESULTS, ROOT, bench_parser, fmt, python, read_result, table, wait_for_quiet

BENCHMARKS = ("levels", "bandwidth", "switch", "overhead", "loop", "workers", "serving", "squeeze", "quality")
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
MB = 1024 * 1024


def run_all(names: tuple[str, ...], wait_idle: float = 0.0) -> None:
    """Run benchmarks one after another, each in its own process (waiting up to wait_idle s for an idle CPU before
    each measurement)."""
    for name in names:
        print(f"== bench.{name} ==", flush=True)
        subprocess.run([python(), "-m", f"bench.{name}", "--wait-idle", str(wait_idle)], cwd=ROOT, check=True)


def verdict(ok: bool | None) -> str:
    """met / not met / not measured."""
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def targets(r: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The issue's four targets, judged; a table and the raw verdicts."""
    rows, out = [], []

    def add(name: str, measured: str, ok: bool | None, margin: str) -> None:
        rows.append([name, measured, verdict(ok), margin])
        out.append({"target": name, "measured": measured, "met": ok, "margin": margin})

    ov = r.get("overhead")
    if ov:
        ratios = {lvl: t["ratio_wall"] for lvl, t in ov["tokens"].items()}
        gen = {lvl: t["ratio_generation"] for lvl, t in ov["tokens"].items()}
        worst = min(ratios.values())
        measured = "; ".join(f"{lvl}: {ratios[lvl]:.2f}x wall, {gen[lvl]:.2f}x in worker" for lvl in ratios)
        add("service tok/s >= 0.9x raw llama-cpp-python", measured, worst >= 0.9, f"worst {worst / 0.9 - 1:+.0%}")
    else:
        add("service tok/s >= 0.9x raw llama-cpp-python", "-", None, "-")
    sw = r.get("switch")
    if sw:
        m = sw["summary"]["warm"]["median_switch_s"]
        add("level switch, variant on disk: median <= 0.5 s", f"{m:.3f} s (n={sw['summary']['warm']['n']})",
            m <= 0.5, f"{m - 0.5:+.3f} s")  # fmt: skip
    else:
        add("level switch, variant on disk: median <= 0.5 s", "-", None, "-")
    sv = r.get("serving")
    if sv and {"dynamic", "fixed-fp16", "fixed-int2"} <= set(sv.get("burst", {})):
        b = {k: v["summary"] for k, v in sv["burst"].items()}
        d, f16, i2 = b["dynamic"], b["fixed-fp16"], b["fixed-int2"]
        speed = d["jobs_per_min"] / f16["jobs_per_min"]
        add("burst of 40: dynamic jobs/min >= 1.3x fixed fp16", f"{speed:.2f}x ({d['jobs_per_min']:.1f} vs "
            f"{f16['jobs_per_min']:.1f})", speed >= 1.3, f"{speed / 1.3 - 1:+.0%}")  # fmt: skip
        add("burst of 40: dynamic p95 < fixed fp16 p95", f"{d['p95_s']:.1f} s vs {f16['p95_s']:.1f} s",
            d["p95_s"] < f16["p95_s"], f"{d['p95_s'] - f16['p95_s']:+.1f} s")  # fmt: skip
        add("burst of 40: dynamic quality > fixed int2", f"ROUGE-L {d['mean_quality']:.3f} vs {i2['mean_quality']:.3f}",
            d["mean_quality"] > i2["mean_quality"], f"{d['mean_quality'] - i2['mean_quality']:+.3f}")  # fmt: skip
    else:
        add("burst of 40 (jobs/min, p95, quality)", "-", None, "-")
    bw = r.get("bandwidth")
    if bw:
        x = bw["levels"]["int4"]
        add("decode at int4 >= 60% of the bandwidth ceiling", f"{x['achieved_tok_s']:.1f} of "
            f"{x['ceiling_tok_s']:.1f} tok/s = {x['achieved_over_ceiling']:.0%}", x["achieved_over_ceiling"] >= 0.6,
            f"{100 * (x['achieved_over_ceiling'] - 0.6):+.0f} points")  # fmt: skip
    else:
        add("decode at int4 >= 60% of the bandwidth ceiling", "-", None, "-")
    return table(["target", "measured", "verdict", "margin"], rows), out


def issue12_targets(r: dict[str, Any]) -> str:
    """Issue 12's targets, judged from the loop, workers, serving, squeeze and switch results."""
    rows: list[list[str]] = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        rows.append([name, measured, verdict(ok)])

    lp = r.get("loop")
    if lp:
        add("service at fixed int4 >= 0.95x a plain llama-cpp-python loop (jobs/min)",
            f"{lp['ratio']:.2f}x ({lp['service']['jobs_per_min']:.1f} vs {lp['loop_jobs_per_min']:.1f}); "
            f"{lp.get('generation_share', 0):.3f} of the service's wall time in generation"
            + (" (quick run)" if lp.get("quick") else ""), lp["ratio"] >= 0.95)  # fmt: skip
    wk = r.get("workers")
    if wk and wk.get("runs"):
        others = {n: x for n, x in wk["runs"].items() if n != "1" and x.get("ratio_to_one") is not None}
        measured = ", ".join(f"{n} workers {x['ratio_to_one']:.2f}x" for n, x in others.items())
        measured += " (quick run)" if wk.get("quick") else ""
        ok = all(x["ratio_to_one"] >= 0.95 for x in others.values()) if others else None
        add("dynaquant up --workers 2 and 4 >= 0.95x one worker", measured, ok)
    sv = r.get("serving")
    for kind in ("burst", "poisson"):
        for c in (sv or {}).get("checks", {}).get(kind, []):
            add(f"{kind}: {c['check']}", c["measured"] + (" (quick run)" if sv.get("quick") else ""), c["passed"])
    sq = r.get("squeeze")
    for c in (sq or {}).get("checks", []):
        add(f"memory squeeze: {c['check']}", c["measured"] + (" (quick run)" if sq.get("quick") else ""), c["passed"])
    sw = r.get("switch")
    for c in (sw or {}).get("checks", []):
        add(c["check"], c["measured"], c["passed"])
    return table(["target", "measured", "verdict"], rows) if rows else "Not measured yet."


def loop_section(lp: dict[str, Any]) -> str:
    """Service against the plain loop, and the per-job breakdown."""
    from bench.loop import breakdown_table, summary_rows

    runs = {"this run": lp}
    parts = [
        table(["run", "level", "jobs", "plain loop jobs/min", "service jobs/min", "ratio", ">= 0.95"],
              summary_rows(runs)),
        "",
        f"Service rounds {', '.join(f'{x:.2f}' for x in lp.get('round_ratios', []))} (each against the loops either "
        f"side); share of the service's wall time in llama.cpp generation: {lp.get('generation_share', 0):.3f}. "
        f"{lp['jobs']} paragraphs as one batch, force {lp['level']}, quality_check false (equal work; the checker "
        "still writes each result's report); the loop is `llama_cpp.Llama.create_completion` with the same prompt, "
        "stops, max_tokens, context and threads.",
    ]  # fmt: skip
    if lp.get("profile"):
        parts += ["", "Where a job's time goes (ms per job):", "", breakdown_table(runs)]
        on = lp["profile"].get("gate_on")
        if on:
            parts += ["", f"With the quality gate on ({on['jobs']} jobs): the checker takes "
                      f"{on['per_job_ms']['quality']:.1f} ms per job, {on['calls_per_job'].get('generation', 0):.2f} "
                      f"drafts per job, run_job {on['per_job_ms']['total']:.0f} ms per job."]  # fmt: skip
    return "\n".join(parts)


def workers_section(wk: dict[str, Any]) -> str:
    """jobs/min under dynaquant up with 1, 2 and 4 workers (empty when no run finished)."""
    if not wk.get("runs"):
        return ""
    rows = [
        [f"--workers {n}", x.get("started", n), ", ".join(str(t) for t in x["threads"].values()),
         f"{x['succeeded']}/{x['jobs']}", x["jobs_per_min"], x.get("ratio_to_one"), x["mean_generation_s"]]
        for n, x in wk["runs"].items()
    ]  # fmt: skip
    return "\n".join([
        table(["dynaquant up", "workers started", "threads per worker", "done", "jobs/min", "x 1 worker",
               "generation s/job"], rows),
        "",
        f"{wk['jobs']} jobs at {wk['level']} as one batch (quality_check false), the real `dynaquant up` on its own "
        f"Redis DB and DYNAQUANT_HOME, DYNAQUANT_THREADS unset ({wk.get('cores')} cores).",
    ])  # fmt: skip


def squeeze_section(sq: dict[str, Any]) -> str:
    """Levels before, during and after the squeeze."""
    lv, start = sq["levels"], sq.get("squeeze_at_s", sq["held_at_s"])
    return (
        f"Another process took {sq['grab_gib']:g} GiB of {sq['total_gib']:.1f} GiB from {start:.1f} s to "
        f"{sq['freed_at_s']:.1f} s while a dynamic worker ran one job after another (band edges set by environment "
        f"{sq['edges_gib_above_start']} GiB above the {sq['used_gib_at_start']:.1f} GiB in use at the start). "
        f"Levels before: {lv['before']}; during: {lv['squeeze']}; after: {lv['after']}. "
        f"Failed jobs: {sum(1 for j in sq['jobs'] if j['status'] != 'succeeded')} of {len(sq['jobs'])}."
        + ("\n\n![each job's level through the squeeze](img/squeeze.png)" if (IMG / "squeeze.png").exists() else "")
    )


def levels_section(lv: dict[str, Any]) -> str:
    """GGUF and transformers tables."""
    from bench.levels import gguf_table, hf_table

    parts = [
        "### GGUF (llama.cpp, 2 threads, context 4096)\n",
        gguf_table(lv["gguf"]),
        "",
        f"Inputs: mean Flesch-Kincaid grade **{lv['input_fk_grade']:.2f}** over {lv['paragraphs']} paragraphs. "
        f"Speed: median of {lv['speed']['runs']} runs of paragraph {lv['speed']['paragraph']} "
        f"({lv['gguf']['int4']['speed']['prompt_tokens']} prompt tokens evaluated after a cache reset, "
        f"{lv['speed']['new_tokens']} new tokens without stop strings); prompt and decode tok/s are llama.cpp's "
        "own counters (`llama_perf_context`), gen tok/s (wall) is tokens after the prompt over wall time after the "
        "prompt (sampling over the 262k vocabulary and Python per token included). Cold load: "
        f"{lv['cold_method']}; cold 1st call is a 1-token completion right after it (pages fault in). Warm load: "
        "median of 3 reloads. RSS: resident-set growth of the fresh process over the load and the first call "
        "(mapped weights touched, KV cache, buffers). Build: `llama_model_quantize` from the bundled Q4_K_M into "
        "an empty variants dir.",
    ]
    fallbacks = [f"{lvl}: {r['quantize_fallback']}" for lvl, r in lv["gguf"].items() if r.get("quantize_fallback")]
    if fallbacks:
        parts.append("\nQuantizer notes: " + "; ".join(fallbacks) + ".")
    if "transformers" in lv:
        n = next(iter(lv["transformers"].values()))["quality"]["paragraphs"]
        parts += [
            "\n### transformers (CPU, torch 2 threads; bf16 / bitsandbytes LLM.int8 / nf4)\n",
            hf_table(lv["transformers"]),
            "",
            f"On the HF checkpoint made from the bundled GGUF (dequantized), {n} paragraphs (slower backend). "
            "Prompt tok/s: one forward pass over the prompt; decode tok/s: (33 - 1 new tokens) over the time "
            "difference of two greedy generate() calls; medians of up to 3. Load in a fresh process; RSS: its "
            "resident-set growth over the load and the speed runs (bitsandbytes quantizes from bf16 at load, and "
            "the allocator keeps the peak).",
        ]
    return "\n".join(parts)


def bandwidth_section(bw: dict[str, Any]) -> str:
    """Bandwidth and ceiling tables."""
    b = bw["bandwidth"]
    kernels = table(
        ["kernel (1 GiB float32)", "1 thread GB/s", "2 threads GB/s"],
        [[k, b["one_thread"][k], b["two_threads"][k]] for k in b["one_thread"]]
        + [["copy (read + write bytes)", b["copy_one_thread"], None]],
        1,
    )
    rows = []
    for level in LEVEL_ORDER:
        x = bw["levels"][level]
        rows.append([level, x["weight_bytes_per_token"] / 1e6, x["embedding_bytes"] / 1e6,
                     x["kv_bytes_per_token"] / 1e6, x["ceiling_tok_s"], x["achieved_tok_s"], x["achieved_gb_s"],
                     f"{100 * x['achieved_over_ceiling']:.0f}%"])  # fmt: skip
    ceil = table(
        ["level", "weights MB/token", "of which embedding", "KV MB/token", "ceiling tok/s", "achieved tok/s",
         "achieved GB/s", "achieved / ceiling"], rows, 1)  # fmt: skip
    text = [
        kernels,
        "",
        f"Ceiling = **{bw['ceiling_bandwidth_gb_s']:.1f} GB/s** (best 2-thread read) / bytes read per token, with "
        "bytes per token = all tensor bytes of the GGUF (Gemma 3 ties its embeddings: there is no `output.weight`, "
        "the 262144 x 640 `token_embd` matrix is multiplied for the logits of every token, so it is read per token; "
        "the input lookup reads one row) + KV-cache bytes per context token (18 432) x the mean context length "
        "during decode. The tokenizer metadata in the file (6.5 MB) is not read per token. Achieved tok/s: "
        f"{bw['achieved_from']}.",
        "",
        ceil,
    ]
    if "thread_check" in bw:
        t = bw["thread_check"]
        text.append(
            f"\nint4 decode with 1 thread: {t['int4_decode_1t']:.1f} tok/s, with 2 threads: "
            f"{t['int4_decode_2t']:.1f} tok/s (x{t['speedup']:.2f}). A bandwidth-bound decode would gain little "
            "from the second core (one core already reads at "
            f"{b['read_1t_gb_s']:.1f} of the {b['read_2t_gb_s']:.1f} GB/s); a gain near x2 means the cores "
            "(dequantization and dot products), not memory, set the pace."
        )
    return "\n".join(text)


def overhead_section(ov: dict[str, Any]) -> str:
    """Service-vs-raw and enqueue tables."""
    rows = [
        [lvl, len(t["service"]), t["raw_tok_s"], t["service_generation_tok_s"], t["service_wall_tok_s"],
         t.get("aggregate_ratio_wall"), t["ratio_generation"], t["ratio_wall"], 1000 * (t["median_overhead_s"] or 0),
         f"{t['same_token_counts']}/{len(t['service'])}", t.get("others_cpu_percent")]
        for lvl, t in ov["tokens"].items()
    ]  # fmt: skip
    tokens = table(
        ["level", "jobs", "raw tok/s", "service tok/s (in worker)", "service tok/s (wall)", "ratio of sums (wall)",
         "median ratio (in worker)", "median ratio (wall)", "wall - generation ms (median)", "same token count",
         "others' CPU %"],
        rows)  # fmt: skip
    o, c = ov["enqueue_open_loop"], ov["enqueue_closed_loop"]
    enqueue = table(
        ["POST /api/v1/jobs", "offered req/s", "accepted req/s", "p50 ms", "p99 ms", "max ms", "errors"],
        [
            [f"open loop, {o['seconds']:g} s", o["rate_offered"], o["throughput_per_s"], o["p50_ms"], o["p99_ms"],
             o["max_ms"], o["errors"]],
            [f"closed loop, {c['clients']} clients, {c['seconds']:g} s", None, c["throughput_per_s"], c["p50_ms"],
             c["p99_ms"], None, None],
        ],
        1,
    )  # fmt: skip
    return "\n".join(
        [
            tokens,
            "",
            f"{ov['jobs_per_level']} paragraphs per level, max_tokens {ov['max_tokens']}, one job at a time, raw and "
            "service calls alternating; tok/s = sum of tokens / sum of seconds; median ratio = median over "
            "paragraphs of service tok/s / raw tok/s for the same paragraph (same prompt, same tokens), which one "
            "call slowed by another process does not swing. Raw: `llama_cpp.Llama` on the same "
            "variant file, context and threads, `create_completion` with the service's prompt and stop strings. "
            "In worker: the result's tokens_out / generation_seconds. Wall: tokens_out / (finished_at - created_at).",
            "",
            enqueue,
            "",
            "Enqueue runs against gunicorn (1 process, 8 threads, access log on, as `dynaquant up`) with **no worker "
            "running** (jobs stay queued; the queue is emptied after). Open loop: requests leave at their scheduled "
            "times whatever the answers do, latency counted from the scheduled time. The load generator shares the "
            "2 cores.",
        ]
    )


def switch_section(sw: dict[str, Any]) -> str:
    """Switch table."""
    labels = {
        "warm": "variant on disk, page cache warm",
        "cold": "variant on disk, page cache dropped",
        "resident": "to a resident level (decision engine, both loaded)",
        "cached": "level still loaded (kept in the cache)",
        "build_fp16": "variant must be built: -> fp16 (F16)",
        "build_int8": "variant must be built: -> int8 (Q8_0)",
        "build_int2": "variant must be built: -> int2 (Q2_K)",
    }
    rows = []
    for key, label in labels.items():
        s = sw["summary"].get(key)
        if s and s["n"]:
            rows.append([label, s["n"], s["median_switch_s"], s["min_switch_s"], s["max_switch_s"],
                         s["median_first_call_s"]])  # fmt: skip
    return "\n".join(
        [
            table(["switch", "n", "median s", "min s", "max s", "first 1-token call after, s"], rows, 3),
            "",
            "The worker's ModelLoader (decision engine with hysteresis off, cache, re-optimisation, GGUF backend) on "
            "fixed readings; the load reading moves the decision. A switch is `loader.acquire()` for the first job "
            "at the new level: evicting the old level and loading the new one. The 12 warm switches make every "
            "ordered pair of levels once. The cached row forces each level with all four loaded: no eviction, "
            "a cache lookup.",
        ]
    )


def serving_section(sv: dict[str, Any]) -> str:
    """Burst and Poisson tables and the plot."""
    from bench.serving import results_table

    parts = [f"#### Burst of {sv['burst_jobs']} jobs in one batch\n", results_table(sv["burst"])]
    if "poisson" in sv and "runs" in sv["poisson"]:
        p = sv["poisson"]
        parts += [
            f"\n#### Poisson stream: {60 * p['rate_per_s']:.1f} jobs/min offered for "
            f"{sv.get('poisson_seconds', 60):g} s ({p['jobs']} jobs; {sv.get('rate_factor', 1.5):g} x fixed fp16's "
            "burst throughput of "
            f"{p['capacity_basis_jobs_per_min']:.1f} jobs/min)\n",
            results_table(p["runs"]),
        ]
    parts += [
        "",
        "One worker (solo pool, llama.cpp on 2 threads: the machine has 2 cores), gunicorn, Redis; a fresh worker "
        "and one uncounted warm-up job per run. Jobs/min: succeeded jobs over first submission to last finish. "
        "Latency: created_at to finished_at. Others' CPU %: share of both cores taken by processes outside the "
        "benchmark (its worker, gunicorn and itself excluded) during the run. Quality: mean ROUGE-L F1 of each "
        "output against the fp16 reference output of the same paragraph (bench/results/reference.json, made by "
        f"bench.levels through the same backend), max_tokens {sv['max_tokens']}. Dynamic: no force, the decision "
        "engine's defaults (QUANTIZE_CONSECUTIVE 3, dwell 30 s), on the profiles the host measured (the first "
        "worker calibrates it; the fixed runs before dynamic add their jobs). Re-opts: jobs whose result reports "
        "a re-optimisation. All runs share one Redis DB, so the adaptive retry budget's figures for a level carry "
        "from one run to the next, as on a host that has served for a while: the later runs (dynamic last) retry "
        "less where retries rarely pass, which is part of their lower drafts/job.",
    ]
    if (IMG / "serving_dynamic_burst.png").exists():
        parts += [
            "",
            "![dynamic policy under the burst: queue depth and the level of each job](img/serving_dynamic_burst.png)",
            "",
            "Top: jobs queued and running (status API every 0.5 s). Bottom: each job's level, drawn from its "
            "start to its finish; the thin line is the level the worker holds (its heartbeat, every 2 s).",
        ]
    return "\n".join(parts)


def busy_before(data: Any) -> list[float]:
    """Every `cpu_busy_before_percent` recorded anywhere in a benchmark's JSON."""
    if isinstance(data, dict):
        found = [float(v) for k, v in data.items() if k == "cpu_busy_before_percent" and v is not None]
        return found + [x for k, v in data.items() if k != "cpu_busy_before_percent" for x in busy_before(v)]
    if isinstance(data, list):
        return [x for v in data for x in busy_before(v)]
    return []


def machine_section(results: dict[str, Any]) -> str:
    """The machine and the load average around each benchmark."""
    any_result = next(iter(results.values()))
    m = any_result["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    rows = [
        [name, r["started_at"], r["duration_s"], fmt(r["loadavg_start"][0]), fmt(r["loadavg_end"][0]),
         fmt(max(busy_before(r), default=None), 1), r["command"]]
        for name, r in results.items()
    ]  # fmt: skip
    return "\n".join(
        [
            f"- CPU: {m['cpu_model']}, {m['cpus']} cores (KVM guest), {m['ram_gb']} GiB RAM, Linux {m['kernel']}",
            f"- Python {m['python']}; {versions}; commit {m['git_commit']}",
            "- The machine is shared with other developers' test runs; llama.cpp on 2 threads slows badly when "
            "another process takes a core. The 1-minute load average at the start and end of each benchmark is "
            "below (the benchmark's own worker adds about 2 while it computes); `others' CPU before` is the "
            "largest share of both cores that other processes took just before a measurement (each benchmark "
            "checks it, and waits with --wait-idle), and the serving and overhead tables show it during each run:",
            "",
            table(
                ["benchmark", "started (UTC)", "seconds", "load start", "load end", "others' CPU before %", "command"],
                rows,
                1,
            ),
        ]
    )


def overhead_note(ov: dict[str, Any]) -> str:
    """The service-overhead finding."""
    t = ov["tokens"]
    worst = min(t, key=lambda lvl: t[lvl]["ratio_wall"])
    inside = ", ".join(f"{t[lvl]['ratio_generation']:.2f}x at {lvl}" for lvl in t)
    extra_ms = 1000 * (t[worst]["median_overhead_s"] or 0)
    return (
        f"- **Service overhead.** Per job the service adds a median of {extra_ms:.0f} ms outside generation at "
        f"{worst} (HTTP, Redis, Celery dispatch, result record); inside the worker "
        f"generation runs at {inside} raw speed. Paired per paragraph the token counts match, so both sides do the "
        "same work."
    )


def switch_note(sw: dict[str, Any], lv: dict[str, Any] | None) -> str:
    """The level-switch finding and the recommended fix."""
    s, a = sw["summary"], sw.get("load_anatomy")
    text = f"- **Level switch** (median {s['warm']['median_switch_s']:.3f} s with the variant on disk). "
    if a:
        text += (
            f"A switch is closing the old level ({a['close_s']:.3f} s) and a llama.cpp load of the new one "
            f"({a['full_load_s']:.3f} s), of which {a['vocab_only_load_s']:.3f} s is the vocabulary alone "
            "(`vocab_only=True`: Gemma 3's 262144 tokens); the weights are memory-mapped and cost little. "
        )
    if s.get("cached"):
        text += (
            f"The first job after a switch also re-evaluates the whole few-shot prompt (first 1-token call "
            f"{s['warm']['median_first_call_s']:.3f} s), because the new llama.cpp context has no cached "
            f"prefix. Switching to a level that is still loaded takes {1000 * s['cached']['median_switch_s']:.1f} ms "
            f"and its first call {1000 * s['cached']['median_first_call_s']:.0f} ms. Fix (service side, not applied "
            "here): in `ModelLoader._reoptimize` (worker/model_loader.py) keep the model's other levels in "
            "the LRU cache while memory is in the comfortable band instead of evicting them on every "
            "re-optimisation; the cache cap (MAX_MODEL_CACHE_MB) and `_make_room` already evict idle "
            "entries when memory or the cap needs it, and critical memory can still evict at once."
        )
        if lv:
            total = sum(x["cold"]["rss_delta_bytes"] for x in lv["gguf"].values()) / MB
            text += f" All four levels of the bundled model take about {total:.0f} MB resident together."
    return text


def decode_note(bw: dict[str, Any]) -> str:
    """The decode-ceiling finding."""
    x, b, f16 = bw["levels"]["int4"], bw["bandwidth"], bw["levels"]["fp16"]
    text = (
        f"- **Decode vs the bandwidth ceiling.** int4 decode moves {x['achieved_gb_s']:.1f} GB/s of the "
        f"{bw['ceiling_bandwidth_gb_s']:.1f} GB/s two threads can read ({x['achieved_over_ceiling']:.0%}), while "
        f"fp16, whose F16 weights need no dequantizing, moves {f16['achieved_gb_s']:.1f} GB/s "
        f"({f16['achieved_over_ceiling']:.0%}): memory can deliver more than the quantized kernels consume. "
    )
    if "thread_check" in bw:
        t = bw["thread_check"]
        one_gb = t["int4_decode_1t"] * x["bytes_per_token"] / 1e9
        text += (
            f"One thread decodes {t['int4_decode_1t']:.1f} tok/s, i.e. reads {one_gb:.1f} GB/s where one "
            f"thread can read {b['read_1t_gb_s']:.1f} GB/s, and the second thread gives x{t['speedup']:.2f}: "
            "the cores, not memory, set the decode rate on this 2-core machine (dequantizing Q8_0/Q4_K/Q5_0 "
            "blocks, quantizing activations to 8 bits for the integer dot products, and a thread barrier per "
            "operation in each of 18 layers, for 0.27 B multiply-adds per token of which 0.17 B are the "
            "262144 x 640 output matrix). Not a service problem; more cores (or a model whose bytes per token "
            "outweigh its arithmetic more) move it towards the ceiling."
        )
    return text


def burst_note(sv: dict[str, Any], lv: dict[str, Any] | None) -> str:
    """The burst finding: the fastest level bounds every policy."""
    b = {k: v["summary"] for k, v in sv["burst"].items()}
    fp16 = b["fixed-fp16"]["jobs_per_min"]
    fixed = [p for p in ("fixed-fp16", "fixed-int4", "fixed-int2") if p in b]
    best = max(fixed, key=lambda p: b[p]["jobs_per_min"])
    per_job = " / ".join(f"{b[p]['mean_generation_s']:.2f} s" for p in fixed)
    tokens = " / ".join(f"{b[p]['mean_tokens_out']:.0f}" for p in fixed)
    d = b["dynamic"]
    used = ", ".join(f"{k} {v}" for k, v in d["levels"].items())
    text = (
        "- **Burst throughput.** No policy can run faster than its fastest level, and here the fastest fixed "
        f"policy, {best}, does {b[best]['jobs_per_min'] / fp16:.2f}x fixed fp16's jobs/min: per job the fixed runs "
        f"({', '.join(p.removeprefix('fixed-') for p in fixed)}) spent {per_job} generating, for mean outputs of "
        f"{tokens} tokens. int2 writes longer outputs, which eats its faster tokens, and each job's prompt "
        "evaluation and fixed costs do not shrink with the weights. So 1.3x fp16 is out of reach of any level "
        f"choice on this model and machine. Dynamic ran {d['jobs_per_min'] / fp16:.2f}x (jobs at {used}), with "
        f"{d['reoptimizations']} re-optimisations ({d['load_seconds_total']:.1f} s of loads, and the whole prompt "
        "re-evaluated after each) and its first jobs still at fp16 while hysteresis (3 decisions) held the level."
    )
    if lv:
        g = lv["gguf"]
        decode = " / ".join(f"{g[lvl]['speed']['decode_tok_s']:.0f}" for lvl in LEVEL_ORDER)
        r4, r2 = g["int4"]["quality"]["rouge_l_vs_fp16"], g["int2"]["quality"]["rouge_l_vs_fp16"]
        text += (
            f" Decode alone runs {decode} tok/s (fp16 / int8 / int4 / int2, bench.levels): on this model int8, "
            "int4 and int2 read almost the same bytes (the Q8_0 embedding dominates) and decode is compute-bound, "
            f"so int2 buys little decode speed over int4, is slower per job (longer outputs), and costs much "
            f"agreement (ROUGE-L {r4:.2f} vs {r2:.2f}). "
            "Recommendation: let the decision skip a level that is not measurably faster per job than the one "
            "above it for the model at hand (the levels and serving benchmarks give the numbers), so a burst on "
            "this model runs at int4, not int2."
        )
    return text


def analysis(r: dict[str, Any]) -> str:
    """What limits each target, from the measurements."""
    out = []
    if r.get("overhead"):
        out.append(overhead_note(r["overhead"]))
    if r.get("switch"):
        out.append(switch_note(r["switch"], r.get("levels")))
    if r.get("bandwidth"):
        out.append(decode_note(r["bandwidth"]))
    if r.get("serving") and {"fixed-fp16", "fixed-int2", "dynamic"} <= set(r["serving"].get("burst", {})):
        out.append(burst_note(r["serving"], r.get("levels")))
    return "\n".join(out)


NOTES = """\
### Method notes and caveats

- **Paragraphs**: 24 expository paragraphs (55-95 words, school subjects, target grades 3-8) written for this
  project, in `bench/paragraphs.py`; not taken from any source.
- **ROUGE-L F1** is implemented in `bench/common.py` (`rouge_l_f1`): longest common subsequence of lower-cased
  word tokens, P = LCS / candidate length, R = LCS / reference length, F1 = 2PR / (P + R) (Lin 2004, beta 1).
  It measures agreement with the fp16 output, not the quality of the simplification itself.
- **"fp16" is not a better model here.** The bundled source is a Q4_K_M file, so the F16 and Q8_0 variants are
  the Q4_K_M weights re-encoded: they carry no information int4 lacks. Their outputs differ from int4's through
  arithmetic (llama.cpp quantizes activations to 8 bits for quantized weights, not for F16) and, for Q8_0,
  re-rounding; greedy decoding turns a small difference into a different continuation. int2 re-quantizes the
  layers to fewer bits and is the only level that removes information. With a real F16 source the gaps between
  levels would be larger.
- **Q2_K on this model is mostly not 2-bit**: Gemma 3 270M's 640-wide rows are not a multiple of 256, so
  llama.cpp falls back to Q4_0 / Q5_0 for 90 of 236 tensors (the layers end up Q4_0 and Q3_K), and every level
  except fp16 keeps the 262144 x 640 embedding (which is also the output matrix) in Q8_0: 178 MB of the
  231-285 MB that int8, int4 and int2 read per token. That is why int8, int4 and int2 differ little in size and
  speed.
- **Prefix reuse**: llama-cpp-python keeps the KV cache of the previous prompt; the instruction and the two
  worked examples (192 tokens) are the same in every prompt, so a loaded model evaluates only the last 15-100
  tokens of each (the request's text).
  Loading a model (a level switch) loses it: the next job evaluates the whole prompt.
- Load times are dominated by llama.cpp building the 262144-token vocabulary (`vocab_only=True` takes as long
  as a full load), not by the weights, which are memory-mapped.
"""


def default_model_section() -> str:
    """The default model's quality: the checker against 126 hand labels, the gate's strategies and the held-out
    figures (bench.quality_labels, bench.quality_gate strategies / heldout / chapter)."""
    labels, heldout = read_result("quality_labels"), read_result("quality_gate_heldout")
    strategies, chapter = read_result("quality_gate_strategies"), read_result("quality_gate_chapter")
    parts: list[str] = []
    if labels:
        rows = []
        for part in ("tuning", "held_out"):
            for name, s in labels[part]["outputs"].items():
                rows.append((part, name, s["rows"], s["labelled_problems"], s["flagged"], s["precision"], s["recall"]))
        parts += [
            f"The checker against hand labels: {sum(labels['rows'].values())} first drafts of "
            f"{labels['model']} ({', '.join(f'{k} {v}' for k, v in labels['levels'].items() if v)}), labelled as "
            "bench/data/labels/RUBRIC.md says; thresholds tuned on the tuning part only (`bench.quality_labels "
            "--tune`).",
            "",
            table(("part", "check", "rows", "labelled", "flagged", "precision", "recall"), rows),
            "",
        ]
        for part in ("tuning", "held_out"):
            v = labels[part]["outputs"]["verdict"]
            m = labels[part]["meaning_auc"]
            parts.append(
                f"- {part}: the checker passes {v['passed']} drafts, of which a teacher would accept "
                f"{v['pass_precision'] or 0:.0%} (the verdict's precision against `teacher_accept`); the labels "
                f"accept {v['accepted']} of {v['rows']}. The meaning score's AUC: {m['meaning']['auc']} against "
                f"meaning faults, {m['verdict']['auc']} against rejection."
            )
        parts.append("")
    if strategies:
        res = strategies["results"]
        rows = [
            (name, r["summary"]["pass_rate"], r["summary"].get("pass_gain"), r["summary"]["grade_mae"],
             r["summary"]["mean_attempts"], r["summary"]["mean_seconds"], r["summary"].get("cost_ratio"))
            for name, r in res.items()
        ]  # fmt: skip
        parts += [
            f"Gate strategies on {len(strategies['paragraphs'])} tuning paragraphs (load 8: int4, escalation up to "
            "fp16; the same drafts replayed for every run; at most "
            f"{strategies['command'].split('--max-attempts ')[-1] if '--max-attempts' in strategies['command'] else 3} "
            "drafts):",
            "",
            table(("run", "pass", "gain", "grade MAE", "drafts", "s/job", "cost"), rows),
            "",
        ]
    if heldout:
        res = heldout["results"]
        rows = [
            (name, r["summary"]["jobs"], r["summary"]["pass_rate"], r["summary"]["pass_within_1_5"],
             r["summary"]["pass_invented_facts"], r["summary"]["grade_mae"], r["summary"]["mean_attempts"],
             r["summary"]["mean_seconds"])
            for name, r in res.items() if isinstance(r, dict) and "summary" in r
        ]  # fmt: skip
        parts += [
            f"Held-out texts ({len(heldout['paragraphs'])}: q01-q18 and h01-h24, never used for tuning), gate off "
            "and on with the default settings, load 8 (int4):",
            "",
            table(("run", "jobs", "pass", "pass within 1.5", "pass invents", "grade MAE", "drafts", "s/job"), rows),
            "",
            f"Gate cost: {res['cost_ratio']:.2f}x the ungated mean job time.",
            "",
        ]
        passes = ROOT / "bench" / "data" / "labels" / "qwen2.5-1.5b-gated-passes.jsonl"
        if passes.exists():
            labelled = [json.loads(line)["labels"] for line in passes.read_text().splitlines() if line.strip()]
            accepted = sum(x["teacher_accept"] for x in labelled)
            meaning = sum(not x["meaning_ok"] for x in labelled)
            named = sum(x["adds_name_or_number"] for x in labelled)
            parts += [
                f"Read by hand (bench/data/labels/qwen2.5-1.5b-gated-passes.jsonl), a teacher would accept {accepted} "
                f"of the {len(labelled)} passing results; {meaning} change what the text says, which no word check "
                f"sees; {named} adds a number the source lacks (a count of the branches it lists).",
                "",
            ]
    if chapter:
        c = chapter["results"]["chapter"]
        passed = sum(v == "pass" for v in c["paragraph_verdicts"])
        parts += [
            f"A chapter of {c['paragraphs_in']} paragraphs as one job (gate on): {c['paragraphs_out']} paragraphs "
            f"back, {c['reports']} reports, {passed} passing, {c['drafts']} drafts, {c['seconds']:.0f} s.",
            "",
        ]
    return "\n".join(parts).strip()


def quality_section(qu: dict[str, Any]) -> str:
    """The quality benchmark's own section: the checker, the gate and what it costs."""
    from bench.quality import report_section

    return report_section(qu)


SECTIONS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("levels", "Levels", levels_section),
    ("bandwidth", "Memory bandwidth and the decode ceiling", bandwidth_section),
    ("overhead", "Service overhead and API enqueue", overhead_section),
    ("loop", "Service against a plain llama-cpp-python loop", loop_section),
    ("workers", "Workers sharing the host's cores", workers_section),
    ("switch", "Level switch", switch_section),
    ("serving", "Serving: burst and Poisson stream", serving_section),
    ("squeeze", "Memory squeeze", squeeze_section),
    ("quality", "Quality: the checker, the gate and what it costs", quality_section),
)
"""Each benchmark's section of docs/benchmarks.md, in order: (results name, heading, renderer)."""


DEFAULT_MODEL_HEADING = "Default model (Qwen2.5 1.5B Instruct): the checker, the gate, held-out texts"


FIRST_BATCH_HEADING = "First batch after dynaquant up, and bursts on a fresh host (issue 23)"


def first_batch_section() -> str:
    """What a user sees on a fresh cache and Redis, per model (bench.firstbatch), with the breakdown of each batch."""
    parts = []
    for path in sorted(RESULTS.glob("firstbatch-*.json")):
        report = json.loads(path.read_text())
        parts.append(firstbatch.markdown(report))
        runs = {
            "first batch": "first",
            "second batch": "steady",
            "burst int4": "burst_int4",
            "burst dynamic": "burst_dynamic",
            "burst dynamic calibrated": "burst_dynamic_calibrated",
            "burst int4 again": "burst_int4_after",
        }
        fields = ("seconds", "generation_s", "load_s", "to_first_start_s", "between_jobs_s", "in_worker_other_s")
        rows = [
            (name, *(run[f] for f in fields))
            for name, key in runs.items()
            if (run := report.get(key)) and "between_jobs_s" in run
        ]
        if rows:
            header = ("batch", "span s", "generation s", "loads s", "to first start s", "between jobs s", "other s")
            parts += ["Where the time went (sums over the batch, from the job records):", table(header, rows)]
    return "\n\n".join(parts)


def insert_section(doc: str, heading_text: str, section: str) -> str:
    """The document with one section written anew (the rest untouched), or added before the analysis."""
    heading = f"## {heading_text}"
    body = f"{heading}\n\n{section}\n\n"
    if heading in doc:
        start = doc.index(heading)
        end = doc.index("\n## ", start + len(heading)) + 1
        return doc[:start] + body + doc[end:]
    marker = "## What limits the results"
    return doc.replace(marker, body + marker, 1) if marker in doc else doc + "\n" + body


def write_doc(results: dict[str, Any]) -> str:
    """The whole docs/benchmarks.md text."""
    target_table, _ = targets(results)
    parts = [
        "# Benchmarks",
        "",
        "Measurements of the precision levels, the hardware limit, the service's overhead, level switches and "
        "serving under load, on the bundled Gemma 3 270M (the default model until Qwen2.5 1.5B Instruct replaced it; "
        "the section on the default model measures Qwen). Benchmarks are not tests: nothing here is asserted. "
        "This file is written by `.venv/bin/python -m bench.report` from `bench/results/*.json` (gitignored).",
        "",
        "## Commands",
        "",
        "```bash",
        "make bench                          # every benchmark below, then this file (about 45 minutes)",
        *[f".venv/bin/python -m bench.{n:<27}# bench/results/{n}.json" for n in BENCHMARKS],
        ".venv/bin/python -m bench.report    # this file from the JSON (runs any benchmark without results;",
        "                                    # --run: all; --wait-quiet N / --wait-idle N: wait for a quiet machine)",
        "```",
        "",
        "## Machine",
        "",
        machine_section(results),
        "",
        "## Targets (issue 5)",
        "",
        target_table,
        "",
        "## Targets (issue 12)",
        "",
        issue12_targets(results),
        "",
    ]
    for key, title, render in SECTIONS:
        body = render(results[key]) if key in results else ""
        if body:
            parts += [f"## {title}", "", body, ""]
    for heading, section in (
        (DEFAULT_MODEL_HEADING, default_model_section()),
        (FIRST_BATCH_HEADING, first_batch_section()),
    ):
        if section:
            parts += [f"## {heading}", "", section, ""]
    parts += ["## What limits the results", "", analysis(results), "", NOTES]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run what is missing (or everything with --run), then write docs/benchmarks.md."""
    parser = bench_parser(__doc__)
    parser.add_argument("--run", action="store_true", help="run every benchmark first")
    parser.add_argument(
        "--default-model-only", action="store_true", help="rewrite only the default model's section of the file"
    )
    parser.add_argument(
        "--first-batch-only", action="store_true", help="rewrite only the first-batch section (bench.firstbatch)"
    )
    args = parser.parse_args(argv)
    if args.default_model_only:
        DOC.write_text(insert_section(DOC.read_text(), DEFAULT_MODEL_HEADING, default_model_section()))
        print(f"wrote the default model's section of {DOC.relative_to(ROOT)}")
        return 0
    if args.first_batch_only:
        DOC.write_text(insert_section(DOC.read_text(), FIRST_BATCH_HEADING, first_batch_section()))
        print(f"wrote the first-batch section of {DOC.relative_to(ROOT)}")
        return 0
    missing = BENCHMARKS if args.run else tuple(n for n in BENCHMARKS if read_result(n) is None)
    if missing:
        wait_for_quiet(1.0, args.wait_quiet)
        run_all(missing, args.wait_idle)
    results = {n: r for n in BENCHMARKS if (r := read_result(n)) is not None}
    for plot in (RESULTS / "serving_dynamic_burst.png", RESULTS / "squeeze.png"):
        if plot.exists():
            IMG.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plot, IMG / plot.name)
    DOC.write_text(write_doc(results) + "\n")
    print(f"wrote {DOC.relative_to(ROOT)}")
    print(targets(results)[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
