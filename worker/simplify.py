"""simplify_text: a few-shot prompt run on the model the loader picks, with its cost and readability.

The bundled Gemma 3 270M is a base model, so the prompt shows two worked examples (lines Grade:,
Subject:, Text:, Simple:) and generation stops at the end of the answer line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from worker.contracts import AppliedCeiling, JobResult, JobSpec
from worker.policy import as_level

if TYPE_CHECKING:
    from worker.model_loader import ModelLoader

HEADER = (
    "Each hard text below is rewritten in short sentences and easy words that a student in the given grade "
    "can read. The meaning stays the same."
)
EXAMPLES: tuple[tuple[int, str, str, str], ...] = (
    (
        5,
        "Science",
        "The mitochondrion is a double-membrane-bound organelle found in most eukaryotic organisms that generates "
        "most of the chemical energy needed to power the cell's biochemical reactions.",
        "Cells have small parts called mitochondria. They make the energy a cell needs to live and work.",
    ),
    (
        7,
        "History",
        "Following the cessation of hostilities in 1918, the victorious Allied Powers convened in Paris, where "
        "protracted negotiations culminated in the Treaty of Versailles, which imposed substantial reparations and "
        "territorial concessions upon Germany.",
        "World War I ended in 1918. The winners met in Paris and wrote the Treaty of Versailles. It made Germany pay "
        "a lot of money and give away land.",
    ),
)
STOP: tuple[str, ...] = ("\n\n", "\nGrade:", "\nSubject:", "\nText:", "\nSimple:")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def one_line(text: str) -> str:
    """Collapse all whitespace (newlines included) to single spaces, so a field stays on its prompt line."""
    return " ".join(text.split())


def build_prompt(text: str, grade_level: int, subject: str) -> str:
    """The few-shot prompt: a one-line instruction, two worked examples, then the request's text."""
    blocks = [HEADER + "\n"]
    for grade, subj, hard, simple in EXAMPLES:
        blocks.append(f"Grade: {grade}\nSubject: {subj}\nText: {hard}\nSimple: {simple}\n")
    blocks.append(f"Grade: {grade_level}\nSubject: {one_line(subject)}\nText: {one_line(text)}\nSimple:")
    return "\n".join(blocks)


def clean_output(raw: str, finish_reason: str) -> str:
    """Tidy a completion: one paragraph, repeated sentences dropped, a sentence cut off by the token limit removed."""
    sentences: list[str] = []
    seen: set[str] = set()
    for sentence in SENTENCE_END.split(one_line(raw)):
        key = sentence.lower().strip(" .!?")
        if sentence and key not in seen:
            seen.add(key)
            sentences.append(sentence)
    if finish_reason == "length" and len(sentences) > 1 and not sentences[-1].endswith((".", "!", "?")):
        sentences.pop()
    return " ".join(sentences).strip()


def cmudict_available() -> bool:
    """Whether NLTK's CMU dictionary is on disk (textstat would otherwise try to download it)."""
    import nltk

    try:
        nltk.data.find("corpora/cmudict")
    except LookupError:
        return False
    return True


def readability_grade(text: str) -> float | None:
    """Flesch-Kincaid grade of a text (None for an empty one), by textstat.

    textstat counts syllables with the CMU dictionary, which NLTK fetches from the network on first use.
    Where it is not installed (an offline worker), the same formula runs on textstat's word and sentence
    counts with Pyphen syllables, which is what textstat itself uses for words missing from the dictionary.
    """
    if not text.strip():
        return None
    import textstat

    if cmudict_available():
        return round(float(textstat.flesch_kincaid_grade(text)), 2)
    import pyphen

    words = WORD.findall(text.lower())
    sentences = max(int(textstat.sentence_count(text)), 1)
    if not words:
        return 0.0
    hyphenator = pyphen.Pyphen(lang="en_US")
    syllables = sum(len(hyphenator.positions(word)) + 1 for word in words)
    grade = 0.39 * len(words) / sentences + 11.8 * syllables / len(words) - 15.59
    return round(grade, 2)


def simplify_text(
    loader: ModelLoader,
    job: JobSpec,
    should_stop: Callable[[], bool] | None = None,
    ceiling: AppliedCeiling | None = None,
) -> JobResult:
    """Simplify a job's text for its grade on the model and level the loader picks (under a ceiling, if given)."""
    subject = one_line(job.subject)
    prompt = build_prompt(job.text, job.grade_level, subject)
    request = dataclasses.replace(job.request, ceiling=ceiling.level) if ceiling else job.request
    with loader.acquire(job.model, request) as lease:
        generation = lease.model.generate(prompt, job.max_tokens, STOP, should_stop)
    output = clean_output(generation.text, generation.finish_reason)
    return JobResult(
        text=output,
        level=as_level(lease.level),
        model=lease.model.name,
        backend=lease.model.backend,
        tokens_in=generation.tokens_in,
        tokens_out=generation.tokens_out,
        generation_seconds=round(generation.seconds, 4),
        load_seconds=round(lease.load_seconds, 4),
        tokens_per_second=round(generation.tokens_per_second, 2),
        finish_reason=generation.finish_reason,
        readability_grade=readability_grade(output),
        grade_level=job.grade_level,
        subject=subject,
        memory_used=round(lease.decision.memory_used, 4),
        load=lease.decision.load,
        cache_hit=lease.cache_hit,
        reoptimized=lease.reoptimization,
        ceiling=ceiling,
    )
