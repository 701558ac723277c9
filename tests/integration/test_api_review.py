"""Review over HTTP on a real Redis: the view with its marks, actions stored with who and when, the reviewed
result and export, labels and profile counts, the redraft through the queue, and bad input that changes nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask.testing import FlaskClient

from tests.states import job_result
from worker.contracts import ParagraphResult
from worker.jobs import JOB_KEY, JobStore
from worker.labels import LABELS_KEY
from worker.profiles import ProfileStore, Sample
from worker.quality import check
from worker.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from tests.webapp_fixtures import ErrorCheck

pytest_plugins = ["tests.webapp_fixtures"]

SOURCES = [
    "The Magna Carta was sealed by King John in 1215 at Runnymede. It limited the power of the king.",
    "Volcanoes form where magma rises through cracks in the crust. Some erupt often, others sleep for centuries.",
    "The heart pumps blood through arteries to every part of the body. Veins carry the blood back to the heart.",
    "Bees carry pollen from flower to flower. This helps plants make seeds and fruit.",
]
OUTPUTS = [
    "In 1215 King John agreed to the Magna Carta. It made the king follow rules.",
    "Volcanoes are mountains that were discovered by Professor Smith in 1953 and they are extraordinarily "
    "dangerous because magma, which is very hot melted rock from deep inside the planet, comes out of them.",
    "The heart pushes blood to the body. Veins bring it back.",
    "Bees move pollen between flowers. This helps plants make seeds.",
]
LEVELS = ["int4", "int2", "int4", "int4"]
GRADE = 4
HOST, DEVICE, MODEL = "host-a", "cpu", DEFAULT_MODEL


def finished_job(client: FlaskClient, redis_db: redis.Redis, priority: int = 3) -> str:
    """A 4-paragraph job submitted over HTTP whose worker stored these drafts (each with the real checker's report)."""
    text = "\n\n".join(SOURCES)
    body = {"text": text, "grade_level": GRADE, "subject": "Science", "priority": priority}
    job_id: str = client.post("/api/v1/jobs", json=body).get_json()["job_id"]
    paragraphs = [
        ParagraphResult(index=i + 1, text=out, level=level, quality=check(src, out, GRADE))  # type: ignore[arg-type]
        for i, (src, out, level) in enumerate(zip(SOURCES, OUTPUTS, LEVELS, strict=True))
    ]
    whole = check(text, "\n\n".join(OUTPUTS), GRADE)
    result = job_result(
        text="\n\n".join(OUTPUTS), level="int4", model=MODEL, grade_level=GRADE, quality=whole, host=HOST,
        device=DEVICE, paragraphs=[p.model_dump() for p in paragraphs],
    )  # fmt: skip
    store = JobStore(redis_db)
    store.start(job_id, f"worker-1@{HOST}")
    assert store.succeed(job_id, result)
    return job_id


def review(client: FlaskClient, job_id: str, **body: Any) -> Any:
    return client.post(f"/api/v1/jobs/{job_id}/review", json=body)


def snapshot(redis_db: redis.Redis, job_id: str) -> tuple[dict[Any, Any], int]:
    """What a refused request must leave as it was: the job's record and the labels kept."""
    return redis_db.hgetall(JOB_KEY.format(job_id)), redis_db.llen(LABELS_KEY)


def test_the_view_marks_each_finding_where_it_is(client: FlaskClient, redis_db: redis.Redis) -> None:
    job_id = finished_job(client, redis_db)
    view = client.get(f"/api/v1/jobs/{job_id}/review").get_json()
    assert view["review_state"] == "unreviewed" and view["updated_at"] is None
    assert [p["index"] for p in view["paragraphs"]] == [1, 2, 3, 4]
    assert [p["source"] for p in view["paragraphs"]] == SOURCES
    second = view["paragraphs"][1]
    text = second["text"]
    marked = {(m["kind"], text[m["start"] : m["end"]]) for m in second["marks"]}
    assert ("invented", "1953") in marked and ("invented", "Smith") in marked
    assert any(kind == "long_sentence" and span == text for kind, span in marked)  # one 34-word sentence
    assert second["level"] == "int2" and second["draft_verdict"] == "needs_review"
    lost = {(m["kind"], second["source"][m["start"] : m["end"]]) for m in second["source_marks"]}
    assert ("missing", "crust") in lost
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["review_state"] == "unreviewed"


def test_accept_edit_and_accept_the_rest_are_stored_and_the_result_follows(
    client: FlaskClient, redis_db: redis.Redis
) -> None:
    job_id = finished_job(client, redis_db)
    answer = review(client, job_id, action="accept", paragraph=1, reviewer="Ms Lee")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["review_state"] == "in_review"
    edited = "Volcanoes form where hot rock comes up through cracks. Some erupt often. Others sleep for 1999 years."
    answer = review(client, job_id, action="edit", paragraph=2, text=edited, reviewer="Ms Lee")
    assert answer.status_code == 200, answer.get_json()
    report = answer.get_json()["paragraph"]["quality"]
    assert report["invented"]["numbers"] == ["1999"]  # the edit is re-checked, not trusted
    job = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["review_state"] == "in_review"
    states = [p["state"] for p in job["review"]["paragraphs"]]
    assert states == ["accepted", "edited", "unreviewed", "unreviewed"]
    assert job["result"]["text"].split("\n\n") == [OUTPUTS[0], edited, OUTPUTS[2], OUTPUTS[3]]
    assert job["result"]["paragraphs"][1]["text"] == edited
    assert job["review"]["paragraphs"][1]["draft"] == OUTPUTS[1]
    action = job["review"]["actions"][1]
    assert (action["action"], action["reviewer"], action["before"], action["after"]) == (
        "edit", "Ms Lee", OUTPUTS[1], edited,
    )  # fmt: skip
    answer = review(client, job_id, action="accept")
    assert answer.status_code == 200 and answer.get_json()["review_state"] == "edited"
    job = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert [p["state"] for p in job["review"]["paragraphs"]] == ["accepted", "edited", "accepted", "accepted"]
    assert [a["action"] for a in job["review"]["actions"]] == ["accept", "edit", "accept"]


def test_a_job_accepted_as_written_is_accepted(client: FlaskClient, redis_db: redis.Redis) -> None:
    job_id = finished_job(client, redis_db)
    assert review(client, job_id, action="accept").get_json()["review_state"] == "accepted"
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["result"]["text"] == "\n\n".join(OUTPUTS)


def test_verdicts_are_counted_in_the_profile_of_the_level_that_wrote_the_paragraph(
    client: FlaskClient, redis_db: redis.Redis
) -> None:
    profiles = ProfileStore(redis_db, HOST, DEVICE)
    for passed in (1.0, 0.0):
        profiles.record(MODEL, Sample("int2", seconds=1.0, passed=passed))  # the checker passed half of int2's drafts
    job_id = finished_job(client, redis_db)
    review(client, job_id, action="accept", paragraph=1)  # int4, accepted
    review(client, job_id, action="edit", paragraph=2, text="Volcanoes let hot rock out.")  # int2, flagged, changed
    review(client, job_id, action="accept", paragraph=2)  # a second decision on paragraph 2 is not counted again
    found = client.get(f"/api/v1/quantization/profiles?model={MODEL}").get_json()["profiles"]
    by_level = {p["level"]: p for p in found}
    assert (by_level["int4"]["reviewed"], by_level["int4"]["review_accept_rate"]) == (1, 1.0)
    int2 = by_level["int2"]
    assert (int2["reviewed"], int2["review_accept_rate"], int2["pass_rate"]) == (1, 0.0, 0.5)
    # no pass reviewed yet: passes count as the checker says; the one flag reviewed was not accepted
    assert int2["reviewed_pass_rate"] == 0.5
    other = finished_job(client, redis_db)
    review(client, other, action="accept", paragraph=2)  # int2's flagged draft taken as it is this time
    int2 = client.get(f"/api/v1/quantization/profiles?model={MODEL}").get_json()["profiles"]
    int2 = next(p for p in int2 if p["level"] == "int2")
    assert (int2["reviewed"], int2["review_accept_rate"], int2["reviewed_pass_rate"]) == (2, 0.5, 0.75)
    assert profiles.level_stats(MODEL)["int2"].pass_rate == 0.75  # what the policy weighs


def test_labels_export_in_the_hand_label_format(client: FlaskClient, redis_db: redis.Redis) -> None:
    job_id = finished_job(client, redis_db)
    review(client, job_id, action="accept", paragraph=1, reviewer="A")
    review(client, job_id, action="edit", paragraph=2, text="Volcanoes let hot rock out.", reviewer="A")
    answer = client.get("/api/v1/reviews/labels")
    assert answer.status_code == 200
    rows = answer.get_json()["labels"]
    assert answer.get_json()["count"] == 2
    assert [(r["pid"], r["level"], r["labels"]["teacher_accept"]) for r in rows] == [
        (f"{job_id}#1", "int4", True), (f"{job_id}#2", "int2", False),
    ]  # fmt: skip
    first, second = rows
    assert (first["source"], first["output"], first["grade_level"], first["model"]) == (
        SOURCES[0], OUTPUTS[0], GRADE, MODEL,
    )  # fmt: skip
    assert second["edited"] == "Volcanoes let hot rock out." and second["checker_verdict"] == "needs_review"
    assert client.get("/api/v1/reviews/labels?model=other").get_json() == {"labels": [], "count": 0}


def test_export_gives_the_reviewed_paragraphs_in_order(client: FlaskClient, redis_db: redis.Redis) -> None:
    job_id = finished_job(client, redis_db)
    review(client, job_id, action="edit", paragraph=3, text="# The heart pumps blood.")
    md = client.get(f"/api/v1/jobs/{job_id}/export?format=md")
    assert md.status_code == 200 and md.mimetype == "text/markdown"
    blocks = md.get_data(as_text=True).strip().split("\n\n")
    heart = "# The heart pumps blood."
    assert blocks == ["# Science, simplified for grade 4", OUTPUTS[0], OUTPUTS[1], "\\" + heart, OUTPUTS[3]]
    txt = client.get(f"/api/v1/jobs/{job_id}/export?format=txt")
    assert txt.mimetype == "text/plain"
    assert txt.get_data(as_text=True).strip().split("\n\n") == [OUTPUTS[0], OUTPUTS[1], heart, OUTPUTS[3]]
    assert f'filename="{job_id}.txt"' in txt.headers["Content-Disposition"]


def test_ask_again_queues_a_redraft_at_the_jobs_priority_and_its_text_can_be_taken(
    client: FlaskClient, redis_db: redis.Redis, api_error: ErrorCheck
) -> None:
    job_id = finished_job(client, redis_db, priority=2)
    answer = review(client, job_id, action="redraft", paragraph=2)
    assert answer.status_code == 202, answer.get_json()
    redraft_id = answer.get_json()["redraft_job"]
    redraft = client.get(answer.get_json()["status_url"]).get_json()
    assert redraft["status"] == "queued" and redraft["priority"] == 2
    assert (redraft["request"]["text"], redraft["request"]["force_quantization"]) == (SOURCES[1], "int4")
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["review"]["paragraphs"][1]["state"] == "redrafting"
    api_error(review(client, job_id, action="use_redraft", paragraph=2), 409, "paragraph")
    api_error(review(client, job_id, action="redraft", paragraph=2), 409, "paragraph")
    new_text = "Volcanoes form where hot rock comes up through cracks. Some erupt often."
    store = JobStore(redis_db)
    store.start(redraft_id, f"worker-1@{HOST}")
    drafts = [
        {"attempt": n, "strategy": "draft" if n == 1 else "sample", "level": "int4", "grade": 4.0,
         "verdict": "pass" if n == 2 else "needs_review", "seconds": 0.5}
        for n in (1, 2)
    ]  # fmt: skip
    report = check(SOURCES[1], new_text, GRADE)
    store.succeed(redraft_id, job_result(text=new_text, level="int4", quality=report, attempts=drafts))
    answer = review(client, job_id, action="use_redraft", paragraph=2)
    assert answer.status_code == 200, answer.get_json()
    paragraph = answer.get_json()["paragraph"]
    assert (paragraph["state"], paragraph["text"], paragraph["level"]) == ("redrafted", new_text, "int4")
    shown = client.get(f"/api/v1/jobs/{job_id}/review").get_json()["paragraphs"][1]
    assert [(a["attempt"], a["verdict"]) for a in shown["attempts"]] == [(1, "needs_review"), (2, "pass")]
    labels = [json.loads(raw) for raw in reversed(redis_db.lrange(LABELS_KEY, 0, -1))]
    assert [(r["level"], r["output"], r["labels"]["teacher_accept"]) for r in labels] == [
        ("int2", OUTPUTS[1], False), ("int4", new_text, True),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "accept", "paragraph": 9}, "paragraph"),
        ({"action": "accept", "paragraph": 0}, "paragraph"),
        ({"action": "edit", "paragraph": 1, "text": "   "}, "text"),
        ({"action": "edit", "paragraph": 1}, "text"),
        ({"action": "edit", "paragraph": 1, "text": "x" * 200_000}, "text"),
        ({"action": "edit", "text": "A new text."}, "paragraph"),
        ({"action": "accept", "paragraph": 1, "text": "A new text."}, "text"),
        ({"action": "accept", "paragraph": 1, "level": "int8"}, "level"),
        ({"action": "redraft", "paragraph": 1, "level": "int3"}, "level"),
        ({"action": "approve", "paragraph": 1}, "action"),
        ({"action": "accept", "paragraph": 1, "reviewer": "x" * 101}, "reviewer"),
        ({"action": "accept", "paragraph": 1, "comment": "nice"}, "comment"),
        ({"paragraph": 1}, "action"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    client: FlaskClient, redis_db: redis.Redis, api_error: ErrorCheck, body: dict[str, Any], field: str
) -> None:
    job_id = finished_job(client, redis_db)
    review(client, job_id, action="accept", paragraph=3)
    before = snapshot(redis_db, job_id)
    api_error(review(client, job_id, **body), 400, field)
    assert snapshot(redis_db, job_id) == before


def test_unknown_or_unfinished_jobs_and_a_missing_token_are_refused(
    client: FlaskClient, make_app: Any, redis_db: redis.Redis, api_error: ErrorCheck
) -> None:
    api_error(review(client, "no-such-job", action="accept"), 404, "job_id")
    api_error(client.get("/api/v1/jobs/no-such-job/review"), 404, "job_id")
    queued = client.post("/api/v1/jobs", json={"text": SOURCES[0], "grade_level": 4}).get_json()["job_id"]
    api_error(review(client, queued, action="accept"), 409, "job_id")
    api_error(client.get(f"/api/v1/jobs/{queued}/export"), 409, "job_id")
    job_id = finished_job(client, redis_db)
    api_error(client.get(f"/api/v1/jobs/{job_id}/export?format=pdf"), 400, "format")
    guarded = make_app(API_TOKEN="s3cret").test_client()
    before = snapshot(redis_db, job_id)
    api_error(guarded.post(f"/api/v1/jobs/{job_id}/review", json={"action": "accept"}), 401, "Authorization")
    assert snapshot(redis_db, job_id) == before
    answer = guarded.post(
        f"/api/v1/jobs/{job_id}/review", json={"action": "accept"}, headers={"Authorization": "Bearer s3cret"}
    )
    assert answer.status_code == 200 and answer.get_json()["review_state"] == "accepted"


def test_the_openapi_document_has_the_review_api(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    post = doc["paths"]["/api/v1/jobs/{job_id}/review"]["post"]
    assert post["operationId"] == "reviewJob"
    schema = doc["components"]["schemas"]["ReviewRequest"]
    assert set(schema["properties"]) == {"action", "paragraph", "text", "level", "reviewer"}
    assert "/api/v1/jobs/{job_id}/export" in doc["paths"] and "/api/v1/reviews/labels" in doc["paths"]


def test_the_jobs_list_filters_by_review_state(
    client: FlaskClient, redis_db: redis.Redis, api_error: ErrorCheck
) -> None:
    first, second = finished_job(client, redis_db), finished_job(client, redis_db)
    review(client, first, action="accept")
    listed = client.get("/api/v1/jobs?verdict=needs_review&review_state=unreviewed").get_json()["jobs"]
    assert [job["job_id"] for job in listed] == [second]
    listed = client.get("/api/v1/jobs?review_state=accepted").get_json()["jobs"]
    assert [(job["job_id"], job["review_state"]) for job in listed] == [(first, "accepted")]
    api_error(client.get("/api/v1/jobs?review_state=done"), 400, "review_state")


def test_a_redraft_that_failed_can_be_asked_for_again(client: FlaskClient, redis_db: redis.Redis) -> None:
    job_id = finished_job(client, redis_db)
    first = review(client, job_id, action="redraft", paragraph=1, level="int2").get_json()["redraft_job"]
    JobStore(redis_db).fail(first, "internal_error", "the model crashed")
    again = review(client, job_id, action="redraft", paragraph=1)
    assert again.status_code == 202, again.get_json()
    paragraph = client.get(f"/api/v1/jobs/{job_id}").get_json()["review"]["paragraphs"][0]
    assert paragraph["redraft_job"] == again.get_json()["redraft_job"] != first
