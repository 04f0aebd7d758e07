"""The prompts that turn a passage into a question, versioned, and the parsing of the answers.

Each prompt is a chat: a system line, one worked example (a user turn and the assistant's reply in
the expected format, on a topic no corpus here is about, so a copied example is caught by the
off-topic filter), then the passage(s). Tiny models follow a shown format far better than a
described one. The reply is two lines, ``Question: ...`` and ``Answer: ...`` (one line for an
unanswerable question), read by :func:`parse`. A reply that does not parse gets one retry
(:func:`retry`): the same chat, the failed reply, and a user turn restating the format.

:data:`PROMPT_VERSION` names the text of every template below: bump it on any change (it is part of
the generation cache key and of the test set's meta, so a changed prompt is a different generator).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.testset.excerpts import Passage

#: testset/2: the system lines ask for a question that stands on its own (testset/1's Qwen2.5-Coder-0.5B
#: questions leaned on their passage: "What is the purpose of this type of change?"; 2026-12-06).
PROMPT_VERSION = "testset/2"

_STANDALONE = (" The question must make sense on its own, read without the passage: name what it asks about, "
               "never 'this', 'the passage' or 'we'.")

_FORMAT_QA = "Reply with two lines: 'Question: ...' and 'Answer: ...'."
_FORMAT_Q = "Reply with one line: 'Question: ...'."

SINGLE_SYSTEM = ("You write one quiz question that a passage answers, and its answer: a short phrase "
                 "(at most 8 words) copied exactly from the passage." + _STANDALONE)
MULTI_SYSTEM = ("You write one quiz question that needs BOTH passages to answer, and its answer: a short "
                "phrase taken from the passages." + _STANDALONE)
UNANSWERABLE_SYSTEM = ("You write one question on the topic of a passage that the passage does NOT answer: "
                       "ask about a related detail it does not mention." + _STANDALONE)

_EXAMPLE_1 = ("The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It is 330 metres tall "
              "and was the tallest man-made structure until 1930.")
_EXAMPLE_2 = "The World's Fair of 1889 in Paris celebrated the centennial of the French Revolution."


#: The worked examples' own topic words: a question using one that its passage lacks copied the
#: example (Qwen2.5-Coder-0.5B: "What type of transformation did the Eiffel Tower undergo?").
EXAMPLE_WORDS = frozenset({"eiffel", "tower", "paris", "1889", "1930", "330", "metres", "centennial", "revolution",
                           "french"})


def _passage(text: str) -> str:
    return " ".join(text.split())   # line breaks of extracted PDF text confuse small models; offsets are kept apart


def single(p: Passage) -> list[dict[str, str]]:
    """A question the passage answers, with a short answer copied from it."""
    return [{"role": "system", "content": SINGLE_SYSTEM},
            {"role": "user", "content": f"Passage: {_EXAMPLE_1}\n\n{_FORMAT_QA}"},
            {"role": "assistant", "content": "Question: In what year was the Eiffel Tower completed?\nAnswer: 1889"},
            {"role": "user", "content": f"Passage: {_passage(p.text)}\n\n{_FORMAT_QA}"}]


def multi(a: Passage, b: Passage) -> list[dict[str, str]]:
    """A question that needs both passages."""
    return [{"role": "system", "content": MULTI_SYSTEM},
            {"role": "user", "content": f"Passage 1: {_EXAMPLE_1}\nPassage 2: {_EXAMPLE_2}\n\n{_FORMAT_QA}"},
            {"role": "assistant", "content": "Question: The Eiffel Tower was completed for a fair that celebrated "
                                             "the centennial of what?\nAnswer: the French Revolution"},
            {"role": "user", "content": f"Passage 1: {_passage(a.text)}\nPassage 2: {_passage(b.text)}\n\n{_FORMAT_QA}"}]


def unanswerable(p: Passage) -> list[dict[str, str]]:
    """A question on the passage's topic that the passage does not answer."""
    return [{"role": "system", "content": UNANSWERABLE_SYSTEM},
            {"role": "user", "content": f"Passage: {_EXAMPLE_1}\n\n{_FORMAT_Q}"},
            {"role": "assistant", "content": "Question: How much did it cost to build the Eiffel Tower?"},
            {"role": "user", "content": f"Passage: {_passage(p.text)}\n\n{_FORMAT_Q}"}]


def retry(prompt: list[dict[str, str]], reply: str, *, with_answer: bool) -> list[dict[str, str]]:
    """The one retry after a reply that did not parse: the chat, that reply, the format again."""
    fmt = _FORMAT_QA if with_answer else _FORMAT_Q
    return [*prompt, {"role": "assistant", "content": reply.strip() or "(no reply)"},
            {"role": "user", "content": f"That is not in the format. {fmt} Nothing else."}]


_LABEL = r"^[ \t>*_#-]*(?:\*\*)?{name}(?:\s*\d)?(?:\*\*)?\s*[:：]\s*(?:\*\*)?[ \t]*(?P<text>.+?)\s*$"
_QUESTION = re.compile(_LABEL.format(name="(?:question|q)"), re.IGNORECASE | re.MULTILINE)
_ANSWER = re.compile(_LABEL.format(name="(?:answer|a)"), re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Parsed:
    """A reply read: the question (up to and with its first ``?``) and the answer ("" when none was
    asked for), or ``error`` saying why it could not be read."""

    question: str = ""
    answer: str = ""
    error: str | None = None


def parse(reply: str, *, with_answer: bool) -> Parsed:
    """Read a ``Question: ... / Answer: ...`` reply (labels in any case, markdown bold tolerated).

    The question must hold a ``?`` (text after the first one is dropped); with ``with_answer`` the
    answer line must be there and not empty. The answer is cleaned as the domain QA answers are
    (:func:`lab.generate.domain_qa_prompt.clean_prediction`: quotes, a trailing period).
    """
    from lab.generate.domain_qa_prompt import clean_prediction

    q = _QUESTION.search(reply or "")
    if q is None:
        return Parsed(error="no 'Question:' line")
    question = q.group("text").strip().strip("*").strip()
    if "?" not in question:
        return Parsed(error="the question has no '?'")
    question = question[: question.index("?") + 1].strip()
    if not with_answer:
        return Parsed(question=question)
    a = _ANSWER.search(reply, q.end())
    if a is None:
        return Parsed(question=question, error="no 'Answer:' line after the question")
    answer = clean_prediction(a.group("text").strip().strip("*"), max_chars=400)
    if not answer:
        return Parsed(question=question, error="empty answer")
    return Parsed(question=question, answer=answer)
