"""Foreground first under `dynaquant up`: a cache clear stays cleared while idle work waits, and `dynaquant prepare`
builds every level before the service runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.e2e.conftest import Up
from tests.processes import ROOT, wait_until
from worker.settings import SMALL_MODEL


def models_cached(up: Up) -> int:
    return int(requests.get(up.url("/api/v1/quantization/cache"), timeout=5).json()["models_cached"])


def test_a_cache_clear_on_a_fresh_idle_service_stays_cleared(up: Up) -> None:
    """Calibration starts by itself on a fresh service and loads models; a clear frees them, and 3 s and 30 s later
    nothing is loaded again. The next job ends the quiet period: idle work goes on after it."""
    up.env.update(DYNAQUANT_CALIBRATE="1", DYNAQUANT_CALIBRATION_SECONDS="120", DYNAQUANT_DEFAULT_MAX_TOKENS="16")
    up.start()
    wait_until(lambda: models_cached(up) > 0, 60, "calibration to load a model")
    cleared = requests.post(up.url("/api/v1/quantization/cache/clear"), timeout=30)
    assert cleared.status_code == 200 and cleared.json()["status"] == "success", cleared.text
    at = time.monotonic()
    wait_until(lambda: models_cached(up) == 0, 10, "the clear to reach the worker's heartbeat")
    for mark in (3, 30):
        time.sleep(max(0.0, at + mark - time.monotonic()))
        assert models_cached(up) == 0, f"{mark} s after the clear a model was loaded again"
    job = up.wait_job(up.submit(text="Rivers carry sand to the sea and drop it where the water slows.", max_tokens=16))
    assert job["status"] == "succeeded", job
    wait_until(lambda: models_cached(up) > 0, 30, "the job's model in the cache")


def test_prepare_builds_every_level_with_progress(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNAQUANT_")}
    env["DYNAQUANT_VARIANTS_DIR"] = str(tmp_path)
    argv = [sys.executable, "-m", "dynaquant.cli", "prepare", SMALL_MODEL]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "MB" in line]
    assert [line.split()[1] for line in lines] == ["fp16", "int8", "int4", "int2"], done.stdout
    assert sum("built in" in line for line in lines) == 3 and "on disk" in lines[2]
    assert {p.name.rsplit(".", 2)[-2] for p in tmp_path.glob("*.gguf")} == {"F16", "Q8_0", "Q2_K"}
    again = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("on disk") == 4, "a second prepare builds nothing"
    unknown = subprocess.run([*argv[:-1], "no-such-model"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert unknown.returncode == 1 and "unknown model 'no-such-model'" in unknown.stderr
