"""Small text classifiers trained offline for the guardrails (prompt injection, jailbreak, toxicity).

A classifier is a scikit-learn pipeline — word 1-2-gram and character 2-5-gram TF-IDF, then a
class-balanced logistic regression — with the decision threshold chosen on the TRAINING data only:
5-fold out-of-fold probabilities, the threshold that maximises F1 there. Nothing about the
evaluation split is seen. Character n-grams carry it across languages and obfuscations (the
deepset injection set is partly German); it trains in seconds and scores a prompt in well under a
millisecond, which suits the request path.

Saved as ``model.joblib`` (the fitted pipeline; load only files ``lab`` wrote: joblib is pickle)
and ``meta.json`` (format header, threshold, training data hash and size, out-of-fold figures,
versions). A folder written by older code, or something else's ``meta.json``, fails at load with
the folder and the command that trains a current one (:mod:`lab.versioned`).

Long texts (:func:`word_windows`, :func:`windowed_scores`): the classifiers were trained on short
prompts (the deepset injection prompts: a median of 10 words) and a retrieved passage or a pasted
document is far longer, so a check splits it into overlapping windows of words, scores each and
keeps the maximum. Words, not the embedder's tokens: the TF-IDF blocks see words and character
n-grams (no tokenizer of their own), a window cut at whitespace keeps exact character offsets, and
a window of a few dozen words stays well inside MiniLM's 256-token input, so the embedding block
sees all of it too. A window is as long as the benign texts the classifier trained on
(:func:`default_window_words`: the 95th percentile recorded in ``meta.json`` as ``train_words``,
else :data:`DEFAULT_WINDOW_WORDS`), so each window is a text of a length its threshold was chosen
for; a text no longer than one window is scored whole, exactly as without windows.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.data.split import hash_split
from lab.errors import LabError

MODEL_FILE, META_FILE = "model.joblib", "meta.json"
#: The header of ``meta.json``: a reader checks it before it unpickles anything.
META_FORMAT, META_VERSION = "lab.guardrail-classifier", 1
_RETRAIN = "dvc repro guardrails_eval` or `lab guardrails train"


def heldout_split(n: int, fraction: float = 0.25, seed: int = 0, keys: Sequence[str] | None = None
                  ) -> tuple[list[int], list[int]]:
    """Indices ``(train, heldout)``, each ascending: the first ``max(1, round(n * fraction))``
    records in hash order of their key (the text, or the index) held out
    (:func:`lab.data.split.hash_split` with ``n_heldout``). Deterministic; the held-out set has a
    fixed size, so whether a text is held out depends on the other texts too."""
    if not 0 < fraction < 1:
        raise LabError(f"heldout fraction must be in (0, 1), got {fraction}")
    keys = list(keys) if keys is not None else [str(i) for i in range(n)]
    rest, held = hash_split(keys, seed, n_heldout=max(1, round(n * fraction)))
    return sorted(rest), sorted(held)


_WORD = re.compile(r"\S+")

#: Window length (words) for a classifier whose ``meta.json`` records no training lengths (one
#: trained before ``train_words`` was recorded): about the 95th percentile of the benign training
#: texts of the shipped classifiers (the deepset prompts: 33 words; the Davidson tweets: 26).
DEFAULT_WINDOW_WORDS = 32
#: The shortest window a default derives (the policy config's lower bound for ``window_words``):
#: fewer words leave a planted sentence no window of its own.
MIN_WINDOW_WORDS = 8


def word_count(text: str) -> int:
    """Words of ``text`` as the windows count them: runs of non-space."""
    return sum(1 for _ in _WORD.finditer(text))


def length_profile(texts: Sequence[str], labels: Sequence[int]) -> dict[str, dict[str, float]]:
    """Word counts of training texts per class (``benign``: label 0, ``positive``: label 1): ``n``,
    ``p50``, ``p95``, ``max``. Stored in ``meta.json`` as ``train_words``; the checks derive their
    default window from it (:func:`default_window_words`)."""
    import numpy as np

    out: dict[str, dict[str, float]] = {}
    for name, want in (("benign", 0), ("positive", 1)):
        counts = np.asarray([word_count(t) for t, y in zip(texts, labels, strict=True) if int(y) == want])
        if counts.size:
            out[name] = {"n": int(counts.size), "p50": float(np.percentile(counts, 50)),
                         "p95": float(np.percentile(counts, 95)), "max": int(counts.max())}
    return out


def default_window_words(meta: dict[str, Any] | None) -> tuple[int, str]:
    """The window length a check uses unless told otherwise, and where it came from.

    The 95th percentile of the classifier's benign training texts (``meta["train_words"]``,
    rounded up, at least :data:`MIN_WINDOW_WORDS`); without that record, :data:`DEFAULT_WINDOW_WORDS`.
    Why the benign texts: the shipped classifiers learnt length as a cue (the deepset attacks are a
    median of 20 words against 7 for its benign prompts; the jailbreak classifier's benign texts are
    those prompts, at most 47 words, against jailbreaks of a median of 258), so a benign window
    longer than the benign texts they saw scores high for its length alone. A window no longer than
    the benign training texts is a text of the kind the threshold was chosen on."""
    p95 = ((meta or {}).get("train_words") or {}).get("benign", {}).get("p95")
    if p95 is None:
        return DEFAULT_WINDOW_WORDS, (f"default {DEFAULT_WINDOW_WORDS} words (meta.json records no training "
                                      "lengths: a classifier trained before they were recorded)")
    words = max(MIN_WINDOW_WORDS, math.ceil(float(p95)))
    return words, f"{words} words: the 95th percentile of the benign training texts (meta.json train_words)"


def word_windows(text: str, window_words: int, stride_words: int | None = None) -> list[tuple[int, int]]:
    """Character ranges ``(start, end)`` of overlapping windows of ``window_words`` words (runs of
    non-space), ``stride_words`` words apart (default half a window, so each word lies in two
    windows and a phrase up to half a window long lies whole inside one); the last window ends at
    the last word. A text of at most ``window_words`` words is one window: the whole text, as
    unwindowed scoring sees it. Nothing is cut: every word lies in some window, however long the
    text (a text of n > w words has ``ceil((n - w) / stride) + 1`` windows)."""
    if window_words < 1 or (stride_words is not None and not 1 <= stride_words <= window_words):
        raise LabError(f"windows: need 1 <= stride_words <= window_words, got {stride_words} and {window_words}")
    words = [m.span() for m in _WORD.finditer(text)]
    if len(words) <= window_words:
        return [(0, len(text))]
    stride = stride_words or max(1, window_words // 2)
    starts = list(range(0, len(words) - window_words + 1, stride))
    if starts[-1] + window_words < len(words):
        starts.append(len(words) - window_words)
    return [(words[s][0], words[s + window_words - 1][1]) for s in starts]


@dataclass(frozen=True)
class WindowScores:
    """One text's windows (character ranges) and the classifier's score of each, in text order."""

    windows: list[tuple[int, int]]
    scores: list[float]
    #: The cut these scores are compared with when it is not the check's own: the window model's
    #: length-aware cut for this many windows (:func:`lab.guardrails.window_model.length_cut`).
    threshold: float | None = None
    #: Which model gave the scores: ``classifier`` (the check's own) or ``window model``.
    model: str = "classifier"

    @property
    def score(self) -> float:
        """The text's score: the maximum over its windows (see :func:`windowed_scores`)."""
        return self.scores[self.best]

    @property
    def best(self) -> int:
        """Index of the window that gave the score (the first of equal maxima)."""
        return max(range(len(self.scores)), key=lambda j: (self.scores[j], -j))

    @property
    def split(self) -> bool:
        """More than one window: the text was longer than a window."""
        return len(self.windows) > 1

    def at_or_above(self, threshold: float) -> list[tuple[int, int, float]]:
        """``(start, end, score)`` of every window scoring at least ``threshold``, in text order."""
        return [(a, b, s) for (a, b), s in zip(self.windows, self.scores, strict=True) if s >= threshold]


def windowed_scores(score: Callable[[list[str]], Sequence[float]], texts: Sequence[str], window_words: int,
                    stride_words: int | None = None) -> list[WindowScores]:
    """Per text, its windows (:func:`word_windows`) and ``score`` of each; all windows of all texts
    go to ``score`` in one call. A text of one window is passed as itself, so it scores exactly as
    unwindowed scoring would.

    The aggregation rule is the maximum (:attr:`WindowScores.score`), compared with the classifier's
    own threshold. The maximum, because one window holding a planted instruction makes the whole
    text an attack, however benign the rest; a mean (or the whole text at once) dilutes it with the
    text's length, so the planted instruction is missed or, for a classifier that learnt that long
    texts are attacks, every long text fires. The stored threshold, because a window is as long as
    the texts it was chosen on (:func:`default_window_words`). The price: a text of n windows gives
    a benign-text false positive n chances, so a long text's false-positive rate exceeds the
    one-prompt rate its threshold was chosen for. Measure it on your own documents
    (``benchmarks/guardrails_latency.py --long-inputs``,
    :func:`lab.guardrails.context.evaluate_context`) and raise the rule's ``threshold`` (or use a
    stored ``max_fpr`` operating point) where it is too high."""
    spans = [word_windows(t, window_words, stride_words) for t in texts]
    flat = [t if ws == [(0, len(t))] else t[a:b] for t, ws in zip(texts, spans, strict=True) for a, b in ws]
    scores = [float(x) for x in score(flat)] if flat else []
    out, i = [], 0
    for ws in spans:
        out.append(WindowScores(ws, scores[i:i + len(ws)]))
        i += len(ws)
    return out


#: Feature blocks a classifier can use (``features`` of :func:`train_text_classifier`).
FEATURES = ("word", "char", "embedding")


def _pipeline(seed: int, features: Sequence[str] = ("word", "char"),
              embedding_model: str = "all-minilm-l6-v2") -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    unknown = sorted(set(features) - set(FEATURES))
    if unknown or not features:
        raise LabError(f"guardrail classifier: unknown feature block(s) {unknown or '(none given)'}; "
                       f"choose from {', '.join(FEATURES)}")
    blocks = []
    if "word" in features:
        blocks.append(("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)))
    if "char" in features:
        blocks.append(("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                               min_df=2)))
    if "embedding" in features:
        from lab.guardrails.features import SentenceEmbeddings

        blocks.append(("embedding", SentenceEmbeddings(embedding_model)))
    return make_pipeline(FeatureUnion(blocks), LogisticRegression(C=4.0, class_weight="balanced", max_iter=5000,
                                                                   random_state=seed))


def best_f1_threshold(labels: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """The score cut maximising F1 (ties: the higher cut, fewer false positives), and that F1."""
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    p, r, t = precision_recall_curve(np.asarray(labels), np.asarray(scores))
    f1 = np.where(p[:-1] + r[:-1] > 0, 2 * p[:-1] * r[:-1] / np.maximum(p[:-1] + r[:-1], 1e-12), 0.0)
    best = int(np.flatnonzero(f1 == f1.max())[-1])
    return float(t[best]), float(f1[best])


#: False-positive caps of the alternative operating points stored with a classifier.
FPR_CAPS = (0.01, 0.02, 0.05)


def operating_points(labels: Sequence[int], scores: Sequence[float],
                     caps: Sequence[float] = FPR_CAPS) -> list[dict[str, float]]:
    """For each false-positive cap, the lowest score cut whose out-of-fold false-positive rate
    stays within it, with the recall it keeps there: thresholds for a deployment that must block
    fewer benign prompts than the best-F1 cut does, chosen on training data like that cut."""
    import numpy as np
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(np.asarray(labels), np.asarray(scores))
    out = []
    for cap in caps:
        k = int(np.flatnonzero(fpr <= cap)[-1])
        out.append({"max_fpr": float(cap), "threshold": float(min(thr[k], 1.0)), "oof_recall": float(tpr[k]),
                    "oof_fpr": float(fpr[k])})
    return out


def capped_cut(labels: Sequence[int], scores: Sequence[float], parts: Sequence[str], caps: Mapping[str, float],
               recall_parts: Sequence[str] = ("file",)) -> dict[str, Any]:
    """The threshold rule that weighs over-defence against recall: the lowest score cut at which the
    out-of-fold false-positive rate of every benign part named in ``caps`` (``part -> cap``; ``all``:
    every benign record) stays within its cap, which keeps the most recall there. Recall is counted
    on the positives of ``recall_parts`` only (the labelled file, not generated attacks, which are
    easy). Returns the point: ``threshold``, ``oof_recall``, ``oof_fpr`` (all benign) and per capped
    part its ``n``, cap and ``oof_fpr``. A part with no benign records is refused (a typo in a cap)."""
    import numpy as np

    y, s, part = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float), np.asarray(parts)
    bound = -np.inf   # the cut must lie above this score
    for name, cap in caps.items():
        neg = np.sort(s[(y == 0) & ((part == name) if name != "all" else True)])[::-1]
        if not len(neg):
            raise LabError(f"threshold rule: no benign training records in part {name!r} "
                           f"(parts: {', '.join(sorted(set(part.tolist())))})")
        k = int(cap * len(neg) + 1e-9)   # false positives allowed in this part (cap * n, rounded down)
        if k < len(neg):
            bound = max(bound, float(neg[k]))
    above = s[s > bound]
    cut = float(above.min()) if len(above) else float(np.nextafter(bound, np.inf))
    cut = min(max(cut, 0.0), 1.0)
    pos = (y == 1) & np.isin(part, list(recall_parts))
    per = {}
    for name, cap in caps.items():
        neg = s[(y == 0) & ((part == name) if name != "all" else True)]
        per[name] = {"n": len(neg), "max_fpr": float(cap), "oof_fpr": float((neg >= cut).mean())}
    return {"name": "intent", "threshold": cut, "oof_recall": float((s[pos] >= cut).mean()) if pos.any() else None,
            "recall_parts": list(recall_parts), "oof_fpr": float((s[y == 0] >= cut).mean()), "parts": per}


@dataclass
class TextClassifier:
    """A fitted pipeline, its threshold and where it came from."""

    pipeline: Any
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def scores(self, texts: Sequence[str]) -> list[float]:
        """Probability of the positive class for each text."""
        if not texts:
            return []
        return [float(p) for p in self.pipeline.predict_proba(list(texts))[:, 1]]

    def save(self, folder: str | Path) -> Path:
        """Write ``model.joblib`` and the versioned ``meta.json`` into ``folder``; return it."""
        import joblib

        from lab.versioned import write_versioned

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{MODEL_FILE}.tmp"
        joblib.dump(self.pipeline, tmp)
        tmp.replace(out / MODEL_FILE)
        body = {k: v for k, v in self.meta.items() if k not in ("format", "version")}
        write_versioned(out / META_FILE, META_FORMAT, META_VERSION, {**body, "threshold": self.threshold})
        return out

    @classmethod
    def load(cls, folder: str | Path) -> TextClassifier:
        """The classifier saved in ``folder``.

        Raises
        ------
        LabError
            The folder lacks ``model.joblib`` or ``meta.json``, or ``meta.json`` is not a current
            guardrail-classifier header (an older or foreign folder): checked before unpickling.
        """
        import joblib

        from lab.versioned import read_versioned

        f = Path(folder)
        if not (f / MODEL_FILE).is_file() or not (f / META_FILE).is_file():
            raise LabError(f"no trained guardrail classifier in {f} (needs {MODEL_FILE} and {META_FILE}); "
                           f"train it with `{_RETRAIN}`")
        meta = read_versioned(f / META_FILE, META_FORMAT, META_VERSION, _RETRAIN, error=LabError)
        return cls(joblib.load(f / MODEL_FILE), float(meta["threshold"]), meta)


def train_text_classifier(texts: Sequence[str], labels: Sequence[int], *, name: str, seed: int = 0,
                          folds: int = 5, sources: Sequence[str] = (),
                          features: Sequence[str] = ("word", "char"),
                          embedding_model: str = "all-minilm-l6-v2", parts: Sequence[str] | None = None,
                          groups: Sequence[str] | None = None, caps: Mapping[str, float] | None = None,
                          weights: Sequence[float] | None = None) -> TextClassifier:
    """Fit the pipeline (the ``features`` blocks of :data:`FEATURES`, then logistic regression) on
    all of ``texts``; the threshold is the out-of-fold best-F1 cut, or with ``caps`` the
    :func:`capped_cut` over ``parts`` (each text's part: ``file`` for the labelled file, a generated
    part of :mod:`lab.guardrails.intent_data`). ``groups``: texts of one group share a fold
    (template families), so out-of-fold scores are those of families the fold did not train on.
    ``weights``: a sample weight per text for the logistic regression (None: all 1)."""
    import numpy as np
    import sklearn
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    y = np.asarray(labels, dtype=int)
    if len(set(y.tolist())) != 2:
        raise LabError(f"{name}: training needs both classes; got labels {sorted(set(y.tolist()))}")
    folds = max(2, min(folds, int(np.bincount(y).min())))
    cv = (StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed) if groups is not None
          else StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed))
    def make() -> Any:
        return _pipeline(seed, features, embedding_model)

    fit = {"logisticregression__sample_weight": np.asarray(weights, dtype=float)} if weights is not None else {}
    oof = cross_val_predict(make(), list(texts), y, cv=cv, method="predict_proba",
                            groups=list(groups) if groups is not None else None, params=fit)[:, 1]
    threshold, f1 = best_f1_threshold(y, oof)
    rule = "best F1 of out-of-fold training probabilities"
    operating = operating_points(y, oof)
    extra: dict[str, Any] = {}
    if caps:
        part_of = list(parts) if parts is not None else ["file"] * len(y)
        point = capped_cut(y, oof, part_of, caps)
        operating = [{"name": f"fpr<={p['max_fpr']:g}", **p} for p in operating]
        operating += [{"name": "best_f1", "threshold": threshold, "oof_f1": f1}, point]
        threshold = point["threshold"]
        rule = ("intent: the lowest out-of-fold cut whose false-positive rate on each benign training part stays "
                "within its cap (" + ", ".join(f"{k} <= {v:g}" for k, v in caps.items()) + "), recall counted on "
                "the labelled file's positives")
        extra = {"parts": {p: int(c) for p, c in zip(*np.unique(part_of, return_counts=True), strict=True)},
                 "cv_groups": groups is not None}
    if weights is not None:
        extra["sample_weights"] = sorted({float(w) for w in weights})
    pipe = make().fit(list(texts), y, **fit)
    digest = hashlib.sha256(json.dumps([list(texts), y.tolist()]).encode()).hexdigest()[:16]
    meta = {"name": name, "n_train": len(y), "positives": int(y.sum()), "seed": seed, "folds": folds,
            "threshold_rule": rule,
            "oof_f1": f1, "oof_auc": float(roc_auc_score(y, oof)), "oof_average_precision":
            float(average_precision_score(y, oof)), "train_data_sha256": digest, "sources": list(sources),
            "operating_points": operating, "train_words": length_profile(list(texts), y.tolist()),
            "features": list(features), **({"embedding_model": embedding_model} if "embedding" in features else {}),
            **extra, "sklearn": sklearn.__version__}
    return TextClassifier(pipe, threshold, meta)
