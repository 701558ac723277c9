"""simplify_text: each paragraph of a text run on the model the loader picks, checked, and retried when it fails.

The prompts are in worker/prompts.py: chat turns for an instruct model (one with a chat template in its
file), a few-shot completion for a base model. Whatever comes back is cleaned here (made-up prompt fields,
loops, a sentence cut off by the token limit).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from worker import gate, policy, quality
from worker.backends.base import Decoding
from worker.contracts import AppliedCeiling, GateSummary, JobResult, JobSpec, ParagraphResult, QualityReport
from worker.document import Part, join_document, split_document
from worker.errors import JobCancelled
from worker.gate import Ask, Draft, Drafter, GateResult, GateSettings, RetryBudget
from worker.meaning import meaning_score
from worker.policy import Request, as_level
from worker.prompts import STOP, build_messages, build_prompt, one_line, revise_messages

if TYPE_CHECKING:
    from worker.backends.base import Generation, LoadedModel, Sampling
    from worker.model_loader import ModelLoader

FIELD_LABELS = (
    "Grade|Subject|Text|Simple|Complex|Hard|Easy|Original|Simplified|Rewritten|Input|Output|Answer|Example|Question"
)
PROMPT_FIELD = re.compile(rf"\b(?:{FIELD_LABELS})(?: (?:text|version|sentence))?\s*:|\n\s*[A-Z][a-z]{{1,15}}:\s")
"""A prompt-like field the model made up after its answer ("Complex: ..."): the answer ends there."""
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LOOP_WORDS = 6
"""A run of this many words seen earlier in an output means the model is looping."""


def cut_prompt_fields(raw: str) -> str:
    """The answer without a leading field label and without anything from the first made-up prompt field on."""
    text = raw.strip()
    lead = PROMPT_FIELD.match(text)
    if lead is not None:
        text = text[lead.end() :].strip()
    field = PROMPT_FIELD.search(text)
    return text[: field.start()] if field is not None else text


def cut_loop(text: str) -> str:
    """The text before it starts repeating itself (a run of LOOP_WORDS words seen before): from the sentence where
    the repeat begins, or, inside the first sentence, from the repeat itself (the rest ended as a sentence)."""
    words = text.split()
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - LOOP_WORDS + 1):
        gram = tuple(w.lower().strip(",.;:") for w in words[i : i + LOOP_WORDS])
        if gram not in seen:
            seen.add(gram)
            continue
        starts = [j for j in range(1, i + 1) if words[j - 1].endswith((".", "!", "?"))]
        if starts:
            return " ".join(words[: starts[-1]])
        kept = re.sub(r"(?:[\s,;:]+(?:and|or|but))*[\s,;:]*$", "", " ".join(words[:i]))
        return kept + "."
    return text


def clean_output(raw: str, finish_reason: str) -> str:
    """Tidy a completion: made-up prompt fields cut, one paragraph, a loop or a repeated sentence dropped, and a
    sentence cut off by the token limit removed."""
    sentences: list[str] = []
    seen: set[str] = set()
    for sentence in SENTENCE_END.split(cut_loop(one_line(cut_prompt_fields(raw)))):
        key = sentence.lower().strip(" .!?")
        if sentence and key not in seen:
            seen.add(key)
            sentences.append(sentence)
    if finish_reason == "length" and len(sentences) > 1 and not sentences[-1].endswith((".", "!", "?")):
        sentences.pop()
    return " ".join(sentences).strip()


def generate_once(
    model: LoadedModel,
    text: str,
    grade_level: int,
    subject: str,
    max_tokens: int,
    should_stop: Callable[[], bool] | None = None,
    sampling: Sampling | None = None,
) -> tuple[str, Generation]:
    """One simplification of one paragraph: chat turns for a model with a chat template, else the few-shot prompt."""
    decoding = Decoding(max_tokens, should_stop=should_stop, sampling=sampling)
    return ask_model(model, Ask(text), grade_level, subject, decoding)


def ask_model(
    model: LoadedModel, ask: Ask, grade_level: int, subject: str, decoding: Decoding
) -> tuple[str, Generation]:
    """One draft as the ask says: a rewrite, or a revision with notes (a base model, which cannot follow notes,
    rewrites its draft again instead), cleaned."""
    if model.chat_template is not None:
        if ask.revise is not None:
            messages = revise_messages(ask.input, ask.revise, grade_level, subject, ask.notes)
        else:
            messages = build_messages(ask.input, grade_level, subject)
        generation = model.chat(messages, decoding)
    else:
        text = ask.revise if ask.revise is not None else ask.input
        generation = model.generate(build_prompt(text, grade_level, subject), dataclasses.replace(decoding, stop=STOP))
    return clean_output(generation.text, generation.finish_reason), generation


def make_drafter(
    loader: ModelLoader,
    model: str | None,
    grade_level: int,
    subject: str,
    max_tokens: int,
    should_stop: Callable[[], bool] | None = None,
    meaning_check: bool = True,
) -> Drafter:
    """A drafter for the gate: each call holds the model at the level the loader picks for its request, and, while
    it holds it, asks the meaning check of a draft whose words pass (`meaning_check`)."""

    def draft(ask: Ask, request: Request, sampling: Sampling | None) -> Draft:
        started = time.perf_counter()
        decoding = Decoding(max_tokens, should_stop=should_stop, sampling=sampling)
        with loader.acquire(model, request) as lease:
            output, generation = ask_model(lease.model, ask, grade_level, subject, decoding)
            meaning = None
            if meaning_check and quality.check(ask.source, output, grade_level).passed:
                meaning = meaning_score(lease.model, ask.source, grade_level, subject, output)
        decision = lease.decision
        return Draft(
            text=output,
            level=lease.level,
            seconds=time.perf_counter() - started,
            generation=generation,
            model=lease.model.name,
            backend=lease.model.backend,
            band=decision.band,
            load_seconds=lease.load_seconds,
            cache_hit=lease.cache_hit,
            reoptimized=lease.reoptimization,
            memory_used=decision.memory_used,
            load=decision.load,
            meaning=meaning,
        )

    return draft


def simplify_text(
    loader: ModelLoader,
    job: JobSpec,
    should_stop: Callable[[], bool] | None = None,
    budget: RetryBudget | None = None,
    ceiling: AppliedCeiling | None = None,
) -> JobResult:
    """Simplify a job's text for its grade, paragraph by paragraph, each checked and (gate on) retried.

    The gate retries unless the job (quality_check false) or DYNAQUANT_QUALITY_GATE=0 switches it off; every
    result carries its quality report either way. `budget` may skip retries where they rarely pay off;
    `should_stop` is asked between paragraphs and attempts as well as during generation. A `ceiling` (after a
    lost worker) caps every attempt, escalated retries included, and the result records it.
    """
    settings = loader.settings
    request = dataclasses.replace(job.request, ceiling=ceiling.level) if ceiling else job.request
    subject = one_line(job.subject)
    gate_settings = GateSettings.from_settings(settings, job.quality_check)
    levels = loader.supported_levels(loader.registry.get(job.model))
    drafter = make_drafter(
        loader, job.model, job.grade_level, subject, job.max_tokens, should_stop, settings.meaning_check
    )
    manager = loader.manager

    def escalation_pays(lower: str, higher: str) -> bool:
        return policy.escalation_pays(lower, higher, manager.profiles_seen(job.model), manager.profile_rules)

    parts = split_document(job.text, settings.part_max_chars)
    results: list[GateResult] = []
    for part in parts:
        if results and should_stop is not None and should_stop():
            raise JobCancelled("the job was stopped between paragraphs")
        results.append(
            gate.run(
                part.text,
                job.grade_level,
                drafter,
                request,
                gate_settings,
                levels,
                budget=budget,
                should_stop=should_stop,
                escalation_pays=escalation_pays,
            )
        )
    return assemble(job.text, job.grade_level, subject, parts, results, gate_settings.enabled, ceiling)


def assemble(
    source: str,
    grade: int,
    subject: str,
    parts: list[Part],
    results: list[GateResult],
    gated: bool,
    ceiling: AppliedCeiling | None = None,
) -> JobResult:
    """The job's result: the joined text, its quality report, every attempt, and per paragraph for documents.

    `level` is the level the decision engine chose for the job (its first attempt); `output_level` the level
    whose draft was kept (an escalated retry may have run higher; for a document, the most common one).
    """
    output = join_document(parts, [r.draft.text for r in results])
    paragraphs = paragraph_results(parts, results, grade)
    # One part: its report is the text's (the gate checked that very draft); only a document is checked whole.
    if len(parts) == 1:
        report = results[0].report
    else:
        report = quality.combine(quality.check(source, output, grade), [p.quality for p in paragraphs])
    first = results[0].drafts[0]  # the first attempt: where the job started, what loading it cost
    drafts = [d for r in results for d in r.drafts]
    seconds = sum(d.generation.seconds for d in drafts)
    prompts = [d.generation.prompt_seconds for d in drafts]
    tokens_out = sum(d.generation.tokens_out for d in drafts)
    several = len(paragraphs) > 1
    attempts = [
        attempt.model_copy(update={"paragraph": part.paragraph + 1}) if several else attempt
        for part, r in zip(parts, results, strict=True)
        for attempt in r.attempts
    ]
    skipped = [r.skipped for r in results if r.skipped]
    return JobResult(
        text=output,
        level=as_level(first.level),
        output_level=as_level(Counter(r.draft.level for r in results).most_common(1)[0][0]),
        model=first.model,
        backend=first.backend,
        tokens_in=sum(d.generation.tokens_in for d in drafts),
        tokens_out=tokens_out,
        generation_seconds=round(seconds, 4),
        load_seconds=round(sum(d.load_seconds for d in drafts), 4),
        tokens_per_second=round(tokens_out / seconds, 2) if seconds > 0 else 0.0,
        prompt_seconds=round(sum(p for p in prompts if p is not None), 4) if None not in prompts else None,
        finish_reason=results[0].draft.generation.finish_reason,
        readability_grade=report.grade,
        grade_level=grade,
        subject=subject,
        memory_used=round(first.memory_used, 4),
        load=first.load,
        cache_hit=first.cache_hit,
        reoptimized=next((d.reoptimized for d in drafts if d.reoptimized), None),
        quality=report,
        attempts=attempts,
        paragraphs=paragraphs if several else None,
        gate=GateSummary(
            enabled=gated,
            drafts=len(drafts),
            retries=len(drafts) - len(results),
            retries_skipped=skip_note(skipped, len(results)),
        ),
        ceiling=ceiling,
    )


def skip_note(skipped: list[str], parts: int) -> str | None:
    """Why retries were skipped: the budget's reason, and for how many of the text's parts."""
    if not skipped:
        return None
    return skipped[-1] if parts == 1 else f"{skipped[-1]} ({len(skipped)} of {parts} parts not retried)"


def paragraph_results(parts: list[Part], results: list[GateResult], grade: int) -> list[ParagraphResult]:
    """Each paragraph's text, level and report (its parts' reports combined when it was cut into parts)."""
    out: list[ParagraphResult] = []
    for index in sorted({part.paragraph for part in parts}):
        mine = [(part, r) for part, r in zip(parts, results, strict=True) if part.paragraph == index]
        source = " ".join(part.text for part, _ in mine)
        text = " ".join(r.draft.text for _, r in mine)
        reports: list[QualityReport] = [r.report for _, r in mine]
        report = reports[0] if len(mine) == 1 else quality.combine(quality.check(source, text, grade), reports)
        out.append(ParagraphResult(index=index + 1, text=text, level=as_level(mine[0][1].draft.level), quality=report))
    return out
