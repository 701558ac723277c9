"""Cleaning a completion: made-up prompt fields and loops cut, the answer kept (real outputs of the bundled model)."""

from __future__ import annotations

from worker.simplify import clean_output, cut_loop, cut_prompt_fields


def test_a_made_up_complex_field_is_cut() -> None:
    raw = (
        " The nitrogen cycle is a series of processes that take place in the atmosphere. Complex: The nitrogen "
        "cycle is a complex process that involves many organisms.\n"
    )
    assert clean_output(raw, "stop") == "The nitrogen cycle is a series of processes that take place in the atmosphere."


def test_other_prompt_fields_on_a_new_line_are_cut() -> None:
    raw = " Sound is a wave that moves through air.\nGrade: 6\nSubject: Physics\nText: Light is"
    assert clean_output(raw, "length") == "Sound is a wave that moves through air."
    assert cut_prompt_fields("Simple: Bees carry pollen. Hard: Pollination is") == "Bees carry pollen. "


def test_a_label_the_answer_starts_with_is_dropped_not_the_answer() -> None:
    assert clean_output(" Simple: Plants make food from light.", "stop") == "Plants make food from light."


def test_a_looping_answer_is_cut_where_the_loop_starts() -> None:
    sentence = "The Bank of Credit is responsible for the development of the economy."
    raw = (
        "The Federal Reserve and the Bank of Credit are responsible for the development of the economy. "
        + (sentence + " ") * 4
    )
    assert clean_output(raw, "length") == (
        "The Federal Reserve and the Bank of Credit are responsible for the development of the economy."
    )
    looping = "The United States is the only country that has a government, and " * 3
    assert cut_loop(looping.strip()) == "The United States is the only country that has a government."


def test_plain_answers_are_left_alone() -> None:
    text = "Cells have small parts called mitochondria. They make the energy a cell needs."
    assert clean_output(" " + text + "\n", "stop") == text
    assert cut_loop(text) == text
