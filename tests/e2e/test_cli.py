"""The `dynaquant` command line and the async Python client against a running service (real processes)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from dynaquant.api import ServiceError
from dynaquant.client import UnifiedModelClient, get_unified_client
from tests.e2e.conftest import Service, free_port
from worker.policy import LEVELS

pytestmark = [pytest.mark.e2e, pytest.mark.model]

TEXTS = [
    "Photosynthesis is the process by which green plants use sunlight to make food from carbon dioxide and water.",
    "The French Revolution was a period of radical political and societal change in France that began in 1789.",
    "Plate tectonics is the theory that Earth's outer shell is divided into large plates that slowly move.",
    "Inflation is a general increase in prices, which reduces the purchasing power of money over time.",
    "The mitochondrion is an organelle that uses aerobic respiration to generate the energy a cell needs.",
]


def dynaquant(service: Service | None, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the real console command (python -m dynaquant.cli) in the service's environment."""
    env = dict(service.env) if service else {}
    if service:
        env["DYNAQUANT_URL"] = service.base_url
    argv = [sys.executable, "-m", "dynaquant.cli", *args]
    return subprocess.run(argv, env=env or None, capture_output=True, text=True, timeout=timeout)


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_batch_of_ten_then_status_and_job(service: Service, tmp_path: Path) -> None:
    service.start_worker()
    service.start_web()
    lines = []
    for i in range(10):
        job = {"text": TEXTS[i % 5], "subject": "Science", "quality_check": i >= 4}  # 6 gated, 4 checked only
        if i % 2:
            job |= {"grade_level": 4 + i % 5, "max_tokens": 16}  # the others take --grade-level/--max-tokens
        lines.append(json.dumps(job))
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"

    done = dynaquant(
        service, "submit", str(batch), "--out", str(out), "--grade-level", "6", "--max-tokens", "16", timeout=360
    )
    assert done.returncode == 0, done.stderr
    rows = results(out)
    assert [r["line"] for r in rows] == list(range(1, 11))
    assert all(r["status"] == "succeeded" and r["result"]["text"].strip() for r in rows), rows
    assert all(r["result"]["level"] in LEVELS and r["job_id"] for r in rows)
    assert "10/10 done" in done.stderr and "10 succeeded" in done.stderr
    for row in rows:  # the quality report of each output, on its line
        assert row["verdict"] in ("pass", "needs_review") and row["quality"] == row["result"]["quality"]
        assert row["quality"]["target_grade"] == row["result"]["grade_level"]
        assert row["result"]["gate"]["enabled"] == (row["line"] > 4)
    passed = sum(r["verdict"] == "pass" for r in rows)
    assert f"quality: {passed} pass, {10 - passed} needs review" in done.stderr

    status = dynaquant(service, "status", "--url", service.base_url)
    assert status.returncode == 0, status.stderr
    assert "w1@e2e" in status.stdout and "gemma-3-270m" in status.stdout and "queue " in status.stdout

    job = dynaquant(service, "job", rows[0]["job_id"])
    assert job.returncode == 0 and "succeeded" in job.stdout and rows[0]["result"]["level"] in job.stdout
    assert f"quality:  {rows[0]['verdict'].replace('_', ' ')}; grade" in job.stdout
    raw = dynaquant(service, "job", rows[0]["job_id"], "--json")
    assert json.loads(raw.stdout)["result"]["text"] == rows[0]["result"]["text"]


def test_a_bad_line_is_reported_and_nothing_is_submitted(service: Service, tmp_path: Path) -> None:
    service.start_web()  # no worker: anything submitted would still be waiting in the queue
    lines = [json.dumps({"text": TEXTS[i % 5], "grade_level": 5}) for i in range(9)]
    lines.insert(6, json.dumps({"text": TEXTS[0], "grade_level": 14}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"

    done = dynaquant(service, "submit", str(bad), "--out", str(out))
    assert done.returncode == 2
    assert "line 7: grade_level must be an integer from 1 to 12" in done.stderr and "got 14" in done.stderr
    assert "nothing was submitted" in done.stderr

    unknown_model = tmp_path / "model.jsonl"  # passes the local check; the service refuses the whole batch
    unknown_model.write_text(lines[0] + "\n" + json.dumps({"text": "x", "grade_level": 3, "model": "nope"}) + "\n")
    refused = dynaquant(service, "submit", str(unknown_model), "--out", str(out))
    assert refused.returncode == 2 and "line 2: model unknown model 'nope'" in refused.stderr, refused.stderr

    assert not out.exists()
    assert service.redis.keys("dq:job:*") == [] and service.redis.keys("dq:batch:*") == []
    queue = requests.get(service.url("/api/v1/quantization/status"), timeout=5).json()["queue"]
    assert queue["depth"] == 0

    service.stop("web")  # now a service that wants a token, and a client that stops waiting
    service.start_web(extra_env={"API_TOKEN": "s3cret"})
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    denied = dynaquant(service, "submit", str(good), "--out", str(out))
    assert denied.returncode == 1 and "DYNAQUANT_TOKEN" in denied.stderr and not out.exists()
    waited = dynaquant(service, "submit", str(good), "--out", str(out), "--token", "s3cret", "--timeout", "1")
    assert waited.returncode == 1 and "stopped waiting" in waited.stderr
    assert [(r["line"], r["status"]) for r in results(out)] == [(1, "queued"), (2, "queued")]


def test_csv_file_and_the_async_client(service: Service, tmp_path: Path) -> None:
    service.start_worker()
    service.start_web()
    table = tmp_path / "texts.csv"
    table.write_text(
        "text,grade_level,subject,task_priority,max_tokens,quality_check\n"
        f'"{TEXTS[0]}",5,Science,speed,16,false\n'
        f'"{TEXTS[1]}, in short",7,History,,16,\n'
        f'"{TEXTS[3]}",4,Economics,quality,16,TRUE\n',
        encoding="utf-8",
    )
    out = tmp_path / "csv-results.jsonl"
    done = dynaquant(service, "submit", str(table), "-o", str(out), "--url", service.base_url, "--quiet")
    assert done.returncode == 0, done.stderr
    rows = results(out)
    assert [r["line"] for r in rows] == [2, 3, 4]
    assert all(r["status"] == "succeeded" and r["result"]["text"].strip() for r in rows)
    gates = [r["result"]["gate"] for r in rows]
    assert [g["enabled"] for g in gates] == [False, True, True], "quality_check false switched the gate off"
    assert gates[0]["drafts"] == 1 and rows[0]["quality"]["verdict"] in ("pass", "needs_review")

    async def simplify_two() -> list[dict]:
        client = get_unified_client(url=service.base_url)
        return list(
            await asyncio.gather(
                client.simplify_text(text=TEXTS[2], grade_level=5, subject="Geography", max_tokens=16),
                client.simplify_text(
                    text=TEXTS[4], grade_level=8, subject="Biology", task_priority="quality", max_tokens=16
                ),
            )
        )

    first, second = asyncio.run(simplify_two())
    for result in (first, second):
        assert result["text"].strip() and result["level"] in LEVELS and result["model"] == "gemma-3-270m"
    assert first["subject"] == "Geography" and second["grade_level"] == 8

    with pytest.raises(ServiceError) as refused:
        asyncio.run(UnifiedModelClient(service.base_url).simplify_text(text="x", grade_level=14, subject="Science"))
    assert refused.value.status == 400 and refused.value.field == "grade_level"


def test_an_unreachable_service_is_explained() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = dynaquant(None, "status", "--url", url, timeout=30)
    assert done.returncode == 1
    assert f"no dynaquant service answers at {url}" in done.stderr and "dynaquant up" in done.stderr


def test_review_verdicts_reach_the_profile_and_export_as_hand_labels(service: Service, tmp_path: Path) -> None:
    service.start_worker()
    service.start_web()
    body = {"text": f"{TEXTS[0]}\n\n{TEXTS[1]}", "grade_level": 5, "max_tokens": 24, "force_quantization": "int4"}
    job_id = requests.post(service.url("/api/v1/jobs"), json=body, timeout=10).json()["job_id"]
    job = service.wait_job(job_id)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["host"] == "e2e" and result["device"] == "cpu"  # where its figures (and verdicts) are counted
    levels = [p["level"] for p in result["paragraphs"]]
    review = service.url(f"/api/v1/jobs/{job_id}/review")
    assert requests.post(review, json={"action": "accept", "paragraph": 1}, timeout=30).status_code == 200
    edited = {"action": "edit", "paragraph": 2, "text": "The French Revolution began in France in 1789."}
    answer = requests.post(review, json=edited, timeout=30)
    assert answer.status_code == 200 and answer.json()["review_state"] == "edited", answer.text
    profiles = requests.get(service.url("/api/v1/quantization/profiles?model=gemma-3-270m"), timeout=10).json()
    reviewed = {p["level"]: p["reviewed"] for p in profiles["profiles"] if p["host"] == "e2e"}
    assert sum(reviewed.values()) == 2 and all(reviewed[level] for level in levels)

    out = tmp_path / "labels.jsonl"
    done = dynaquant(service, "labels", "export", "--out", str(out), "--model", "gemma-3-270m")
    assert done.returncode == 0 and "2 labels written" in done.stderr, done.stderr
    rows = results(out)
    assert [(r["pid"], r["level"], r["labels"]["teacher_accept"]) for r in rows] == [
        (f"{job_id}#1", levels[0], True), (f"{job_id}#2", levels[1], False),
    ]  # fmt: skip
    assert rows[1]["edited"] == edited["text"] and rows[0]["source"] == TEXTS[0]
    shown = dynaquant(service, "job", job_id)
    assert "review:   edited, 2 of 2 paragraphs decided" in shown.stdout and "text: (as reviewed)" in shown.stdout
    exported = requests.get(service.url(f"/api/v1/jobs/{job_id}/export?format=txt"), timeout=10).text
    assert exported.split("\n\n")[1].strip() == edited["text"]
