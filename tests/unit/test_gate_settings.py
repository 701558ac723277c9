"""Quality-gate settings and the job field that switches the gate off: read once, checked, named in errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.contracts import RETRY_STRATEGIES, parse_job
from worker.errors import InputError
from worker.gate import GateSettings
from worker.settings import Settings

LIMITS = Settings().job_limits()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GATE", "MAX_ATTEMPTS", "MAX_SECONDS", "STRATEGIES", "TEMPERATURE"):
        monkeypatch.delenv(f"DYNAQUANT_QUALITY_{var}", raising=False)
    gate = GateSettings.from_settings(Settings())
    assert gate.enabled and gate.max_attempts == 3 and gate.max_seconds == 30.0
    assert gate.order == RETRY_STRATEGIES and gate.temperature == 0.7


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAQUANT_QUALITY_GATE", "off")
    monkeypatch.setenv("DYNAQUANT_QUALITY_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("DYNAQUANT_QUALITY_MAX_SECONDS", "12.5")
    monkeypatch.setenv("DYNAQUANT_QUALITY_STRATEGIES", "sample, escalate")
    monkeypatch.setenv("DYNAQUANT_PART_MAX_CHARS", "900")
    settings = Settings()
    gate = GateSettings.from_settings(settings)
    assert not gate.enabled and gate.max_attempts == 5 and gate.max_seconds == 12.5
    assert gate.order == ("sample", "escalate") and settings.part_max_chars == 900


def test_a_job_switches_the_gate_off_but_never_on() -> None:
    assert not GateSettings.from_settings(Settings(), job_wants_it=False).enabled
    assert not GateSettings.from_settings(Settings(quality_gate=False), job_wants_it=True).enabled


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("DYNAQUANT_QUALITY_GATE", "maybe"),
        ("DYNAQUANT_QUALITY_MAX_ATTEMPTS", "0"),
        ("DYNAQUANT_QUALITY_STRATEGIES", "escalate,guess"),
        ("DYNAQUANT_QUALITY_STRATEGIES", " , "),
        ("DYNAQUANT_QUALITY_EXPLORE_SHARE", "1.5"),
        ("DYNAQUANT_PART_MAX_CHARS", "10"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError, match=var):
        Settings()


def test_quality_check_job_field() -> None:
    body = {"text": "Plants make food from light.", "grade_level": 4}
    assert parse_job(body, LIMITS).quality_check is True
    assert parse_job({**body, "quality_check": False}, LIMITS).quality_check is False
    with pytest.raises(InputError) as err:
        parse_job({**body, "quality_check": "no"}, LIMITS)
    assert err.value.field == "quality_check"
    assert "true or false" in err.value.reason


def test_a_twenty_paragraph_chapter_fits_the_text_limit_and_more_is_refused_naming_it() -> None:
    paragraph = ("The river carries sand and mud down from the hills to the sea. " * 15)[:900].strip()
    chapter = "\n\n".join([paragraph] * 20)
    assert len(chapter) >= 17_900
    spec = parse_job({"text": chapter, "grade_level": 6}, LIMITS)
    assert spec.text.count("\n\n") == 19, "the paragraphs are kept"
    too_long = "x" * (LIMITS.max_text_chars + 1)
    with pytest.raises(InputError) as err:
        parse_job({"text": too_long, "grade_level": 6}, LIMITS)
    assert err.value.field == "text"
    assert f"the limit is {LIMITS.max_text_chars} (DYNAQUANT_MAX_TEXT_CHARS)" in err.value.reason
