"""Recipe: add a retriever. `keyword` ranks documents by the share of the query's words they hold."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from lab.retrieval import RETRIEVERS, BaseRetriever, load_retriever, make_retriever
from lab.retrieval.base import Embed, Results, Scorer


def words(text: str) -> set[str]:
    return set(re.findall(r"\w\w+", text.lower()))


@RETRIEVERS.register("keyword")   # the name a spec's `retriever:` key uses
class KeywordRetriever(BaseRetriever):
    """Share of the query's words (2+ characters) found in each document; ties in index order."""

    name = "keyword"
    # the spec keys this retriever accepts, with their defaults: make_retriever rejects any other
    SPEC_DEFAULTS: ClassVar[dict[str, Any]] = {"min_share": 0.0}

    def __init__(self, *, min_share: float = 0.0) -> None:
        super().__init__()   # id bookkeeping, argument checks, atomic save()
        self.min_share = min_share
        self._words: list[set[str]] = []

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, embed: Embed | None = None,
                  score: Scorer | None = None) -> KeywordRetriever:
        return cls(**{k: v for k, v in spec.items() if k != "retriever"})

    def index(self, ids: list[str], texts: list[str]) -> None:
        self._set_ids(ids, texts)   # checks: same lengths, unique ids, not empty
        self._words = [words(t) for t in texts]

    def search(self, queries: list[str], k: int) -> Results:
        queries = self._check_search(queries, k)
        out: Results = []
        for q in queries:
            qw = words(q) or {""}
            scored = [(i, len(qw & w) / len(qw)) for i, w in enumerate(self._words)]
            hits = [(self._ids[i], s) for i, s in scored if s > self.min_share]
            out.append(self._ranked([d for d, _ in hits], [s for _, s in hits], k))   # best first
        return out

    def params(self) -> dict[str, Any]:
        return {"retriever": self.name, "min_share": self.min_share}   # make_retriever(params()) rebuilds it

    def _save_files(self, dir: Path) -> dict[str, Any]:
        (dir / "words.json").write_text(json.dumps([sorted(w) for w in self._words]), encoding="utf-8")
        return {}

    @classmethod
    def load(cls, dir: Path, meta: dict[str, Any], *, embed: Embed | None = None,
             score: Scorer | None = None) -> KeywordRetriever:
        self = cls(**{k: v for k, v in meta["params"].items() if k != "retriever"})
        self._load_ids(dir)
        self._words = [set(w) for w in json.loads((dir / "words.json").read_text(encoding="utf-8"))]
        return self


def main() -> None:
    docs = {"d1": "Paris is the capital of France.", "d2": "Berlin is the capital of Germany.",
            "d3": "The Seine flows through Paris."}
    r = make_retriever({"retriever": "keyword", "min_share": 0.2})
    r.index(list(docs), list(docs.values()))
    results = r.search(["capital of France", "Seine river"], k=2)
    print(results)
    assert results[0][0][0] == "d1" and results[1][0][0] == "d3"
    with tempfile.TemporaryDirectory() as tmp:   # save and load: what a study builds, the server searches
        again = load_retriever(r.save(Path(tmp) / "index"))
        assert again.search(["capital of France", "Seine river"], k=2) == results


if __name__ == "__main__":
    main()
