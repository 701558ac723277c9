"""What a text says, as terms the checker can compare: numbers by value, names, and words by family.

Pure: no I/O beyond the word-frequency table that `wordfreq` ships and NLTK's Snowball stemmer (code, no data).
- Numbers are compared by value whichever way they are written: digits with or without thousands separators
  ("1,440"), number words ("two thousand", "twenty-nine"), ordinals ("eighteenth", "18th") and centuries ("the
  eighteenth century" is 18 and also the 1700s); a list of small numbers ("two, three, five") is three numbers.
- Words are compared by family: the same Snowball stem, or stems that differ only after the shorter one's last
  letter ("volcanoes" and "volcanic", "divided" and "divisors"); a word is also supported by a longer source
  word that starts with it ("Sun" in "sunlight").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

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
UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
    "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
    "fortieth": 40, "fiftieth": 50, "sixtieth": 60, "seventieth": 70, "eightieth": 80, "ninetieth": 90,
    "hundredth": 100, "thousandth": 1000,
}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
NUMBER_WORDS = frozenset(UNITS) | frozenset(TENS) | frozenset(ORDINALS) | frozenset(SCALES)
CENTURY_WORDS = ("century", "centuries")
TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th|s)?\b|[A-Za-z]+(?:['’][A-Za-z]+)*(?:-[A-Za-z]+)*")
SENTENCE_BREAK = re.compile(r"[.!?:;\"“”()]\s*$")
PREFIX_MIN = 3
"""A word is supported by a longer source word that starts with it (its stem at least this long)."""
FAMILY_PREFIX_MIN = 4
"""Two stems are one word family when one starts with the other, or when they share all of the shorter one but
its last letter and at least this many letters ("divid" and "divisor", "energi" and "energet")."""
NAME_ZIPF = 3.0
"""A capitalised word at a sentence start that is rarer than this is taken for a name."""
SMALL_NUMBER_WORD = 10
"""Numbers spelled out up to this ("two kinds", "three branches") are counting, not facts."""


@dataclass(frozen=True)
class Word:
    """One token of a text: its surface form, whether it starts a sentence, and whether a comma or other
    punctuation separates it from the token before."""

    text: str
    sentence_start: bool
    after_break: bool = False

    @property
    def lower(self) -> str:
        return self.text.lower().replace("’", "'")


@dataclass(frozen=True)
class Number:
    """A number as written and every value it stands for ("18th century" is 18 and 1700)."""

    raw: str
    values: frozenset[str]

    @property
    def spelled_small(self) -> bool:
        """A small number written as a word ("two kinds"): counting, not a fact."""
        return not self.raw[0].isdigit() and all(float(v) <= SMALL_NUMBER_WORD for v in self.values)


def tokens(text: str) -> list[Word]:
    """The words and numbers of a text in order, each marked when it opens a sentence or follows punctuation."""
    words: list[Word] = []
    last = 0
    for match in TOKEN.finditer(text):
        gap = text[last : match.start()]
        start = not words or bool(SENTENCE_BREAK.search(gap)) or "\n" in gap
        words.append(Word(match.group(), start, start or bool(gap.strip())))
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


def digits_value(text: str) -> str:
    """A numeral's value: separators, a decade's 's' and an ordinal's suffix dropped ("1,440" -> "1440")."""
    value = re.sub(r"(?:st|nd|rd|th|s)$", "", text.replace(",", ""))
    return value[:-2] if value.endswith(".0") else value


def spelled_number(words: Sequence[Word], i: int) -> tuple[int, int] | None:
    """The number written in words from index i ("two thousand", "twenty-nine", "eighteenth"): its value and the
    index after it; None when no number starts there. A comma or a second small number ends it."""
    total, current, j = 0, 0, i
    last_kind = ""
    while j < len(words) and (j == i or not words[j].after_break):
        parts = words[j].lower.split("-")
        kind, value = number_part(parts)
        if (
            kind == ""
            or (kind in ("unit", "ordinal") and last_kind in ("unit", "ordinal"))
            or (kind == "tens" and last_kind in ("unit", "tens", "ordinal"))
        ):
            break
        if kind == "scale":
            if j == i:
                break
            current = max(current, 1) * value
            if value >= 1000:
                total, current = total + current, 0
        else:
            current += value
        last_kind = kind
        j += 1
        if kind == "ordinal":
            break
    return (total + current, j) if j > i else None


def number_part(parts: list[str]) -> tuple[str, int]:
    """What a (hyphen-split) word is in a number: unit, tens, ordinal or scale, and its value; ("", 0) otherwise."""
    if len(parts) == 2 and parts[0] in TENS and (parts[1] in UNITS or parts[1] in ORDINALS):
        kind = "ordinal" if parts[1] in ORDINALS else "unit"
        return kind, TENS[parts[0]] + UNITS.get(parts[1], ORDINALS.get(parts[1], 0))
    if len(parts) != 1:
        return "", 0
    word = parts[0]
    for kind, table in (("unit", UNITS), ("tens", TENS), ("ordinal", ORDINALS), ("scale", SCALES)):
        if word in table:
            return kind, table[word]
    return "", 0


def numbers_of(words: Sequence[Word]) -> list[Number]:
    """Every number of a text, in order, with its values (a century also as its first year's hundred)."""
    found: list[Number] = []
    i = 0
    while i < len(words):
        if is_number(words[i]):
            value, end = digits_value(words[i].text), i + 1
        else:
            spelled = spelled_number(words, i)
            if spelled is None:
                i += 1
                continue
            value, end = str(spelled[0]), spelled[1]
        values = {value}
        if end < len(words) and words[end].lower in CENTURY_WORDS and value.isdigit():
            values.add(str((int(value) - 1) * 100))
        found.append(Number(" ".join(w.text for w in words[i:end]), frozenset(values)))
        i = end
    return found


def number_values(words: Sequence[Word]) -> set[str]:
    """Every value any number of the text stands for."""
    return {v for n in numbers_of(words) for v in n.values}


def is_name(word: Word) -> bool:
    """A capitalised word inside a sentence, or a rare capitalised word opening one (not "I")."""
    if not word.text[0].isupper() or word.text == "I" or word.lower in STOPWORDS or word.lower in NUMBER_WORDS:
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


def same_family(a: str, b: str) -> bool:
    """Whether two stems are one word family: one starts with the other, or they differ only from the shorter one's
    last letter on."""
    shorter = min(len(a), len(b))
    shared = 0
    while shared < shorter and a[shared] == b[shared]:
        shared += 1
    if shared == shorter:
        return shorter >= PREFIX_MIN
    return shared >= FAMILY_PREFIX_MIN and shared >= shorter - 1


def supported(word: Word, source_stems: set[str]) -> bool:
    """Whether the source has the word: by stem, by word family ("volcanic" for "volcanoes"), or, for a
    hyphenated word, every part of it."""
    key = stem(word.lower)
    if key in source_stems or any(same_family(key, s) for s in source_stems):
        return True
    parts = [p for p in word.lower.split("-") if p]
    return len(parts) > 1 and all(stem(p) in source_stems or p in STOPWORDS for p in parts)


def key_terms(words: Sequence[Word]) -> dict[str, str]:
    """Key content by match key: number values (not small counting words) and the stems of names and content words."""
    terms: dict[str, str] = {}
    for n in numbers_of(words):
        if not n.spelled_small:
            terms.setdefault("#" + min(n.values, key=len), n.raw)
    for w in words:
        if w.text[0].isalpha() and (is_name(w) or is_content(w)):
            terms.setdefault(stem(w.lower), w.text)
    return terms


def kept_keys(words: Sequence[Word]) -> set[str]:
    """Match keys a text offers for another text's key terms: its stems and its numbers' values."""
    return stems_of(words) | {f"#{value}" for value in number_values(words)}


def has_key(key: str, kept: set[str]) -> bool:
    """Whether a key term is among the kept keys, a word also by its family."""
    if key in kept:
        return True
    return not key.startswith("#") and any(not k.startswith("#") and same_family(key, k) for k in kept)


def sentences(words: Sequence[Word]) -> list[list[Word]]:
    """The text's words grouped by sentence."""
    groups: list[list[Word]] = []
    for w in words:
        if w.sentence_start or not groups:
            groups.append([])
        groups[-1].append(w)
    return groups


def unique(items: Iterable[str]) -> list[str]:
    """Items in first-seen order, each once."""
    return list(dict.fromkeys(items))
