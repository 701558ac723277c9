"""Whether a failing draft is worth a retry, from how often recent retries paid off (pure: stdlib only).

The quality gate retries a failing draft within its budget. On a model whose retries rarely turn a
failing draft into a pass, that budget is mostly spent for nothing: each retry costs a whole generation.
So before the first retry of a draft the gate looks at the recent retries of the same model from the same
level (shared by every worker, see worker.retry_stats) and:
- retries while fewer than `min_sample` retries are on record (the figures are still being learnt);
- retries when at least `min_pass_rate` of the recent retries passed;
- otherwise skips the retries, except for an `explore_share` of drafts that still retry, so the figures
  stay current (a model or a text mix for which retries start to pay is noticed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryCounts:
    """Recent retries of one model from one level, and how many of them passed the check."""

    retries: int
    passed: int

    @property
    def pass_rate(self) -> float:
        """Share of the recent retries that passed (0 with none on record)."""
        return self.passed / self.retries if self.retries else 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """When retries count as paying off, and how many drafts retry anyway."""

    min_sample: int
    min_pass_rate: float
    explore_share: float


@dataclass(frozen=True)
class RetryDecision:
    """Retry or not, and why (the reason is shown in the result when retries are skipped)."""

    retry: bool
    reason: str
    exploring: bool = False


def decide(counts: RetryCounts, policy: RetryPolicy, roll: float, where: str) -> RetryDecision:
    """Retry a failing draft or not, given the recent retries on record; `roll` is uniform in [0, 1).

    `where` names the model and level in the reason ("gemma-3-270m at int2").
    """
    record = f"{counts.passed} of {counts.retries} recent retries on {where} passed"
    if counts.retries < policy.min_sample:
        return RetryDecision(True, f"learning: {record}, fewer than {policy.min_sample} on record")
    if counts.pass_rate >= policy.min_pass_rate:
        return RetryDecision(True, f"retries pay off: {record}")
    if roll < policy.explore_share:
        return RetryDecision(True, f"exploring ({policy.explore_share:.0%} of drafts): {record}", exploring=True)
    return RetryDecision(
        False, f"retries skipped: {record} (below {policy.min_pass_rate:.0%}, DYNAQUANT_QUALITY_RETRY_MIN_PASS_RATE)"
    )
