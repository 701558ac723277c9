"""`dynaquant up` as a user runs it, on the bundled default model: a real rewrite for the grade, checked."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Up
from worker.settings import DEFAULT_MODEL

pytestmark = [pytest.mark.e2e, pytest.mark.model]

SOURCE = (
    "The Great Pyramid of Giza, constructed around 2560 BCE as a tomb for the pharaoh Khufu, remained the tallest "
    "human-made structure on Earth for more than 3,800 years. Its builders quarried, transported and positioned "
    "roughly 2.3 million limestone and granite blocks, a feat that required sophisticated organisation of labour."
)


def test_a_job_that_names_no_model_runs_on_the_default_and_comes_back_checked(up: Up) -> None:
    del up.env["DYNAQUANT_DEFAULT_MODEL"]  # the user's default, not the small test model
    up.start()
    job_id = up.submit(text=SOURCE, grade_level=5, subject="History", force_quantization="int4", max_tokens=160)
    job = up.wait_job(job_id, timeout=300)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["model"] == DEFAULT_MODEL and result["level"] == "int4"
    report = result["quality"]
    assert report["target_grade"] == 5 and report["grade"] is not None
    assert report["grade"] < 10, "an instruct model rewrites for the reader: far below the source's grade 15"
    assert not report["copied"], result["text"]
    assert "Khufu" in result["text"] or "2560" in result["text"], "the rewrite keeps the text's facts"
    assert result["attempts"][0]["strategy"] == "draft"
    words_pass = not (report["invented"]["numbers"] or report["invented"]["names"] or report["copied"])
    if report["verdict"] == "pass":
        assert words_pass and report["meaning_score"] is not None, "a passing draft was given the meaning check"
    else:
        assert report["reasons"], "a result that needs review says why"
