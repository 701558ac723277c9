"""The GGUF backend on the real bundled model: every level, variant files, build-once semantics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import PARAGRAPH
from worker.backends.base import Decoding
from worker.backends.llamacpp import LlamaCppBackend
from worker.errors import JobCancelled
from worker.policy import GGUF_TYPES, LEVELS
from worker.registry import ModelSpec
from worker.simplify import STOP, build_prompt, clean_output
from worker.variants import ensure_variant, source_file_type, variant_path

pytestmark = pytest.mark.model

COMMON_WORDS = {"the", "is", "a", "of", "and", "to", "in", "that", "are", "plants", "use", "it", "they", "by"}


def looks_english(text: str) -> bool:
    """Mostly Latin letters, several words, at least one very common English word."""
    words = re.findall(r"[A-Za-z']+", text)
    letters = sum(c.isascii() and c.isalpha() for c in text)
    return len(words) >= 3 and letters >= 0.6 * len(text) and bool({w.lower() for w in words} & COMMON_WORDS)


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_loads_and_simplifies(gguf_backend: LlamaCppBackend, bundled_spec: ModelSpec, level: str) -> None:
    model = gguf_backend.load(bundled_spec, level)
    try:
        assert (model.name, model.level, model.backend) == ("gemma-3-270m", level, "gguf")
        assert source_file_type(model.path) == GGUF_TYPES[level]
        generation = model.generate(build_prompt(PARAGRAPH, 6, "Science"), Decoding(24, STOP))
    finally:
        model.close()
    text = clean_output(generation.text, generation.finish_reason)
    assert text, f"{level} produced no text"
    assert looks_english(text), f"{level} produced {text!r}"
    assert generation.tokens_in > 200 and 0 < generation.tokens_out <= 24
    assert generation.finish_reason in ("stop", "length")


def test_variant_sizes_follow_precision(gguf_backend: LlamaCppBackend, bundled_spec: ModelSpec) -> None:
    sizes = {level: gguf_backend.variant(bundled_spec, level).stat().st_size for level in LEVELS}
    assert sizes["fp16"] > 1.8 * sizes["int8"], sizes
    assert sizes["int8"] > sizes["int4"] > sizes["int2"], sizes
    assert sizes["int2"] < 0.5 * sizes["fp16"], sizes
    assert 500e6 < sizes["fp16"] < 600e6, "F16 of 270M weights is about 540 MB"


def test_estimates_track_real_files(gguf_backend: LlamaCppBackend, bundled_spec: ModelSpec) -> None:
    for level in LEVELS:
        file_bytes = gguf_backend.variant(bundled_spec, level).stat().st_size
        estimate = gguf_backend.estimate_bytes(bundled_spec, level)
        assert file_bytes < estimate < file_bytes + 200e6, (level, file_bytes, estimate)


def test_second_build_is_a_no_op(bundled_gguf: Path, tmp_path: Path) -> None:
    target = variant_path(bundled_gguf, "Q2_K", tmp_path)
    crashed = target.with_name(f".{target.name}.4242.1.tmp")
    crashed.write_bytes(b"half a file from a builder that died")
    first = ensure_variant(bundled_gguf, "Q2_K", tmp_path)
    assert first.built and first.path == target
    assert not crashed.exists(), "a dead builder's partial file is cleaned up"
    stamp = first.path.stat()
    second = ensure_variant(bundled_gguf, "Q2_K", tmp_path)
    assert not second.built and second.seconds == 0.0
    assert second.path == first.path
    assert second.path.stat().st_mtime_ns == stamp.st_mtime_ns and second.path.stat().st_ino == stamp.st_ino
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [first.path.name]


def test_source_of_the_wanted_type_is_reused(bundled_gguf: Path, tmp_path: Path) -> None:
    variant = ensure_variant(bundled_gguf, "Q4_K_M", tmp_path)
    assert variant.path == bundled_gguf and not variant.built
    assert not any(tmp_path.iterdir()), "no copy of the source is written"


BUILD_SCRIPT = """
import json, sys
from pathlib import Path
from worker.variants import ensure_variant
v = ensure_variant(Path(sys.argv[1]), "Q8_0", Path(sys.argv[2]))
print(json.dumps({"built": v.built, "path": str(v.path)}))
"""


def test_concurrent_builds_make_one_valid_file(bundled_gguf: Path, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD_SCRIPT, str(bundled_gguf), str(tmp_path)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["built"] for r in results) == [False, True], "exactly one process builds"
    assert results[0]["path"] == results[1]["path"] == str(variant_path(bundled_gguf, "Q8_0", tmp_path))
    assert source_file_type(Path(results[0]["path"])) == "Q8_0"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == [], "no partial files remain"


def test_cancellation_stops_generation(gguf_backend: LlamaCppBackend, bundled_spec: ModelSpec) -> None:
    model = gguf_backend.load(bundled_spec, "int4")
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    try:
        with pytest.raises(JobCancelled):
            model.generate("Once upon a time", Decoding(64, should_stop=should_stop))
        assert calls["n"] == 3, "checked once per token and stopped at once"
    finally:
        model.close()
