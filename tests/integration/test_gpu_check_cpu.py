"""bench.gpu_check on a machine without CUDA: the same code path on tiny configs, GPU parts skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("bitsandbytes")

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ("fp16", "int8", "int4")

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback; a GPU runs the real check")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DYNAQUANT_DEVICE", None)
    cmd = [sys.executable, "-m", "bench.gpu_check", "--out", str(out), "--budget-seconds", "120", "--new-tokens", "4"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / "gpu_check.json").read_text())
    data["_markdown"] = (out / "gpu_check.md").read_text()
    data["_stdout"] = proc.stdout
    return data


def test_says_gpu_parts_were_skipped(report: dict[str, Any]) -> None:
    note = "no CUDA device: GPU parts skipped"
    assert report["cuda"] is False and report["tiny"] is True
    assert report["note"] == note
    assert note in report["_markdown"] and note in report["_stdout"]


def test_reports_device_and_decisions(report: dict[str, Any]) -> None:
    device = report["device"]
    assert device["detected"] == "cpu"
    assert device["memory"]["total_bytes"] > 0
    assert device["capabilities"]["transformers"]["fp16"] is True
    decisions = report["decisions"]["models"]
    assert set(decisions) == {"gemma-3-270m", "qwen2.5-7b"}
    for d in decisions.values():
        assert d["level"] in ("fp16", "int8", "int4", "int2")
        assert d["calculate"]["level"] == d["level"]
    assert set(report["decisions"]["select_level"]) == {"0", "3", "8", "12"}
    assert report["bandwidth"]["gb_s"] > 0 and report["bandwidth"]["copy_ok"]


def test_every_level_loads_and_generates(report: dict[str, Any]) -> None:
    assert [m["key"] for m in report["models"]] == ["gemma-3-270m", "qwen2.5-7b"]
    for model in report["models"]:
        assert model["zero_matrices"] == [], "random weights must not leave a matrix at zero"
        for level in LEVELS:
            entry = model["levels"][level]
            where = f"{model['key']} {level}: {entry}"
            assert entry["status"] == "ok", where
            assert entry["load_s"] > 0, where
            for batch in ("batch1", "batchN"):
                assert entry[batch]["tok_s"] > 0 and entry[batch]["output_shape_ok"], where
            assert entry["backend_generate"]["tokens_in"] > 0, where
            assert entry["backend_generate"]["tok_s"] > 0, where
            assert entry["ceiling"]["b1_achieved"] > 0, where
    assert "| int4 |" in report["_markdown"]


def test_optimized_path_runs_with_a_static_cache(report: dict[str, Any]) -> None:
    ran = [e for m in report["models"] for e in m["optimized"].values() if e["status"] == "ok"]
    assert ran, "at least one optimised (static-cache) run fits the CPU budget"
    for entry in ran:
        assert entry["batch1"]["tok_s"] > 0 and entry["mode"] == "no compile (CPU)"


def test_gemma_config_matches_the_bundled_gguf(report: dict[str, Any]) -> None:
    check = report["gemma_config_check"]
    if not check.get("gguf"):
        pytest.skip("the bundled GGUF is not assembled on this machine")
    assert check["matches_hardcoded"], check


def test_an_item_that_overruns_the_budget_is_interrupted_and_recorded(tmp_path: Path) -> None:
    import time

    from bench import gpu_check

    args = gpu_check.parse_args(["--out", str(tmp_path), "--budget-seconds", "1", "--work-dir", str(tmp_path)])
    ctx = gpu_check.new_context(args, tmp_path, cuda=False)
    target: dict[str, Any] = {}
    ctx.budget.arm(grace_s=0)
    try:
        gpu_check.run_item(ctx, target, "slow", 0.5, lambda entry: time.sleep(10))
        gpu_check.run_item(ctx, target, "next", 0.5, lambda entry: None)
    finally:
        ctx.budget.disarm()
    assert target["slow"]["status"] == "skipped: budget (interrupted)"
    assert target["slow"]["item_s"] < 5
    assert target["next"]["status"] == "skipped: budget"
    assert json.loads((tmp_path / "gpu_check.json").read_text())["budget_seconds"] == 1


def test_failing_item_is_recorded_and_the_next_one_runs(tmp_path: Path) -> None:
    from bench import gpu_check

    args = gpu_check.parse_args(["--out", str(tmp_path), "--work-dir", str(tmp_path)])
    ctx = gpu_check.new_context(args, tmp_path, cuda=False)
    target: dict[str, Any] = {}

    def broken(entry: dict[str, Any]) -> None:
        entry["load_s"] = 1.0
        raise RuntimeError("CUDA out of memory")

    gpu_check.run_item(ctx, target, "int8", 1, broken)
    gpu_check.run_item(ctx, target, "int4", 1, lambda entry: entry.update(load_s=2.0))
    assert target["int8"]["status"] == "failed" and "out of memory" in target["int8"]["error"]
    assert target["int8"]["load_s"] == 1.0, "what was measured before the failure is kept"
    assert target["int4"]["status"] == "ok"
