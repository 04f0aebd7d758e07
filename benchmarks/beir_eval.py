"""Evaluate a retriever on any BEIR-format folder: nDCG@10, recall@100, MRR@10 (+ hit@k with CIs).

    python benchmarks/beir_eval.py DIR --retriever bm25
    python benchmarks/beir_eval.py DIR --retriever dense:all-minilm-l6-v2 --out results/benchmarks/x.json
    python benchmarks/beir_eval.py DIR --retriever hybrid            # dense MiniLM + bm25, RRF
    python benchmarks/beir_eval.py --squad-dev data/squad_v1.1_dev DIR   # write SQuAD dev as BEIR first

DIR holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv. Documents are embedded through lab's
content-addressed store (``--store``), so rerunning another retriever on the same folder reuses
vectors. Besides the three headline metrics it prints hit@1/5/10 and MRR@10 with 95% bootstrap
confidence intervals over queries. ``--out FILE`` writes JSON with the keys ``ndcg@10``,
``recall@100``, ``mrr@10``, ``n_queries``, ``n_docs``, ``retriever``, ``wall_s`` (and ``ci``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HEADLINE = ["ndcg@10", "recall@100", "mrr@10"]
WITH_CI = ["hit_rate@1", "hit_rate@5", "hit_rate@10", "mrr@10"]


def make(spec: str, store: str | None):
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder
    from lab.retrieval import make_retriever

    kind, _, model = spec.partition(":")
    if kind == "bm25":
        return make_retriever({"retriever": "bm25"})
    embed = CachedEmbedder(make_embedder(model or "all-minilm-l6-v2"), EmbeddingStore(store),
                           progress=sys.stderr.isatty())
    if kind == "dense":
        return make_retriever({"retriever": "dense"}, embed=embed)
    if kind == "hybrid":
        return make_retriever({"retriever": "hybrid"}, embed=embed)
    raise SystemExit(f"--retriever must be bm25, dense[:MODEL] or hybrid[:MODEL], got {spec!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    ap.add_argument("--retriever", default="bm25", help="bm25 | dense[:MODEL] | hybrid[:MODEL]")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-queries", type=int, default=0, help="deterministic sample of queries (0 = all)")
    ap.add_argument("--store", default=None, help="embedding store folder (default: lab cache)")
    ap.add_argument("--squad-dev", default=None, help="first write SQuAD v1.1 dev (paragraph level) to FOLDER")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from lab.data.beir import load_beir, squad_paragraphs
    from lab.io import write_json
    from lab.metrics.ir import aggregate, per_query
    from lab.metrics.stats import bootstrap_ci

    if args.squad_dev:
        src = Path(args.squad_dev)
        squad_paragraphs(src / "dev-v1.1.paragraphs.jsonl", src / "dev-v1.1.qa.jsonl").save_beir(args.folder)
    t0 = time.time()
    ds = load_beir(args.folder, args.split)
    if args.max_queries:
        ds = ds.subset(args.max_queries)
    retriever = make(args.retriever, args.store)
    ids, texts = ds.doc_texts()
    retriever.index(ids, texts)
    qids = list(ds.qrels)
    ranked = retriever.search([ds.queries[q] for q in qids], 100)
    run = {q: dict(hits) for q, hits in zip(qids, ranked, strict=True)}
    table = per_query(ds.qrels, run, HEADLINE + [m for m in WITH_CI if m not in HEADLINE])
    means = aggregate(table)
    out = {**{m: means[m] for m in HEADLINE}, "n_queries": len(qids), "n_docs": len(ids),
           "retriever": args.retriever, "wall_s": round(time.time() - t0, 2),
           "ci": {m: dict(zip(("mean", "low", "high"), bootstrap_ci(table[m].to_numpy()), strict=True))
                  for m in WITH_CI}}
    print(f"{Path(args.folder).name}: {out['n_docs']} docs, {out['n_queries']} queries, {args.retriever}, "
          f"{out['wall_s']} s")
    print("  " + "  ".join(f"{m} {out[m]:.4f}" for m in HEADLINE))
    for m, ci in out["ci"].items():
        print(f"  {m:<11} {ci['mean']:.4f}  (95% CI {ci['low']:.4f}-{ci['high']:.4f})")
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
