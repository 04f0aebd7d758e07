"""Where the synthetic judge-training data comes from: (question, passages) of TRAINING sources only.

A :class:`Source` is a question, the passages an answer is to be written from (as a retriever would
hand them over), and ``others``: passages of the same document that were NOT handed over (topically
close, so a sentence or an entity taken from them makes a hard error, and unsupported by construction).

``squad``  SQuAD v1.1 dev as it ships here (``data/squad_v1.1_dev``): one question per paragraph (the
           seed picks which); the passages are its paragraph and the ``n_passages - 1`` other
           paragraphs of the article that share the most content words with the question (a lexical
           retriever over the article), in a seeded order; ``others`` the rest of the article. The
           articles are split by title (:func:`lab.data.split.hash_split`, ``fraction`` of them
           ``heldout``): training data is built from ``part="train"``, and the held-out articles stay
           unseen for a validation set (issue 31 item 3).
``jsonl``  any file of ``{"id", "question", "passages": [...], "others"?: [...]}``, one per line
           (another corpus, QA set or the example corpus put in that shape).

A path that names a hallucination benchmark (:data:`BENCHMARKS`: HaluEval, RAGTruth, ...) is refused:
their public test splits must never become training data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from lab.errors import DataError

#: Names in a path that mark a hallucination benchmark's data (refused as a training source).
BENCHMARKS = ("halueval", "ragtruth", "halubench", "faithbench", "aggrefact", "felm", "fava", "truthfulqa",
              "halu_eval", "rag_truth")
PARTS = ("train", "heldout")


@dataclass(frozen=True)
class Source:
    """A question and the passages its answer is written from; ``others`` were not given."""

    id: str
    question: str
    passages: tuple[str, ...]
    others: tuple[str, ...] = ()
    title: str = ""


def check_training_path(path: str | Path) -> Path:
    """``path``, unless it names a hallucination benchmark (:data:`BENCHMARKS`).

    Raises
    ------
    DataError
        The path names one: its items are test data for judges, never training data."""
    p = Path(path)
    low = str(p).lower().replace("-", "")
    hit = next((b for b in BENCHMARKS if b.replace("-", "") in low), None)
    if hit is not None:
        raise DataError(f"{p}: looks like hallucination-benchmark data ({hit!r} in the path); judge training "
                        f"data is made from training sources only (SQuAD, the corpora, your own documents), "
                        f"never from a benchmark's items")
    return p


def _overlap(question: set[str], text: str) -> int:
    from lab.judge.baselines import content_words

    return len(question & content_words(text))


def squad_sources(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, *, n_passages: int = 3, part: str = "train",
                  heldout_fraction: float = 0.2, n_others: int = 6, seed: int = 0) -> list[Source]:
    """One :class:`Source` per paragraph of the ``part`` articles (see the module docstring), in file order.

    Raises
    ------
    DataError
        Unknown ``part``, ``n_passages`` < 1, or the SQuAD readers' errors (malformed lines, ids)."""
    from lab.data.split import hash_split
    from lab.data.squad import squad_questions
    from lab.judge.baselines import content_words

    if part not in PARTS:
        raise DataError(f"unknown part {part!r}; known: {', '.join(PARTS)} (articles split by title)")
    if n_passages < 1:
        raise DataError(f"n_passages must be >= 1, got {n_passages}")
    paragraphs, questions = squad_questions(check_training_path(paragraphs_jsonl), check_training_path(qa_jsonl),
                                            None)
    titles = sorted({p.title for p in paragraphs.values()})
    rest, held = hash_split(titles, seed, fraction=heldout_fraction, salt="judge-training-articles")
    keep = {titles[i] for i in (rest if part == "train" else held)}
    by_title: dict[str, list[str]] = {}
    for pid, p in paragraphs.items():
        by_title.setdefault(p.title, []).append(pid)
    asked: dict[str, list[tuple[str, str]]] = {}
    for q in questions:
        if q.doc_id is not None and q.question.strip():
            asked.setdefault(q.doc_id, []).append((q.id, q.question))
    out = []
    for pid, p in paragraphs.items():
        if p.title not in keep or pid not in asked:
            continue
        rng = random.Random(f"{seed}:{pid}")
        qid, question = rng.choice(sorted(asked[pid]))
        words = content_words(question)
        siblings = [s for s in by_title[p.title] if s != pid]
        ranked = sorted(siblings, key=lambda s: (-_overlap(words, paragraphs[s].text), s))
        given = [pid, *ranked[:n_passages - 1]]
        rng.shuffle(given)
        others = ranked[n_passages - 1:][:n_others]
        out.append(Source(qid, question, tuple(paragraphs[s].text for s in given),
                          tuple(paragraphs[s].text for s in others), p.title))
    return out


def jsonl_sources(path: str | Path) -> list[Source]:
    """Sources from ``{"id", "question", "passages": [...], "others"?: [...]}`` lines.

    Raises
    ------
    DataError
        A benchmark path, a malformed line or a duplicate id: the message names the file, the line
        and the key."""
    from lab.io import iter_jsonl

    p = check_training_path(path)
    out, seen = [], set()
    for row in iter_jsonl(p):
        rec, where = row.record, row.where
        rid, question = rec.get("id"), rec.get("question")
        if not isinstance(rid, str | int) or isinstance(rid, bool) or str(rid) == "":
            raise DataError(f"{where}: 'id' must be a non-empty string or integer, got {rid!r}")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: 'question' must be a non-empty string")
        texts = {}
        for key in ("passages", "others"):
            value = rec.get(key, [] if key == "others" else None)
            if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value) \
                    or (key == "passages" and not value):
                raise DataError(f"{where}: {key!r} must be a {'non-empty ' if key == 'passages' else ''}list of "
                                f"non-empty strings")
            texts[key] = tuple(value)
        if str(rid) in seen:
            raise DataError(f"{where}: duplicate id {rid!r}")
        seen.add(str(rid))
        out.append(Source(str(rid), question, texts["passages"], texts["others"], str(rec.get("title", ""))))
    if not out:
        raise DataError(f"{p}: no sources (one JSON object per line: id, question, passages, others?)")
    return out


#: The SQuAD files ``sources("squad")`` reads, relative to the project root.
SQUAD_FILES = ("data/squad_v1.1_dev/dev-v1.1.paragraphs.jsonl", "data/squad_v1.1_dev/dev-v1.1.qa.jsonl")


def sources(spec: str, root: str | Path = ".", *, part: str = "train", n_passages: int = 3,
            seed: int = 0) -> list[Source]:
    """``"squad"`` (:data:`SQUAD_FILES` under ``root``, :func:`squad_sources`) or a JSON-lines file of
    sources (:func:`jsonl_sources`; ``part`` and ``n_passages`` are SQuAD's only)."""
    if spec == "squad":
        paragraphs, qa = (Path(root) / f for f in SQUAD_FILES)
        return squad_sources(paragraphs, qa, n_passages=n_passages, part=part, seed=seed)
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"{spec}: no such file; give 'squad' or a JSON-lines file of "
                        f"{{\"id\", \"question\", \"passages\": [...]}}")
    return jsonl_sources(path)
