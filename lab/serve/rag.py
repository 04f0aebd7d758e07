"""The bundle's retrieval and prompt, as the studies ran them: the saved index searched with the
studies' retriever code (and embedding store), the study's prompt built around the passages.

A bundle is refused here when its prompt version is not the one this code builds
(:func:`lab.handoff.bundle.check_prompt`): the offline scores and the gate's reference answers
belong to the prompt the bundle records.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.handoff.bundle import BundleError, check_prompt, read_bundle
from lab.io import iter_jsonl


class RAG:
    """The bundle's retriever and prompt: the same functions the studies call.

    Raises
    ------
    BundleError
        The bundle is unreadable, of another format or version, or was exported with another
        prompt version than this code's.
    """

    def __init__(self, bundle_dir: str | Path, *, store_dir: str | Path | None = None, embed: Any = None) -> None:
        from lab.generate.domain_qa_prompt import PROMPT_VERSION
        from lab.retrieval import load_retriever
        from lab.retrieval.configured import DENSE, config_embedder

        self.dir = Path(bundle_dir)
        self.bundle = read_bundle(self.dir)
        check_prompt(self.dir, self.bundle, PROMPT_VERSION)
        config = self.bundle["retrieval"]["config"]
        self.embed = config_embedder(config, store_dir, embed) if config["retriever"] in DENSE else None
        self.retriever = load_retriever(self.dir / "index", self.embed)
        self.passages: dict[str, dict[str, str]] = {}
        for row in iter_jsonl(self.dir / "passages.jsonl"):
            if "id" not in row.record or not isinstance(row.record.get("text"), str):
                raise BundleError(f"{row.where}: a passage needs 'id' and a 'text' string; rerun `dvc repro export`")
            self.passages[row.record["id"]] = {"title": row.record.get("title", ""), "text": row.record["text"]}
        self.k = int(self.bundle["retrieval"]["k"])                    # passages per question
        self.max_new_tokens = int(self.bundle["generation"]["max_new_tokens"])   # the arm's answer length
        self.rag = bool(self.bundle["prompt"]["rag"])

    def search(self, questions: Sequence[str], k: int | None = None) -> list[list[tuple[str, float]]]:
        """Per question at most ``k`` (default the bundle's) ``(doc_id, score)``, best first."""
        return self.retriever.search(list(questions), k or self.k)

    def sources(self, hits: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
        """The passages behind ``hits`` as the response's ``sources`` (id, score, title, text)."""
        return [{"id": d, "score": float(sc), "title": self.passages[d]["title"], "text": self.passages[d]["text"]}
                for d, sc in hits]

    def messages(self, question: str, hits: Sequence[tuple[str, float]], topic: str | None = None,
                 history: Sequence[dict] = ()) -> list[dict]:
        """The study's prompt for ``question`` (``lab.generate.domain_qa_prompt``); earlier turns kept before it."""
        from lab.data.domain import QAExample
        from lab.generate.domain_qa_prompt import with_context, zero_shot

        if topic is None:
            topic = self.passages[hits[0][0]]["title"] if hits else ""
        ex = QAExample(id="", question=question, answers=(), paragraph_id="", title=topic, context="")
        msgs = with_context(ex, [self.passages[d]["text"] for d, _ in hits]) if self.rag and hits else zero_shot(ex)
        return [msgs[0], *history, *msgs[1:]]

    def embedding_hit_rate(self) -> float | None:
        """Embedding-store hits / lookups of query embeddings since start (None without a store)."""
        store = getattr(self.embed, "store", None)
        if store is None:
            return None
        total = store.stats.hits + store.stats.misses
        return store.stats.hits / total if total else None
