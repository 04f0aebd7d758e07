"""The domain QA task of the fine-tune comparison: SQuAD articles as a domain, prompts, RAG contexts.

A *domain* is a few SQuAD v1.1 dev articles. Their questions are split into ``train`` (for
few-shot examples and LoRA fine-tuning) and ``heldout`` (for evaluation) on the SAME articles, so
a model may learn the domain's facts from train questions and be asked about them in held-out
ones: a paragraph's questions may fall on both sides. A held-out question never appears in train,
by id or by its normalised text (:func:`lab.metrics.qa.normalize_answer`): train questions whose
text repeats a held-out one are moved out of train and counted.

Prompts are chat message lists, versioned by :data:`PROMPT_VERSION` (log it with every run: a
changed prompt is a different experiment). Every prompt names the article (``Topic: ...``), because
SQuAD questions are written against a paragraph and are often ambiguous without it ("What did he
build?"); the topic is domain metadata, never the answer.

:class:`TaskRetriever` gives RAG contexts: the domain's articles chunked and indexed exactly as a
retrieval sweep configuration (``results/retrieval_sweep/winner.json``'s ``config``) describes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.metrics.qa import normalize_answer

#: Version of SYSTEM and the prompt templates below; bump it on any change to their text.
PROMPT_VERSION = "domain-qa/1"

SYSTEM = (
    "You answer questions about a topic with the shortest span that answers them: a name, number, "
    "date or short phrase, worded as a text about the topic would word it. "
    "Reply with the answer only: no full sentence, no explanation."
)


@dataclass(frozen=True)
class QAExample:
    """One SQuAD question; ``title`` as in the file (underscores), ``context`` its paragraph's text."""

    id: str
    question: str
    answers: tuple[str, ...]
    paragraph_id: str
    title: str
    context: str


def _key(seed: int, salt: str, qid: str) -> str:
    # sha256 order: the same split on every machine and Python version (no hash() randomisation)
    return hashlib.sha256(f"{salt}:{seed}:{qid}".encode()).hexdigest()


def ids_hash(examples: Sequence[QAExample]) -> str:
    """12 hex digits naming a question set (its ids in order): tag results with the eval set's."""
    return hashlib.sha256("\n".join(e.id for e in examples).encode()).hexdigest()[:12]


@dataclass
class DomainTask:
    """Train and held-out questions of the same articles, and those articles' paragraphs.

    Attributes
    ----------
    titles:
        The articles, as in the file (underscores).
    train, heldout:
        Disjoint by id and by normalised question text.
    paragraphs:
        Paragraph id -> ``{"title", "text"}`` for every paragraph of the articles (file order): the
        retrieval corpus.
    seed:
        Seed of the split.
    counts:
        ``questions_available`` (of the articles, with an answer), ``train_duplicates_moved``
        (train questions left out because their text repeats a held-out one),
        ``questions_without_answer`` (skipped).
    """

    titles: list[str]
    train: list[QAExample]
    heldout: list[QAExample]
    paragraphs: dict[str, dict]
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        """Sizes, per-article counts, overlap of paragraphs and the sets' hashes, for run params."""
        train_paras = {e.paragraph_id for e in self.train}
        per_title = {t: {"train": 0, "heldout": 0} for t in self.titles}
        for side, examples in (("train", self.train), ("heldout", self.heldout)):
            for e in examples:
                per_title[e.title][side] += 1
        shared = sum(1 for e in self.heldout if e.paragraph_id in train_paras)
        return {
            "titles": list(self.titles), "seed": self.seed, "prompt_version": PROMPT_VERSION,
            "n_train": len(self.train), "n_heldout": len(self.heldout),
            "paragraphs": len(self.paragraphs),
            "heldout_paragraphs": len({e.paragraph_id for e in self.heldout}),
            # held-out questions whose paragraph also has a train question: where memorised
            # domain facts can help
            "heldout_paragraph_in_train": shared,
            "heldout_paragraph_in_train_rate": shared / len(self.heldout) if self.heldout else 0.0,
            "per_title": per_title,
            "train_hash": ids_hash(self.train), "heldout_hash": ids_hash(self.heldout),
            **self.counts,
        }


def build_domain_task(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, titles: Sequence[str], *,
                      n_train: int, n_heldout: int, seed: int = 0) -> DomainTask:
    """Split the questions of ``titles`` (spaces or underscores) into train and held-out sets.

    Questions are ordered by ``sha256(seed, id)``; the first ``n_heldout`` are held out, train
    takes the next ``n_train`` whose normalised text is not a held-out question's. Both keep the
    hash order. Same seed and sizes, same split; held-out sets are nested across ``n_heldout``
    (the first 100 are among the first 200).

    Raises
    ------
    DataError
        An unknown title (the message lists some that exist), malformed data, or fewer usable
        questions than ``n_train + n_heldout`` (the message names the numbers).
    ValueError
        No title, ``n_heldout < 1`` or ``n_train < 0``.
    """
    from lab.data.beir import _squad_questions  # the checked SQuAD reader of the retrieval sets

    for name, value, low in (("n_train", n_train, 0), ("n_heldout", n_heldout, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    wanted = list(dict.fromkeys(t.replace(" ", "_") for t in titles)) if not isinstance(titles, str) else []
    if not wanted:
        raise ValueError(f"titles must be a non-empty list of article titles, got {titles!r}")
    paras, items = _squad_questions(paragraphs_jsonl, qa_jsonl, wanted)
    counts = {"questions_available": 0, "train_duplicates_moved": 0, "questions_without_answer": 0}
    examples = []
    for it in items:
        if not any(a.strip() for a in it.answers):
            counts["questions_without_answer"] += 1
            continue
        p = paras[it.doc_id or ""]
        examples.append(QAExample(it.id, it.question, tuple(it.answers), p.id, p.title, p.text))
    counts["questions_available"] = len(examples)
    examples.sort(key=lambda e: _key(seed, "split", e.id))

    heldout = examples[:n_heldout]
    held_text = {normalize_answer(e.question) for e in heldout}
    train: list[QAExample] = []
    for e in examples[n_heldout:]:
        if len(train) == n_train:
            break
        if normalize_answer(e.question) in held_text:
            counts["train_duplicates_moved"] += 1
            continue
        train.append(e)
    if len(heldout) < n_heldout or len(train) < n_train:
        raise DataError(
            f"articles {wanted} have {len(examples)} questions with an answer, "
            f"{counts['train_duplicates_moved']} of which repeat a held-out question's text and stay out of "
            f"train: n_heldout={n_heldout} leaves {max(len(examples) - n_heldout, 0) - counts['train_duplicates_moved']} "
            f"for train, n_train={n_train} asked; lower n_train or n_heldout, or add articles"
        )
    paragraphs = {pid: {"title": p.title, "text": p.text} for pid, p in paras.items()}
    return DomainTask(wanted, train, heldout, paragraphs, seed=seed, counts=counts)


# --------------------------------------------------------------------------- prompts


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


def pick_shots(train: Sequence[QAExample], k: int, seed: int) -> list[QAExample]:
    """``k`` train questions in ``sha256(seed, id)`` order (deterministic; nested across k).

    Raises
    ------
    ValueError
        ``k`` negative or larger than ``len(train)``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(train):
        raise ValueError(f"pick_shots: k must be an integer in [0, {len(train)}] (train size), got {k!r}")
    return sorted(train, key=lambda e: _key(seed, "shots", e.id))[:k]


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


# --------------------------------------------------------------------------- RAG contexts


class TaskRetriever:
    """The domain's articles indexed as a retrieval sweep configuration says.

    ``config`` is a sweep configuration (``chunker``, ``size``, ``overlap``, ``retriever``,
    ``embedder``, optional index/BM25/fusion keys; other keys are ignored). With a chunker, each
    ARTICLE (its paragraphs in file order joined by a blank line) is chunked, doc ids
    ``f"{title}#c{index}"``; with ``chunker: none`` (or none given) each paragraph is a doc (its
    id). Docs are indexed as ``"<title with spaces>\\n\\n<text>"``, as the sweep indexed them, so
    retrieval quality is the sweep's; :meth:`contexts` returns the passage text without the title.

    Parameters
    ----------
    config:
        The configuration (e.g. ``json.load(winner.json)["config"]``; see :meth:`from_winner`).
    paragraphs:
        Paragraph id -> ``{"title", "text"}`` (:attr:`DomainTask.paragraphs`), or a DomainTask.
    embed:
        For dense retrievers (``dense``, ``hybrid``, ``rerank``): an embedder spec
        (``"hashed-256"``), an :class:`~lab.embed.Embedder` (wrapped in a
        :class:`~lab.embed.CachedEmbedder`) or a ready callable; default: ``config["embedder"]``.
        Ignored for ``bm25``.
    store_dir:
        Embedding store folder (default: the lab cache).
    """

    def __init__(self, config: Mapping[str, Any], paragraphs: Mapping[str, Mapping[str, str]] | DomainTask, *,
                 embed: Any = None, store_dir: str | Path | None = None) -> None:
        from lab.retrieval import make_retriever
        from lab.retrieval_eval import DENSE, retriever_spec

        if isinstance(paragraphs, DomainTask):
            paragraphs = paragraphs.paragraphs
        if not paragraphs:
            raise ValueError("TaskRetriever: no paragraphs to index")
        self.config = dict(config)
        self.embed = _embedder(embed, self.config, store_dir) if self.config["retriever"] in DENSE else None
        self.passages: dict[str, str] = {}
        self.titles: dict[str, str] = {}
        for doc_id, title, text in self._docs(paragraphs):
            self.passages[doc_id], self.titles[doc_id] = text, title
        self.retriever = make_retriever(retriever_spec(self.config), embed=self.embed)
        ids = list(self.passages)
        self.retriever.index(ids, [f"{self.titles[i].replace('_', ' ')}\n\n{self.passages[i]}" for i in ids])

    @classmethod
    def from_winner(cls, winner_json: str | Path, paragraphs: Mapping[str, Mapping[str, str]] | DomainTask,
                    **kwargs: Any) -> TaskRetriever:
        """Built from a sweep's ``winner.json`` (its ``config``)."""
        return cls(json.loads(Path(winner_json).read_text(encoding="utf-8"))["config"], paragraphs, **kwargs)

    def _docs(self, paragraphs: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str, str]]:
        name = self.config.get("chunker") or "none"
        if name == "none":
            return [(pid, p["title"], p["text"]) for pid, p in paragraphs.items()]
        from lab.chunking import make_chunker

        kwargs = {k: self.config[k] for k in ("size", "overlap") if self.config.get(k) is not None}
        chunker = make_chunker(name, **kwargs)
        articles: dict[str, list[str]] = {}
        for p in paragraphs.values():
            articles.setdefault(p["title"], []).append(p["text"])
        docs = []
        for title, texts in articles.items():
            for c in chunker.chunk("\n\n".join(texts), doc_id=title):
                docs.append((f"{title}#c{c.index}", title, c.text))
        return docs

    def params(self) -> dict[str, Any]:
        """What built the index, for run params: retriever spec, chunking, embedder, doc count."""
        return {"retriever": self.retriever.params(), "chunker": self.config.get("chunker") or "none",
                "size": self.config.get("size"), "overlap": self.config.get("overlap"),
                "embedder": getattr(self.embed, "name", None), "docs": len(self.passages)}

    def search(self, questions: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        """Per question at most ``k`` ``(doc_id, score)``, best first."""
        return self.retriever.search(list(questions), k)

    def contexts(self, questions: Sequence[str], k: int) -> list[list[str]]:
        """Per question the texts of its top ``k`` passages, best first (fewer only when the corpus
        holds fewer than ``k`` docs)."""
        return [[self.passages[d] for d, _ in hits] for hits in self.search(questions, k)]


def _embedder(embed: Any, config: Mapping[str, Any], store_dir: str | Path | None) -> Any:
    """A callable ``texts -> vectors`` backed by the embedding store where it can be."""
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder

    if embed is None:
        embed = config.get("embedder")
        if not embed:
            raise ValueError(f"retriever {config['retriever']!r} needs an embedder: set 'embedder' "
                             "in the configuration or pass embed=")
    if isinstance(embed, str):
        embed = make_embedder(embed)
    if hasattr(embed, "encode") and not isinstance(embed, CachedEmbedder):
        return CachedEmbedder(embed, EmbeddingStore(store_dir))
    return embed
