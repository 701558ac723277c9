"""What the model is asked: a rewrite for a grade, a revision with the checker's notes, and a meaning check.

Pure: strings in, strings (or chat turns) out. An instruct model (a chat template in its file) gets chat
turns: a fixed system instruction, one worked example per grade band, then the text with the grade's sentence
length in numbers (readability.grade_target) and about as many sentences as the text needs at that length.
The instruction and the examples are the same for every job, so llama.cpp keeps them evaluated from one job
to the next; the meaning check continues the job's own conversation, so it only evaluates what it adds. A
revision is a separate editing request (the original, the draft, the checker's notes). A base model gets the
two nearest examples as a few-shot completion prompt (lines Grade:, Subject:, Text:, Simple:) and stops at the
end of the answer line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.readability import grade_target

Message = dict[str, str]
"""One chat turn: {"role": "system" | "user" | "assistant", "content": text}."""

SYSTEM = (
    "You rewrite hard texts so that a school student of a given grade can read them. Use sentences of the length "
    "asked for and short, common words that a child of that age knows (mostly of one or two syllables); when you "
    "keep a hard term, explain it in simple words. Keep every fact, "
    "number, name and condition of the text, in the same order, and keep their meaning exact; do not add facts, "
    "examples or opinions of your own. Reply with the rewritten text only, as one paragraph."
)
FEW_SHOT_HEADER = (
    "Each hard text below is rewritten in short sentences and easy words that a student in the given grade "
    "can read. The meaning stays the same."
)
STOP: tuple[str, ...] = ("\n\n", "Grade:", "Subject:", "Text:", "Simple:", "Complex:")
"""Where a few-shot completion ends: a blank line, or the model starting another prompt field of its own."""
MIN_SENTENCES = 2


@dataclass(frozen=True)
class Example:
    """A worked rewrite for one grade band: the hard text and a rewrite that keeps every fact at that grade."""

    grade: int
    subject: str
    source: str
    rewrite: str


EXAMPLES: tuple[Example, ...] = (
    Example(
        3,
        "Biology",
        "Bees are flying insects closely related to wasps and ants, known for their roles in pollination and, in "
        "the case of the best-known species, the western honey bee, for producing honey.",
        "Bees are insects that fly. They are close cousins of wasps and ants. Bees carry pollen from flower to "
        "flower, and this helps plants make seeds. One kind of bee, the western honey bee, also makes honey.",
    ),
    Example(
        5,
        "Science",
        "The mitochondrion is a double-membrane-bound organelle found in most eukaryotic organisms that generates "
        "most of the chemical energy needed to power the cell's biochemical reactions.",
        "Mitochondria are tiny parts found in most living cells. Each one is wrapped in two thin layers. "
        "Mitochondria make most of the chemical energy a cell needs to carry out its work.",
    ),
    Example(
        7,
        "History",
        "Following the cessation of hostilities in 1918, the victorious Allied Powers convened in Paris, where "
        "protracted negotiations culminated in the Treaty of Versailles, which imposed substantial reparations and "
        "territorial concessions upon Germany.",
        "When World War I ended in 1918, the Allied Powers that had won the war met in Paris. After months of "
        "difficult talks, they signed the Treaty of Versailles. The treaty forced Germany to pay huge sums of money "
        "for war damage and to hand over some of its land to other countries.",
    ),
    Example(
        10,
        "Economics",
        "Inflation, the sustained increase in the general price level of goods and services, erodes the purchasing "
        "power of money, and central banks typically respond by raising interest rates to dampen aggregate demand.",
        "Inflation is a steady rise in the general level of prices for goods and services. As prices climb, the "
        "same amount of money buys less than it did before. Central banks usually respond by raising interest "
        "rates, which makes borrowing more expensive and slows down overall spending in the economy.",
    ),
)
"""One example per grade band (1-3, 4-5, 6-8, 9-12); each rewrite reads at about its grade."""


def one_line(text: str) -> str:
    """Collapse all whitespace (newlines included) to single spaces, so a field stays on its prompt line."""
    return " ".join(text.split())


def sentences_for(text: str, grade: int) -> int:
    """About how many sentences a rewrite of `text` needs at the grade's sentence length to keep its content."""
    return max(MIN_SENTENCES, round(len(text.split()) / grade_target(grade).words_per_sentence))


def request(text: str, grade: int, subject: str) -> str:
    """The user turn: the grade, subject and sentence lengths in numbers, then the text on one line."""
    target = grade_target(grade)
    return (
        f"Grade: {grade}\nSubject: {one_line(subject)}\n"
        f"Write about {sentences_for(text, grade)} sentences of about {target.words_per_sentence} words each.\n"
        f"Text: {one_line(text)}"
    )


def build_messages(text: str, grade: int, subject: str) -> list[Message]:
    """The chat prompt: the instruction, every worked example as a user/assistant pair, then the request."""
    messages: list[Message] = [{"role": "system", "content": SYSTEM}]
    for e in EXAMPLES:
        messages += [
            {"role": "user", "content": request(e.source, e.grade, e.subject)},
            {"role": "assistant", "content": e.rewrite},
        ]
    messages.append({"role": "user", "content": request(text, grade, subject)})
    return messages


def build_prompt(text: str, grade: int, subject: str) -> str:
    """The few-shot prompt for a base model: a one-line instruction, two worked examples, then the text."""
    nearest = sorted(EXAMPLES, key=lambda e: (abs(e.grade - grade), e.grade))[:2]
    blocks = [FEW_SHOT_HEADER + "\n"]
    for e in sorted(nearest, key=lambda e: e.grade):
        blocks.append(f"Grade: {e.grade}\nSubject: {e.subject}\nText: {one_line(e.source)}\nSimple: {e.rewrite}\n")
    blocks.append(f"Grade: {grade}\nSubject: {one_line(subject)}\nText: {one_line(text)}\nSimple:")
    return "\n".join(blocks)


REVISE_SYSTEM = (
    "You edit a rewrite of a hard text for a school student so that it follows the editor's notes exactly and keeps "
    "every fact of the original text. Reply with the edited rewrite only, as one paragraph."
)


def revise_messages(text: str, draft: str, grade: int, subject: str, notes: Sequence[str]) -> list[Message]:
    """A separate editing request: the original text, the draft and the checker's notes as the editor's (a model
    shown its own answer in the same conversation and asked to revise it hands the same answer back)."""
    listed = "\n".join(f"- {note}" for note in notes)
    words = grade_target(grade).words_per_sentence
    return [
        {"role": "system", "content": REVISE_SYSTEM},
        {
            "role": "user",
            "content": f"Grade: {grade} (sentences of about {words} words, everyday words)\n"
            f"Subject: {one_line(subject)}\n\nOriginal text: {one_line(text)}\n\nRewrite: {one_line(draft)}\n\n"
            f"Editor's notes:\n{listed}\n\nWrite the edited rewrite.",
        },
    ]


MEANING_QUESTION = (
    "Check your rewrite against the text. Does it say anything that the text does not say, state something "
    "differently from the text, or leave out a condition or exception that the text states? Answer Yes or No."
)
MEANING_ANSWERS = ("Yes", "No")
"""The judge's answer tokens: the probability of the first against the second is the meaning-problem score."""


def meaning_messages(text: str, grade: int, subject: str, rewrite: str) -> list[Message]:
    """The rewrite conversation with `rewrite` as the model's answer, then a Yes/No question on its meaning."""
    return [
        *build_messages(text, grade, subject),
        {"role": "assistant", "content": rewrite},
        {"role": "user", "content": MEANING_QUESTION},
    ]
