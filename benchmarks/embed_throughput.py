"""lab's embedding path (content-addressed store, cold) against plain SentenceTransformer.encode.

    python benchmarks/embed_throughput.py [CORPUS_DIR] [--model all-minilm-l6-v2] [--n 800] [--out FILE]

The texts are distinct chunks (recursive, 200 tokens) of the documents in CORPUS_DIR (default: the
Chroma corpora). Both paths embed the same texts with the same model object, batch size and
normalisation; lab's path starts from an empty store each round, so it does all the work plus
hashing and storing. Rounds alternate (plain, lab, plain, lab, ...) and the median of each is kept.
``--out FILE`` writes ``lab_texts_per_s``, ``st_texts_per_s`` and ``ratio`` (lab / plain).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus_dir", nargs="?", default="data/chroma_chunking/corpora")
    ap.add_argument("--model", default="all-minilm-l6-v2")
    ap.add_argument("--n", type=int, default=800, help="number of texts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from lab.chunking import make_chunker
    from lab.data.benchmarks import load_corpus_folder
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder
    from lab.io import write_json

    docs = load_corpus_folder(args.corpus_dir)
    chunker = make_chunker("recursive", size=200, overlap=0)
    texts = list(dict.fromkeys(c.text for d in sorted(docs) for c in chunker.chunk(docs[d], d)))[: args.n]
    embedder = make_embedder(args.model, batch_size=args.batch_size)
    model = embedder.model
    model.encode(texts[:64], batch_size=args.batch_size, normalize_embeddings=True)  # warm-up

    plain, ours = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        plain.append(len(texts) / (time.perf_counter() - t))
        with tempfile.TemporaryDirectory() as store:
            cached = CachedEmbedder(embedder, EmbeddingStore(store))
            t = time.perf_counter()
            cached(texts)
            ours.append(len(texts) / (time.perf_counter() - t))
            assert cached.store.stats.misses == len(texts)
    result = {"lab_texts_per_s": round(statistics.median(ours), 2), "st_texts_per_s": round(statistics.median(plain), 2),
              "n_texts": len(texts), "rounds": args.rounds, "model": args.model}
    result["ratio"] = round(result["lab_texts_per_s"] / result["st_texts_per_s"], 3)
    print(f"{len(texts)} texts, {args.rounds} rounds: lab {result['lab_texts_per_s']} texts/s, "
          f"plain sentence-transformers {result['st_texts_per_s']} texts/s, ratio {result['ratio']}")
    print(f"  rounds lab {[round(x, 1) for x in ours]}, plain {[round(x, 1) for x in plain]}")
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
