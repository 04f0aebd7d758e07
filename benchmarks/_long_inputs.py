"""Long inputs for the guardrail classifiers (issue 32): ``guardrails_latency.py --long-inputs``.

    python benchmarks/guardrails_latency.py --long-inputs [--n 20] [--lengths 1000 5000 20000] \\
        [--corpus data/chroma_chunking/corpora/pubmed.md] [--models results/guardrails_eval/models] \\
        [--seed 0] [--shared] --out benchmarks/results/guardrails_long_inputs.json

The benign texts. ``--corpus`` (default: the PubMed Central articles of Chroma's chunking corpora,
``data/chroma_chunking/corpora/pubmed.md``: scientific prose no guardrail classifier trains on; they
train on the deepset prompts, the in-the-wild jailbreaks and the Davidson tweets) is cut into
paragraphs (its non-empty lines of at least :data:`MIN_PARAGRAPH_WORDS` words; a ``.jsonl`` corpus:
its ``text`` fields), and a paragraph that occurs in a classifier's training file is left out
(counted). A long text of N words joins paragraphs drawn at random without replacement until it has
N words, and is cut after the N-th word. ``--n`` such texts per length (seeded; one value for every
length or one per length: the injection check's sentence embedder makes its windowed pass over a
20,000-word text cost minutes on a shared core). The longest texts each take a large share of the
corpus (its size is ``corpus.words``), so they share paragraphs: their false-positive counts are not
independent draws.

The planted copies. For each classifier, each benign text gets a copy with one positive of that
classifier's held-out split inserted between two words (``<models>/<check>/heldout.jsonl``, label 1:
records the classifier never trained on): a held-out deepset injection for ``injection``, a held-out
in-the-wild jailbreak for ``jailbreak``, a held-out toxic tweet for ``toxicity``, drawn at random.
Copy i is planted at a random word of the ((i mod 5) + 1)-th fifth of the text, so each position
quintile holds a fifth of the copies.

Each check decides on each text one at a time, as the request path calls it, in the modes of the
same run: ``windowed`` (the check's defaults, :mod:`lab.guardrails.injection`: where the classifier's
folder holds a window model, :mod:`lab.guardrails.window_model`, a long text's windows are scored
by it at its length-aware cut), ``classifier`` (only for a check with a window model:
``window_model: false``, the windows scored by the classifier at its threshold, the behaviour
before window models) and ``whole`` (``window_words: None``, the whole text at once: the behaviour
before windows were the default). The classifiers are measured alone (``rules: false`` for
injection and jailbreak); the rule floor reads the whole text in every mode, and what it fires on
is counted under ``rule_floor``.

A cut calibrated on other long documents. The stored thresholds were chosen on short prompts; a
policy can raise a rule's ``threshold`` for long texts. What one such cut does is measured out of
sample: ``--calibration`` (default: Chroma's Wikipedia, financial-report and State of the Union
corpora, benign prose of other domains than the PubMed texts; the window models train on them, so
it is out of sample for the classifier's windows only) is shuffled (seeded) and cut into
consecutive, non-overlapping stretches of one window (the check's ``window_words``), at most
``--calibration-windows`` of them; the calibrated cut is the highest score the check gives any of
them (a window of benign prose of another domain never fires at it). The classifier's window scores
of the run are then compared with that cut too (``*_calibrated`` keys of the ``classifier`` rows, or
of the ``windowed`` rows of a check without a window model); nothing is scored again.

JSON keys: ``rows`` (one per check, length and mode: ``check``, ``words``, ``mode``, ``n_benign``,
``fired_benign``, ``fpr``, ``fpr_ci`` (Wilson 95%), ``n_planted``, ``caught``, ``recall``,
``recall_ci``, ``recall_q1`` .. ``recall_q5`` (by the quintile of the text the plant went into),
``windows_p50``, ``windows_max`` (windows scored per text), ``benign_windows_fired_share`` (benign
windows at or above the threshold), ``p50_ms``, ``p95_ms``, ``mean_ms`` (over the benign texts), and for ``windowed``
and ``classifier`` ``p50_vs_whole`` and ``p95_vs_whole`` (latency over the whole-text latency of the same run);
``benign_score_p50``, ``benign_score_max``, ``planted_score_p50``; ``auc`` (benign against planted
scores, threshold-free); ``recall_above_benign_max`` (planted copies scoring above every benign text
of that length: an in-sample bound on what a cut calibrated on such documents could catch, not an
operating point); ``fpr_at_max_fpr_0.01`` and ``recall_at_max_fpr_0.01`` (at the stored 1%-FPR
operating point, the check's ``max_fpr: 0.01``; rows whose windows the classifier scored); ``top_window_on_plant`` (of the caught planted
copies, the share whose highest window overlaps the planted text)); ``checks`` (per check:
threshold, window settings and where they came from, the held-out positives used, ``window_model``:
its training windows, target, reach and out-of-fold recall by length, or null); ``rule_floor``
(per check and length, the benign and planted texts the rule floor matches, for reference);
``by_check`` (the rows again as check -> words -> mode, for dotted keys);
``cut_calibrated``, ``fpr_calibrated``, ``fpr_calibrated_ci``, ``recall_calibrated``,
``recall_calibrated_ci``, ``recall_q1_calibrated`` .. ``recall_q5_calibrated`` (the classifier's
window scores at the calibrated cut); ``threshold`` (the cut each row's ``fpr`` and ``recall`` use:
the stored threshold, or the median over the benign texts of the window model's length-aware cut);
``calibration`` (per check: the corpora, the windows scored, their score quantiles and the cut); ``corpus``; ``settings``; ``seconds``; ``cores_shared``; ``cpu_count``; ``platform``; ``command``.
Latency: the benign texts, one per call after a warm-up, the sentence-embedding memo emptied before
each call (:func:`forget_embeddings`), so every window is embedded as a new request's would be. The
planted copies are decided untimed with the memo kept: the windows before the plant are the benign
text's, and their embeddings are taken from the memo instead of computed again (a quarter less work
for the injection check over the run).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: A corpus line shorter than this is a heading, an author line or a caption, not a paragraph.
MIN_PARAGRAPH_WORDS = 20
#: The classifier checks measured, in order.
CHECKS = ("injection", "jailbreak", "toxicity")
QUINTILES = 5
#: The stored operating point reported beside the best-F1 threshold.
POINT = 0.01


def read_paragraphs(path: Path, min_words: int = MIN_PARAGRAPH_WORDS) -> list[str]:
    """The paragraphs of a corpus: a text or Markdown file's non-empty lines of at least
    ``min_words`` words, or a ``.jsonl`` file's ``text`` fields (same floor)."""
    from lab.errors import DataError

    if not path.is_file():
        raise DataError(f"{path}: corpus file not found")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        from lab.io import iter_jsonl

        texts = []
        for row in iter_jsonl(path):
            value = row.record.get("text")
            if not isinstance(value, str):
                raise DataError(f"{row.where}: needs a string field 'text' (fields present: {sorted(row.record)})")
            texts.append(value.strip())
    else:
        try:
            texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    out = [t for t in texts if len(t.split()) >= min_words]
    if not out:
        raise DataError(f"{path}: no paragraph of at least {min_words} words")
    return out


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def long_text(paragraphs: Sequence[str], words: int, rng: random.Random, *, source: str = "the corpus") -> str:
    """``words`` words of paragraphs drawn at random without replacement, joined by blank lines,
    cut after the last word wanted."""
    from lab.errors import DataError

    order = rng.sample(range(len(paragraphs)), len(paragraphs))
    parts, have = [], 0
    for i in order:
        parts.append(paragraphs[i])
        have += len(paragraphs[i].split())
        if have >= words:
            break
    if have < words:
        raise DataError(f"{source}: {have} words in all, fewer than the {words} a text needs")
    text = "\n\n".join(parts)
    return text[:word_end(text, words)]


def word_end(text: str, k: int) -> int:
    """The character offset just after the ``k``-th word (runs of non-space) of ``text``."""
    import re

    end = 0
    for i, m in enumerate(re.finditer(r"\S+", text), start=1):
        end = m.end()
        if i == k:
            break
    return end


def word_start(text: str, k: int) -> int:
    """The character offset of the ``k``-th word (0-based) of ``text``; its length for ``k`` at or
    past the word count."""
    import re

    for i, m in enumerate(re.finditer(r"\S+", text)):
        if i == k:
            return m.start()
    return len(text)


def plant(text: str, insert: str, word: int) -> tuple[str, tuple[int, int]]:
    """``text`` with ``insert`` placed before its ``word``-th word (0-based; at the end past the
    last), and the character range ``insert`` occupies there."""
    at = word_start(text, word)
    if at == len(text):
        out = f"{text} {insert}"
        return out, (len(text) + 1, len(out))
    return f"{text[:at]}{insert} {text[at:]}", (at, at + len(insert))


def quintile_word(i: int, words: int, rng: random.Random) -> tuple[int, int]:
    """The quintile (1..5) of copy ``i`` (``i mod 5`` + 1) and a random word inside it."""
    q = i % QUINTILES
    lo, hi = q * words // QUINTILES, max(q * words // QUINTILES + 1, (q + 1) * words // QUINTILES)
    return q + 1, rng.randrange(lo, hi)


def _pct(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _rate(k: int, n: int) -> tuple[float | None, list[float] | None]:
    from lab.metrics.proportions import wilson_ci

    if n == 0:
        return None, None
    lo, hi = wilson_ci(k, n)
    return k / n, [round(lo, 4), round(hi, 4)]


def _auc(neg: Sequence[float], pos: Sequence[float]) -> float | None:
    if not neg or not pos:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([0] * len(neg) + [1] * len(pos), [*neg, *pos]))


def forget_embeddings() -> None:
    """Empty the sentence-embedding memo of the injection classifier's embedding block
    (:mod:`lab.guardrails.features`): a planted copy shares most windows with its benign text, and
    a request with new text finds nothing there, so every timed call starts without it."""
    from lab.guardrails import features

    features._MEMO.clear()


def _timed(check: Any, texts: Sequence[str]) -> tuple[list[Any], list[float]]:
    """Decisions on ``texts`` one per call, each timed after :func:`forget_embeddings`."""
    decisions, ms = [], []
    for t in texts:
        forget_embeddings()
        t0 = time.perf_counter()
        decisions.append(check.check(t))
        ms.append((time.perf_counter() - t0) * 1000)
    return decisions, ms


def heldout_positives(folder: Path) -> list[str]:
    """The label-1 texts of a trained classifier's held-out split (``heldout.jsonl``)."""
    from lab.errors import DataError
    from lab.guardrails.evaluate import read_labelled

    path = folder / "heldout.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no held-out split beside the model (train it with `dvc repro guardrails_eval`)")
    data = read_labelled(path)
    out = [t for t, y in zip(data.texts, data.labels, strict=True) if y == 1 and t.strip()]
    if not out:
        raise DataError(f"{path}: no positive (label 1) record to plant")
    return out


def at_cut(benign: Sequence[float], planted: Sequence[float], quintiles: Sequence[int], cut: float,
           suffix: str = "") -> dict[str, Any]:
    """False-positive rate and recall (each with its Wilson 95% interval) and the recall by position
    quintile of scores compared with ``cut``; keys end in ``suffix``."""
    fpr, fpr_ci = _rate(sum(s >= cut for s in benign), len(benign))
    rec, rec_ci = _rate(sum(s >= cut for s in planted), len(planted))
    out: dict[str, Any] = {f"fpr{suffix}": fpr, f"fpr{suffix}_ci": fpr_ci, f"recall{suffix}": rec,
                           f"recall{suffix}_ci": rec_ci}
    for q in range(1, QUINTILES + 1):
        at = [s >= cut for s, qq in zip(planted, quintiles, strict=True) if qq == q]
        out[f"recall_q{q}{suffix}"] = sum(at) / len(at) if at else None
    return out


def measure(name: str, checks: dict[str, Any], benign: Sequence[str], planted: Sequence[str],
            quintiles: Sequence[int], plants: Sequence[tuple[int, int]], point: float | None,
            calibrated: float | None = None) -> dict[str, dict[str, Any]]:
    """Every mode of one check on one length's texts: a row each (see the module's JSON keys);
    ``calibrated``: the cut of :func:`calibrate`, and ``point``, the classifier's stored 1%
    operating point, applied to the scores of windows scored by the classifier (mode ``classifier``
    where the check has a window model, else ``windowed``)."""
    legacy = "classifier" if "classifier" in checks else "windowed"
    rows: dict[str, dict[str, Any]] = {}
    for mode, check in checks.items():
        dec_b, ms = _timed(check, benign)
        forget_embeddings()
        dec_p = [check.check(t) for t in planted]   # untimed: the memo keeps the windows a copy shares with its text
        fired_b = sum(d.fired for d in dec_b)
        caught = [d.fired for d in dec_p]
        fpr, fpr_ci = _rate(fired_b, len(dec_b))
        rec, rec_ci = _rate(sum(caught), len(dec_p))
        sb, sp = [d.score for d in dec_b], [d.score for d in dec_p]
        cuts = [d.threshold for d in dec_b]
        row: dict[str, Any] = {"check": name, "words": None, "mode": mode, "threshold": round(statistics.median(cuts), 4),
                               "n_benign": len(dec_b), "fired_benign": fired_b, "fpr": fpr, "fpr_ci": fpr_ci,
                               "n_planted": len(dec_p), "caught": sum(caught), "recall": rec, "recall_ci": rec_ci}
        for q in range(1, QUINTILES + 1):
            at = [c for c, qq in zip(caught, quintiles, strict=True) if qq == q]
            row[f"recall_q{q}"] = sum(at) / len(at) if at else None
        if mode == legacy and calibrated is not None:
            row["cut_calibrated"] = round(calibrated, 4)
            row.update(at_cut(sb, sp, quintiles, calibrated, "_calibrated"))
        windows = [len(check.windows(t)) for t in [*benign, *planted]]
        # windows at or above the threshold: a split text's spans; a text of one window fired or not
        hot = [len(d.spans) if d.spans else int(d.fired) for d in dec_b]
        row["benign_windows_fired_share"] = round(sum(hot) / sum(windows[:len(dec_b)]), 4)
        row.update(windows_p50=statistics.median(windows), windows_max=max(windows),
                   p50_ms=round(_pct(ms, 0.5), 3), p95_ms=round(_pct(ms, 0.95), 3),
                   mean_ms=round(statistics.fmean(ms), 3), benign_score_p50=round(statistics.median(sb), 4),
                   benign_score_max=round(max(sb), 4), planted_score_p50=round(statistics.median(sp), 4),
                   auc=_auc(sb, sp), recall_above_benign_max=sum(s > max(sb) for s in sp) / len(sp))
        if point is not None and mode == legacy:
            row[f"fpr_at_max_fpr_{POINT:g}"] = sum(s >= point for s in sb) / len(sb)
            row[f"recall_at_max_fpr_{POINT:g}"] = sum(s >= point for s in sp) / len(sp)
        on = [any(s.start < b and a < s.end for s in d.spans if s.score == d.score)
              for d, (a, b) in zip(dec_p, plants, strict=True) if d.fired and d.spans]
        row["top_window_on_plant"] = sum(on) / len(on) if on else None
        rows[mode] = row
    h = rows["whole"]
    for mode, w in rows.items():
        for k in ("p50", "p95"):
            w[f"{k}_vs_whole"] = round(w[f"{k}_ms"] / max(h[f"{k}_ms"], 1e-9), 2) if mode != "whole" else None
    return rows


def calibration_windows(paragraphs: Sequence[str], window_words: int, count: int,
                        rng: random.Random) -> list[str]:
    """At most ``count`` consecutive, non-overlapping stretches of ``window_words`` words of the
    paragraphs in a random order (the words of each stretch joined by single spaces)."""
    words = [w for i in rng.sample(range(len(paragraphs)), len(paragraphs)) for w in paragraphs[i].split()]
    return [" ".join(words[a:a + window_words])
            for a in range(0, len(words) - window_words + 1, window_words)][:count]


def calibrate(check: Any, windows: Sequence[str]) -> dict[str, Any]:
    """The highest score ``check`` gives any of ``windows`` (each at most one window long, so each
    is scored whole), with the quantiles of those scores."""
    from lab.errors import DataError

    if not windows:
        raise DataError("calibration: no window of benign text to score (a calibration corpus too short?)")
    scores = sorted(check.scores(list(windows)))
    return {"windows": len(scores), "score_p50": round(_pct(scores, 0.5), 4), "score_p95": round(_pct(scores, 0.95), 4),
            "score_p99": round(_pct(scores, 0.99), 4), "cut": scores[-1],
            "fired_at_stored_threshold": round(sum(x >= check.threshold for x in scores) / len(scores), 4)}


def per_length(n: int | Sequence[int], lengths: Sequence[int]) -> list[int]:
    """``--n``: one count for every length, or one per length."""
    from lab.errors import DataError

    ns = [n] if isinstance(n, int) else list(n)
    if len(ns) == 1:
        ns = ns * len(lengths)
    if len(ns) != len(lengths):
        raise DataError(f"--n: give one count or one per length ({len(lengths)}), got {len(ns)}")
    if min(ns) < 1:
        raise DataError(f"--n must be at least 1, got {min(ns)}")
    return ns


def make_checks(name: str, folder: Path) -> dict[str, Any]:
    """The check ``name`` from ``folder`` in each mode: its defaults (``windowed``: the window model
    at its length-aware cut where the folder has one), the windows scored by the classifier at its
    threshold (``classifier``: the behaviour before window models; only where there is one), and
    the whole text at once (``whole``)."""
    from lab.guardrails import make_check

    opts: dict[str, Any] = {"model_dir": str(folder), **({"rules": False} if name != "toxicity" else {})}
    out = {"windowed": make_check(name, **opts)}
    if out["windowed"].window_model is not None:
        out["classifier"] = make_check(name, **opts, window_model=False)
    out["whole"] = make_check(name, **opts, window_words=None)
    return out


def run(*, corpus: Path, models: Path, lengths: Sequence[int], n: int | Sequence[int], seed: int,
        training_files: Sequence[Path], calibration: Sequence[Path] = (), calibration_windows_max: int = 200,
        progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole measurement (see the module docstring); returns the report. No ``calibration``
    corpus: no calibrated cut."""
    from lab.errors import DataError
    from lab.guardrails.evaluate import read_labelled
    from lab.guardrails.injection import jailbreak_rule_hits, rule_hits

    ns = per_length(n, lengths)
    t_all = time.perf_counter()
    training = {_norm(t) for f in training_files for t in read_labelled(f).texts}
    paragraphs = read_paragraphs(corpus)
    kept = [p for p in paragraphs if _norm(p) not in training]
    calib_paragraphs = [p for f in calibration for p in read_paragraphs(f) if _norm(p) not in training]
    found = [c for c in CHECKS if (models / c / "model.joblib").is_file()]
    if not found:
        raise DataError(f"{models}: no trained classifier of {', '.join(CHECKS)} (dvc repro guardrails_eval, or --models DIR)")
    checks = {c: make_checks(c, models / c) for c in found}
    positives = {c: heldout_positives(models / c) for c in found}
    floors = {"injection": rule_hits, "jailbreak": jailbreak_rule_hits}
    for c in found:   # model loads and first-call costs out of the figures
        for mode in checks[c].values():
            mode.check("A short warm-up text.")
    calib: dict[str, dict[str, Any]] = {}
    for c in found:
        if calib_paragraphs:
            w = checks[c].get("classifier", checks[c]["windowed"])
            wins = calibration_windows(calib_paragraphs, w.window_words or 64, calibration_windows_max,
                                       random.Random(f"{seed}-calibration"))
            calib[c] = calibrate(w, wins) | {"corpora": [str(f) for f in calibration]}
            progress(f"{c}: calibrated cut {calib[c]['cut']:.3f} on {calib[c]['windows']} windows of other prose")
    rows: list[dict[str, Any]] = []
    rule_floor: dict[str, dict[str, Any]] = {}
    for words, count in zip(lengths, ns, strict=True):
        rng = random.Random(f"{seed}-{words}")
        benign = [long_text(kept, words, rng, source=str(corpus)) for _ in range(count)]
        for c in found:
            prng = random.Random(f"{seed}-{words}-{c}")
            quintiles, planted, plants = [], [], []
            for i, text in enumerate(benign):
                q, at = quintile_word(i, words, prng)
                copy, span = plant(text, prng.choice(positives[c]), at)
                quintiles.append(q)
                planted.append(copy)
                plants.append(span)
            t0 = time.perf_counter()
            point = _point(checks[c]["windowed"])   # the classifier's stored 1% point
            got = measure(c, checks[c], benign, planted, quintiles, plants, point,
                          calib[c]["cut"] if c in calib else None)
            for r in got.values():
                r["words"] = words
                rows.append(r)
            if c in floors:
                rule_floor.setdefault(c, {})[str(words)] = {
                    "benign_fired": sum(bool(floors[c](t)) for t in benign),
                    "planted_fired": sum(bool(floors[c](t)) for t in planted), "n": count}
            w = got.get("classifier", got["windowed"])
            progress(f"{c} {words} words: " + "; ".join(f"{m} fpr {r['fpr']:.2f} recall {r['recall']:.2f}"
                                                      for m, r in got.items())
                     + (f"; calibrated cut: fpr {w['fpr_calibrated']:.2f} recall {w['recall_calibrated']:.2f}"
                        if c in calib else "") + f", {time.perf_counter() - t0:.0f} s")
    info = {}
    for c in found:
        w = checks[c]["windowed"]
        info[c] = {"threshold": w.threshold, "window_words": w.window_words, "stride_words": w.stride_words
                   or max(1, w.window_words // 2), "window_source": w.window_source,
                   f"threshold_max_fpr_{POINT:g}": _point(w), "heldout_positives": len(positives[c]),
                   "heldout_positive_words_p50": statistics.median(len(t.split()) for t in positives[c]),
                   "planted_from": str(models / c / "heldout.jsonl"), "rules": False,
                   "train_data_sha256": w.model.meta.get("train_data_sha256"),
                   "window_model": _window_model_info(w)}
    by_check: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_check.setdefault(r["check"], {}).setdefault(str(r["words"]), {})[r["mode"]] = r
    return {"rows": rows, "by_check": by_check, "checks": info, "rule_floor": rule_floor, "calibration": calib,
            "corpus": {"path": str(corpus), "paragraphs": len(paragraphs), "in_training": len(paragraphs) - len(kept),
                       "kept": len(kept), "words": sum(len(p.split()) for p in kept),
                       "min_paragraph_words": MIN_PARAGRAPH_WORDS},
            "settings": {"n": ns, "lengths": list(lengths), "seed": seed, "quintiles": QUINTILES,
                         "calibration": [str(f) for f in calibration], "calibration_windows_max": calibration_windows_max,
                         "training_files": [str(p) for p in training_files], "models": str(models),
                         "missing_checks": [c for c in CHECKS if c not in found]},
            "seconds": round(time.perf_counter() - t_all, 1)}


def _window_model_info(check: Any) -> dict[str, Any] | None:
    """The check's window model as its meta records it (None: the check has none): what it trained
    on, its length-aware cut table's target and reach, and its out-of-fold recall by length."""
    wm = check.window_model
    if wm is None:
        return None
    table = wm.meta["length_cut"]
    return {"window_words": wm.meta["window_words"], "windows_by_kind": wm.meta.get("windows_by_kind"),
            "prose": wm.meta.get("prose"), "max_text_fpr": table["max_text_fpr"], "n_prose": table["n_prose"],
            "estimable_windows": table["estimable_windows"], "oof_recall_by_words": wm.meta.get("oof_recall_by_words")}


def _point(check: Any) -> float | None:
    """The check's stored threshold at the :data:`POINT` false-positive cap, if stored."""
    for p in check.model.meta.get("operating_points") or []:
        if abs(float(p["max_fpr"]) - POINT) < 1e-12:
            return float(p["threshold"])
    return None
