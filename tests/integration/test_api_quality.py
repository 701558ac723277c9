"""Quality where API users see it: each result's report, batch counts by verdict, the verdict filter, /metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
from flask.testing import FlaskClient

from tests.states import job_result
from worker.contracts import JobResult
from worker.jobs import JobStore
from worker.quality import check

if TYPE_CHECKING:
    from tests.webapp_fixtures import ErrorCheck

pytest_plugins = ["tests.webapp_fixtures"]

VACCINES = (
    "Vaccines prepare the immune system to recognise a pathogen without the person first suffering the disease. "
    "A vaccine contains a weakened or inactivated form of the microbe, or merely a fragment of one of its proteins, "
    "which the body identifies as foreign. White blood cells respond by manufacturing antibodies and by retaining "
    "memory cells, so that a subsequent encounter with the genuine pathogen provokes a rapid and decisive defence."
)
GOOD = (
    "A vaccine gets your body ready to fight a germ before you ever get sick from it. It holds a weak or dead form "
    "of the germ, or just a small piece of it. Your body sees it as something from outside. White blood cells then "
    "make antibodies and keep memory cells. If the real germ comes later, the body fights back fast and strong."
)
INVENTED = "The first vaccine was developed by the British in 1953."


def checked(output: str, level: str) -> JobResult:
    """A result whose quality report is the real checker's."""
    report = check(VACCINES, output, 6)
    return job_result(text=output, level=level, quality=report, readability_grade=report.grade, grade_level=6)


def finish(client: FlaskClient, redis_db: redis.Redis, results: list[JobResult]) -> tuple[str, list[str]]:
    """A batch of the vaccines text whose jobs ended with these results."""
    items = [{"text": VACCINES, "grade_level": 6} for _ in results]
    body = client.post("/api/v1/batches", json={"items": items}).get_json()
    store = JobStore(redis_db)
    for job_id, result in zip(body["job_ids"], results, strict=True):
        store.start(job_id, "worker-a")
        store.succeed(job_id, result)
    return body["batch_id"], body["job_ids"]


def test_each_result_carries_its_report_and_the_batch_counts_verdicts(
    client: FlaskClient, redis_db: redis.Redis
) -> None:
    batch_id, job_ids = finish(client, redis_db, [checked(GOOD, "int8"), checked(INVENTED, "int2")])
    batch = client.get(f"/api/v1/batches/{batch_id}").get_json()
    assert batch["verdicts"] == {"pass": 1, "needs_review": 1}
    reports = [entry["result"]["quality"] for entry in batch["jobs"]]
    assert [r["verdict"] for r in reports] == ["pass", "needs_review"]
    assert reports[1]["invented"] == {"numbers": ["1953"], "names": ["British"], "words": []}
    assert "adds '1953' and 'British', not in the text" in reports[1]["reasons"]
    job = client.get(f"/api/v1/jobs/{job_ids[1]}").get_json()
    assert job["result"]["quality"]["target_grade"] == 6 and job["result"]["quality"]["grade"] is not None


def test_jobs_filtered_by_verdict(client: FlaskClient, redis_db: redis.Redis, api_error: ErrorCheck) -> None:
    _, job_ids = finish(client, redis_db, [checked(INVENTED, "int2"), checked(GOOD, "int4"), checked(INVENTED, "int4")])
    client.post("/api/v1/jobs", json={"text": VACCINES, "grade_level": 6})  # queued: no verdict yet
    review = client.get("/api/v1/jobs?verdict=needs_review").get_json()
    assert [j["job_id"] for j in review["jobs"]] == [job_ids[2], job_ids[0]] and review["count"] == 2
    assert all(j["result"]["quality"]["verdict"] == "needs_review" for j in review["jobs"])
    passed = client.get("/api/v1/jobs?verdict=pass&limit=5").get_json()
    assert [j["job_id"] for j in passed["jobs"]] == [job_ids[1]]
    assert client.get("/api/v1/jobs?verdict=needs_review&limit=1").get_json()["count"] == 1
    assert client.get("/api/v1/jobs").get_json()["count"] == 4
    for bad in ("maybe", "PASS", "pass,needs_review", ""):
        body = api_error(client.get(f"/api/v1/jobs?verdict={bad}"), 400, "verdict")  # empty too: not "no filter"
        assert "pass, needs_review" in body["error"]["message"]


def test_metrics_count_verdicts_by_level(client: FlaskClient, redis_db: redis.Redis) -> None:
    finish(client, redis_db, [checked(INVENTED, "int2"), checked(INVENTED, "int2"), checked(GOOD, "int8")])
    finish(client, redis_db, [job_result(level="int4")])  # a result without a report counts nowhere
    text = client.get("/metrics").get_data(as_text=True)
    assert 'dynaquant_jobs_by_verdict_total{level="int2",verdict="needs_review"} 2.0' in text
    assert 'dynaquant_jobs_by_verdict_total{level="int8",verdict="pass"} 1.0' in text
    assert 'level="int4",verdict=' not in text


def test_the_openapi_document_shows_the_quality_report_and_the_filter(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    result = schemas["JobResult"]["properties"]
    for name in ("quality", "attempts", "output_level", "paragraphs", "gate"):
        assert name in result, name
    report = schemas["QualityReport"]["properties"]
    assert report["verdict"]["enum"] == ["pass", "needs_review"]
    for name in ("grade", "target_grade", "grade_error", "invented", "copied", "coverage", "reasons"):
        assert name in report, name
    assert "verdicts" in schemas["BatchRecord"]["properties"]
    assert schemas["JobRequest"]["properties"]["quality_check"]["type"] == "boolean"
    parameters = {p["name"]: p for p in doc["paths"]["/api/v1/jobs"]["get"]["parameters"]}
    assert "verdict" in parameters and "needs_review" in str(parameters["verdict"]["schema"])
