"""The meaning check: the model itself, asked in a short separate prompt whether a rewrite changes what the text says.

Word checks cannot see a distorted meaning (a law stated without its condition, a definition that is wrong).
The judge is the loaded model at the draft's level, asked a Yes/No question as the next turn of the rewrite's
own conversation (worker/prompts.py), so llama.cpp evaluates only the question; the score is
P(Yes) / (P(Yes) + P(No)) for its first answer token: one short prompt and one step, not a generation.
Models without a chat template (base models) are not asked: their score is None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.prompts import MEANING_ANSWERS, meaning_messages

if TYPE_CHECKING:
    from worker.backends.base import LoadedModel


def meaning_score(model: LoadedModel, text: str, grade: int, subject: str, rewrite: str) -> float | None:
    """How likely the model finds that `rewrite` changes the meaning of `text` (0-1), or None for a base model."""
    if model.chat_template is None or not rewrite.strip():
        return None
    yes, no = MEANING_ANSWERS
    messages = meaning_messages(text, grade, subject, rewrite)
    probabilities = model.answer_probabilities(messages, MEANING_ANSWERS)
    total = probabilities[yes] + probabilities[no]
    return round(probabilities[yes] / total, 4) if total > 0 else None
