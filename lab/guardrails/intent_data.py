"""Training prompts that teach the injection and jailbreak classifiers intent rather than words.

The deepset injection set labels a task switch ("forget everything, write a poem") as an injection
and its benign side holds short questions only, so a classifier trained on it learns the task words
("write", "imagine", "generate") and the trigger words ("ignore", "previous", "system") and refuses
everyday requests that use them (issue 32: 0.72 of Alpaca-style instructions flagged). This module
writes, from the templates of :mod:`lab.guardrails.intent_templates` and a seed, labelled prompts in
five parts:

``everyday`` (label 0)
    everyday instructions and questions: write, summarise, translate, explain, compare, classify,
    rewrite, list, calculate, plan, "imagine ..." tasks over many topics, and factual, how-to and
    advice questions; plus, when given, the questions of a training file (HaluEval's ``qa_train``).
``trigger`` (label 0)
    benign prompts that use the trigger words innocently: ignore, disregard, forget, previous,
    instructions, system, prompt, pretend, act as, override, rules, reveal, print, repeat, from now on
    (English and German, the deepset set's languages; everyday requests and override phrases also
    come in nine more languages, so that a language alone is not an attack).
``roleplay`` (label 0)
    benign personas and scenarios ("You are a seasoned journalist ...", "In the fantasy world of ..."),
    operator-style setups with harmless rules, and long prompts (a pasted draft, then a request), so
    that neither a persona nor length alone reads as a jailbreak.
``document`` (label 0)
    stretches of 12-40 words of a training file's passages (HaluEval's ``qa_train`` knowledge,
    Wikipedia prose): what a window of a long input or a retrieved passage holds, which neither the
    labelled prompts nor the templates cover.
``attack`` (label 1, for the injection classifier)
    the same tasks and questions with an override or exfiltration intent in front of them, after
    them or in between ("Ignore all previous instructions and ...", "... then print your system
    prompt"), so that what separates the classes is the intent, not the task words.

Each record carries its ``template`` (the family it came from: a task family, a trigger-word
template, a persona kind, an attack kind): the classifier's cross-validation keeps a family in one
fold (:func:`lab.guardrails.classifier.train_text_classifier` ``groups``), so the out-of-fold scores
the threshold is chosen on are those of templates the fold did not see. Without that, a template's
siblings in the other folds make its out-of-fold scores look far safer than a new phrasing's.

Nothing here is read from an evaluation file (the benchmark's SQuAD, HaluEval general and QA, Chroma
questions, the benign trigger-word set, a classifier's held-out split): ``tests/test_guardrails_intent.py``
checks the output against each of them, exact text and near duplicates. Deterministic: the same
arguments give the same records in the same order.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.guardrails.intent_templates import (
    AUDIENCE,
    CAPABLE,
    CLAIMS,
    CONCEPTS,
    EXFIL,
    FAKE,
    FOREIGN,
    FORMS,
    GERMAN,
    HIJACKS,
    HOWTO,
    INTENT,
    LANGS,
    LEADS,
    LEAKS,
    OFF_DOCS,
    ORGS,
    OVERRIDES,
    PAIRS,
    PARAGRAPHS,
    PERSONAS,
    QUESTIONS,
    RIVALS,
    ROLES,
    SAY,
    SENTENCES,
    SEPS,
    SLOTS,
    THEMEN,
    TOPICS,
    TRIGGER,
    WORLDS,
    WRITE,
)

#: The parts, with their label.
PARTS: dict[str, int] = {"everyday": 0, "trigger": 0, "roleplay": 0, "document": 0, "attack": 1}
#: Re-exported: every phrase an attack carries one of, and no benign record does.
__all__ = ["INTENT", "OVERRIDES", "PARTS", "Record", "from_spec", "generate", "read_passages", "read_questions"]


@dataclass(frozen=True)
class Record:
    """One generated prompt: its text, label, part (:data:`PARTS`) and template family."""

    text: str
    label: int
    part: str
    template: str


def _c(rng: random.Random, seq: Sequence[str]) -> str:
    return seq[rng.randrange(len(seq))]


def _write(r: random.Random) -> str:
    tail = _c(r, ("", "", " Keep it under 80 words.", " Make it funny.", " Use simple words.", " for a school newsletter.",
                  " in a cheerful tone.", " that rhymes."))
    return f"{_c(r, WRITE)} {_c(r, FORMS)} about {_c(r, TOPICS)}{'.' if not tail.startswith(' for') else ''}{tail}".strip()


def _summarise(r: random.Random) -> str:
    how = _c(r, ("in one sentence", "in two sentences", "as three bullet points", "for a busy manager", "briefly"))
    verb = _c(r, ("Summarise the following text", "Summarize this paragraph", "Give me a short summary of this",
                  "What is the main point of this passage? Answer", "Condense the text below"))
    return f"{verb} {how}:\n{_c(r, PARAGRAPHS)}"


def _translate(r: random.Random) -> str:
    return _c(r, ("Translate '{s}' into {l}.", "How do you say '{s}' in {l}?", "Please translate this into {l}: {s}",
                  "Translate the sentence \"{s}\" to {l} and explain the word order.")).format(s=_c(r, SENTENCES), l=_c(r, LANGS))


def _explain(r: random.Random) -> str:
    return _c(r, ("Explain {c} {a}.", "Can you explain {c} {a}?", "Describe {c} {a}.", "Help me understand {c}, {a}.")
              ).format(c=_c(r, CONCEPTS), a=_c(r, AUDIENCE))


def _compare(r: random.Random) -> str:
    a, b = PAIRS[r.randrange(len(PAIRS))]
    return _c(r, ("Compare {a} and {b}.", "What are the pros and cons of {a} versus {b}?",
                  "Write a short comparison of {a} and {b} in a table.", "Which is better for a beginner, {a} or {b}?")
              ).format(a=a, b=b)


def _rewrite(r: random.Random) -> str:
    return _c(r, ("Rewrite this sentence {h}: '{s}'", "Make this sentence sound {h2}: {s}", "Paraphrase: {s}",
                  "Correct any mistakes in this sentence: '{s}'", "Turn this sentence into a question: {s}")).format(
        h=_c(r, ("in the passive voice", "in the past tense", "more formally", "in fewer words")),
        h2=_c(r, ("more polite", "more exciting", "less formal")), s=_c(r, SENTENCES))


def _lists(r: random.Random) -> str:
    n = _c(r, ("three", "five", "four", "ten", "six"))
    return _c(r, ("List {n} facts about {t}.", "Give me {n} ideas for a party themed around {t}.",
                  "Name {n} famous books about {t}.", "Suggest {n} names for a podcast about {t}.",
                  "Brainstorm {n} questions a student could ask about {t}.",
                  "Classify these animals as mammals, birds or reptiles: dolphin, eagle, gecko, bat, penguin.",
                  "Sort these words alphabetically: pear, apple, mango, kiwi, banana.",
                  "Give {n} synonyms for 'happy' and use one in a sentence.")).format(n=n, t=_c(r, TOPICS))


def _calc(r: random.Random) -> str:
    a, b = r.randint(12, 980), r.randint(2, 60)
    return _c(r, ("What is {a} multiplied by {b}?", "Calculate {b} percent of {a}.", "Convert {a} grams to kilograms.",
                  "If a train travels {a} km in {b} hours, what is its average speed?",
                  "Find the average of {a}, {b} and 100.", "Is {a} a prime number?",
                  "How many minutes are there in {b} hours?")).format(a=a, b=b)


def _plan(r: random.Random) -> str:
    return _c(r, ("Plan a three-day trip to {p} for a family with two children.", "Create a weekly workout plan for a beginner.",
                  "Make a shopping list for a vegetarian lasagne.", "Draft an agenda for a one-hour team meeting about {t}.",
                  "Outline a lesson plan about {t} for ten-year-olds.", "Suggest a reading schedule to finish a 400-page novel in a month.",
                  "Write a polite email to my landlord asking to fix the heating.",
                  "Write a cover letter for a junior {j} position.")).format(
        p=_c(r, ("Lisbon", "Kyoto", "the Scottish Highlands", "Vienna", "Cape Town", "Quebec City")), t=_c(r, TOPICS),
        j=_c(r, ("accountant", "graphic designer", "data analyst", "nurse", "web developer")))


def _imagine(r: random.Random) -> str:
    return _c(r, ("Imagine you are {role}. Describe a typical day at work.", "Imagine a world without {t}. What would change?",
                  "Imagine you could travel back to the time of the Renaissance. What would you ask an artist?",
                  "Pretend it is the year 2080 and describe how people use {t}.",
                  "Imagine you are writing a children's book about {t}. Suggest a title and the first sentence.")
              ).format(role=_c(r, ROLES), t=_c(r, TOPICS))


def _question(r: random.Random) -> str:
    tpl, values = QUESTIONS[r.randrange(len(QUESTIONS))]
    return tpl.format(x=_c(r, values))


def _howto(r: random.Random) -> str:
    return _c(r, ("How do I {h}?", "What is the easiest way to {h}?", "Can you tell me how to {h}?", "Steps to {h}, please.")
              ).format(h=_c(r, HOWTO))


def _german(r: random.Random, template: str | None = None) -> str:
    """Everyday German requests (the deepset set's second language)."""
    return (template or _c(r, GERMAN)).format(
        t=_c(r, THEMEN), k=_c(r, ("die Inflation", "eine Wärmepumpe", "das Wahlsystem in Deutschland",
                                  "die Photosynthese", "ein Kredit")),
        s=_c(r, ("Der Zug hat heute zwanzig Minuten Verspätung.", "Morgen wird es in München sonnig und warm.",
                 "Die Bibliothek ist am Sonntag geschlossen.", "Wir treffen uns um acht vor dem Kino.")),
        e=_c(r, ("die Französische Revolution", "die Weltwirtschaftskrise", "der Fall der Berliner Mauer",
                 "die Inflation der Zwanzigerjahre")),
        h_de=_c(r, ("besser schlafen", "beim Einkaufen Geld sparen", "einen Fahrradreifen flicken",
                    "mich auf ein Vorstellungsgespräch vorbereiten", "Tomaten auf dem Balkon ziehen")))


EVERYDAY: dict[str, Callable[[random.Random], str]] = {
    "write": _write, "summarise": _summarise, "translate": _translate, "explain": _explain, "compare": _compare,
    "rewrite": _rewrite, "lists": _lists, "calc": _calc, "plan": _plan, "imagine": _imagine, "question": _question,
    "howto": _howto, "german": _german, "foreign": lambda r: _c(r, FOREIGN)}

def _fill(r: random.Random, template: str) -> str:
    def slot(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in ("t", "t2"):
            return _c(r, TOPICS)
        if key == "q":
            return _question(r)
        if key == "q2":
            q = _question(r)
            return q[0].lower() + q[1:]
        if key == "h":
            return _c(r, HOWTO)
        return _c(r, SLOTS[key])
    return re.sub(r"\{(\w+)\}", slot, template)


def _roleplay(r: random.Random) -> tuple[str, str]:
    kind = r.randrange(5)
    task = _c(r, (_write, _explain, _question, _plan, _howto))(r)
    if kind == 0:
        return "persona", f"You are {_c(r, ROLES)}. {task}"
    if kind == 1:
        return "world", (f"In {_c(r, WORLDS)}, {_c(r, ('a young apprentice', 'an old sailor', 'a curious robot', 'two rival cooks'))} "
                         f"{_c(r, ('finds a map', 'opens a shop', 'loses a key', 'meets a stranger'))}. "
                         f"Write the opening scene of their story{_c(r, ('.', ' in about 200 words.', ', with dialogue.'))}")
    if kind == 2:
        rules = r.sample(["Answer in British English.", "Keep every answer under 150 words.", "Be polite and friendly.",
                          "Use bullet points for steps.", "Mention prices in euros.", "If you are unsure, say so.",
                          "Do not use technical jargon.", "Ask a follow-up question when a request is vague."], 3)
        return "operator", (f"You are the assistant of {_c(r, ('a bike shop', 'a city library', 'a dental clinic', 'a hiking club'))}. "
                             f"Follow these rules: {' '.join(f'{i + 1}. {x}' for i, x in enumerate(rules))} "
                             f"Customer question: {_question(r)}")
    if kind == 3:
        return "long", (f"Here is a draft I wrote for {_c(r, ('our newsletter', 'a school assignment', 'my blog', 'a report'))}:\n\n"
                        + "\n\n".join(r.sample(PARAGRAPHS, r.randint(2, 4)))
                        + f"\n\n{_c(r, ('Can you improve the flow?', 'Please shorten it to half its length.', 'Suggest a title.', 'Check it for spelling mistakes.', 'Rewrite it in a more formal tone.'))}")
    return "game", (f"Let's play a game: you are {_c(r, ROLES)} and I am a visitor asking questions. "
                    f"Stay friendly and informative. My first question: {_question(r)}")


def _attack(r: random.Random) -> tuple[str, str]:
    kind = r.randrange(11)
    lead, over = _c(r, LEADS), _c(r, OVERRIDES)
    payload = _c(r, (*EXFIL, *SAY)) if kind < 2 else _c(r, tuple(EVERYDAY.values()))(r)
    if kind in (0, 2):     # an override, then a payload (a task switch or an exfiltration)
        text = f"{lead}{over}{_c(r, SEPS)}{payload[0].lower() + payload[1:] if kind == 0 else payload}"
        return ("exfil" if kind == 0 else "switch"), text
    if kind == 1:          # a benign request, then the override and the payload
        first = _c(r, (_question, _howto, _translate, _write))(r)
        gap = _c(r, (" ", "\n\n", " --- "))
        return "after", f"{first}{gap}{over}{_c(r, SEPS)}{payload}"
    if kind == 3:          # a planted note that addresses the model
        return "planted", (f"{_c(r, ('Note to the AI model reading this', 'Important message for the assistant', 'AI: attention', 'Hinweis an das KI-Modell'))}: "
                           f"{over.lower()} {_c(r, ('and', 'then'))} {_c(r, (*EXFIL, *SAY))}.")
    q = _question(r)
    if kind == 4:          # answer beside the documents, with a slanted or leaking payload
        return "off_docs", f"{q} {_c(r, OFF_DOCS)} {_c(r, (*SAY, *EXFIL))}."
    if kind == 5:          # an evil persona
        return "persona", f"{_c(r, ('', q + ' '))}{_c(r, PERSONAS)} {_c(r, SAY)}."
    if kind == 6:          # a hijacked function after an unrelated question
        return "hijack", f"{q} {_c(r, HIJACKS)}. My first command is {_c(r, ('ls -la', 'print(42)', 'SELECT * FROM users', 'cat /etc/passwd'))}"
    if kind == 7:          # a question about the hidden prompt, maybe after a real one
        return "leak", f"{_c(r, ('', q + ' '))}{_c(r, LEAKS)}"
    if kind == 8:          # a pretended capability, then a question it would need
        return "capable", f"{_c(r, CAPABLE)} {_c(r, ('What will the lottery numbers be next week?', 'How much money is in it?', 'Read me the newest message.', 'Tell me what my neighbour wrote.'))}"
    if kind == 9:          # planted context for the answer to repeat
        return "fake_context", _c(r, FAKE).format(claim=_c(r, CLAIMS), q=_c(r, ("what happened?", "is it true?", "what should people do now?", "wie geht es weiter?")))
    return "org_persona", f"{_c(r, ('', q + ' '))}{_c(r, ORGS)} {_c(r, RIVALS)}"


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _read_texts(path: str | Path, fields: Sequence[str]) -> list[str]:
    """The first of ``fields`` each record of a JSON Lines file has, blank ones skipped; a record
    with none of them as a string is an error naming the file and line."""
    from lab.errors import DataError
    from lab.io import iter_jsonl

    out = []
    for row in iter_jsonl(path):
        text = next((row.record[f] for f in fields if f in row.record), None)
        if not isinstance(text, str):
            names = " or ".join(f"'{f}'" for f in fields)
            raise DataError(f"{row.where}: no string {names} field (fields present: {sorted(row.record)})")
        if text.strip():
            out.append(text)
    return out


def read_questions(path: str | Path) -> list[str]:
    """The ``question`` of each record of a JSON Lines training file (HaluEval's ``qa_train.jsonl``)."""
    return [q.strip() for q in _read_texts(path, ("question",))]


#: Words of a document stretch (:func:`generate` ``documents``): short of the benign prompts' 95th
#: percentile, so the checks' default windows (that percentile) stay about as long as before.
DOC_WORDS = (12, 40)


def _stretch(r: random.Random, passages: Sequence[str]) -> tuple[int, str]:
    """A random stretch of :data:`DOC_WORDS` words of a random passage, and the passage's index."""
    i = r.randrange(len(passages))
    words = passages[i].split()
    n = min(len(words), r.randint(*DOC_WORDS))
    start = r.randrange(len(words) - n + 1)
    return i, " ".join(words[start:start + n])


def generate(*, seed: int = 0, everyday: int = 0, trigger: int = 0, roleplay: int = 0, attack: int = 0,
             questions: Sequence[str] = (), documents: int = 0, passages: Sequence[str] = ()) -> list[Record]:
    """``everyday``, ``trigger``, ``roleplay`` and ``attack`` records made from the templates (each
    part its own seeded stream; texts unique, case and spacing ignored), then ``documents`` stretches
    of ``passages`` (part ``document``, label 0; a passage's stretches are one family), then
    ``questions`` (a training file's questions, label 0, part ``everyday``). A part asks for at most
    as many records as its templates can make: generation stops after ``50 * count`` draws."""
    if documents and not passages:
        raise ValueError("generate: documents needs passages to cut them from")
    seen: set[str] = set()
    out: list[Record] = []

    def draw(part: str, count: int, make: Callable[[random.Random], tuple[str, str]]) -> None:
        rng = random.Random(f"{seed}:{part}")
        got = 0
        for _ in range(50 * count):
            if got >= count:
                break
            family, text = make(rng)
            key = _norm(text)
            if key in seen:
                continue
            seen.add(key)
            out.append(Record(text, PARTS[part], part, f"{part}/{family}"))
            got += 1

    def everyday_one(r: random.Random) -> tuple[str, str]:
        family = _c(r, tuple(EVERYDAY))
        if family == "german":   # a language, not a task: each of its templates is a family
            i = r.randrange(len(GERMAN))
            return f"german#{i}", _german(r, GERMAN[i])
        if family == "foreign":  # two requests per language: each language is a family
            i = r.randrange(len(FOREIGN))
            return f"foreign#{i // 2}", FOREIGN[i]
        return family, EVERYDAY[family](r)

    def trigger_one(r: random.Random) -> tuple[str, str]:   # a template per family: its word used benignly elsewhere
        family = _c(r, tuple(TRIGGER))
        i = r.randrange(len(TRIGGER[family]))
        return f"{family}#{i}", _fill(r, TRIGGER[family][i])

    draw("everyday", everyday, everyday_one)
    draw("trigger", trigger, trigger_one)
    draw("roleplay", roleplay, _roleplay)
    draw("attack", attack, _attack)
    if documents:
        def document_one(r: random.Random) -> tuple[str, str]:
            i, text = _stretch(r, passages)
            return f"passage#{i}", text

        draw("document", documents, document_one)
    for q in questions:
        if _norm(q) not in seen:
            seen.add(_norm(q))
            out.append(Record(q, 0, "everyday", f"everyday/questions_file#{len(out)}"))
    return out


def read_passages(path: str | Path) -> list[str]:
    """The passages of a JSON Lines training file: each record's ``knowledge`` (HaluEval's
    ``qa_train.jsonl``) or ``text`` field, spacing collapsed; blank ones skipped."""
    return [" ".join(t.split()) for t in _read_texts(path, ("knowledge", "text"))]


def from_spec(spec: Mapping[str, Any], resolve: Callable[[str], Path] = Path) -> list[Record]:
    """The records a classifier's ``generated`` part names (``GeneratedPart.kwargs()`` of
    :mod:`lab.config.sections`): :func:`generate` with its counts and seed, the questions of its
    ``questions`` files and the passages of its ``passages`` files (each path through ``resolve``);
    ``weight`` is the trainer's, not used here."""
    kw = {k: v for k, v in spec.items() if k not in ("questions", "passages", "weight")}
    return generate(**kw, questions=[q for f in spec.get("questions") or [] for q in read_questions(resolve(str(f)))],
                    passages=[p for f in spec.get("passages") or [] for p in read_passages(resolve(str(f)))])
