"""The rule floors of the injection and jailbreak checks: false positives on benign role requests,
recall on the training side's attacks (issue 32).

    python benchmarks/guardrails_rule_floor.py [--benign FILE] [--params params.yaml] \\
        [--before FILE] [--shared] [--out FILE]

The rules (:data:`lab.data.instructions.INJECTION_RULES`, :data:`lab.guardrails.injection.JAILBREAK_RULES`)
fire on their own, with no classifier: they are the floor a policy keeps when its model misses or
is absent (``classifier: false``). Each rule set is measured as its check decides (``injection`` or
``jailbreak`` with ``classifier: False``; the check fires when any of its rules does), on:

- ``benign``: the benign role, persona and instruction-style requests of ``--benign`` (default
  ``benchmarks/data/benign_role_requests.csv``, written by hand: its header says so), a CSV with
  ``category``, ``text`` and optionally ``split`` columns (``#`` lines at its top are its header):
  the false-positive rate overall, per split (``dev``: looked at while the rules were written;
  ``fresh``: written afterwards, measured once) and per category, and which rules fired on which;
- the training side of ``params.yaml`` ``guardrails_eval.classifiers`` (never a held-out split nor
  an evaluation file): for ``injection`` the training part of its labelled file (the same hash split
  as :func:`lab.guardrails.training.train_check`, the section's seed and held-out fraction) and the
  prompts its ``generated`` part makes (:mod:`lab.guardrails.intent_data`); for ``jailbreak`` the
  training part of its file with its ``extra`` benign records. Per set: recall on the attacks
  (label 1) and the false-positive rate on the benign records (label 0), per generated part too.

Every rate has a Wilson 95% interval (:func:`lab.metrics.proportions.wilson_ci`). ``--before FILE``
(this script's output from the code before a change) adds ``paired``: per check and set, the
change in the rate over the same texts with a percentile-bootstrap 95% interval and a sign-flip
p-value (:func:`lab.metrics.stats.paired_comparison`, after minus before), and the texts whose
verdict changed. ``seconds_per_1000``: rule time per 1000 texts on the benign set, measured on
whatever cores ran it (``cores_shared`` says whether other work shared them).

JSON keys: ``what``, ``benign`` (``path``, ``n``, ``splits``, ``categories``), ``checks`` (check ->
``benign`` (``fpr``, ``fpr_ci``, ``fired``, ``n``, ``per_split``, ``per_category``, ``rules`` (rule ->
count), ``examples`` (``text``, ``category``, ``split``, ``rules``)), ``training`` (set ->
``recall``/``fpr`` with ``_ci``, counts, ``rules`` (rule -> attacks it matched), ``only_rule`` (rule ->
attacks no other rule matched), ``benign_rules``, ``parts`` (``<part>:recall`` / ``<part>:fpr``))),
``items`` (check -> group -> text -> fired 0/1, groups ``benign:<split>``, ``<set>:attack``,
``<set>:benign``; what ``--before`` pairs), ``paired`` (check -> group -> ``rate_before``,
``rate_after``, ``diff``, ``diff_ci``, ``p_value``, the texts that now fire and no longer fire),
``rules`` (the patterns measured), ``seconds_per_1000``, ``cores_shared``, ``cpu_count``, ``command``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENIGN = ROOT / "benchmarks" / "data" / "benign_role_requests.csv"
CHECKS = ("injection", "jailbreak")


def read_benign(path: Path) -> list[tuple[str, str, str]]:
    """``(category, split, text)`` rows of a benign-request CSV (``#`` lines at the top skipped; no
    ``split`` column: every row in split ``all``).

    Raises
    ------
    DataError
        The file lacks a ``category`` or ``text`` column, or a row has an empty text.
    """
    from lab.errors import DataError

    with path.open(encoding="utf-8", newline="") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    reader = csv.DictReader(lines)
    if not {"category", "text"} <= set(reader.fieldnames or []):
        raise DataError(f"{path}: needs category and text columns; has {reader.fieldnames}")
    rows = []
    for i, rec in enumerate(reader, start=1):
        if not (rec.get("text") or "").strip():
            raise DataError(f"{path}: data row {i}: empty text")
        rows.append((rec["category"], rec.get("split") or "all", rec["text"]))
    return rows


def _rate(k: int, n: int) -> tuple[float | None, list[float] | None]:
    from lab.metrics.proportions import wilson_ci

    return (round(k / n, 6), [round(x, 6) for x in wilson_ci(k, n)]) if n else (None, None)


def training_sets(params: Path) -> dict[str, dict[str, list[tuple[str, int, str]]]]:
    """check -> set name -> ``(text, label, part)`` of its training side (module docstring)."""
    from lab.config import load_section
    from lab.guardrails.classifier import heldout_split
    from lab.guardrails.evaluate import read_labelled
    from lab.guardrails.intent_data import from_spec
    from lab.paths import resolve_path

    cfg = load_section("guardrails_eval", params, check_paths=False)
    out: dict[str, dict[str, list[tuple[str, int, str]]]] = {}
    for spec in cfg.classifiers:
        if spec.check not in CHECKS:
            continue
        data = read_labelled(resolve_path(spec.data, params.parent))
        texts, labels = list(data.texts), list(data.labels)
        for e in spec.extra:   # merged before the split, as train_check does
            more = read_labelled(resolve_path(e.data, params.parent))
            kept = [(t, y) for t, y in zip(more.texts, more.labels, strict=True) if e.only_label in (None, y)]
            texts += [t for t, _ in kept]
            labels += [y for _, y in kept]
        train_idx, _ = heldout_split(len(texts), spec.heldout_fraction, cfg.seed, keys=texts)
        sets = {f"{Path(spec.data).stem}_train": [(texts[i], labels[i], "file") for i in train_idx]}
        if spec.generated is not None:
            records = from_spec(spec.generated.kwargs(), lambda f: resolve_path(f, params.parent))
            sets["generated"] = [(r.text, r.label, r.part) for r in records]
        out[spec.check] = sets
    return out


def _fired(hits: list[list[str]], n_key: str = "n") -> dict[str, Any]:
    k = sum(1 for h in hits if h)
    rate, ci = _rate(k, len(hits))
    return {"rate": rate, "ci": ci, "fired": k, n_key: len(hits)}


def measure(check: Any, benign: list[tuple[str, str, str]], training: dict[str, list[tuple[str, int, str]]],
            examples: int) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """One rule floor's figures (module docstring) and its per-text verdicts, keyed by group
    (``benign:<split>``, ``<set>:attack``, ``<set>:benign``)."""
    hits = type(check).rule_hits
    items: dict[str, dict[str, int]] = {}
    fired_rules = [hits(t) for _, _, t in benign]
    for split in dict.fromkeys(s for _, s, _ in benign):
        items[f"benign:{split}"] = {t: int(bool(h)) for (_, s, t), h in zip(benign, fired_rules, strict=True)
                                    if s == split}

    def fpr(sel: list[list[str]]) -> dict[str, Any]:
        f = _fired(sel)
        return {"fpr": f["rate"], "fpr_ci": f["ci"], "fired": f["fired"], "n": f["n"]}

    out: dict[str, Any] = {"benign": {
        **fpr(fired_rules),
        "per_split": {sp: fpr([h for (_, s, _), h in zip(benign, fired_rules, strict=True) if s == sp])
                      for sp in dict.fromkeys(s for _, s, _ in benign)},
        "per_category": {c: fpr([h for (cc, _, _), h in zip(benign, fired_rules, strict=True) if cc == c])
                         for c in dict.fromkeys(c for c, _, _ in benign)},
        "rules": dict(Counter(r for h in fired_rules for r in h).most_common()),
        "examples": [{"text": t, "category": c, "split": s, "rules": h}
                     for (c, s, t), h in zip(benign, fired_rules, strict=True) if h][:examples]}, "training": {}}
    for name, records in training.items():
        rule_sets = [hits(t) for t, _, _ in records]
        for label, group in ((1, "attack"), (0, "benign")):
            sel = {t: int(bool(h)) for (t, y, _), h in zip(records, rule_sets, strict=True) if y == label}
            if sel:
                items[f"{name}:{group}"] = sel
        pos = [h for (_, y, _), h in zip(records, rule_sets, strict=True) if y == 1]
        neg = [h for (_, y, _), h in zip(records, rule_sets, strict=True) if y == 0]
        entry: dict[str, Any] = {"n_attacks": len(pos), "caught": sum(1 for h in pos if h),
                                 "n_benign": len(neg), "benign_fired": sum(1 for h in neg if h)}
        entry["recall"], entry["recall_ci"] = _rate(entry["caught"], len(pos))
        entry["fpr"], entry["fpr_ci"] = _rate(entry["benign_fired"], len(neg))
        entry["rules"] = dict(Counter(r for h in pos for r in h).most_common())
        entry["only_rule"] = dict(Counter(h[0] for h in pos if len(h) == 1).most_common())
        entry["benign_rules"] = dict(Counter(r for h in neg for r in h).most_common())
        parts: dict[str, Any] = {}
        for part in sorted({p for _, _, p in records}):
            for label, what in ((1, "recall"), (0, "fpr")):
                sel = [h for (_, y, p), h in zip(records, rule_sets, strict=True) if p == part and y == label]
                if sel:
                    f = _fired(sel)
                    parts[f"{part}:{what}"] = {what: f["rate"], f"{what}_ci": f["ci"], "fired": f["fired"], "n": f["n"]}
        entry["parts"] = parts
        out["training"][name] = entry
    return out, items


def paired(before: dict[str, Any], after: dict[str, dict[str, dict[str, int]]]) -> dict[str, Any]:
    """Per check and set, after minus before over the texts both runs scored (module docstring)."""
    from lab.metrics.stats import paired_comparison

    out: dict[str, Any] = {}
    for check, sets in after.items():
        for name, now in sets.items():
            then = (before.get("items") or {}).get(check, {}).get(name)
            if not then:
                continue
            common = [t for t in now if t in then]
            if len(common) < 2:
                continue
            res = paired_comparison([now[t] for t in common], [then[t] for t in common], seed=0)
            out.setdefault(check, {})[name] = {
                "n": res["n"], "rate_before": round(res["mean_b"], 6), "rate_after": round(res["mean_a"], 6),
                "diff": round(res["mean_diff"], 6), "diff_ci": [round(res["ci_low"], 6), round(res["ci_high"], 6)],
                "p_value": res["p_value"],
                "now_fire": [t for t in common if now[t] and not then[t]][:20],
                "no_longer_fire": [t for t in common if then[t] and not now[t]][:40],
                "n_now_fire": sum(1 for t in common if now[t] and not then[t]),
                "n_no_longer_fire": sum(1 for t in common if then[t] and not now[t])}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benign", type=Path, default=BENIGN)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--before", type=Path, default=None, help="this script's JSON from the code before a change")
    ap.add_argument("--examples", type=int, default=40)
    ap.add_argument("--shared", action="store_true", help="label the timing: other work shared the cores")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "guardrails_rule_floor.json")
    args = ap.parse_args(argv)

    import json

    from lab.data.instructions import INJECTION_RULES
    from lab.guardrails import make_check
    from lab.guardrails.injection import JAILBREAK_RULES
    from lab.io import write_json

    benign = read_benign(args.benign)
    training = training_sets(args.params.resolve())
    result: dict[str, Any] = {
        "what": "the injection and jailbreak checks' rule floors (classifier: false): false positives on benign "
                "role requests, recall and false positives on the training side of guardrails_eval",
        "benign": {"path": os.path.relpath(args.benign.resolve(), ROOT), "n": len(benign),
                   "splits": dict(Counter(s for _, s, _ in benign)), "categories": dict(Counter(c for c, _, _ in benign))},
        "checks": {}, "items": {}}
    timings = []
    for name in CHECKS:
        check = make_check(name, classifier=False)
        t0 = time.perf_counter()
        for _, _, t in benign:
            check.check(t)
        timings.append((time.perf_counter() - t0) / len(benign) * 1000)
        result["checks"][name], result["items"][name] = measure(check, benign, training.get(name, {}), args.examples)
    if args.before is not None:
        result["paired"] = paired(json.loads(args.before.read_text(encoding="utf-8")), result["items"])
        result["before"] = os.path.relpath(args.before.resolve(), ROOT)
    result |= {"rules": {"injection": INJECTION_RULES, "jailbreak": JAILBREAK_RULES},
               "seconds_per_1000": {n: round(s, 4) for n, s in zip(CHECKS, timings, strict=True)},
               "confidence": 0.95, "interval": "Wilson score; paired: percentile bootstrap of after minus before",
               "cores_shared": bool(args.shared), "cpu_count": os.cpu_count(),
               "command": shlex.join(["python", "benchmarks/guardrails_rule_floor.py",
                                      *(argv if argv is not None else sys.argv[1:])])}
    write_json(args.out, result)
    for name, c in result["checks"].items():
        b = c["benign"]
        print(f"{name}: benign FPR {b['fpr']} {b['fpr_ci']} ({b['fired']}/{b['n']}) rules {b['rules']}; "
              + "; ".join(f"{sp} {v['fpr']} {v['fpr_ci']} ({v['fired']}/{v['n']})" for sp, v in b["per_split"].items()))
        for s, e in c["training"].items():
            print(f"  {s}: recall {e['recall']} {e['recall_ci']} ({e['caught']}/{e['n_attacks']}); "
                  f"benign FPR {e['fpr']} ({e['benign_fired']}/{e['n_benign']})")
    for check, sets in (result.get("paired") or {}).items():
        for s, p in sets.items():
            print(f"  paired {check}/{s}: {p['rate_before']} -> {p['rate_after']} diff {p['diff']} {p['diff_ci']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    from lab.errors import LabError

    try:
        sys.exit(main())
    except LabError as exc:
        sys.exit(f"error: {exc}")
