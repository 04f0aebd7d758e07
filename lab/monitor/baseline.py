"""The offline side of the drift checks: the bundle's held-out questions (``eval.jsonl``, the
questions the export stage scored the arm on and the promotion gate replays) searched with the
bundle's own index and retriever (:class:`lab.serve.rag.RAG`, the gateway's code: the gate checks
that it returns the offline evaluation's passages), so the offline and the served scores come from
one scorer.

The relevance threshold, unless the config sets one, is calibrated here: the ``relevance_quantile``
(default 0.1) of the top-1 scores of the offline questions whose retrieved passages hold a reference
answer (:func:`lab.metrics.qa.answer_in_context`): 90% of the answerable offline questions had a
source at least that good.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lab.handoff.bundle import BundleError


@dataclass
class Baseline:
    """The offline evaluation as the drift checks compare with it."""

    bundle_dir: Path
    bundle_id: str | None
    questions: list[str]
    top_scores: np.ndarray              # top-1 retrieval score per question
    answerable: np.ndarray              # a retrieved passage holds a reference answer
    threshold: float | None             # the relevance threshold (None: no answerable offline question)
    threshold_from: str                 # how it was set
    embedder: str | None                # the question embedder's name (None: none, the check is skipped)
    embed: Callable[[Sequence[str]], np.ndarray] | None = None
    embeddings: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle_dir), "bundle_id": self.bundle_id, "questions": len(self.questions),
                "answerable": int(self.answerable.sum()), "relevance_threshold": self.threshold,
                "threshold_from": self.threshold_from, "embedder": self.embedder}


def offline_baseline(bundle_dir: str | Path, *, relevance_threshold: float | None = None,
                     relevance_quantile: float = 0.1, embedder: str | None = None,
                     store_dir: str | Path | None = None, rag: Any = None) -> Baseline:
    """The bundle's offline questions, their top scores, answerability and embeddings.

    Parameters
    ----------
    embedder:
        An embedder spec for the questions (``hashed-256``, ``all-minilm-l6-v2``); None: the bundle's
        own (its dense retriever's), or no embedding check for a BM25 bundle.
    rag:
        A loaded :class:`~lab.serve.rag.RAG` of the bundle (loaded here when None).

    Raises
    ------
    BundleError
        Not a servable bundle, or its ``eval.jsonl`` has fewer than 2 questions with answers.
    """
    from lab.io import read_jsonl
    from lab.metrics.qa import answer_in_context
    from lab.serve.rag import RAG

    bundle_dir = Path(bundle_dir)
    rag = rag if rag is not None else RAG(bundle_dir, store_dir=store_dir)
    path = bundle_dir / "eval.jsonl"
    items = read_jsonl(path) if path.is_file() else []
    items = [i for i in items if isinstance(i.get("question"), str) and i.get("answers")]
    if len(items) < 2:
        raise BundleError(f"{path}: {len(items)} question(s) with answers; the drift checks compare the served "
                          "questions with the offline evaluation's (2+); export the bundle again (`dvc repro export`)")
    questions = [i["question"] for i in items]
    hits = rag.search(questions)
    top = np.array([h[0][1] if h else -np.inf for h in hits], dtype=float)
    answerable = np.array([bool(answer_in_context(i["answers"], [rag.passages[d]["text"] for d, _ in h]))
                           for i, h in zip(items, hits, strict=True)])
    if relevance_threshold is not None:
        threshold, how = float(relevance_threshold), "config: drift.relevance_threshold"
    elif answerable.any():
        threshold = float(np.quantile(top[answerable], relevance_quantile))
        how = (f"offline: the {relevance_quantile:g} quantile of the top scores of the {int(answerable.sum())} "
               "offline questions with an answer in their sources")
    else:
        threshold, how = None, "none: no offline question has an answer in its sources; set drift.relevance_threshold"
    embed, name = _embedder(rag, embedder, store_dir)
    return Baseline(bundle_dir, rag.bundle.get("provenance", {}).get("bundle_id"), questions, top, answerable,
                    threshold, how, name, embed, embed(questions) if embed is not None else None)


def _embedder(rag: Any, spec: str | None, store_dir: str | Path | None) -> tuple[Any, str | None]:
    if spec is not None:
        from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder

        emb = make_embedder(spec)
        return CachedEmbedder(emb, EmbeddingStore(store_dir)), spec
    if rag.embed is None:
        return None, None
    return rag.embed, str(rag.bundle["retrieval"]["config"].get("embedder"))
