"""The retry budget: retry while learning or while retries pay off, else skip all but an exploring share."""

from __future__ import annotations

import pytest

from worker.retry_budget import RetryCounts, RetryPolicy, decide

POLICY = RetryPolicy(min_sample=20, min_pass_rate=0.10, explore_share=0.10)
WHERE = "gemma-3-270m at int2"


def test_retries_while_too_few_are_on_record() -> None:
    decision = decide(RetryCounts(retries=19, passed=0), POLICY, roll=0.99, where=WHERE)
    assert decision.retry and not decision.exploring
    assert "learning" in decision.reason and "0 of 19 recent retries on gemma-3-270m at int2 passed" in decision.reason


@pytest.mark.parametrize(("retries", "passed"), [(20, 2), (40, 4), (200, 120)])
def test_retries_when_they_pay_off(retries: int, passed: int) -> None:
    decision = decide(RetryCounts(retries, passed), POLICY, roll=0.99, where=WHERE)
    assert decision.retry and decision.reason.startswith("retries pay off")


def test_skips_when_retries_rarely_pass() -> None:
    decision = decide(RetryCounts(retries=40, passed=1), POLICY, roll=0.5, where=WHERE)
    assert not decision.retry
    assert decision.reason.startswith("retries skipped: 1 of 40 recent retries on gemma-3-270m at int2 passed")
    assert "10%" in decision.reason and "DYNAQUANT_QUALITY_RETRY_MIN_PASS_RATE" in decision.reason


def test_an_exploring_share_still_retries() -> None:
    counts = RetryCounts(retries=40, passed=1)
    rolls = [i / 100 for i in range(100)]
    explored = [decide(counts, POLICY, roll, WHERE) for roll in rolls]
    assert sum(d.retry for d in explored) == 10, "10% of rolls retry"
    assert all(d.exploring for d in explored if d.retry)


def test_no_exploration_and_no_sample_rule() -> None:
    never = RetryPolicy(min_sample=0, min_pass_rate=0.5, explore_share=0.0)
    assert not decide(RetryCounts(0, 0), never, roll=0.0, where=WHERE).retry, "nothing on record passes 0% < 50%"
    assert decide(RetryCounts(10, 5), never, roll=0.0, where=WHERE).retry


def test_pass_rate() -> None:
    assert RetryCounts(0, 0).pass_rate == 0.0
    assert RetryCounts(40, 10).pass_rate == 0.25
