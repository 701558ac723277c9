"""The dashboard in headless Chromium (Debian's, driven by Playwright): live worker, form, clear cache, banners."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import OUTPUT, ROOT, Service, Up, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.model, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEXT = (
    "Photosynthesis is the process by which green plants use sunlight to synthesize foods from carbon dioxide "
    "and water, generating oxygen as a by-product."
)
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium (installed by scripts/ensure-chromium when missing), headless."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not CHROMIUM.exists():
        done = subprocess.run([ROOT / "scripts" / "ensure-chromium"], capture_output=True, text=True)
        if done.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(f"Chromium is missing and could not be installed: {done.stderr.strip()} (or: -m 'not browser')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh 1280 px wide page that records script errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.on("console", lambda msg: tab.errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield tab
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / name), full_page=True)


def run_job(service: Service) -> dict[str, Any]:
    body = {"text": TEXT, "grade_level": 5, "subject": "Science", "max_tokens": 16}
    response = requests.post(service.url("/api/v1/jobs"), json=body, timeout=10)
    assert response.status_code == 202, response.text
    job = service.wait_job(response.json()["job_id"])
    assert job["status"] == "succeeded", job
    return job


def test_dashboard_shows_the_worker_runs_a_text_clears_the_cache_and_sees_the_worker_go(
    service: Service, page: Any
) -> None:
    service.start_worker()
    service.start_web()
    job = run_job(service)
    level = job["result"]["level"]

    response = page.goto(service.url("/"))
    assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    card = page.locator('article.worker[data-worker="w1@e2e"]')
    card.wait_for(timeout=WAIT_MS)
    assert card.locator("svg.gauge").count() == 1 and "band edges at 40%, 60%, 75%, 85%" in (
        card.locator("svg.gauge").get_attribute("aria-label") or ""
    )
    cached = card.locator("table.cached-models tbody tr")
    cached.filter(has_text="gemma-3-270m").wait_for(timeout=WAIT_MS)
    assert cached.first.locator(".level").inner_text() == level
    assert card.locator(".current-levels li").filter(has_text="gemma-3-270m").locator(".level").count() == 1
    why = card.locator('.level-choice[data-model="gemma-3-270m"] .reasons li')
    assert why.first.inner_text().startswith("matrix: "), "the card says why the model is held at its level"
    row = page.locator(f'#jobs-body tr[data-job-id="{job["job_id"]}"]')
    row.wait_for(timeout=WAIT_MS)
    assert level in row.inner_text()
    report = job["result"]["quality"]
    assert row.locator(".quality").get_attribute("data-verdict") == report["verdict"]
    assert f"{report['grade']:.1f} for 5" in row.locator(".grade-vs-target").inner_text()
    assert row.locator(".reasons li").all_inner_texts() == report["reasons"]
    assert page.locator("#level-chart circle.job-dot").count() >= 1  # seeded from recent jobs
    assert page.locator("#queue-chart svg").count() == 1
    assert page.locator("#banner").is_hidden()
    profile = page.locator(f'#profiles-body tr[data-host="e2e"][data-model="gemma-3-270m"][data-level="{level}"]')
    profile.wait_for(timeout=WAIT_MS)  # the job measured its level on this host
    assert profile.locator(".jobs").inner_text() == "1" and "1 real" in (
        profile.locator(".jobs").get_attribute("title") or ""
    )
    assert profile.locator(".decode").inner_text() != "–" and " MB" in profile.locator(".memory").inner_text()
    shot(page, "dashboard.png")

    page.select_option("#jobs-verdict", "verdict=needs_review&review_state=unreviewed")
    page.locator("#jobs-filter-note", has_text="needs review, not reviewed yet").wait_for(timeout=WAIT_MS)
    shown = page.locator("#jobs-body tr[data-job-id]")
    verdicts = [shown.nth(i).locator(".quality").get_attribute("data-verdict") for i in range(shown.count())]
    assert set(verdicts) <= {"needs_review"}, "the filter shows only jobs that need review"
    assert (row.count() == 1) == (report["verdict"] == "needs_review")
    shot(page, "dashboard-needs-review.png")
    page.select_option("#jobs-verdict", "")
    row.wait_for(timeout=WAIT_MS)

    page.fill("#f-text", TEXT)
    page.select_option("#f-grade", "4")
    page.fill("#f-subject", "Biology")
    page.select_option("#f-task-priority", "speed")
    page.click(".more summary")
    page.fill("#f-max-tokens", "24")
    page.click("#simplify-submit")
    page.locator("#result").wait_for(state="visible", timeout=60_000)
    assert page.locator("#result-text").inner_text().strip()
    assert page.locator("#result-facts .level").inner_text() in ("fp16", "int8", "int4", "int2")
    assert page.locator("#result-facts .quality").get_attribute("data-verdict") in ("pass", "needs_review")
    assert page.locator("#form-status").inner_text() == "Done."
    shot(page, "dashboard-result.png")

    page.click("#clear-cache")
    card.locator("table.cached-models tbody tr.empty-row").wait_for(timeout=WAIT_MS)
    assert card.locator("table.cached-models tbody tr").count() == 1
    assert "Cache cleared" in page.locator("#cache-message").inner_text()

    service.stop("w1")
    banner = page.locator('#banner[data-kind="no-workers"]')
    banner.wait_for(state="visible", timeout=12_000)  # heartbeat TTL (5 s here) plus a poll or two
    assert "No worker is alive" in banner.inner_text()

    probe = '<img src="x" id="xss-probe"> & <b>bold</b>'
    queued = requests.post(service.url("/api/v1/jobs"), json={"text": probe, "grade_level": 3}, timeout=10)
    assert queued.status_code == 202
    queued_row = page.locator(f'#jobs-body tr[data-job-id="{queued.json()["job_id"]}"]')
    queued_row.wait_for(timeout=WAIT_MS)
    assert probe in queued_row.inner_text() and page.locator("#xss-probe").count() == 0
    shot(page, "dashboard-no-worker.png")
    assert page.errors == []


def test_dashboard_scripts_never_write_html() -> None:
    scripts = sorted((ROOT / "webapp" / "static").glob("*.js"))
    assert scripts
    for script in scripts:
        source = script.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{script.name} uses {sink}"


def test_dashboard_says_plainly_when_redis_is_unreachable(service: Service, page: Any) -> None:
    service.start_web(extra_env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    page.goto(service.url("/"))
    banner = page.locator('#banner[data-kind="redis"]')
    banner.wait_for(state="visible", timeout=WAIT_MS)
    assert "Redis is unreachable" in banner.inner_text()
    assert "Unknown while Redis is unreachable" in page.locator("#workers").inner_text()
    shot(page, "dashboard-redis-down.png")


def test_dashboard_says_the_service_runs_degraded_when_dynaquant_up_gives_a_process_up(up: Up, page: Any) -> None:
    with socket.socket() as taken:  # Flower's port is taken: it exits at each start until it is given up
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up.start("--flower-port", str(port), workers=1)
        page.goto(up.url("/"))
        card = page.locator(f'article.worker[data-worker="{up.node("worker1")}"]')
        card.wait_for(timeout=WAIT_MS)
        wait_until(lambda: up.processes().get("flower", {}).get("state") == "given_up", 120, "flower given up")
        banner = page.locator('#banner[data-kind="degraded"]', has_text="gave up")  # earlier: "restarting in"
        banner.wait_for(state="visible", timeout=WAIT_MS)
    shown = banner.inner_text()
    assert shown.startswith("The service runs degraded.") and "flower gave up after 5 failed starts" in shown, shown
    assert f"is port {port} free?" in shown, shown
    threads = up.workers()[up.node("worker1")]["threads"]
    assert card.locator("dl.facts dt:text-is('Threads') + dd").inner_text() == str(threads)
    shot(page, "dashboard-degraded.png")
    assert page.errors == []
