"""GET /quantization/profiles and the profile links in the status, on profiles written to a real Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask.testing import FlaskClient

from tests.states import cached
from worker.contracts import CacheStats
from worker.profiles import ProfileStore, Sample

if TYPE_CHECKING:
    from tests.webapp_fixtures import ErrorCheck

pytest_plugins = ["tests.webapp_fixtures"]


def seed(redis_db: redis.Redis) -> None:
    """Profiles of two hosts: host-a measured int4 and int8 of gemma, host-b int4 of qwen."""
    a = ProfileStore(redis_db, "host-a", "cpu")
    for seconds in (1.0, 2.0):
        a.record("gemma", Sample("int4", seconds, 300.0, 40.0, 1.0, 0.5))
    a.record("gemma", Sample("int8", 2.5, 250.0, 30.0, 0.0, 2.0), "calibration")
    a.record_load("gemma", "int4", 200 * 1024**2, 250 * 1024**2)
    ProfileStore(redis_db, "host-b", "cuda").record("qwen", Sample("int4", 0.5), "shadow")


def test_profiles_lists_every_hosts_measurements(client: FlaskClient, redis_db: redis.Redis) -> None:
    seed(redis_db)
    body = client.get("/api/v1/quantization/profiles").get_json()
    assert body["count"] == 3
    keys = [(p["host"], p["model"], p["level"]) for p in body["profiles"]]
    assert keys == [("host-a", "gemma", "int8"), ("host-a", "gemma", "int4"), ("host-b", "qwen", "int4")]
    int4 = body["profiles"][1]
    assert (int4["jobs"], int4["real_jobs"], int4["calibration_jobs"], int4["shadow_jobs"]) == (2, 2, 0, 0)
    assert int4["seconds_per_job"] == 1.5 and int4["decode_tokens_per_second"] == 40.0
    assert int4["resident_mb"] == 200.0 and int4["estimated_mb"] == 250.0 and int4["estimate_error"] == 0.25
    assert int4["pass_rate"] == 1.0 and int4["grade_error"] == 0.5 and int4["checked"] == 2
    assert body["profiles"][0]["calibration_jobs"] == 1 and body["profiles"][2]["shadow_jobs"] == 1


def test_profiles_filter_by_model_and_host(client: FlaskClient, redis_db: redis.Redis) -> None:
    seed(redis_db)
    gemma = client.get("/api/v1/quantization/profiles?model=gemma").get_json()
    assert {p["model"] for p in gemma["profiles"]} == {"gemma"} and gemma["count"] == 2
    host_b = client.get("/api/v1/quantization/profiles?host=host-b").get_json()
    assert [p["model"] for p in host_b["profiles"]] == ["qwen"]
    none = client.get("/api/v1/quantization/profiles?model=gemma&host=host-b").get_json()
    assert none == {"profiles": [], "count": 0}


@pytest.mark.parametrize(
    ("query", "field"),
    [("model=", "model"), ("host=a%20b", "host"), ("model=a&model=b", "model"), ("host=" + "x" * 300, "host")],
)
def test_a_bad_profile_filter_is_a_400_naming_it(
    client: FlaskClient, api_error: ErrorCheck, query: str, field: str
) -> None:
    body = api_error(client.get(f"/api/v1/quantization/profiles?{query}"), 400, field)
    assert body["error"]["code"] == "invalid_input"


def test_status_models_link_to_their_profiles(client: FlaskClient, fake_worker: Any) -> None:
    fake_worker(
        "w1@host-a", cache=CacheStats(current_size_mb=250, max_size_mb=8000, models=[cached("gemma", "int4", 250)])
    )
    body = client.get("/api/v1/quantization/status").get_json()
    link = body["current_models"][0]["profiles"]
    assert link == "/api/v1/quantization/profiles?model=gemma&host=host-a"
    assert body["workers"][0]["current_models"][0]["profiles"] == link


def test_the_profiles_route_is_documented(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/quantization/profiles"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"model", "host"}
    assert "200" in operation["responses"] and "400" in operation["responses"]
