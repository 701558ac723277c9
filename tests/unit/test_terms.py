"""What the checker compares: numbers by value however written, and words by family."""

from __future__ import annotations

from worker.quality import check
from worker.terms import numbers_of, same_family, stem, supported, tokens


def values(text: str) -> list[tuple[str, list[str]]]:
    return [(n.raw, sorted(n.values)) for n in numbers_of(tokens(text))]


def test_numbers_in_words_digits_ordinals_and_separators_have_one_value() -> None:
    assert values("about 1,440 or twenty-nine, two thousand, twenty nine and the 3rd") == [
        ("1,440", ["1440"]),
        ("twenty-nine", ["29"]),
        ("two thousand", ["2000"]),
        ("twenty nine", ["29"]),
        ("3rd", ["3"]),
    ]


def test_a_list_of_small_numbers_is_several_numbers_not_their_sum() -> None:
    assert values("examples include two, three, five and seven") == [
        ("two", ["2"]),
        ("three", ["3"]),
        ("five", ["5"]),
        ("seven", ["7"]),
    ]


def test_a_century_is_also_its_hundreds() -> None:
    assert values("in the eighteenth century") == [("eighteenth", ["1700", "18"])]
    assert values("in the 18th century") == [("18th", ["1700", "18"])]
    src = "The novel became popular in the eighteenth century."
    for output in ("The novel got popular in the 1700s.", "The novel got popular in the 18th century."):
        assert check(src, output, 6).invented.numbers == [], output


def test_digits_in_a_list_match_the_words_of_the_source() -> None:
    src = "A prime number has no divisors but one and itself; examples include two, three, five and seven."
    report = check(src, "A prime number can only be divided by 1 and itself. Examples are 2, 3, 5, and 7.", 6)
    assert report.invented.numbers == [] and report.invented.words == []


def test_word_families_match_by_stem_or_shared_beginning() -> None:
    assert same_family(stem("volcanoes"), stem("volcanic"))
    assert same_family(stem("divided"), stem("divisors"))
    assert not same_family(stem("present"), stem("preserve"))
    assert supported(tokens("Volcanoes")[0], {stem("volcanic"), stem("arcs")})
    src = "Subduction builds volcanic arcs where one plate sinks below another."
    assert check(src, "When one plate sinks, it can build volcanoes.", 6).invented.words == []
