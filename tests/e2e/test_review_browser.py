"""The review page in headless Chromium (Debian's, driven by Playwright): a four-paragraph document beside its
source with the checker's findings marked, an accept (after the token the service asks for), an edit, the
dashboard's link to the page, a new draft asked for and taken, and accept all remaining (screenshots in
test-output/; the one in docs is made on the default model by scripts/review-screenshot.py)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.e2e import test_dashboard_browser
from tests.e2e.conftest import OUTPUT, Service

pytestmark = [pytest.mark.e2e, pytest.mark.model, pytest.mark.browser]
browser = test_dashboard_browser.browser  # the dashboard test's fixtures: Chromium, and a 1280 px page
page = test_dashboard_browser.page

PARAGRAPHS = [
    "In 1969, Neil Armstrong and Buzz Aldrin became the first people to walk on the Moon. Their spacecraft, "
    "Apollo 11, was launched from Florida and travelled about 384,000 kilometres.",
    "Plants make their own food through photosynthesis. Their leaves absorb sunlight, take in carbon dioxide "
    "from the air and release oxygen as a by-product.",
    "The ancient Egyptians built the Great Pyramid of Giza around 2560 BC for the pharaoh Khufu. It remained the "
    "tallest structure made by humans for more than 3,800 years.",
    "Water boils at 100 degrees Celsius at sea level. As it is heated, its molecules move faster until they "
    "escape into the air as water vapour.",
]
GRADE = 4
NEW_TEXT = (
    "Plants make their own food by photosynthesis. Their leaves take in sunlight and carbon dioxide from the air. "
    "Then they let out oxygen."
)
TOKEN = "review-s3cret"
REVIEWER = "Ms Rivera"
SCREENSHOT = OUTPUT / "review-page.png"
WAIT_MS = 30_000
STORE_JS = "(items) => Object.entries(items).forEach(([k, v]) => sessionStorage.setItem(k, v))"
SEGMENTS_JS = """(node) => Array.from(node.childNodes).map((n) => [n.textContent,
    n.nodeType === Node.ELEMENT_NODE ? Array.from(n.classList) : []])"""


def submit_document(service: Service) -> dict[str, Any]:
    body = {
        "text": "\n\n".join(PARAGRAPHS),
        "grade_level": GRADE,
        "subject": "Science",
        "max_tokens": 60,
        "force_quantization": "int4",
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = requests.post(service.url("/api/v1/jobs"), json=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    job = service.wait_job(response.json()["job_id"], 180)
    assert job["status"] == "succeeded", job
    return job


def review_of(service: Service, job_id: str) -> dict[str, Any]:
    response = requests.get(service.url(f"/api/v1/jobs/{job_id}/review"), timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_marked(node: Any, text: str, marks: list[dict[str, Any]]) -> None:
    """The node shows `text` whole, and every character of each mark sits in a <mark> with its kind's class."""
    segments = node.evaluate(SEGMENTS_JS)
    assert "".join(s for s, _ in segments) == text
    covered: list[set[str]] = []
    for piece, classes in segments:
        covered += [set(classes)] * len(piece)
    for mark in marks:
        inside = covered[mark["start"] : mark["end"]]
        assert inside and all({"mk", f"mk-{mark['kind']}"} <= c for c in inside), (mark, segments)
    assert sum(1 for c in covered if c) == len({i for m in marks for i in range(m["start"], m["end"])})


def assert_paragraph_shown(section: Any, paragraph: dict[str, Any]) -> None:
    """A paragraph's section: its state, source and text with their marks, its gauge, level and drafts."""
    assert section.get_attribute("data-state") == paragraph["state"]
    assert_marked(section.locator('[data-role="source"]'), paragraph["source"], paragraph["source_marks"])
    assert_marked(section.locator('[data-role="text"]'), paragraph["text"], paragraph["marks"])
    report = paragraph["quality"]
    assert section.locator('[data-role="grade"]').inner_text().startswith(f"grade {report['grade']:.1f} for {GRADE}")
    assert section.locator("svg.grade-gauge circle.grade-point").count() == 1
    assert section.locator(".para-head .level").inner_text() == paragraph["level"]
    assert section.locator(".quality").get_attribute("data-verdict") == report["verdict"]
    assert section.locator(".quality .reasons li").all_inner_texts() == report["reasons"]
    attempts = len(paragraph["attempts"])
    assert section.locator('[data-role="drafts"]').inner_text().startswith(f"{attempts} draft"), attempts


def check_the_page_shows_the_review(service: Service, tab: Any, job_id: str) -> dict[str, Any]:
    review = review_of(service, job_id)
    assert review["review_state"] == "unreviewed" and len(review["paragraphs"]) == 4
    assert [p["source"] for p in review["paragraphs"]] == PARAGRAPHS
    kinds = {m["kind"] for p in review["paragraphs"] for m in [*p["marks"], *p["source_marks"]]}
    assert kinds, "the small model's drafts give the checker something to mark"

    response = tab.goto(service.url(f"/jobs/{job_id}/review"))
    assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    tab.locator('section.para[data-index="4"]').wait_for(timeout=WAIT_MS)
    assert tab.locator("section.para").count() == 4
    assert tab.locator("#review-state").get_attribute("data-state") == "unreviewed"
    for kind in kinds:
        assert tab.locator(f"section.para mark.mk.mk-{kind}").count() >= 1, kind
    for paragraph in review["paragraphs"]:
        assert_paragraph_shown(tab.locator(f'section.para[data-index="{paragraph["index"]}"]'), paragraph)
    assert tab.locator("#export-md").get_attribute("href") == f"/api/v1/jobs/{job_id}/export?format=md"
    return review


def accept_after_giving_the_token(tab: Any) -> None:
    first = tab.locator('section.para[data-index="1"]')
    assert tab.locator("#token-field").is_hidden() and tab.locator("#review-error").is_hidden()
    tab.fill("#reviewer", REVIEWER)
    first.locator('[data-action="accept"]').click()
    tab.locator("#review-error").wait_for(state="visible", timeout=WAIT_MS)
    assert "Authorization" in tab.locator("#review-error").inner_text()
    assert tab.locator("#token-field").is_visible() and first.get_attribute("data-state") == "unreviewed"
    tab.fill("#api-token", TOKEN)
    first.locator('[data-action="accept"]').click()
    tab.locator('section.para[data-index="1"][data-state="accepted"]').wait_for(timeout=WAIT_MS)
    assert tab.locator("#review-error").is_hidden()
    assert tab.locator("#review-state").get_attribute("data-state") == "in_review"


def edit_the_second_paragraph(service: Service, tab: Any, job_id: str, before: str) -> None:
    second = tab.locator('section.para[data-index="2"]')
    second.locator('[data-action="edit"]').click()
    area = second.locator('[data-role="edit-text"]')
    assert area.input_value() == before
    second.locator('[data-action="cancel"]').click()
    assert second.locator('[data-role="edit-text"]').count() == 0 and second.locator('[data-role="text"]').count()
    second.locator('[data-action="edit"]').click()
    area.fill(NEW_TEXT)
    second.locator('[data-action="save"]').click()
    tab.locator('section.para[data-index="2"][data-state="edited"]').wait_for(timeout=WAIT_MS)
    assert "saved and re-checked" in tab.locator("#review-status").inner_text()
    edited = review_of(service, job_id)["paragraphs"][1]
    assert edited["text"] == NEW_TEXT and edited["draft"] == before
    assert_paragraph_shown(second, edited)  # the re-checked report and its marks
    assert second.locator(".earlier summary").count() == 1  # the model's draft stays readable


def assert_job_after_edit(service: Service, job_id: str) -> None:
    job = service.job(job_id)
    assert job["review_state"] == "in_review"
    paragraphs = job["review"]["paragraphs"]
    assert paragraphs[0]["state"] == "accepted"
    assert paragraphs[1]["state"] == "edited" and paragraphs[1]["text"] == NEW_TEXT
    assert [p["state"] for p in paragraphs[2:]] == ["unreviewed", "unreviewed"]
    assert NEW_TEXT in job["result"]["text"]
    assert [(a["action"], a["paragraph"], a["reviewer"]) for a in job["review"]["actions"]] == [
        ("accept", 1, REVIEWER),
        ("edit", 2, REVIEWER),
    ]


def assert_columns_stack_on_a_narrow_screen(tab: Any) -> None:
    first = tab.locator('section.para[data-index="1"]')

    def boxes() -> tuple[dict[str, float], dict[str, float]]:
        return first.locator(".col-source").bounding_box(), first.locator(".col-result").bounding_box()

    source, result = boxes()
    assert result["x"] > source["x"] + source["width"] - 1 and result["y"] == source["y"], "side by side at 1280 px"
    tab.set_viewport_size({"width": 600, "height": 1000})
    source, result = boxes()
    assert result["x"] == source["x"] and result["y"] >= source["y"] + source["height"], "stacked at 600 px"
    test_dashboard_browser.shot(tab, "review-narrow.png")
    tab.set_viewport_size({"width": 1280, "height": 1000})


def ask_again_for_the_third(service: Service, tab: Any, job_id: str) -> None:
    third = tab.locator('section.para[data-index="3"]')
    level = third.locator('[data-role="redraft-level"]')
    assert level.input_value() == "int8", "a new draft runs one level more precise than int4 unless told"
    third.locator('[data-action="redraft"]').click()
    tab.locator('section.para[data-index="3"][data-state="redrafting"]').wait_for(timeout=WAIT_MS)
    use = third.locator('[data-action="use-redraft"]')
    use.wait_for(timeout=120_000)  # polled every 1.5 s until the redraft job succeeded
    written = service.job(third.locator('[data-role="redraft"]').get_attribute("data-job"))["result"]
    test_dashboard_browser.shot(tab, "review-redraft.png")
    box = third.locator('[data-role="redraft"]')
    assert box.locator(".quality").get_attribute("data-verdict") == written["quality"]["verdict"]
    use.click()
    tab.locator('section.para[data-index="3"][data-state="redrafted"]').wait_for(timeout=WAIT_MS)
    taken = review_of(service, job_id)["paragraphs"][2]
    assert taken["text"] == written["text"] and taken["level"] == "int8" and taken["redraft_job"] is None
    assert_paragraph_shown(third, taken)
    assert third.locator('[data-role="redraft"]').is_hidden()


def test_the_review_page_shows_the_findings_takes_an_edit_and_accepts_the_rest(
    service: Service,
    browser: Any,
    page: Any,
) -> None:
    service.start_worker()
    service.start_web(extra_env={"API_TOKEN": TOKEN})
    job_id = submit_document(service)["job_id"]
    review = check_the_page_shows_the_review(service, page, job_id)
    accept_after_giving_the_token(page)
    edit_the_second_paragraph(service, page, job_id, review["paragraphs"][1]["text"])
    assert_job_after_edit(service, job_id)
    refused = [e for e in page.errors if "status of 401" not in e]  # Chromium logs the refused write
    assert refused == [], page.errors

    # A second tab, as from the dashboard: the token it keeps is reused, and the row links to the review.
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    other = context.new_page()
    errors: list[str] = []
    other.on("pageerror", lambda exc: errors.append(str(exc)))
    other.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        other.goto(service.url("/"))
        other.evaluate(STORE_JS, {"dynaquant-token": TOKEN, "dynaquant-reviewer": REVIEWER})
        link = other.locator(f'#jobs-body tr[data-job-id="{job_id}"] a.review-link')
        link.wait_for(timeout=WAIT_MS)
        assert link.get_attribute("data-review-state") == "in_review" and "in review" in link.inner_text()
        reviewed = other.locator('#profiles-body tr[data-host="e2e"][data-level="int4"] .reviewed')
        reviewed.wait_for(timeout=WAIT_MS)  # paragraph 1 accepted, paragraph 2 edited: both drafts were int4's
        assert reviewed.inner_text() == "2 · 50% accepted", reviewed.inner_text()
        link.click()
        other.locator('section.para[data-index="2"][data-state="edited"]').wait_for(timeout=WAIT_MS)
        assert other.url == service.url(f"/jobs/{job_id}/review") and other.input_value("#reviewer") == REVIEWER
        assert other.locator("#token-field").is_hidden(), "the token the tab keeps is used without asking"
        OUTPUT.mkdir(exist_ok=True)
        other.screenshot(path=str(SCREENSHOT), full_page=True)
        assert_columns_stack_on_a_narrow_screen(other)

        ask_again_for_the_third(service, other, job_id)
        other.click("#accept-all")
        other.locator('#review-state[data-state="edited"]').wait_for(timeout=WAIT_MS)
        states = [s.get_attribute("data-state") for s in other.locator("section.para").all()]
        assert states == ["accepted", "edited", "redrafted", "accepted"]
        assert other.locator("#accept-all").is_disabled() and other.locator('[data-action="accept"]').count() == 0
        assert errors == []
    finally:
        context.close()
    job = service.job(job_id)
    assert job["review_state"] == "edited"
    assert [(a["action"], a["paragraph"], a["reviewer"]) for a in job["review"]["actions"][2:]] == [
        ("redraft", 3, REVIEWER),
        ("use_redraft", 3, REVIEWER),
        ("accept", None, REVIEWER),
    ]
    exported = requests.get(service.url(f"/api/v1/jobs/{job_id}/export?format=txt"), timeout=5)
    assert exported.status_code == 200 and NEW_TEXT in exported.text
