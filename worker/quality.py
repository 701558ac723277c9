"""The quality report of a simplification: does the output suit the reader, and does it say what the source says?

Pure: the terms and the grade come from worker/terms.py and worker/readability.py; the meaning score, when
there is one, is measured outside (worker/meaning.py) and passed in. The checks, each with its thresholds named
below, tuned by `python -m bench.quality_labels --tune` on the tuning part of the hand labels only (the
held-out part reports the precision and recall):

- grade: the output's Flesch-Kincaid grade against the target (too hard, or too simple for the grade), plus a
  vocabulary signal (the share of rare words) so a text of short rare words does not pass as easy;
- invented content: numbers, names and rare words of the output that the source does not have (numbers by
  value, words by family, so "18th century" matches "eighteenth century" and "volcanic" matches "volcanoes");
- copy: the output repeats the source nearly word for word, so nothing was simplified;
- coverage: the share of the source's key content (numbers, names, content words) the output keeps;
- over-simplification: the output is much shorter than the source, or leaves out its numbers and names;
- meaning: the model's own judgement, asked separately, that the output changes what the source says;
- the verdict: `pass` when every check holds, else `needs_review` with the reasons in plain words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker import readability
from worker.contracts import InventedContent, QualityReport, Verdict
from worker.readability import flesch_kincaid, syllables
from worker.terms import (
    Word,
    has_key,
    is_content,
    is_name,
    kept_keys,
    key_terms,
    number_values,
    numbers_of,
    same_family,
    sentences,
    stem,
    stems_of,
    supported,
    tokens,
    unique,
    zipf,
)

GRADE_TOLERANCE = 1.5
"""Grade fit: the output's Flesch-Kincaid grade may be at most this far above the target..."""
GRADE_TOLERANCE_BELOW = 2.0
"""...and at most this far below it (a rewrite far simpler than asked has lost what the grade could read)."""
RARE_ZIPF = 3.5
"""A word rarer than this on wordfreq's Zipf scale (3.5 = about three per million words) counts as rare."""
RARE_SHARE_AT_GRADE_3 = 0.06
RARE_SHARE_PER_GRADE = 0.015
"""Most rare words an output may have, as a share of its words: 6% for grade 3, 1.5 points more per grade."""
INVENTED_ZIPF = 4.0
"""An added word (not a name or a number) is invented content when it is rarer than this: a rewrite may add
the common words it explains things with, but not a term of its own..."""
EASY_SYLLABLES = 2
EASY_SHORT_ZIPF = 2.5
"""...unless it is short and not very rare, an easy word a child knows ("germ", "shake"; not "relativity")."""
COPY_OVERLAP = 0.5
"""Copy: at least half of the output's word trigrams appear in the source..."""
COPY_MIN_WORDS = 12
"""...in an output of at least this many words."""
COVERAGE_TERMS_PER_SENTENCE = 4
"""A source sentence counts as kept when the output has this many of its key terms (numbers, names, content words)."""
COVERAGE_MIN = 0.7
"""Coverage: the output keeps at least this share of the source's sentences (see coverage_of)."""
MIN_LENGTH_RATIO = 0.4
"""Over-simplified: the output has fewer words than this share of the source's..."""
DROPPED_FACTS_MAX = 3
"""...or leaves out at least this many of the source's numbers and names."""
MEANING_MAX = 0.75
"""The meaning check fails above this score (the model's P(Yes) that the rewrite changes the meaning)."""
MIN_OUTPUT_WORDS = 3
"""Fewer words than this is no simplification at all."""
LIST_LIMIT = 6
"""Terms listed per reason."""


@dataclass(frozen=True)
class Findings:
    """What the checks found, before they become a report."""

    target: int
    n_words: int
    grade: float | None
    grade_error: float | None
    rare_share: float
    rare: list[str]
    invented: InventedContent
    similarity: float
    coverage: float
    missing: list[str]
    length_ratio: float
    dropped: list[str]
    meaning: float | None

    @property
    def grade_ok(self) -> bool:
        e = self.grade_error
        return e is not None and -GRADE_TOLERANCE_BELOW <= e <= GRADE_TOLERANCE

    @property
    def vocabulary_ok(self) -> bool:
        return self.rare_share <= rare_share_limit(self.target)

    @property
    def copied(self) -> bool:
        return self.similarity >= COPY_OVERLAP and self.n_words >= COPY_MIN_WORDS

    @property
    def coverage_ok(self) -> bool:
        return self.coverage >= COVERAGE_MIN

    @property
    def over_simplified(self) -> bool:
        return self.length_ratio < MIN_LENGTH_RATIO or len(self.dropped) >= DROPPED_FACTS_MAX

    @property
    def meaning_ok(self) -> bool:
        return self.meaning is None or self.meaning <= MEANING_MAX


def adds_content(invented: InventedContent) -> bool:
    """Whether the output adds facts (any number or name) or rare words of its own."""
    return bool(invented.facts) or bool(invented.words)


def too_hard(report: QualityReport) -> bool:
    """Harder than the target allows, by grade or by vocabulary."""
    return (report.grade_error is not None and report.grade_error > GRADE_TOLERANCE) or not report.vocabulary_ok


def faithful(report: QualityReport) -> bool:
    """Adds nothing, keeps the key content and is not a copy: only its difficulty may be wrong."""
    return (
        not adds_content(report.invented)
        and report.coverage_ok
        and not report.over_simplified
        and report.meaning_ok
        and not report.copied
        and report.grade is not None
    )


def invented_content(source: Sequence[Word], output: Sequence[Word]) -> InventedContent:
    """Numbers, names and rare words of the output that the source does not support."""
    source_values = number_values(source)
    source_stems = stems_of(source)
    numbers = [n.raw for n in numbers_of(output) if not n.spelled_small and not n.values & source_values]
    names: list[str] = []
    words: list[str] = []
    for w in output:
        if not w.text[0].isalpha() or supported(w, source_stems):
            continue
        if is_name(w):
            names.append(w.text)
        elif is_content(w) and rare_added(w.lower):
            words.append(w.lower)
    return InventedContent(numbers=unique(numbers), names=unique(names), words=unique(words))


def rare_added(word: str) -> bool:
    """Whether an added word is a rare term (invented content), not an easy word a rewrite may explain with."""
    frequency = zipf(word)
    easy_short = syllables(word) <= EASY_SYLLABLES and frequency >= EASY_SHORT_ZIPF
    return frequency < INVENTED_ZIPF and not easy_short


def coverage_of(source: Sequence[Word], output: Sequence[Word]) -> tuple[float, list[str]]:
    """How much of each source sentence the output keeps, averaged over the sentences, and the key terms lost.

    A sentence counts as kept when the output has COVERAGE_TERMS_PER_SENTENCE of its key terms (in part
    for fewer), so a rewrite in other words still keeps a sentence by its subject, while an output that drops
    most sentences, or answers another text, keeps little.
    """
    kept = kept_keys(output)
    scores = []
    for sentence in sentences(source):
        terms = key_terms(sentence)
        if terms:
            found = sum(has_key(key, kept) for key in terms)
            scores.append(min(found / min(COVERAGE_TERMS_PER_SENTENCE, len(terms)), 1.0))
    missing = [raw for key, raw in key_terms(source).items() if not has_key(key, kept)]
    return (round(sum(scores) / len(scores), 3) if scores else 1.0), missing


def dropped_facts(source: Sequence[Word], output: Sequence[Word]) -> list[str]:
    """The source's numbers and the names inside its sentences that the output leaves out."""
    output_values = number_values(output)
    output_stems = stems_of(output)
    numbers = [n.raw for n in numbers_of(source) if not n.spelled_small and not n.values & output_values]
    names = [
        " ".join(w.text for w in name) for name in names_of(source) if not any(supported(w, output_stems) for w in name)
    ]
    return unique([*numbers, *names])


def names_of(words: Sequence[Word]) -> list[list[Word]]:
    """The names inside the text's sentences, a run of capitalised words one name ("San Francisco")."""
    runs: list[list[Word]] = []
    previous = -2
    for i, w in enumerate(words):
        if is_name(w) and not w.sentence_start:
            if i == previous + 1 and not w.after_break:
                runs[-1].append(w)
            else:
                runs.append([w])
            previous = i
    return runs


def closeness(source: str, output: str) -> float:
    """How close an output stays to its source in content: the F1 of their content-word families (0-1), so that
    among passing drafts the one that keeps most of the source and adds least is kept."""
    src = {stem(w.lower) for w in tokens(source) if is_content(w) or is_name(w)}
    out = {stem(w.lower) for w in tokens(output) if is_content(w) or is_name(w)}
    if not src or not out:
        return 0.0
    kept = sum(any(same_family(s, o) or s == o for o in out) for s in src)
    grounded = sum(any(same_family(o, s) or s == o for s in src) for o in out)
    recall, precision = kept / len(src), grounded / len(out)
    return round(2 * recall * precision / (recall + precision), 4) if kept and grounded else 0.0


def trigrams(words: Sequence[Word]) -> list[tuple[str, ...]]:
    """The text's word trigrams, lower-cased."""
    low = [w.lower for w in words]
    return [tuple(low[i : i + 3]) for i in range(len(low) - 2)]


def copy_similarity(source: Sequence[Word], output: Sequence[Word]) -> float:
    """Share of the output's word trigrams that appear in the source (1.0: every phrase is the source's)."""
    grams = trigrams(output)
    if not grams:
        return 0.0
    source_grams = set(trigrams(source))
    return round(sum(g in source_grams for g in grams) / len(grams), 3)


def rare_words_of(words: Sequence[Word]) -> tuple[float, list[str]]:
    """Share of the output's words that are rare (names and numbers left out), and which they are."""
    plain = [w for w in words if w.text[0].isalpha() and not is_name(w)]
    if not plain:
        return 0.0, []
    rare = [w.lower for w in plain if zipf(w.lower) < RARE_ZIPF]
    return round(len(rare) / len(plain), 3), unique(rare)


def rare_share_limit(target_grade: int) -> float:
    """Most rare words a text for this grade may have, as a share of its words."""
    return RARE_SHARE_AT_GRADE_3 + RARE_SHARE_PER_GRADE * max(target_grade - 3, 0)


def find(source: str, output: str, target_grade: int, meaning: float | None = None) -> Findings:
    """Run every check of `output` against `source` for a reader in `target_grade`."""
    src, out = tokens(source), tokens(output)
    grade = flesch_kincaid(output)
    rare_share, rare = rare_words_of(out)
    coverage, missing = coverage_of(src, out)
    src_words = sum(w.text[0].isalpha() for w in src)
    out_words = sum(w.text[0].isalpha() for w in out)
    return Findings(
        target=target_grade,
        n_words=len(out),
        grade=grade,
        grade_error=round(grade - target_grade, 2) if grade is not None else None,
        rare_share=rare_share,
        rare=rare,
        invented=invented_content(src, out),
        similarity=copy_similarity(src, out),
        coverage=coverage,
        missing=missing,
        length_ratio=round(out_words / src_words, 3) if src_words else 1.0,
        dropped=dropped_facts(src, out),
        meaning=meaning,
    )


def check(source: str, output: str, target_grade: int, meaning: float | None = None) -> QualityReport:
    """The quality report of `output` as a simplification of `source` for a reader in `target_grade`; `meaning`
    is the meaning check's score when the model was asked (worker/meaning.py)."""
    f = find(source, output, target_grade, meaning)
    reasons = reasons_for(f)
    return QualityReport(
        target_grade=target_grade,
        grade=f.grade,
        grade_error=f.grade_error,
        grade_ok=f.grade_ok,
        rare_word_share=f.rare_share,
        rare_words=f.rare,
        vocabulary_ok=f.vocabulary_ok,
        invented=f.invented,
        copy_similarity=f.similarity,
        copied=f.copied,
        coverage=f.coverage,
        missing=f.missing,
        coverage_ok=f.coverage_ok,
        length_ratio=f.length_ratio,
        dropped_facts=f.dropped,
        over_simplified=f.over_simplified,
        meaning_score=f.meaning,
        meaning_ok=f.meaning_ok,
        verdict="needs_review" if reasons else "pass",
        reasons=reasons,
    )


def reasons_for(f: Findings) -> list[str]:
    """The failed checks in plain words, most serious first."""
    if f.n_words < MIN_OUTPUT_WORDS:
        return ["no simplified text came back" if f.n_words == 0 else f"only {f.n_words} word(s) came back"]
    reasons: list[str] = []
    if f.invented.facts:
        reasons.append(f"adds {quoted(f.invented.facts)}, not in the text")
    if f.invented.words:
        reasons.append(f"talks about {quoted(f.invented.words)}, which the text does not mention")
    if not f.meaning_ok:
        reasons.append(f"may change what the text says: the model's own check doubts it (score {f.meaning:.2f})")
    if f.copied:
        reasons.append(f"repeats the text nearly word for word ({f.similarity:.0%} of its phrases)")
    if f.over_simplified:
        reasons.append(over_simplified_reason(f))
    if not f.coverage_ok:
        reasons.append(f"keeps only {f.coverage:.0%} of the text's key content (leaves out {quoted(f.missing)})")
    if not f.grade_ok and f.grade is not None and f.grade_error is not None:
        easier = " (too simple: keep more of the detail)" if f.grade_error < 0 else ""
        reasons.append(f"grade {f.grade:.1f} for a grade-{f.target} target{easier}")
    if not f.vocabulary_ok:
        reasons.append(
            f"too many rare words for grade {f.target} ({f.rare_share:.0%} of its words, at most "
            f"{rare_share_limit(f.target):.0%}): {quoted(f.rare)}"
        )
    return reasons


def over_simplified_reason(f: Findings) -> str:
    """Over-simplified, with what shows it: the length against the source's, the numbers and names it leaves out."""
    parts = []
    if f.length_ratio < MIN_LENGTH_RATIO:
        parts.append(f"{f.length_ratio:.0%} of the text's length")
    if f.dropped:
        parts.append(f"leaves out {quoted(f.dropped)}")
    return "over-simplified: " + ", ".join(parts)


def quoted(terms: Sequence[str]) -> str:
    """'a', 'b' and 'c' (and N more)."""
    shown = [f"'{t}'" for t in terms[:LIST_LIMIT]]
    more = len(terms) - len(shown)
    if more:
        return ", ".join(shown) + f" and {more} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def preference(report: QualityReport) -> tuple[float, ...]:
    """Sort key for candidates, best last: a pass; then no made-up facts; fewer failed checks; nearer the grade."""
    return (
        float(report.passed),
        float(not report.invented.facts),
        -float(len(report.reasons)),
        report.coverage,
        -abs(report.grade_error) if report.grade_error is not None else -99.0,
    )


def combine(document: QualityReport, parts: Sequence[QualityReport]) -> QualityReport:
    """A document's report: the whole text's measures, and a pass only when every paragraph passes."""
    if len(parts) <= 1:
        return parts[0] if parts else document
    reasons = [f"paragraph {i}: {reason}" for i, part in enumerate(parts, 1) for reason in part.reasons]
    verdict: Verdict = "needs_review" if reasons else "pass"
    return document.model_copy(update={"verdict": verdict, "reasons": reasons})


WARM_SOURCE = "Volcanoes form where molten rock reaches the surface. In 1980 Mount St. Helens erupted."
WARM_OUTPUT = "A volcano is a place where hot rock comes up. One blew up in 1980."


def warm() -> QualityReport:
    """Load the word-frequency table, the stemmer and the syllable dictionaries now (a worker at start), not
    during the first job."""
    readability.warm()
    return check(WARM_SOURCE, WARM_OUTPUT, 5)
