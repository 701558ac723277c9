"""Quality-gate settings and the job field that switches the gate off: read once, checked, named in errors."""

from __future__ import annotations

import pytest

from worker.errors import InputError
from worker.gate import DEFAULT_ORDER, gate_settings
from worker.jobspec import parse_job


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GATE", "MAX_ATTEMPTS", "MAX_SECONDS", "STRATEGIES", "TEMPERATURE"):
        monkeypatch.delenv(f"DYNAQUANT_QUALITY_{var}", raising=False)
    settings = gate_settings()
    assert settings.enabled and settings.max_attempts == 3 and settings.max_seconds == 30.0
    assert settings.order == DEFAULT_ORDER and settings.temperature == 0.7


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAQUANT_QUALITY_GATE", "off")
    monkeypatch.setenv("DYNAQUANT_QUALITY_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("DYNAQUANT_QUALITY_MAX_SECONDS", "12.5")
    monkeypatch.setenv("DYNAQUANT_QUALITY_STRATEGIES", "sample, escalate")
    settings = gate_settings()
    assert not settings.enabled and settings.max_attempts == 5 and settings.max_seconds == 12.5
    assert settings.order == ("sample", "escalate")


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("DYNAQUANT_QUALITY_GATE", "maybe", "DYNAQUANT_QUALITY_GATE"),
        ("DYNAQUANT_QUALITY_MAX_ATTEMPTS", "0", "DYNAQUANT_QUALITY_MAX_ATTEMPTS"),
        ("DYNAQUANT_QUALITY_STRATEGIES", "escalate,guess", "allowed are escalate, resimplify, sample"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        gate_settings()


def test_quality_check_job_field() -> None:
    body = {"text": "Plants make food from light.", "grade_level": 4}
    assert parse_job(body).quality_check is True
    assert parse_job({**body, "quality_check": False}).quality_check is False
    with pytest.raises(InputError) as err:
        parse_job({**body, "quality_check": "no"})
    assert err.value.field == "quality_check"
