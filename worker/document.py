"""Documents: a text's paragraphs, each cut at sentence boundaries to fit the prompt, and joined back (pure).

A blank line separates paragraphs; single line breaks inside a paragraph are only wrapping. A paragraph
longer than the prompt budget is cut into parts of whole sentences (a sentence longer than the budget is
cut at its last space before it). Each part is simplified on its own; the parts of a paragraph are joined
with a space and the paragraphs with a blank line, in their order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?=[\"'“‘(\[]?[A-Z0-9])")
"""Between two sentences: end punctuation (and closing quotes), space, then a capital or a digit."""


@dataclass(frozen=True)
class Part:
    """A piece of a document small enough for one prompt: which paragraph it belongs to, and its text."""

    paragraph: int
    text: str


def paragraphs(text: str) -> list[str]:
    """The text's paragraphs in order, each on one line; empty ones dropped."""
    found = (" ".join(block.split()) for block in PARAGRAPH_BREAK.split(text))
    return [p for p in found if p]


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of a one-line paragraph."""
    return [s.strip() for s in SENTENCE_BREAK.split(paragraph) if s.strip()]


def cut_long(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than the budget cut at spaces into pieces of at most max_chars (a longer word stays whole)."""
    pieces: list[str] = []
    rest = sentence
    while len(rest) > max_chars:
        cut = rest.rfind(" ", 0, max_chars + 1)
        if cut <= 0:
            cut = rest.find(" ")
            if cut < 0:
                break
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return [*pieces, rest] if rest else pieces


def fit(paragraph: str, max_chars: int) -> list[str]:
    """The paragraph as whole sentences packed into pieces of at most max_chars each."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for sentence in split_sentences(paragraph):
        for chunk in cut_long(sentence, max_chars):
            if current and len(current) + 1 + len(chunk) > max_chars:
                pieces.append(current)
                current = chunk
            else:
                current = f"{current} {chunk}" if current else chunk
    return [*pieces, current] if current else pieces


def split_document(text: str, max_chars: int) -> list[Part]:
    """Every part of the document in order: its paragraphs, each cut to fit max_chars."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    return [Part(i, piece) for i, paragraph in enumerate(paragraphs(text)) for piece in fit(paragraph, max_chars)]


def join_document(parts: Sequence[Part], texts: Sequence[str]) -> str:
    """The simplified document: each part's text in order, parts of a paragraph on one line, paragraphs apart."""
    if len(parts) != len(texts):
        raise ValueError(f"{len(parts)} parts but {len(texts)} texts")
    grouped: dict[int, list[str]] = {}
    for part, text in zip(parts, texts, strict=True):
        grouped.setdefault(part.paragraph, []).append(text.strip())
    return "\n\n".join(" ".join(t for t in group if t) for _, group in sorted(grouped.items()))
