"""Prompts of the domain QA task, versioned, and the cleaning of a generation to its answer span.

Prompts are chat message lists, versioned by :data:`PROMPT_VERSION` (log it with every run: a
changed prompt is a different experiment). Every prompt names the article (``Topic: ...``), because
SQuAD questions are written against a paragraph and are often ambiguous without it ("What did he
build?"); the topic is domain metadata, never the answer. An example is anything with ``id``,
``title``, ``question`` and ``answers`` (:class:`lab.data.domain.QAExample`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.data.domain import QAExample

#: Version of SYSTEM and the prompt templates below; bump it on any change to their text.
#: domain-qa/2: version 1 ended "Reply with the answer only: no full sentence, no explanation.", and
#: Qwen2.5-Coder-0.5B answered 41 of 64 training questions (55% of the 0.5B profile's held-out
#: answers) with "no full sentence, no explanation" itself, so its zero-shot arm measured an echo, not
#: the model. "Reply with that span alone." gave 1 echo in 64 and SmolLM2-135M's F1 no lower (checked
#: on training questions only, never the held-out ones).
PROMPT_VERSION = "domain-qa/2"

SYSTEM = (
    "You answer questions about a topic with the shortest span that answers them: a name, number, "
    "date or short phrase, worded as a text about the topic would word it. Reply with that span alone."
)


def _ask(example: QAExample) -> str:
    return f"Topic: {example.title.replace('_', ' ')}\nQuestion: {example.question.strip()}"


def zero_shot(example: QAExample) -> list[dict]:
    """System prompt and the question (with its topic): the closed-book prompt."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": _ask(example)}]


def few_shot(example: QAExample, shots: Sequence[QAExample]) -> list[dict]:
    """The closed-book prompt after ``shots`` as prior user/assistant turns (answer: the first
    accepted one).

    Raises
    ------
    ValueError
        A shot is the example itself (its answer would be in the prompt).
    """
    if any(s.id == example.id for s in shots):
        raise ValueError(f"few_shot: question {example.id} is among its own shots")
    turns = [{"role": "system", "content": SYSTEM}]
    for s in shots:
        turns += [{"role": "user", "content": _ask(s)}, {"role": "assistant", "content": s.answers[0]}]
    return [*turns, {"role": "user", "content": _ask(example)}]


def with_context(example: QAExample, contexts: Sequence[str]) -> list[dict]:
    """The RAG prompt: numbered passages ``[1] ...``, then the question.

    Raises
    ------
    ValueError
        No context passage (use :func:`zero_shot`), or ``contexts`` is a single string.
    """
    if isinstance(contexts, str) or not contexts:
        raise ValueError("with_context: contexts must be a non-empty list of passages")
    passages = "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, start=1))
    user = (f"Passages:\n{passages}\n\nAnswer with a short span taken from the passages.\n{_ask(example)}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def training_example(example: QAExample, *, contexts: Sequence[str] | None = None) -> dict:
    """``{"messages": prompt, "answer": first accepted answer}`` for :mod:`lab.finetune`; with
    ``contexts`` the prompt is the RAG one (training for "LoRA + RAG")."""
    messages = zero_shot(example) if contexts is None else with_context(example, contexts)
    return {"messages": messages, "answer": example.answers[0]}


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
# "**Answer:** x" and "**Answer**: x": the closing ** only when an opening one was taken
_PREFIX = re.compile(r"^\s*(\*\*)?(?:final answer|short answer|answer|a)\s*(?(1)(?:\*\*)?)\s*[:：]\s*(?(1)(?:\*\*)?)\s*"
                     r"|^\s*the (?:short )?answer is\s*:?\s*", re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "`": "`", "“": "”", "‘": "’", "«": "»", "*": "*"}


def clean_prediction(text: str, *, max_chars: int = 200) -> str:
    """A generation reduced to its answer span.

    Drops ``<think>...</think>`` blocks and an ``Answer:`` / ``A:`` / ``Final answer:`` /
    ``The answer is`` prefix, keeps the first non-empty line, strips wrapping quotes, backticks
    or ``**`` and one trailing period, then cuts to ``max_chars`` at a word boundary. "" stays "".
    """
    text = _THINK.sub("", text or "")
    text = _PREFIX.sub("", text, count=1)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _PREFIX.sub("", line, count=1).strip()  # a prefix on the first non-empty line
    while True:  # '"Denver Broncos".' and '"Denver Broncos."' both give Denver Broncos
        before = line
        if line.endswith(".") and not line.endswith(".."):
            line = line[:-1].rstrip()
        if len(line) >= 2 and _QUOTES.get(line[0]) == line[-1]:
            line = line[1:-1].strip()
        if line == before:
            break
    if len(line) > max_chars:
        cut = line[:max_chars]
        line = (cut.rsplit(None, 1)[0] if " " in cut else cut).rstrip()
    return line
