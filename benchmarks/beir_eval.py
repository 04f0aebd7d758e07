"""Evaluate a retriever on any BEIR-format folder: nDCG@10, recall@100, MRR@10 (+ hit@k with CIs).

    python benchmarks/beir_eval.py DIR --retriever bm25
    python benchmarks/beir_eval.py DIR --retriever bm25 --option stemmer=null --option k1=1.2
    python benchmarks/beir_eval.py DIR --retriever dense:all-minilm-l6-v2 --option index=hnsw --out x.json
    python benchmarks/beir_eval.py DIR --retriever hybrid --option fusion=weighted --option alpha=0.3
    python benchmarks/beir_eval.py --squad-dev data/squad_v1.1_dev DIR   # write SQuAD dev as BEIR first

DIR holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv. Documents are embedded through lab's
content-addressed store (``--store``), so rerunning another retriever on the same folder reuses
vectors. Besides the three headline metrics it prints hit@1/5/10 and MRR@10 with 95% bootstrap
confidence intervals over queries.

Retriever options: ``--option KEY=VALUE`` (repeatable; VALUE is read as YAML, so ``null``,
``1.2``, ``bm25+``; quote a string YAML would read otherwise, e.g. ``stopwords="'no'"``) sets
one key of the retriever spec. bm25: ``k1``, ``b``, ``delta``, ``method``, ``stopwords``,
``stemmer`` (English stemming is on by default; ``stemmer=null`` turns it off). dense:
``index``, ``device`` and the index's own keys (``M``, ``ef_construction``, ``ef_search``;
``nlist``, ``nprobe``). hybrid: its own ``fusion``, ``rrf_k``, ``alpha``, ``candidates``; any
bm25 key goes to its bm25 part and any other key to its dense part.

Baseline (bm25 only; ``--no-baseline`` skips it): in the same process the folder is also run
through bm25s itself with its public API, bypassing lab: ``bm25s.tokenize`` with the same
stopwords and PyStemmer stemmer, ``bm25s.BM25`` with the same k1/b/delta/method, top 100 by
``retrieve``; and that run is scored by pytrec_eval (trec_eval): ``ndcg_cut_10``, ``recall_100``
and ``recip_rank`` of the run cut to its top 10 (= MRR@10). bm25s pads a ranking to 100 with
documents sharing no query token, at the score such a document gets (0; for bm25l and bm25+ the
sum of the query terms' non-occurrence scores); that padding is dropped (and counted in
``padding_dropped``), as lab returns only documents sharing a token. Lab's figures equal the
baseline's when each of the three differs by less than 1e-6; ``wall_ratio`` is lab's
indexing+search time over bm25s's (tokenize+index+retrieve). Known difference: with
``method=robertson`` a word in more than half the docs has a negative idf, so a doc may share a
token yet score 0 or less; lab ranks it (after the positive ones), bm25s's top 100 puts the
padding before it, so the figures can differ.

``--out FILE`` writes JSON with the keys ``ndcg@10``, ``recall@100``, ``mrr@10``, ``n_queries``,
``n_docs``, ``retriever``, ``options`` (as given), ``params`` (the retriever's effective spec),
``wall_s`` (lab's whole evaluation: loading, indexing, search, metrics), ``ci`` and ``baseline``
(null when not run; else the baseline's three metrics, ``equal``, ``abs_diff``, ``lab_s``,
``bm25s_s``, ``wall_ratio``, ``padding_dropped``, ``config`` and ``versions``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

HEADLINE = ["ndcg@10", "recall@100", "mrr@10"]
WITH_CI = ["hit_rate@1", "hit_rate@5", "hit_rate@10", "mrr@10"]
#: Lab's metric -> pytrec_eval's measure (mrr@10 is recip_rank of the run cut to 10, see trec_scores).
TREC_MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "mrr@10": "recip_rank"}
#: |lab - baseline| below this for every headline metric counts as equal.
EQUAL_TOL = 1e-6
DEPTH = 100


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["k1=1.2", "stemmer=null"]`` -> ``{"k1": 1.2, "stemmer": None}`` (values read as YAML)."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SystemExit(f"--option {pair!r}: expected KEY=VALUE, e.g. --option stemmer=null or --option k1=1.2")
        if key == "retriever":
            raise SystemExit("--option retriever=...: choose the retriever with --retriever, not --option")
        if key in options:
            raise SystemExit(f"--option {key} is given twice; keep one")
        if not raw.strip():
            # an empty YAML value is null, which is easily a typo: ask for it spelled out
            raise SystemExit(f"--option {key}=: empty value; write {key}=null for none")
        try:
            options[key] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise SystemExit(f"--option {key}={raw}: the value is not valid YAML ({exc}); quote it") from None
    return options


def retriever_spec(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The :func:`lab.retrieval.make_retriever` spec of ``kind`` with ``options``.

    bm25 and dense take them as they are (make_retriever rejects an unknown key, listing the
    accepted ones); a hybrid keeps its own keys and hands the others to its parts.
    """
    from lab.retrieval import BM25Retriever, HybridRetriever

    if kind != "hybrid":
        return {"retriever": kind, **options}
    own = {k: v for k, v in options.items() if k in HybridRetriever.SPEC_DEFAULTS}
    bm25 = {k: v for k, v in options.items() if k not in own and k in BM25Retriever.SPEC_DEFAULTS}
    dense = {k: v for k, v in options.items() if k not in own and k not in bm25}
    if "retrievers" in own and (bm25 or dense):
        raise SystemExit(f"--option retrievers=... replaces the hybrid's parts; set {', '.join([*bm25, *dense])} "
                         "inside it instead of as separate options")
    own.setdefault("retrievers", [{"retriever": "dense", **dense}, {"retriever": "bm25", **bm25}])
    return {"retriever": "hybrid", **own}


def make(spec: str, store: str | None, options: Mapping[str, Any] | None = None):
    """The retriever ``--retriever spec`` names, configured by ``options`` (see the module docstring)."""
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder
    from lab.errors import ConfigError
    from lab.retrieval import make_retriever

    kind, _, model = spec.partition(":")
    if kind not in ("bm25", "dense", "hybrid"):
        raise SystemExit(f"--retriever must be bm25, dense[:MODEL] or hybrid[:MODEL], got {spec!r}")
    full = retriever_spec(kind, options or {})
    embed = None
    if kind != "bm25":
        embed = CachedEmbedder(make_embedder(model or "all-minilm-l6-v2"), EmbeddingStore(store),
                               progress=sys.stderr.isatty())
    try:
        return make_retriever(full, embed=embed)
    except ConfigError as exc:  # a bad --option: say which flag to fix
        raise SystemExit(f"--option: {exc}") from None


# --------------------------------------------------------------------------- baseline


def bm25s_run(texts: list[str], ids: list[str], queries: list[str], qids: list[str],
              config: Mapping[str, Any], depth: int = DEPTH) -> tuple[dict[str, dict[str, float]], float, int]:
    """bm25s's own top-``depth`` run, without lab: ``(run, seconds, padding_dropped)``.

    ``config`` holds k1, b, delta, method, stopwords, stemmer as lab's bm25 spec does; seconds
    cover tokenizing, indexing and retrieving. Documents bm25s ranks only to fill ``depth`` (at
    the score of a document sharing no query token) are left out of the run and counted.
    """
    import bm25s

    stemmer = None
    if config["stemmer"] is not None:
        import Stemmer

        stemmer = Stemmer.Stemmer(config["stemmer"])
    start = time.perf_counter()
    corpus_tokens = bm25s.tokenize(texts, stopwords=config["stopwords"], stemmer=stemmer, show_progress=False)
    model = bm25s.BM25(k1=config["k1"], b=config["b"], delta=config["delta"], method=config["method"],
                       backend="numpy")  # lab's backend, so the time ratio compares like with like
    model.index(corpus_tokens, show_progress=False)
    query_tokens = bm25s.tokenize(queries, stopwords=config["stopwords"], stemmer=stemmer, return_ids=False,
                                  show_progress=False)
    docs, scores = model.retrieve(query_tokens, k=min(depth, len(ids)), show_progress=False, n_threads=1)
    seconds = time.perf_counter() - start
    # the score bm25s gives a document sharing no query token: 0, except for bm25l and bm25+, where
    # a term's absence scores too (the same for every document), computed as bm25s does, in float32
    absent = getattr(model, "nonoccurrence_array", None)
    no_match = [float(absent[model.get_tokens_ids(t)].sum()) if absent is not None else 0.0 for t in query_tokens]
    run: dict[str, dict[str, float]] = {}
    dropped = 0
    for qid, row_d, row_s, floor in zip(qids, docs, scores, no_match, strict=True):
        # bm25s pads the ranking to k with such documents; lab never returns them
        run[qid] = {ids[int(d)]: float(s) for d, s in zip(row_d, row_s, strict=True) if float(s) != floor}
        dropped += len(row_d) - len(run[qid])
    return run, seconds, dropped


def _pytrec_eval() -> Any:
    try:
        import pytrec_eval
    except ImportError:
        raise SystemExit("the baseline needs pytrec_eval: pip install pytrec_eval-terrier==0.5.11 "
                         "(lab's dev extra), or pass --no-baseline") from None
    return pytrec_eval


def trec_scores(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """nDCG@10, recall@100 and MRR@10 by pytrec_eval, means over the judged queries (a query
    missing from the run, or with an empty ranking, counts 0 as in lab)."""
    pytrec_eval = _pytrec_eval()
    judged = {q: dict(r) for q, r in qrels.items() if r}
    ranked = {q: dict(d) for q, d in run.items() if d}
    full = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.100"}).evaluate(ranked)
    # recip_rank has no cutoff: cut each ranking to its top 10 in trec_eval's own order
    # (score descending, equal scores by doc id descending)
    top10 = {q: dict(sorted(d.items(), key=lambda x: (x[1], x[0]), reverse=True)[:10]) for q, d in ranked.items()}
    rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)
    per = {"ndcg@10": full, "recall@100": full, "mrr@10": rr}
    return {m: sum(per[m].get(q, {}).get(TREC_MEASURES[m], 0.0) for q in judged) / len(judged) for m in HEADLINE}


def baseline(ds: Any, ids: list[str], texts: list[str], qids: list[str], config: Mapping[str, Any],
             lab: Mapping[str, float], lab_s: float) -> dict[str, Any]:
    """The ``baseline`` entry of the output: bm25s + pytrec_eval next to lab's ``lab`` figures."""
    import bm25s

    _pytrec_eval()  # fail before the run when it is missing
    run, seconds, dropped = bm25s_run(texts, ids, [ds.queries[q] for q in qids], qids, config)
    scores = trec_scores(ds.qrels, run)
    diff = {m: abs(lab[m] - scores[m]) for m in HEADLINE}
    return {**scores, "equal": all(d < EQUAL_TOL for d in diff.values()), "abs_diff": diff,
            "tolerance": EQUAL_TOL, "lab_s": round(lab_s, 4), "bm25s_s": round(seconds, 4),
            "wall_ratio": round(lab_s / seconds, 3), "padding_dropped": dropped, "config": dict(config),
            "versions": {"bm25s": bm25s.__version__, "PyStemmer": version("PyStemmer"),
                         "pytrec_eval-terrier": version("pytrec_eval-terrier")}}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    ap.add_argument("--retriever", default="bm25", help="bm25 | dense[:MODEL] | hybrid[:MODEL]")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="retriever spec key (repeatable; VALUE as YAML), e.g. stemmer=null, k1=1.2, index=hnsw")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-queries", type=int, default=0, help="deterministic sample of queries (0 = all)")
    ap.add_argument("--store", default=None, help="embedding store folder (default: lab cache)")
    ap.add_argument("--squad-dev", default=None, help="first write SQuAD v1.1 dev (paragraph level) to FOLDER")
    ap.add_argument("--no-baseline", action="store_true", help="bm25: skip the bm25s + pytrec_eval baseline")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    options = parse_options(args.option)

    from lab.data.beir import load_beir
    from lab.data.squad import squad_paragraphs
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
    retriever = make(args.retriever, args.store, options)
    ids, texts = ds.doc_texts()
    qids = list(ds.qrels)
    if retriever.name == "bm25":
        import bm25s  # noqa: F401  (its import takes ~0.6 s: keep it off the clock, as for the baseline)
    t_lab = time.perf_counter()
    retriever.index(ids, texts)
    ranked = retriever.search([ds.queries[q] for q in qids], DEPTH)
    lab_s = time.perf_counter() - t_lab
    run = {q: dict(hits) for q, hits in zip(qids, ranked, strict=True)}
    table = per_query(ds.qrels, run, HEADLINE + [m for m in WITH_CI if m not in HEADLINE])
    means = aggregate(table)
    out = {**{m: means[m] for m in HEADLINE}, "n_queries": len(qids), "n_docs": len(ids),
           "retriever": args.retriever, "options": options, "params": retriever.params(),
           "wall_s": round(time.time() - t0, 2),
           "ci": {m: dict(zip(("mean", "low", "high"), bootstrap_ci(table[m].to_numpy()), strict=True))
                  for m in WITH_CI},
           "baseline": None}
    print(f"{Path(args.folder).name}: {out['n_docs']} docs, {out['n_queries']} queries, {args.retriever}"
          f"{' ' + str(options) if options else ''}, {out['wall_s']} s")
    print("  " + "  ".join(f"{m} {out[m]:.4f}" for m in HEADLINE))
    for m, ci in out["ci"].items():
        print(f"  {m:<11} {ci['mean']:.4f}  (95% CI {ci['low']:.4f}-{ci['high']:.4f})")
    if retriever.name == "bm25" and not args.no_baseline:
        config = {k: v for k, v in retriever.params().items() if k != "retriever"}
        base = out["baseline"] = baseline(ds, ids, texts, qids, config, means, lab_s)
        print("  baseline (bm25s + pytrec_eval): " + "  ".join(f"{m} {base[m]:.4f}" for m in HEADLINE)
              + f"  -> {'equal' if base['equal'] else 'DIFFERENT'} (max |diff| {max(base['abs_diff'].values()):.1e})")
        print(f"  time lab {base['lab_s']:.2f} s / bm25s {base['bm25s_s']:.2f} s = {base['wall_ratio']:.2f}x"
              f" (indexing + search)")
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
