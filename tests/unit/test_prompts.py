"""The prompts: the grade's sentence length in numbers, one example per band, revisions and the meaning question."""

from __future__ import annotations

from worker import prompts
from worker.readability import flesch_kincaid, grade_target

TEXT = "Bees pollinate\nflowers, which lets plants make seeds and fruit that many animals eat in spring and summer."


def test_the_chat_prompt_states_the_grade_in_sentence_lengths_and_shows_every_band() -> None:
    messages = prompts.build_messages(TEXT, 4, "Biology")
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * len(prompts.EXAMPLES) + ["user"]
    request = messages[-1]["content"]
    words = grade_target(4).words_per_sentence
    assert request.startswith(f"Grade: 4\nSubject: Biology\nWrite about 2 sentences of about {words} words each.\n")
    assert request.endswith("Text: " + " ".join(TEXT.split()))
    assert {e.grade for e in prompts.EXAMPLES} == {3, 5, 7, 10}, "one worked example per grade band"


def test_the_instruction_and_examples_are_the_same_for_every_job() -> None:
    first = prompts.build_messages("One text.", 3, "Art")
    second = prompts.build_messages("Another text about something else.", 10, "History")
    assert first[:-1] == second[:-1], "llama.cpp reuses the evaluated prefix only if it does not change"


def test_each_example_reads_near_its_grade() -> None:
    for example in prompts.EXAMPLES:
        grade = flesch_kincaid(example.rewrite)
        assert grade is not None and abs(grade - example.grade) <= 1.5, (example.grade, grade)


def test_longer_texts_ask_for_more_sentences_and_lower_grades_for_shorter_ones() -> None:
    text = " ".join(["word"] * 90)
    assert prompts.sentences_for(text, 3) > prompts.sentences_for(text, 10) >= prompts.MIN_SENTENCES
    assert grade_target(3).words_per_sentence == 10 and grade_target(5).words_per_sentence == 13
    assert 17 <= grade_target(8).words_per_sentence <= 18


def test_a_revision_is_an_editing_request_with_the_original_the_draft_and_the_notes() -> None:
    notes = ["sentence 2 has 31 words: split it into sentences of at most 13 words", "keep '1215' from the text"]
    messages = prompts.revise_messages(TEXT, "Bees help flowers.", 5, "Biology", notes)
    assert [m["role"] for m in messages] == ["system", "user"]
    request = messages[-1]["content"]
    assert request.startswith(f"Grade: 5 (sentences of about {grade_target(5).words_per_sentence} words")
    assert "Original text: " + " ".join(TEXT.split()) in request and "Rewrite: Bees help flowers." in request
    assert all(f"- {note}" in request for note in notes)


def test_the_meaning_question_follows_the_rewrite_and_asks_for_yes_or_no() -> None:
    messages = prompts.meaning_messages(TEXT, 5, "Biology", "Bees help flowers.")
    assert messages[-2] == {"role": "assistant", "content": "Bees help flowers."}
    assert messages[-1]["content"].endswith("Answer Yes or No.") and prompts.MEANING_ANSWERS == ("Yes", "No")


def test_a_base_model_gets_the_two_nearest_examples_as_a_completion_prompt() -> None:
    prompt = prompts.build_prompt("Bees pollinate flowers.", 4, "Biology")
    assert prompt.endswith("Grade: 4\nSubject: Biology\nText: Bees pollinate flowers.\nSimple:")
    assert prompt.count("Simple:") == 3 and "Grade: 3\n" in prompt and "Grade: 5\n" in prompt
