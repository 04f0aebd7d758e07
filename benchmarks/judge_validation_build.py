"""Build the judges' realistic validation set from make-data answers and a review of every one of them.

Issue 31 item 3: RAG answers over documents no judge trained on, labelled by construction where
possible and by review. A review of the small generator's "faithful" answers found unsupported
filler in about half of them, so construction labels alone are too noisy to choose a judge on:
here EVERY answer carries the reviewer's label, and the construction label is kept beside it
(``construction_label``) so their agreement is reported, never hidden.

Inputs: make-data's records file (``--records``; its ``.drops.jsonl`` beside it: answers the
generator wrote that make-data's filter dropped as unsupported, i.e. natural hallucinations, are
added when reviewed) and review files (``--reviews``: one JSON object per line, ``id`` (a record id, or
``drop:<source_id>``), ``reviewer`` (who), ``reviewer_label`` (faithful / hallucinated / unsure),
``unsupported`` (exact substrings of the answer), ``note``). Answers may be reviewed independently by
two reviewers, blind to how the answer was made; where they differ, a review with ``reviewer:
adjudication`` decides (:func:`merge_reviews`; the reviewers' agreement goes to the summary). Output: one labelled-answers record per reviewed answer whose
label is not ``unsure``, ``spans`` at the reviewer's unsupported substrings (the first occurrence of
each), and a summary of the agreement (``<out>.summary.json``).

    python benchmarks/judge_validation_build.py --records /tmp/val_chroma.jsonl \
        --sources /tmp/chroma_sources.jsonl --reviews data/judge_claims/reviews.jsonl \
        --out data/judge_claims/validation_chroma.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.errors import DataError
from lab.io import read_jsonl, write_json


def spans_of(answer: str, parts: list[str], where: str) -> list[dict[str, int]]:
    """Character spans of ``parts`` in ``answer`` (first occurrence), sorted and merged."""
    found = []
    for part in parts:
        start = answer.find(part)
        if start < 0:
            raise DataError(f"{where}: unsupported part {part[:60]!r} is not in the answer (exact substrings only)")
        found.append([start, start + len(part)])
    merged: list[list[int]] = []
    for s, e in sorted(found):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(e, merged[-1][1])
        else:
            merged.append([s, e])
    return [{"start": s, "end": e} for s, e in merged]


def merge_reviews(reviews: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One review per answer from independent reviews (``reviewer`` names who) and adjudications
    (``reviewer: adjudication``, for answers the reviewers labelled differently): the adjudication
    where there is one, else the reviewers' common label with the union of their unsupported parts.
    Answers the reviewers disagree on without an adjudication are left out and named. Returns the
    merged reviews and the reviewers' agreement (raw share and Cohen's kappa over the labels, the
    first two reviewers of each answer)."""
    from sklearn.metrics import cohen_kappa_score

    by_id: dict[str, list[dict[str, Any]]] = {}
    for n, rev in enumerate(reviews, 1):
        if rev.get("reviewer_label") not in ("faithful", "hallucinated", "unsure"):
            raise DataError(f"review {n} ({rev.get('id')}): reviewer_label must be faithful, hallucinated or unsure, "
                            f"got {rev.get('reviewer_label')!r}")
        by_id.setdefault(str(rev.get("id")), []).append(rev)
    merged, unresolved, first, second = [], [], [], []
    for rid, revs in by_id.items():
        adjudicated = [r for r in revs if r.get("reviewer") == "adjudication"]
        plain = [r for r in revs if r.get("reviewer") != "adjudication"]
        if len(plain) >= 2:
            first.append(plain[0]["reviewer_label"])
            second.append(plain[1]["reviewer_label"])
        if adjudicated:
            merged.append({**adjudicated[-1], "reviews": len(plain)})
            continue
        labels = {r["reviewer_label"] for r in plain}
        if len(labels) > 1:
            unresolved.append(rid)
            continue
        parts = [p for r in plain for p in (r.get("unsupported") or []) if p]
        merged.append({"id": rid, "reviewer_label": labels.pop(), "unsupported": list(dict.fromkeys(parts)),
                       "note": " | ".join(r.get("note", "") for r in plain if r.get("note")), "reviews": len(plain)})
    agreement: dict[str, Any] = {"double_reviewed": len(first), "unresolved": sorted(unresolved)}
    if first:
        agreement["raw_agreement"] = sum(a == b for a, b in zip(first, second)) / len(first)
        agreement["cohen_kappa"] = float(cohen_kappa_score(first, second)) if len(set(first) | set(second)) > 1 else None
    return merged, agreement


def build(records: list[dict[str, Any]], drops: list[dict[str, Any]], sources: dict[str, dict[str, Any]],
          reviews: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The labelled records and the summary (see the module docstring)."""
    reviews, reviewers = merge_reviews(reviews)
    by_id = {r["id"]: r for r in records}
    natural = {f"drop:{d['source_id']}": d for d in drops
               if d.get("what") == "answer" and d.get("reason", "").startswith("unsupported")}
    out, agree, kinds, skipped = [], Counter(), Counter(), Counter()
    for n, rev in enumerate(reviews, 1):
        rid, label = rev.get("id"), rev.get("reviewer_label")
        if label == "unsure":
            skipped["unsure"] += 1
            continue
        if rid in by_id:
            rec = dict(by_id[rid])
            kind, built = rec["kind"], rec["label"]
        elif rid in natural:
            d = natural[rid]
            src = sources.get(d["source_id"])
            if src is None:
                raise DataError(f"review {n}: source {d['source_id']!r} of {rid} is not in the sources file")
            rec = {"id": rid, "source_id": d["source_id"], "question": src["question"], "contexts": src["passages"],
                   "answer": d["text"]}
            kind, built = "natural", None
        else:
            skipped["not_found"] += 1
            continue
        parts = list(rev.get("unsupported") or [])
        spans = spans_of(rec["answer"], parts, f"review {n} ({rid})") if label == "hallucinated" and parts else []
        rec.update({"label": label, "construction_label": built, "kind": kind, "review_note": rev.get("note", ""),
                    "reviews": rev.get("reviews", 1)})
        if label == "hallucinated" and spans:
            rec["spans"] = spans
        else:
            rec.pop("spans", None)
        rec.pop("claims", None)   # make-data's claim labels are by construction: not the reviewed truth
        out.append(rec)
        kinds[(kind, label)] += 1
        if built is not None:
            agree[(kind, built == label)] += 1
    by_kind: dict[str, dict[str, int]] = {}
    for (kind, same), c in agree.items():
        by_kind.setdefault(kind, {"agree": 0, "disagree": 0})["agree" if same else "disagree"] += c
    total = sum(agree.values())
    summary = {"n": len(out), "labels": dict(Counter(r["label"] for r in out)),
               "by_kind_and_label": {f"{k}/{v}": c for (k, v), c in sorted(kinds.items())},
               "construction_vs_review": {"n": total, "agree": sum(c for (_, s), c in agree.items() if s),
                                          "by_kind": by_kind},
               "reviewers": reviewers, "skipped": dict(skipped), "sources": len({r["source_id"] for r in out})}
    return out, summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=Path, required=True)
    ap.add_argument("--sources", type=Path, required=True, help="the make-data --source file (passages of the drops)")
    ap.add_argument("--reviews", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    drops_path = args.records.with_name(args.records.name.removesuffix(".jsonl") + ".drops.jsonl")
    drops = read_jsonl(drops_path) if drops_path.is_file() else []
    sources = {str(s["id"]): s for s in read_jsonl(args.sources)}
    reviews = [r for p in args.reviews for r in read_jsonl(p)]
    out, summary = build(read_jsonl(args.records), drops, sources, reviews)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    tmp.replace(args.out)
    write_json(args.out.with_name(args.out.name.removesuffix(".jsonl") + ".summary.json"), summary)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
