"""The quality report of a simplification: does the output suit the reader, and does it say what the source says?

Pure: no I/O beyond the word-frequency table that `wordfreq` ships. Five checks, each with its thresholds
named below, tuned by `python -m bench.quality_labels --tune` on the tuning part of the hand labels in
bench/data/quality_labels.jsonl only (the held-out part reports the precision and recall):

- grade: the output's Flesch-Kincaid grade against the target, plus a vocabulary signal (the share of
  rare words, by word frequency) so a text of short rare words does not pass as easy;
- invented content: numbers, names and rare content words in the output that the source does not have
  (matched on word stems, so case, plurals and inflections do not count; common easy words are allowed);
- copy: the output repeats the source nearly word for word, so nothing was simplified;
- coverage: the share of the source's key content (numbers, names, content words) the output keeps, so an
  output that drops most of the text, or answers another text, is caught;
- the verdict: `pass` when every check holds, else `needs_review` with the reasons in plain words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from worker.contracts import InventedContent, QualityReport, Verdict

GRADE_TOLERANCE = 2.0
"""Grade fit: the output's Flesch-Kincaid grade may be at most this far above the target ."""
GRADE_TOLERANCE_BELOW = 6.0
"""...and at most this far below it (a very low score on real text means it lost most of what it said)."""
RARE_ZIPF = 3.5
"""A word rarer than this on wordfreq's Zipf scale (3.5 = about three per million words) counts as rare."""
RARE_SHARE_AT_GRADE_3 = 0.06
RARE_SHARE_PER_GRADE = 0.015
"""Most rare words an output may have, as a share of its words: 6% for grade 3, 1.5 points more per grade."""
COMMON_ZIPF = 4.5
"""An added content word at least this common (about thirty per million words) is an easy word a rewrite may add..."""
EASY_SYLLABLES = 2
EASY_SHORT_ZIPF = 2.0
"""...and so is one of at most two syllables not rarer than this ("shake", "germ", "layer"; not "relativity")."""
PREFIX_MIN = 3
"""A word is supported by a longer source word that starts with it (its stem at least this long)."""
NAME_ZIPF = 3.0
"""A capitalised word at a sentence start that is rarer than this is taken for a name."""
INVENTED_WORDS_MIN = 1
"""Harder content words the source lacks that make an output "adds content"."""
SMALL_NUMBER_WORD = 10
"""Numbers spelled out up to this ("two kinds", "three branches") are counting, not facts, and are not checked."""
COPY_OVERLAP = 0.5
"""Copy: at least half of the output's word trigrams appear in the source..."""
COPY_MIN_WORDS = 12
"""...in an output of at least this many words."""
COVERAGE_TERMS_PER_SENTENCE = 4
"""A source sentence counts as kept when the output has this many of its key terms (numbers, names, content words)."""
COVERAGE_MIN = 0.6
"""Coverage: the output keeps at least this share of the source's sentences (see coverage_of)."""
MIN_OUTPUT_WORDS = 3
"""Fewer words than this is no simplification at all."""
LIST_LIMIT = 6
"""Terms listed per reason."""

FUNCTION_WORDS = """a about above after again against all also although am among an and any are around as at be because
    been before being below between both but by can cannot could did do does doing done down during
    each either else even ever every few for from further had has have having he her here hers
    herself him himself his how however i if in into is it its itself just least less like made make
    makes many may me might more most much must my myself neither no nor not now of off often on
    once one only or other others our ours ourselves out over own per quite rather same she should
    since so some such than that the their theirs them themselves then there these they this those
    though through thus to too under until up upon us very was we were what when where whereas
    whether which while who whom whose why will with within without would yet you your yours
    yourself called usually still way ways thing things kind kinds lot lots get gets got"""
STOPWORDS = frozenset(FUNCTION_WORDS.split())
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?s?|[A-Za-z]+(?:['’][A-Za-z]+)*(?:-[A-Za-z]+)*")
SENTENCE_BREAK = re.compile(r"[.!?:;\"“”()]\s*$")


def adds_content(invented: InventedContent) -> bool:
    """Whether the output adds facts (any number or name) or rare content words of its own."""
    return bool(invented.facts) or len(invented.words) >= INVENTED_WORDS_MIN


def too_hard(report: QualityReport) -> bool:
    """Harder than the target allows, by grade or by vocabulary."""
    return (report.grade_error is not None and report.grade_error > GRADE_TOLERANCE) or not report.vocabulary_ok


def faithful(report: QualityReport) -> bool:
    """Adds nothing, keeps the key content and is not a copy: only its difficulty may be wrong."""
    return not adds_content(report.invented) and report.coverage_ok and not report.copied and report.grade is not None


@dataclass(frozen=True)
class Word:
    """One token of a text: its surface form and whether it starts a sentence."""

    text: str
    sentence_start: bool

    @property
    def lower(self) -> str:
        return self.text.lower().replace("’", "'")


def tokens(text: str) -> list[Word]:
    """The words and numbers of a text in order, each marked when it opens a sentence."""
    words: list[Word] = []
    last = 0
    for match in TOKEN.finditer(text):
        gap = text[last : match.start()]
        start = not words or bool(SENTENCE_BREAK.search(gap)) or "\n" in gap
        words.append(Word(match.group(), start))
        last = match.end()
    return words


@cache
def stem(word: str) -> str:
    """The word's stem (Snowball English), so plurals and inflections match; possessives dropped first."""
    from nltk.stem.snowball import SnowballStemmer

    base = re.sub(r"'s$|s'$", "", word.lower().replace("’", "'"))
    return str(_stemmer(SnowballStemmer).stem(base))


@cache
def _stemmer(cls: type) -> Any:
    return cls("english")


@cache
def zipf(word: str) -> float:
    """How common a word is in English, on wordfreq's Zipf scale (0 unknown, 3 rare, 5 common, 7 'the');
    an inflected form counts as common as its stem ("teaches" as "teach")."""
    from wordfreq import zipf_frequency

    return float(max(zipf_frequency(word, "en"), zipf_frequency(stem(word), "en")))


def is_number(word: Word) -> bool:
    """A numeral written with digits."""
    return word.text[0].isdigit()


def number_value(text: str) -> str:
    """A numeral's value as a string: commas and a decade's 's' dropped ("1,440" -> "1440", "1960s" -> "1960")."""
    value = text.replace(",", "").removesuffix("s")
    return value[:-2] if value.endswith(".0") else value


def spelled_numbers(words: Sequence[Word]) -> list[tuple[int, str]]:
    """Numbers written in words ("two thousand", "twenty-nine") with the index where each starts."""
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(words):
        total, current, j = 0, 0, i
        while j < len(words):
            parts = words[j].lower.split("-")
            if all(p in NUMBER_WORDS for p in parts):
                current += sum(NUMBER_WORDS[p] for p in parts)
            elif parts[0] in SCALES and j > i:
                current = max(current, 1) * SCALES[parts[0]]
                if SCALES[parts[0]] >= 1000:
                    total, current = total + current, 0
            else:
                break
            j += 1
        if j > i:
            found.append((i, str(total + current)))
            i = j
        else:
            i += 1
    return found


def numbers_of(words: Sequence[Word]) -> dict[str, str]:
    """Every number in a text, by value, with how it was written."""
    values = {number_value(w.text): w.text for w in words if is_number(w)}
    for i, value in spelled_numbers(words):
        values.setdefault(value, words[i].text)
    return values


def is_name(word: Word) -> bool:
    """A capitalised word inside a sentence, or a rare capitalised word opening one (not "I")."""
    if not word.text[0].isupper() or word.text == "I" or word.lower in STOPWORDS:
        return False
    return not word.sentence_start or zipf(word.lower) < NAME_ZIPF


def is_content(word: Word) -> bool:
    """A word that carries meaning: alphabetic, three letters or more, not a function word or a number word."""
    low = word.lower
    return word.text[0].isalpha() and len(low) >= 3 and low not in STOPWORDS and low not in NUMBER_WORDS


def stems_of(words: Iterable[Word]) -> set[str]:
    """The stems of a text's words (numbers left out), each part of a hyphenated word too."""
    out: set[str] = set()
    for w in words:
        if w.text[0].isalpha():
            out.add(stem(w.lower))
            out.update(stem(part) for part in w.lower.split("-") if part)
    return out


def supported(word: Word, source_stems: set[str]) -> bool:
    """Whether the source has the word: by stem, as the start of a longer source word ("Sun" in "sunlight",
    "America" in "American"), or every part of a hyphenated word."""
    key = stem(word.lower)
    if key in source_stems or (len(key) >= PREFIX_MIN and any(s.startswith(key) for s in source_stems)):
        return True
    parts = [p for p in word.lower.split("-") if p]
    return len(parts) > 1 and all(stem(p) in source_stems or p in STOPWORDS for p in parts)


def easy_word(word: str) -> bool:
    """A word a simplification may add: common, or short and not rare (Dale-Chall's idea of a familiar word)."""
    return zipf(word) >= COMMON_ZIPF or (syllable_count(word) <= EASY_SYLLABLES and zipf(word) >= EASY_SHORT_ZIPF)


def invented_content(source: Sequence[Word], output: Sequence[Word]) -> InventedContent:
    """Numbers, names and rare content words of the output that the source does not support."""
    source_numbers = numbers_of(source)
    source_stems = stems_of(source)
    numbers = [
        raw
        for value, raw in numbers_of(output).items()
        if value not in source_numbers and not (not raw[0].isdigit() and float(value) <= SMALL_NUMBER_WORD)
    ]
    names: list[str] = []
    words: list[str] = []
    for w in output:
        if not w.text[0].isalpha() or supported(w, source_stems):
            continue
        if is_name(w):
            names.append(w.text)
        elif is_content(w) and not easy_word(w.lower):
            words.append(w.lower)
    return InventedContent(numbers=unique(numbers), names=unique(names), words=unique(words))


def key_terms(words: Sequence[Word]) -> dict[str, str]:
    """Key content by match key: number values (not small counting words) and the stems of names and content words."""
    terms: dict[str, str] = {
        f"#{value}": raw
        for value, raw in numbers_of(words).items()
        if raw[0].isdigit() or float(value) > SMALL_NUMBER_WORD
    }
    for w in words:
        if w.text[0].isalpha() and (is_name(w) or is_content(w)):
            terms.setdefault(stem(w.lower), w.text)
    return terms


def sentences(words: Sequence[Word]) -> list[list[Word]]:
    """The text's words grouped by sentence."""
    groups: list[list[Word]] = []
    for w in words:
        if w.sentence_start or not groups:
            groups.append([])
        groups[-1].append(w)
    return groups


def coverage_of(source: Sequence[Word], output: Sequence[Word]) -> tuple[float, list[str]]:
    """How much of each source sentence the output keeps, averaged over the sentences, and the key terms lost.

    A sentence counts as kept when the output has COVERAGE_TERMS_PER_SENTENCE of its key terms (in part
    for fewer), so a rewrite in other words still keeps a sentence by its subject, while an output that drops
    most sentences, or answers another text, keeps little.
    """
    kept = stems_of(output) | {f"#{value}" for value in numbers_of(output)}
    scores = []
    for sentence in sentences(source):
        terms = key_terms(sentence)
        if terms:
            found = sum(key in kept for key in terms)
            scores.append(min(found / min(COVERAGE_TERMS_PER_SENTENCE, len(terms)), 1.0))
    missing = [raw for key, raw in key_terms(source).items() if key not in kept]
    return (round(sum(scores) / len(scores), 3) if scores else 1.0), missing


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


def check(source: str, output: str, target_grade: int) -> QualityReport:
    """The quality report of `output` as a simplification of `source` for a reader in `target_grade`."""
    src, out = tokens(source), tokens(output)
    grade = readability_grade(output)
    error = round(grade - target_grade, 2) if grade is not None else None
    grade_ok = error is not None and -GRADE_TOLERANCE_BELOW <= error <= GRADE_TOLERANCE
    rare_share, rare = rare_words_of(out)
    vocabulary_ok = rare_share <= rare_share_limit(target_grade)
    invented = invented_content(src, out)
    similarity = copy_similarity(src, out)
    copied = similarity >= COPY_OVERLAP and len(out) >= COPY_MIN_WORDS
    coverage, missing = coverage_of(src, out)
    coverage_ok = coverage >= COVERAGE_MIN
    fields = {
        "target_grade": target_grade,
        "grade": grade,
        "grade_error": error,
        "grade_ok": grade_ok,
        "rare_word_share": rare_share,
        "rare_words": rare,
        "vocabulary_ok": vocabulary_ok,
        "invented": invented,
        "copy_similarity": similarity,
        "copied": copied,
        "coverage": coverage,
        "missing": missing,
        "coverage_ok": coverage_ok,
    }
    reasons = reasons_for(fields, len(out))
    return QualityReport(**fields, verdict="needs_review" if reasons else "pass", reasons=reasons)  # type: ignore[arg-type]


def reasons_for(f: Mapping[str, object], n_words: int) -> list[str]:
    """The failed checks in plain words, most serious first."""
    if n_words < MIN_OUTPUT_WORDS:
        return ["no simplified text came back" if n_words == 0 else f"only {n_words} word(s) came back"]
    reasons: list[str] = []
    invented = f["invented"]
    assert isinstance(invented, InventedContent)
    if invented.facts:
        reasons.append(f"adds {quoted(invented.facts)}, not in the text")
    if len(invented.words) >= INVENTED_WORDS_MIN:
        reasons.append(f"talks about {quoted(invented.words)}, which the text does not mention")
    if f["copied"]:
        reasons.append(f"repeats the text nearly word for word ({f['copy_similarity']:.0%} of its phrases)")
    if not f["coverage_ok"]:
        missing = f["missing"]
        assert isinstance(missing, list)
        reasons.append(f"keeps only {f['coverage']:.0%} of the text's key content (leaves out {quoted(missing)})")
    target = f["target_grade"]
    assert isinstance(target, int)
    if not f["grade_ok"]:
        easier = isinstance(f["grade_error"], float | int) and f["grade_error"] < 0
        reasons.append(f"grade {f['grade']:.1f} for a grade-{target} target" + (" (far simpler)" if easier else ""))
    if not f["vocabulary_ok"]:
        rare = f["rare_words"]
        assert isinstance(rare, list)
        reasons.append(
            f"too many rare words for grade {target} ({f['rare_word_share']:.0%} of its words, at most "
            f"{rare_share_limit(target):.0%}): {quoted(rare)}"
        )
    return reasons


def quoted(terms: Sequence[str]) -> str:
    """'a', 'b' and 'c' (and N more)."""
    shown = [f"'{t}'" for t in terms[:LIST_LIMIT]]
    more = len(terms) - len(shown)
    if more:
        return ", ".join(shown) + f" and {more} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def unique(items: Iterable[str]) -> list[str]:
    """Items in first-seen order, each once."""
    return list(dict.fromkeys(items))


def preference(report: QualityReport) -> tuple[float, ...]:
    """Sort key for candidates, best last: a pass; then no made-up facts; fewer failed checks; nearer the grade."""
    failures = len(report.reasons)
    return (
        float(report.passed),
        float(not report.invented.facts),
        -float(failures),
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
    """Load the word-frequency table, the stemmer and the syllable dictionary now (a worker at start), not
    during the first job."""
    return check(WARM_SOURCE, WARM_OUTPUT, 5)


def cmudict_available() -> bool:
    """Whether NLTK's CMU dictionary is on disk (textstat would otherwise try to download it)."""
    import nltk

    try:
        nltk.data.find("corpora/cmudict")
    except LookupError:
        return False
    return True


WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


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
    words = WORD.findall(text.lower())
    sentences = max(int(textstat.sentence_count(text)), 1)
    if not words:
        return 0.0
    syllables = sum(syllable_count(word) for word in words)
    grade = 0.39 * len(words) / sentences + 11.8 * syllables / len(words) - 15.59
    return round(grade, 2)


def syllable_count(word: str) -> int:
    """Syllables of a word by Pyphen's hyphenation points (what textstat uses without the CMU dictionary)."""
    return len(_hyphenator().positions(word)) + 1


@cache
def _hyphenator() -> Any:
    import pyphen

    return pyphen.Pyphen(lang="en_US")
