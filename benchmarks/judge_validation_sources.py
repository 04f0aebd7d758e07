"""Sources for the judge's realistic validation set: Chroma's questions over Chroma's five corpora.

Issue 31 item 3 asks for RAG answers over documents the judge's training never saw. The judge's
training data is made from SQuAD's training articles (``lab judge make-data --part train``); Chroma's
corpora (State of the Union, Wikipedia texts, chat logs, finance, PubMed: ``data/chroma_chunking``)
are other documents in other styles. This writes one ``lab judge make-data --source`` line per
question: ``passages`` are what a retriever would hand over (the stretch of the corpus around each
reference excerpt, grown to whole words, plus the chunks of the same corpus that share most content
words with the question), ``others`` more chunks of the same corpus (material for the planted
"claim from another passage" errors). make-data takes them in its own seeded order.

    python benchmarks/judge_validation_sources.py --out /tmp/chroma_sources.jsonl
    lab judge make-data --source /tmp/chroma_sources.jsonl --out /tmp/val_chroma.jsonl --n 20 --batch 4
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.errors import DataError
from lab.judge.baselines import content_words


def chunks(text: str, words: int) -> list[tuple[int, int]]:
    """Character spans of consecutive ``words``-word chunks of ``text``."""
    import re

    bounds = [m.span() for m in re.finditer(r"\S+", text)]
    return [(bounds[i][0], bounds[min(i + words, len(bounds)) - 1][1]) for i in range(0, len(bounds), words)]


def around(text: str, start: int, end: int, words: int) -> tuple[int, int]:
    """``[start, end)`` grown by about ``words`` words on each side, to whole words."""
    left, right = start, end
    for _ in range(words):
        nxt = text.rfind(" ", 0, max(left - 1, 0))
        left = 0 if nxt < 0 else nxt + 1
    for _ in range(words):
        nxt = text.find(" ", right + 1)
        right = len(text) if nxt < 0 else nxt
    return left, right


def sources(folder: Path, *, n_passages: int = 3, context_words: int = 40, chunk_words: int = 120,
            n_others: int = 4, seed: int = 0) -> list[dict]:
    """One source per question of ``folder/questions_df.csv`` (see the module docstring).

    Raises
    ------
    DataError
        A missing corpus file or a malformed ``references`` cell, named by row."""
    rows = list(csv.DictReader((folder / "questions_df.csv").open(encoding="utf-8")))
    corpora: dict[str, str] = {}
    out: list[dict] = []
    for i, row in enumerate(rows, start=2):
        cid = row["corpus_id"]
        if cid not in corpora:
            path = folder / "corpora" / f"{cid}.md"
            if not path.is_file():
                raise DataError(f"{folder / 'questions_df.csv'} line {i}: corpus {cid!r} has no file {path}")
            corpora[cid] = path.read_text(encoding="utf-8")
        try:
            refs = json.loads(row["references"])
            spans = [(int(r["start_index"]), int(r["end_index"])) for r in refs]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{folder / 'questions_df.csv'} line {i}: 'references' is not a JSON list of "
                            f"{{start_index, end_index}}: {exc}") from exc
        text = corpora[cid]
        rng = random.Random(f"{seed}:{i}")
        given = sorted(around(text, s, e, context_words) for s, e in spans)
        merged: list[tuple[int, int]] = []
        for s, e in given:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
            else:
                merged.append((s, e))
        words = content_words(row["question"])
        free = [c for c in chunks(text, chunk_words) if all(c[1] <= s or c[0] >= e for s, e in merged)]
        ranked = sorted(free, key=lambda c: (-len(words & content_words(text[c[0]:c[1]])), c))
        extra = ranked[:max(0, n_passages - len(merged))]
        passages = [text[s:e].strip() for s, e in [*merged, *extra]]
        rng.shuffle(passages)
        others = [text[s:e].strip() for s, e in ranked[len(extra):len(extra) + n_others]]
        out.append({"id": f"{cid}-{i}", "question": row["question"], "passages": passages, "others": others,
                    "title": cid})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chroma", type=Path, default=ROOT / "data" / "chroma_chunking",
                    help="Chroma's chunking folder (questions_df.csv, corpora/)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    items = sources(args.chroma, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items), encoding="utf-8")
    tmp.replace(args.out)
    print(f"{len(items)} sources -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
