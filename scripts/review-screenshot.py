"""The review page's screenshot in the docs (docs/review-page.png), made on a running service.

    make run &                                      # or `dynaquant up`: the default model
    .venv/bin/python scripts/review-screenshot.py   # [--url http://127.0.0.1:8000] [--out docs/review-page.png]

Submits a 4-paragraph text at grade 5, waits for it, accepts the first paragraph and edits the second through the
review API (as a reviewer would on the page), then opens the page in headless Chromium (Debian's, via Playwright)
and saves it whole at 1280 px.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PARAGRAPHS = [
    "In 1969, Neil Armstrong and Buzz Aldrin became the first people to walk on the Moon. Their spacecraft, "
    "Apollo 11, was launched from Florida and travelled about 384,000 kilometres to reach it.",
    "Plants make their own food through photosynthesis. Their leaves absorb sunlight, take in carbon dioxide "
    "from the air and release oxygen as a by-product, which animals then breathe.",
    "The ancient Egyptians built the Great Pyramid of Giza around 2560 BC for the pharaoh Khufu. It remained the "
    "tallest structure made by humans for more than 3,800 years.",
    "Water boils at 100 degrees Celsius at sea level. As it is heated, its molecules move faster and faster until "
    "they escape from the surface into the air as water vapour.",
]
EDIT = (
    "Plants make their own food. This is called photosynthesis. Their leaves take in sunlight and carbon dioxide "
    "from the air. Then they give off oxygen, which animals breathe."
)


def main() -> int:
    """Make the screenshot; 0 when it is written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "review-page.png")
    parser.add_argument("--token", help="the service's API_TOKEN, if it sets one")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    body = {"text": "\n\n".join(PARAGRAPHS), "grade_level": 5, "subject": "Science"}
    job_id = requests.post(f"{args.url}/api/v1/jobs", json=body, headers=headers, timeout=30).json()["job_id"]
    started = time.monotonic()
    while (job := requests.get(f"{args.url}/api/v1/jobs/{job_id}", timeout=30).json())["status"] in (
        "queued",
        "running",
    ):
        time.sleep(1)
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
    print(f"job {job_id} done in {time.monotonic() - started:.0f} s at {job['result']['level']}")
    review = f"{args.url}/api/v1/jobs/{job_id}/review"
    for action in ({"action": "accept", "paragraph": 1}, {"action": "edit", "paragraph": 2, "text": EDIT}):
        answer = requests.post(review, json={**action, "reviewer": "Ms Rivera"}, headers=headers, timeout=60)
        answer.raise_for_status()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless=new", "--no-sandbox"])
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(f"{args.url}/jobs/{job_id}/review")
        page.locator('section.para[data-index="2"][data-state="edited"]').wait_for(timeout=30_000)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
