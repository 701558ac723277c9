"""The quality gate on the real bundled model: checked results, retries within the rules, documents, chat models."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import Readings
from tests.processes import ROOT
from tests.texts import DOCUMENT
from worker import gate, quality, readability, terms
from worker.backends.base import Decoding, Sampling
from worker.contracts import RETRY_STRATEGIES, AppliedCeiling, JobResult, JobSpec, QualityReport
from worker.errors import JobCancelled
from worker.gate import Ask, Draft, GateSettings
from worker.model_loader import ModelLoader
from worker.policy import LevelStats, Request, rank
from worker.registry import ModelSpec, Registry
from worker.retry_budget import RetryPolicy
from worker.retry_stats import AdaptiveBudget, RetryStats
from worker.runtime import WorkerRuntime
from worker.settings import DEFAULT_MODEL
from worker.simplify import build_messages, clean_output, generate_once, make_drafter, simplify_text

MODEL = "gemma-3-270m"
MakeLoader = Callable[..., tuple[ModelLoader, Readings]]
VACCINES = (
    "Vaccines prepare the immune system to recognise a pathogen without the person first suffering the disease. "
    "A vaccine contains a weakened or inactivated form of the microbe, or merely a fragment of one of its proteins, "
    "which the body identifies as foreign. White blood cells respond by manufacturing antibodies and by retaining "
    "memory cells, so that a subsequent encounter with the genuine pathogen provokes a rapid and decisive defence."
)
TOPICS = ("moon", "volcano", "bee", "thermometer")
CHAPTER_SOURCES = [
    json.loads(line)["text"] for line in (ROOT / "bench" / "data" / "held_out_texts.jsonl").read_text().splitlines()
][:20]


def job(text: str, grade: int, subject: str, **fields: Any) -> JobSpec:
    """A checked job on the bundled model (or the model given)."""
    return JobSpec(text=text, grade_level=grade, subject=subject, **{"model": MODEL, "max_tokens": 64, **fields})


def assert_quality(report: QualityReport | None, target: int) -> QualityReport:
    """The report every result carries: grade, target and verdict, with reasons when it needs review."""
    assert report is not None
    assert report.target_grade == target
    assert isinstance(report.grade, float)
    assert report.verdict in ("pass", "needs_review")
    assert bool(report.reasons) == (report.verdict == "needs_review")
    return report


def round_trips(result: JobResult) -> None:
    """The result is stored as JSON and read back unchanged."""
    assert JobResult.model_validate_json(result.model_dump_json()) == result


@pytest.mark.model
def test_forced_int2_draft_that_invents_is_not_passed(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(quality_max_attempts=3)
    result = simplify_text(loader, job(VACCINES, 6, "Biology", force_quantization="int2"))
    round_trips(result)
    quality, attempts = assert_quality(result.quality, 6), result.attempts
    assert attempts[0].strategy == "draft"
    assert all(a.level == "int2" for a in attempts), "a forced level is checked, never escalated"
    assert all(a.strategy != "escalate" for a in attempts)
    assert 1 <= len(attempts) <= 3
    assert attempts[0].verdict == "needs_review", "the int2 draft of this paragraph makes up its history"
    if quality.verdict == "pass":
        assert not quality.invented.facts
    else:
        assert quality.reasons, "a result that never passed says why"
    assert result.text, "quality alone never empties or fails a job"


@pytest.mark.model
def test_a_failing_draft_below_the_top_level_is_escalated(make_loader: MakeLoader) -> None:
    # load > 10: the matrix says int2; a seconds budget no slow machine runs out of, so the retry is made
    loader, _ = make_loader(
        readings=Readings(used_fraction=0.10, queued=20), quality_max_seconds=600, quality_strategies=("escalate",)
    )
    result = simplify_text(loader, job(VACCINES, 6, "Biology"))
    attempts = result.attempts
    assert attempts[0].level == "int2" and result.level == "int2", "level: what the decision engine chose"
    if attempts[0].verdict != "pass":
        assert attempts[1].strategy == "escalate" and attempts[1].level == "int4"
    assert result.output_level in {a.level for a in attempts}
    assert_quality(result.quality, 6)


@pytest.mark.model
def test_no_escalation_to_a_level_measured_to_pass_no_more_often(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(readings=Readings(used_fraction=0.10, queued=20), quality_max_seconds=600)
    measured = {lvl: LevelStats(jobs=20, seconds_per_job=0.6, pass_rate=0.05) for lvl in ("int4", "int2")}
    loader.manager.profile_source = lambda model: {**measured, "int2": LevelStats(20, 0.3, 0.05)}
    result = simplify_text(loader, job(VACCINES, 6, "Biology"))
    attempts = result.attempts
    assert attempts[0].level == "int2", "int2 is measured twice as fast and passes as often as int4"
    assert all(a.strategy != "escalate" for a in attempts), "int4 is measured to pass no more often than int2"
    if attempts[0].verdict != "pass":
        assert len(attempts) >= 2, "the draft is still retried, by the other strategies"


@pytest.mark.model
@pytest.mark.parametrize(
    ("queued", "ceiling"),
    [(20, "int2"), (0, "int4")],  # the matrix says int2 (load > 10) / fp16 (idle, comfortable memory)
)
def test_a_ceiling_after_a_lost_worker_caps_every_attempt_of_the_gate(
    make_loader: MakeLoader, queued: int, ceiling: str
) -> None:
    loader, _ = make_loader(
        readings=Readings(used_fraction=0.10, queued=queued), quality_max_attempts=4, quality_max_seconds=600
    )
    notes: list[tuple[str, str]] = []
    loader.stage_listener = lambda phase, _model, level: notes.append((phase, level))
    applied = AppliedCeiling(level=ceiling, reasons=[f"at most {ceiling}: an earlier attempt's worker died"])
    result = simplify_text(loader, job(VACCINES, 4, "Biology", max_tokens=48), ceiling=applied)
    round_trips(result)
    attempts = result.attempts
    assert result.ceiling == applied, "the result says why it ran lower"
    assert result.level == ceiling == attempts[0].level, "the first draft runs at the ceiling, not the matrix's level"
    assert all(rank(a.level) >= rank(ceiling) for a in attempts), f"an attempt went above {ceiling}: {attempts}"
    assert result.output_level is not None and rank(result.output_level) >= rank(ceiling)
    if attempts[0].verdict != "pass":
        assert len(attempts) >= 2, "a failing draft is still retried, within the ceiling"
        assert all(a.strategy != "escalate" for a in attempts), "escalating from the ceiling would go above it"
    running = [level for phase, level in notes if phase == "running"]
    assert running == [a.level for a in attempts], "every attempt notes the level it runs at, for recovery"


@pytest.mark.model
def test_no_escalation_at_the_emergency_memory_band(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(readings=Readings(used_fraction=0.90))
    result = simplify_text(loader, job(VACCINES, 6, "Biology", max_tokens=48))
    assert {a.level for a in result.attempts} == {"int2"}


@pytest.mark.model
def test_gate_off_per_job_makes_one_attempt_and_still_reports(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    result = simplify_text(loader, job(VACCINES, 6, "Biology", force_quantization="int2", quality_check=False))
    assert len(result.attempts) == 1
    assert result.gate is not None and not result.gate.enabled and result.gate.retries == 0
    assert assert_quality(result.quality, 6).verdict == "needs_review", "checked and reported though not retried"
    assert result.readability_grade == result.quality.grade


@pytest.mark.model
def test_a_four_paragraph_document_comes_back_as_four_paragraphs(make_loader: MakeLoader) -> None:
    loader, _ = make_loader(registry=Registry(), quality_max_attempts=2)
    result = simplify_text(loader, job(DOCUMENT, 5, "Science", force_quantization="int4", model=DEFAULT_MODEL))
    round_trips(result)
    paragraphs = result.text.split("\n\n")
    assert len(paragraphs) == 4 and all(p.strip() for p in paragraphs)
    for text, topic in zip(paragraphs, TOPICS, strict=True):
        assert topic in text.lower(), f"paragraph about {topic!r} kept its subject: {text!r}"
    assert result.paragraphs is not None
    assert [p.index for p in result.paragraphs] == [1, 2, 3, 4]
    assert [p.text for p in result.paragraphs] == paragraphs
    for p in result.paragraphs:
        assert_quality(p.quality, 5)
    whole = assert_quality(result.quality, 5)
    every_pass = all(p.quality.verdict == "pass" for p in result.paragraphs)
    assert (whole.verdict == "pass") == every_pass
    assert {a.paragraph for a in result.attempts} == {1, 2, 3, 4}


@pytest.mark.model
def test_every_attempt_is_recorded(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    result = simplify_text(loader, job(VACCINES, 4, "Biology", force_quantization="int4", max_tokens=48))
    for n, attempt in enumerate(result.attempts, 1):
        assert attempt.attempt == n
        assert attempt.strategy in ("draft", *RETRY_STRATEGIES)
        assert attempt.level == "int4" and attempt.seconds > 0
        assert attempt.verdict in ("pass", "needs_review") and isinstance(attempt.grade, float)
    assert result.gate is not None and result.gate.drafts == len(result.attempts)


@pytest.mark.model
def test_an_instruct_model_is_prompted_through_its_chat_template(make_loader: MakeLoader, smollm2_gguf: Path) -> None:
    registry = Registry()
    registry.add(ModelSpec("smollm2-135m-instruct", 0.135, smollm2_gguf))
    loader, _ = make_loader(registry=registry)
    with loader.acquire("smollm2-135m-instruct", Request(force_quantization="int8")) as lease:
        model = lease.model
        assert model.chat_template is not None and "<|im_start|>" in model.chat_template
        text, generation = generate_once(model, VACCINES, 6, "Biology", 64)
        direct = model.chat(build_messages(VACCINES, 6, "Biology"), Decoding(64))
    assert text == clean_output(direct.text, direct.finish_reason), "the chat path, not the few-shot prompt"
    assert generation.tokens_in == direct.tokens_in
    assert text and "<|im_" not in text and "Grade:" not in text
    result = simplify_text(
        loader, job(VACCINES, 6, "Biology", force_quantization="int8", model="smollm2-135m-instruct")
    )
    assert result.model == "smollm2-135m-instruct"
    assert_quality(result.quality, 6)


@pytest.mark.model
def test_the_bundled_base_model_keeps_the_few_shot_prompt(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    with loader.acquire(MODEL, Request(force_quantization="int4")) as lease:
        assert lease.model.chat_template is None


def test_a_worker_loads_the_checkers_word_tables_when_it_starts(
    make_loader: MakeLoader, make_runtime: Callable[..., WorkerRuntime]
) -> None:
    for table in (terms.zipf, terms.stem, readability._hyphenator, readability._dictionary):
        table.cache_clear()
    loader, _ = make_loader()
    runtime = make_runtime(loader)
    runtime.start()
    assert terms.zipf.cache_info().currsize > 0, "word frequencies loaded before the first job"
    assert terms.stem.cache_info().currsize > 0
    assert readability._dictionary.cache_info().currsize == 1, "the pronouncing dictionary read before the first job"
    started = time.perf_counter()
    quality.check(VACCINES, "Vaccines teach the body to fight germs.", 6)
    assert time.perf_counter() - started < 0.3, "the first check after start does not load tables"


def seeded(stats: RetryStats, model: str, level: str, retries: int, passed: int) -> None:
    """Put `retries` retry outcomes, `passed` of them passes, on record."""
    stats.record(model, level, [True] * passed + [False] * (retries - passed))


@pytest.mark.model
def test_retries_are_skipped_where_they_rarely_pass_and_the_result_says_why(
    make_loader: MakeLoader, worker_redis: redis.Redis
) -> None:
    loader, _ = make_loader(quality_max_seconds=600)
    stats = RetryStats(worker_redis, window=200)
    seeded(stats, MODEL, "int2", retries=40, passed=1)
    skip = AdaptiveBudget(stats, RetryPolicy(min_sample=20, min_pass_rate=0.10, explore_share=0.0))
    result = simplify_text(loader, job(VACCINES, 6, "Biology", force_quantization="int2"), budget=skip)
    assert assert_quality(result.quality, 6).verdict == "needs_review"
    assert len(result.attempts) == 1 and result.gate is not None and result.gate.retries == 0
    assert result.gate.retries_skipped is not None
    assert result.gate.retries_skipped.startswith("retries skipped: 1 of 40 recent retries on gemma-3-270m at int2")
    assert stats.counts(MODEL, "int2").retries == 40, "a skipped retry adds nothing to the figures"

    explore = AdaptiveBudget(stats, RetryPolicy(min_sample=20, min_pass_rate=0.10, explore_share=1.0))
    explored = simplify_text(loader, job(VACCINES, 6, "Biology", force_quantization="int2"), budget=explore)
    assert explored.gate is not None and explored.gate.retries >= 1 and explored.gate.retries_skipped is None
    after = stats.counts(MODEL, "int2")
    assert after.retries == 40 + explored.gate.retries, "every exploring retry is on record, shared in Redis"
    assert after.passed == 1 + sum(a.verdict == "pass" for a in explored.attempts[1:])


@pytest.mark.model
def test_retries_go_on_while_the_figures_are_learnt(make_loader: MakeLoader, worker_redis: redis.Redis) -> None:
    loader, _ = make_loader(quality_max_seconds=600)
    stats = RetryStats(worker_redis, window=200)
    learning = AdaptiveBudget(stats, RetryPolicy(min_sample=20, min_pass_rate=0.10, explore_share=0.0))
    result = simplify_text(loader, job(VACCINES, 6, "Biology", force_quantization="int2"), budget=learning)
    assert result.attempts[0].verdict == "needs_review" and result.gate is not None
    assert result.gate.retries >= 1, "with nothing on record the failing draft is retried"
    assert stats.counts(MODEL, "int2").retries == result.gate.retries


@pytest.mark.model
def test_a_job_past_its_time_limit_stops_between_attempts(make_loader: MakeLoader) -> None:
    loader, _ = make_loader()
    inner = make_drafter(loader, MODEL, 6, "Biology", 48)
    drafts: list[Draft] = []

    def drafter(ask: Ask, request: Request, sampling: Sampling | None) -> Draft:
        drafts.append(inner(ask, request, sampling))
        return drafts[-1]

    settings = GateSettings.from_settings(loader.settings)
    with pytest.raises(JobCancelled):  # the time limit (or a cancel) turned should_stop true during the draft
        gate.run(VACCINES, 6, drafter, Request(force_quantization="int2"), settings, should_stop=lambda: bool(drafts))
    assert len(drafts) == 1, "no retry starts once the job must stop"


@pytest.mark.model
def test_a_twenty_paragraph_chapter_on_the_default_model_comes_back_whole(make_loader: MakeLoader) -> None:
    paragraphs = [p.split(". ")[0].rstrip(".") + "." for p in CHAPTER_SOURCES]
    loader, _ = make_loader(registry=Registry())
    result = simplify_text(
        loader,
        job(
            "\n\n".join(paragraphs),
            6,
            "General",
            model=DEFAULT_MODEL,
            force_quantization="int4",
            max_tokens=60,
            quality_check=False,
        ),
    )
    round_trips(result)
    assert result.model == DEFAULT_MODEL
    out = result.text.split("\n\n")
    assert len(out) == 20 and all(p.strip() for p in out)
    assert result.paragraphs is not None and [p.index for p in result.paragraphs] == list(range(1, 21))
    for p in result.paragraphs:
        assert_quality(p.quality, 6)
    assert (result.quality is not None) and (
        (result.quality.verdict == "pass") == all(p.quality.verdict == "pass" for p in result.paragraphs)
    )
