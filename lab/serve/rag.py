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
        self.passages: dict[str, dict[str, Any]] = {}
        for row in iter_jsonl(self.dir / "passages.jsonl"):
            rec = row.record
            if "id" not in rec or not isinstance(rec.get("text"), str):
                raise BundleError(f"{row.where}: a passage needs 'id' and a 'text' string; rerun `dvc repro export`")
            self.passages[rec["id"]] = {"title": rec.get("title", ""), "text": rec["text"],
                                        **_provenance(rec, row.where)}
        self.k = int(self.bundle["retrieval"]["k"])                    # passages per question
        self.max_new_tokens = int(self.bundle["generation"]["max_new_tokens"])   # the arm's answer length
        #: where the arm's answers were cut when they were evaluated (``generation.stop``), applied when serving
        self.stop: tuple[str, ...] = tuple(self.bundle["generation"].get("stop") or ())
        self.rag = bool(self.bundle["prompt"]["rag"])
        #: the bundle's identity (``provenance.bundle_id``; "" when it has none), on every request's trace
        self.bundle_id = str(self.bundle.get("provenance", {}).get("bundle_id") or "")

    def search(self, questions: Sequence[str], k: int | None = None) -> list[list[tuple[str, float]]]:
        """Per question at most ``k`` (default the bundle's) ``(doc_id, score)``, best first."""
        return self.retriever.search(list(questions), k or self.k)

    def sources(self, hits: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
        """The passages behind ``hits`` as the response's ``sources``, in the prompt's order (source
        ``i`` is the passage the prompt numbers ``[i + 1]``): ``id``, ``score``, ``title``, ``text``;
        a passage of a corpus folder (:func:`lab.retrieval.sets.folder_corpus`) also gives
        ``document`` (its source file, or its doc id when the folder was not ingested), ``pages``
        (``[first, last]``) and ``section`` where known, and ``citation``
        (:func:`lab.ingest.provenance.citation`: ``"guide.pdf, p. 4-5"``)."""
        return [_source(d, sc, self.passages[d]) for d, sc in hits]

    def messages(self, question: str, hits: Sequence[tuple[str, float]], topic: str | None = None,
                 history: Sequence[dict] = (), texts: Sequence[str] | None = None) -> list[dict]:
        """The study's prompt for ``question`` (``lab.generate.domain_qa_prompt``); earlier turns kept
        before it. ``texts``: the passages' texts as the guardrail policy left them (neutralised
        ones fenced), one per hit; default their texts as stored. With no hits (none retrieved, or
        the policy dropped them all) the prompt is the study's zero-shot one."""
        from lab.data.domain import QAExample
        from lab.generate.domain_qa_prompt import with_context, zero_shot

        if topic is None:
            topic = self.passages[hits[0][0]]["title"] if hits else ""
        ex = QAExample(id="", question=question, answers=(), paragraph_id="", title=topic, context="")
        if texts is None:
            texts = [self.passages[d]["text"] for d, _ in hits]
        msgs = with_context(ex, list(texts)) if self.rag and hits else zero_shot(ex)
        return [msgs[0], *history, *msgs[1:]]

    def embedding_hit_rate(self) -> float | None:
        """Embedding-store hits / lookups of query embeddings since start (None without a store)."""
        store = getattr(self.embed, "store", None)
        if store is None:
            return None
        total = store.stats.hits + store.stats.misses
        return store.stats.hits / total if total else None


def _provenance(rec: dict[str, Any], where: str) -> dict[str, Any]:
    """The provenance keys of a ``passages.jsonl`` record (:data:`lab.handoff.bundle.PASSAGE_PROVENANCE`), checked."""
    from lab.handoff.bundle import PASSAGE_PROVENANCE

    out = {k: rec[k] for k in PASSAGE_PROVENANCE if rec.get(k) is not None}
    pages = out.get("pages")
    if pages is not None and (not isinstance(pages, list) or len(pages) != 2
                              or not all(isinstance(p, int) and not isinstance(p, bool) for p in pages)):
        raise BundleError(f"{where}: 'pages' must be [first, last] page numbers, got {pages!r:.80}; "
                          "rerun `dvc repro export`")
    for key in ("doc_id", "source", "section"):
        if key in out and not isinstance(out[key], str):
            raise BundleError(f"{where}: {key!r} must be a string, got {out[key]!r:.80}; rerun `dvc repro export`")
    return out


def _source(doc_id: str, score: float, passage: dict[str, Any]) -> dict[str, Any]:
    """One entry of a response's ``sources`` (see :meth:`RAG.sources`)."""
    from lab.ingest.provenance import citation

    out: dict[str, Any] = {"id": doc_id, "score": float(score), "title": passage["title"], "text": passage["text"]}
    document = passage.get("source") or passage.get("doc_id")
    if document is None:
        return out   # a SQuAD passage: no document to name
    out["document"] = document
    for key in ("pages", "section"):
        if key in passage:
            out[key] = passage[key]
    out["citation"] = citation(document, passage.get("pages"), passage.get("section"))
    return out
