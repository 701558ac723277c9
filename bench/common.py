"""Shared pieces of the benchmarks: results files, tables, statistics, ROUGE-L, machine facts, the bundled model."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VARIANTS = RESULTS / "variants"
REFERENCE_FILE = RESULTS / "reference.json"
THREADS = 2
"""llama.cpp threads in every benchmark: the machine's two cores, as DYNAQUANT_THREADS in the service."""
QUALITY_MAX_TOKENS = 96
"""New tokens per simplification in the quality runs and the serving runs (the service default is 160)."""
LEVEL_ORDER = ("fp16", "int8", "int4", "int2")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def bench_parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares: waiting for a quiet machine."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wait-quiet", type=float, default=0.0, help="wait up to N s for load average < 1")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each measurement, wait up to N s for other processes to leave the CPU idle (< 25%% busy)",
    )
    return parser


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(max_load: float = 1.0, timeout_s: float = 0.0, poll_s: float = 15.0) -> list[float]:
    """Wait (up to timeout_s) until the 1-minute load average is below max_load; return the last reading."""
    deadline = time.monotonic() + timeout_s
    reading = loadavg()
    while reading[0] >= max_load and time.monotonic() < deadline:
        print(f"load average {reading[0]:.2f} >= {max_load}: waiting", flush=True)
        time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.1)))
        reading = loadavg()
    return reading


def own_cpu_seconds() -> float:
    """CPU seconds used so far by this process and every live descendant (the service processes it started)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def others_cpu_percent(window_s: float = 2.0) -> float:
    """Share of the machine's CPU (0-100) used over window_s by processes outside this benchmark's own tree."""
    import psutil

    cpus = psutil.cpu_count() or 1
    psutil.cpu_percent(interval=None)
    own = own_cpu_seconds()
    time.sleep(window_s)
    total = float(psutil.cpu_percent(interval=None))
    mine = 100.0 * (own_cpu_seconds() - own) / (window_s * cpus)
    return max(total - mine, 0.0)


class CpuMeter:
    """Other processes' share of the CPU (0-100, all cores) between successive readings, this benchmark's own
    process tree (the service it started included) left out."""

    def __init__(self) -> None:
        import psutil

        self._cpus = psutil.cpu_count() or 1
        self._last = (time.monotonic(), self._busy_seconds(), own_cpu_seconds())

    def _busy_seconds(self) -> float:
        import psutil

        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        guest = getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)  # already counted in user and nice
        return float(sum(t) - idle - guest)

    def read(self) -> float:
        """Others' CPU % since the previous reading (or since the meter was made)."""
        now = (time.monotonic(), self._busy_seconds(), own_cpu_seconds())
        wall = now[0] - self._last[0]
        others = (now[1] - self._last[1]) - (now[2] - self._last[2])
        self._last = now
        return max(0.0, min(100.0, 100.0 * others / (wall * self._cpus))) if wall > 0 else 0.0


def wait_for_idle_cpu(timeout_s: float = 0.0, max_percent: float = 25.0, window_s: float = 2.0) -> float:
    """Wait (up to timeout_s) until processes other than this benchmark's use < max_percent of the CPU; the last
    reading (percent of all cores, over window_s)."""
    deadline = time.monotonic() + timeout_s
    busy = others_cpu_percent(window_s)
    while busy >= max_percent and time.monotonic() < deadline:
        print(f"CPU {busy:.0f}% busy with other work: waiting", flush=True)
        busy = others_cpu_percent(window_s)
    return busy


def drop_page_cache() -> bool:
    """Drop the OS page cache (root only); False where it is not allowed."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def rss_bytes() -> int:
    """Resident memory of this process."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def version(package: str) -> str | None:
    """An installed distribution's version, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine and software the numbers come from."""
    import psutil

    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        found = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    packages = ("llama-cpp-python", "torch", "transformers", "bitsandbytes", "celery", "numpy", "redis", "gunicorn")
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in packages},
        "git_commit": commit or None,
    }


def handle_stop_signals() -> None:
    """Make SIGTERM and SIGINT raise KeyboardInterrupt (SIGINT too when a background shell ignores it), so the
    benchmark's `finally` blocks stop the processes it started."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


class Recorder:
    """One benchmark run: load average at start and end, timing, and its JSON written under bench/results."""

    def __init__(self, name: str, argv: Sequence[str] | None = None) -> None:
        handle_stop_signals()
        self.name = name
        self.started = time.time()
        self.data: dict[str, Any] = {
            "benchmark": name,
            "command": f".venv/bin/python -m bench.{name}" + (" " + " ".join(argv) if argv else ""),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "loadavg_start": loadavg(),
            "machine": machine(),
        }

    def save(self, final: bool = True) -> Path:
        """Write bench/results/<name>.json (load average at the end and duration included); final=False: partial."""
        self.data["loadavg_end"] = loadavg()
        self.data["duration_s"] = round(time.time() - self.started, 1)
        self.data["complete"] = final
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        if not final:
            return path
        print(
            f"\nwrote {path.relative_to(ROOT)} ({self.data['duration_s']} s; load average "
            f"{self.data['loadavg_start'][0]} at start, {self.data['loadavg_end'][0]} at end)"
        )
        return path


def start_run(name: str, args: argparse.Namespace, argv: Sequence[str] | None) -> Recorder:
    """Wait for a quiet machine as --wait-quiet allows, then start the run's record of `argv` (the command line)."""
    wait_for_quiet(1.0, args.wait_quiet)
    return Recorder(name, argv if argv is not None else sys.argv[1:])


def read_result(name: str) -> dict[str, Any] | None:
    """A benchmark's last JSON, if it ran."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: numbers rounded, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 2) -> str:
    """A Markdown table (also readable printed on a terminal)."""
    cells = [[fmt(c, digits) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, rule, *body])


def checks_table(checks: Iterable[dict[str, Any]]) -> str:
    """A benchmark's checks (check, measured, passed) as a table with pass / FAIL."""
    return table(["check", "measured", "result"], [[c["check"], c["measured"], "pass" if c["passed"] else "FAIL"]
                                                   for c in checks])  # fmt: skip


def median(values: Sequence[float]) -> float | None:
    """Median, or None for no values."""
    return float(statistics.median(values)) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo))


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters, digits, inner apostrophes), as ROUGE-L compares them."""
    return WORD.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming, O(len(a)*len(b)))."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (Lin 2004, beta = 1): LCS of word tokens over candidate and reference lengths; 1.0 for two empties."""
    c, r = words(candidate), words(reference)
    if not c and not r:
        return 1.0
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def bundled_source() -> Path:
    """The default model's GGUF (assembled into the user cache on first use)."""
    from worker.registry import bundled_gguf_path

    return bundled_gguf_path()


def ensure_variants(levels: Sequence[str] = LEVEL_ORDER, directory: Path = VARIANTS) -> dict[str, Path]:
    """The default model's variant file per level in the benchmarks' own variants dir (built once, reused)."""
    from worker.policy import GGUF_TYPES
    from worker.variants import ensure_variant

    source = bundled_source()
    return {level: ensure_variant(source, GGUF_TYPES[level], directory, THREADS).path for level in levels}


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Send the process's fd 2 (where llama.cpp's C code writes) to a file; its lines land in the yielded list."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        lines: list[str] = []
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call fn and return its value and the seconds it took."""
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def load_reference() -> dict[str, str] | None:
    """The fp16 outputs per paragraph id that quality is measured against (written by bench.levels)."""
    if not REFERENCE_FILE.exists():
        return None
    data = json.loads(REFERENCE_FILE.read_text())
    if data.get("max_tokens") != QUALITY_MAX_TOKENS:
        return None
    return dict(data["outputs"])


def save_reference(outputs: dict[str, str], source: str) -> None:
    """Keep the fp16 outputs per paragraph for the serving benchmark's quality column."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    body = {"level": "fp16", "max_tokens": QUALITY_MAX_TOKENS, "made_by": source, "outputs": outputs}
    REFERENCE_FILE.write_text(json.dumps(body, indent=2) + "\n")


def python() -> str:
    """The interpreter running the benchmarks (the venv's), for child processes."""
    return sys.executable
