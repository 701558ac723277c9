"""The generated OpenAPI document, the models catalog and gunicorn's JSON error page, built without a server."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.states import worker_state
from webapp import create_app
from webapp.apidoc import api, live_document
from webapp.catalog import known_models, models_in_file
from webapp.server_errors import json_error_bytes
from worker.contracts import NON_BLANK
from worker.settings import Settings


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    """The document spectree generates from the routes and the models."""
    with create_app({"TESTING": True}).app_context():
        return copy.deepcopy(api.spec)


def document(generated: dict[str, Any], models: list[str], max_batch: int, token_set: bool) -> dict[str, Any]:
    limits = Settings(max_batch=max_batch).job_limits(tuple(models))
    return live_document(copy.deepcopy(generated), limits, token_set)


def test_non_blank_pattern_matches_python_strip() -> None:
    pattern = re.compile(NON_BLANK)
    for text in ("a", "  a  ", "\u3000x", "\ufeff"):
        assert pattern.search(text) and text.strip()
    for text in ("", " ", "\t\n", "\x1c\x1f", "\x85\xa0\u2028\u3000"):
        assert not pattern.search(text) and not text.strip()


def test_document_lists_models_and_limits(generated: dict[str, Any]) -> None:
    doc = document(generated, ["gemma-3-270m", "qwen-7b"], 12, token_set=False)
    job = doc["components"]["schemas"]["JobRequest"]
    assert job["required"] == ["text", "grade_level"] and job["additionalProperties"] is False
    assert job["properties"]["model"]["enum"] == ["gemma-3-270m", "qwen-7b", "", None]
    assert job["properties"]["priority"]["maximum"] == 9
    assert job["properties"]["text"]["maxLength"] == 20000 and job["properties"]["max_tokens"]["maximum"] == 512
    schemas = doc["components"]["schemas"]
    assert schemas["BatchRequest"]["properties"]["items"]["maxItems"] == 12
    assert schemas["JobFields"]["properties"]["model"]["enum"] == ["gemma-3-270m", "qwen-7b", "", None]
    assert all("security" not in op for path in doc["paths"].values() for op in path.values() if isinstance(op, dict))


def test_document_with_a_token_guards_writes_only(generated: dict[str, Any]) -> None:
    doc = document(generated, ["m"], 5, token_set=True)
    guarded = {
        (path, method)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if isinstance(op, dict) and "security" in op
    }
    assert guarded == {
        ("/api/v1/jobs", "post"),
        ("/api/v1/batches", "post"),
        ("/api/v1/jobs/{job_id}", "delete"),
        ("/api/v1/jobs/{job_id}/review", "post"),
        ("/api/v1/quantization/cache/clear", "post"),
    }
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_error_response_uses_the_error_schema(generated: dict[str, Any]) -> None:
    doc = document(generated, ["m"], 5, token_set=True)
    for ops in doc["paths"].values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"
                    }


def test_models_file_keys(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"qwen-7b": {"gguf": "/x"}, "phi-2": {}}))
    assert models_in_file(str(path)) == {"qwen-7b", "phi-2"}
    assert models_in_file(None) == set()
    assert models_in_file(str(tmp_path / "missing.json")) == set()
    path.write_text("[1, 2]")
    assert models_in_file(str(path)) == set()
    workers = [worker_state("a", models_available=["tiny"]), worker_state("b", models_available=[])]
    assert known_models(workers, "gemma-3-270m", None) == ["gemma-3-270m", "tiny"]
    assert known_models([], "other", path) == ["other"]


def test_gunicorn_errors_become_json() -> None:
    raw = json_error_bytes(414, "URI Too Long", "Request Line is too large (8192 > 4094)")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 414 URI Too Long") and b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    error = json.loads(body)["error"]
    assert error["code"] == "uri_too_long" and error["field"] is None and "4094" in error["message"]
    hidden = json_error_bytes(500, "Internal Server Error", "secret detail").split(b"\r\n\r\n", 1)[1]
    assert b"secret" not in hidden and json.loads(hidden)["error"]["code"] == "internal_error"


def test_queue_lists_follow_kombus_naming() -> None:
    from worker.queues import PRIORITY_STEPS, priority_queue_names

    assert priority_queue_names("q")[0] == "q" and priority_queue_names("q")[9] == "q\x06\x169"
    assert tuple(range(10)) == PRIORITY_STEPS


def test_document_describes_recovery_and_supervision(generated: dict[str, Any]) -> None:
    schemas = document(generated, ["m"], 5, token_set=False)["components"]["schemas"]
    record = schemas["JobRecord"]["properties"]
    assert record["history"]["items"] == {"$ref": "#/components/schemas/JobEvent"}
    assert {"stage", "ceiling"} <= set(record) and schemas["JobEvent"]["properties"]["event"]["const"] == "requeued"
    assert {"ceiling", "attempt"} <= set(schemas["JobResult"]["properties"])
    worker = schemas["WorkerState"]["properties"]
    assert worker["ceilings"]["additionalProperties"] == {"$ref": "#/components/schemas/HostCeiling"}
    assert "threads" in worker
    assert schemas["StatusView"]["properties"]["service"] == {"$ref": "#/components/schemas/ServiceSummary"}
    process = schemas["ServiceProcess"]["properties"]
    assert set(process["state"]["enum"]) == {"new", "running", "backoff", "given_up", "stopped"}
    assert schemas["Ready"]["properties"]["status"]["enum"] == ["ready", "degraded"]
