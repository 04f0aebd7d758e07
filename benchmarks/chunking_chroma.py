"""Reproduce the all-corpora all-MiniLM-L6-v2 table of Chroma's chunking report, side by side.

    python benchmarks/chunking_chroma.py data/chroma_chunking/corpora data/chroma_chunking/questions_df.csv \
        --out results/benchmarks/chunking_chroma.json

Runs on any corpus folder + questions CSV of that format. All documents are pooled in one
collection (as the report did), questions retrieve by exact cosine similarity with the embedder
(default all-MiniLM-L6-v2 from the offline model store), and every row of the published table is
computed: Recursive and TokenText at 250/125, 250/0, 200/0 and Cluster at 250 and 200, for
k = min, 5 and 10. When a published table is given (``--published``, default the RESULTS.md beside
the questions CSV) ours are printed beside it with the differences. ``--per-corpus`` adds rows per
corpus from the same pooled run. Embeddings go through lab's content-addressed store, so a rerun
embeds nothing new (the store's counters are printed and written).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import pandas as pd

from lab.io import write_json

CONFIGS = [("recursive", 250, 125), ("token", 250, 125), ("recursive", 250, 0), ("token", 250, 0),
           ("recursive", 200, 0), ("token", 200, 0), ("cluster", 250, 0), ("cluster", 200, 0)]
NAMES = {"Recursive": "recursive", "TokenText": "token", "Cluster": "cluster"}
COLUMNS = {"Recursive": 0, "recall": 4, "precision": 5, "precision_omega": 6, "iou": 7}
SECTION = "### All corpora, all-MiniLM-L6-v2"


def parse_published(path: Path, section: str = SECTION) -> pd.DataFrame:
    """Rows of one table of Chroma's RESULTS.md: chunker, size, overlap, k, metric means (percent)."""
    rows, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            inside = line.startswith(section)
            continue
        if not inside or not line.startswith("|") or "---" in line or "Chunking" in line:
            continue
        cells = [c.strip().replace("*", "") for c in line.strip("|").split("|")]
        if cells[0] not in NAMES:
            continue
        mean = {m: float(re.split(r"\s*±\s*", cells[i])[0]) for m, i in COLUMNS.items() if m != "Recursive"}
        k = cells[3].lower()
        rows.append({"chunker": NAMES[cells[0]], "size": int(cells[1]), "overlap": int(cells[2]),
                     "k": "min" if k == "min" else int(k), **mean})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus_dir")
    ap.add_argument("questions_csv")
    ap.add_argument("--embedder", default="all-minilm-l6-v2", help="model spec (lab.models)")
    ap.add_argument("--store", default=None, help="embedding store folder (default: lab cache)")
    ap.add_argument("--published", default=None, help="RESULTS.md with the published table")
    ap.add_argument("--configs", default=None, help="comma list like recursive:250:125,cluster:200:0")
    ap.add_argument("--per-corpus", action="store_true", help="also print per-corpus rows")
    ap.add_argument("--on-bad-reference", choices=["error", "skip"], default="error")
    ap.add_argument("--out", default=None, help="write rows as JSON")
    args = ap.parse_args(argv)

    from lab.chunking import make_chunker
    from lab.data.benchmarks import load_chroma_benchmark
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder
    from lab.studies.chunking import evaluate

    bench = load_chroma_benchmark(args.corpus_dir, args.questions_csv, on_bad_reference=args.on_bad_reference)
    print(f"{len(bench.documents)} documents, {len(bench.questions)} questions"
          + (f", {len(bench.skipped)} skipped" if bench.skipped else ""), flush=True)
    embedder = make_embedder(args.embedder)
    cached = CachedEmbedder(embedder, EmbeddingStore(args.store), progress=sys.stderr.isatty())
    configs = CONFIGS
    if args.configs:
        configs = [(c.split(":")[0], int(c.split(":")[1]), int(c.split(":")[2])) for c in args.configs.split(",")]

    rows, per_corpus, t0 = [], [], time.time()
    for name, size, overlap in configs:
        t = time.time()
        kwargs = {"size": size, "overlap": overlap} if name != "cluster" else {"size": size, "embed": cached}
        result = evaluate(make_chunker(name, **kwargs), bench, cached)
        stats = result.chunk_stats()
        for by, sink in ((None, rows), ("corpus", per_corpus)):
            for rec in result.summary(by).to_dict("records"):
                k = rec["k_label"]
                sink.append({"chunker": name, "size": size, "overlap": overlap, "k": k if k == "min" else int(k),
                             **({"corpus": rec["corpus"]} if by else {}),
                             **{m: round(rec[m], 2) for m in ("recall", "precision", "precision_omega", "iou")},
                             **{f"{m}_std": round(rec[f"{m}_std"], 2) for m in ("recall", "iou")},
                             "n_queries": int(rec["n_queries"]), "embedder": args.embedder,
                             "chunks": stats["chunks"], "chunk_tokens_mean": round(stats["tokens_mean"], 1)})
        print(f"{name} {size}/{overlap}: {stats['chunks']} chunks (~{stats['tokens_mean']:.0f} tokens), "
              f"{time.time() - t:.0f} s, store {cached.store.stats.as_dict()}", flush=True)

    ours = pd.DataFrame(rows)
    published_path = Path(args.published) if args.published else Path(args.questions_csv).parent / "RESULTS.md"
    table = ours.copy()
    if published_path.is_file():
        pub = parse_published(published_path)
        if not pub.empty:
            table = ours.merge(pub, on=["chunker", "size", "overlap", "k"], how="left", suffixes=("", "_pub"))
            for m in ("recall", "precision", "precision_omega", "iou"):
                table[f"d_{m}"] = (table[m] - table[f"{m}_pub"]).round(2)
    show = ["chunker", "size", "overlap", "k", "recall", "recall_pub", "d_recall", "iou", "iou_pub", "d_iou",
            "precision", "precision_pub", "precision_omega", "precision_omega_pub", "n_queries"]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table[[c for c in show if c in table.columns]].to_string(index=False))
        if args.per_corpus:
            print(pd.DataFrame(per_corpus)[["corpus", "chunker", "size", "overlap", "k", "recall", "precision",
                                            "precision_omega", "iou", "n_queries"]].to_string(index=False))
    store = {**cached.store.stats.as_dict(), "distinct_embedded_total": cached.store.count(
        __import__("lab.embed", fromlist=["namespace"]).namespace(cached.fingerprint()))}
    print(f"embedding store: {store}; wall {time.time() - t0:.0f} s")
    if args.out:
        out = Path(args.out)
        payload = [{k: v for k, v in r.items() if k in ("chunker", "size", "overlap", "k", "recall", "precision",
                                                        "precision_omega", "iou", "n_queries", "embedder")}
                   for r in rows]
        write_json(out, payload, indent=1, end="")
        detail = out.with_suffix(".detail.json")
        write_json(detail, {"rows": table.to_dict("records"), "per_corpus": per_corpus,
                                                     "store": store, "wall_s": round(time.time() - t0, 1)},
                   indent=1, end="")
        print(f"wrote {out} and {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
