"""`dynaquant prepare`: a model assembled and every precision level built before the service starts, with progress.

A worker never makes a job wait for a level that is not built: it runs the job at a built level and builds the
missing one in idle time (worker.builder). Preparing up front (about a minute of both cores and 6 GB of disk for
the default model) means the first burst can already use every level, and calibration starts at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from worker.errors import DynaquantError
from worker.policy import GGUF_TYPES, LEVELS
from worker.registry import ModelSpec, Registry
from worker.settings import get_settings
from worker.variants import Variant, ensure_variant


def prepare(spec: ModelSpec, directory: Path, threads: int, say: Callable[[str], None] = print) -> list[Variant]:
    """Every GGUF level of a model built into `directory` (those on disk kept), saying each as it goes."""
    if spec.gguf_path is None:
        say(f"{spec.name}: no GGUF file, nothing to build (transformers quantizes at load time)")
        return []
    done = []
    for level in LEVELS:
        started = time.perf_counter()
        say(f"{spec.name} {level} ({GGUF_TYPES[level]}) ...")
        variant = ensure_variant(spec.gguf_path, GGUF_TYPES[level], directory, threads)
        took = f"built in {time.perf_counter() - started:.1f} s" if variant.built else "on disk"
        say(f"{spec.name} {level} ({GGUF_TYPES[level]}): {variant.size_bytes / 1e6:,.0f} MB, {took}")
        done.append(variant)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the models named (the default model when none is)."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="dynaquant prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help=f"model names (default: {settings.default_model})")
    args = parser.parse_args(argv)
    registry = Registry.from_settings(settings)
    try:
        for name in args.models or [settings.default_model]:
            prepare(
                registry.get(name), settings.variants_path, settings.thread_count, lambda line: print(line, flush=True)
            )
    except DynaquantError as exc:
        print(f"dynaquant prepare: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
