"""Extractive QA metrics with the semantics of the official SQuAD v1.1 script (``evaluate-v1.1.py``).

Per question, against its accepted answers (the max over them, as the official
``metric_max_over_ground_truths``):

- :func:`exact_match`: 1.0 when the normalised prediction equals a normalised answer;
- :func:`token_f1`: the F1 of the bags of normalised tokens (``Counter`` intersection);
- :func:`answer_in_context`: 1.0 when a normalised answer occurs, on token boundaries, in a
  normalised context passage (the retrieval side of RAG: could a reader have found it?).

:func:`normalize_answer` is the official one: lower case, drop ASCII punctuation
(``string.punctuation``; Unicode dashes and quotes stay), drop the words ``a``, ``an``, ``the``,
collapse whitespace. Consequences kept on purpose, because they are the official numbers:

- an empty prediction (or one of articles and punctuation only, which normalises to "") scores
  F1 0 against everything, and EM 1 only against an answer that also normalises to "";
- values are fractions in [0, 1]; the official script prints 100 x the mean.

Which questions count (:func:`score_predictions`): every question of ``references``, in its
order. A question without a prediction scores 0 on every metric and is counted
(``n_missing``), as the official script does ("Unanswered question ... will receive score 0");
predictions for questions not in ``references`` are ignored and counted (``n_extra``).

Metrics (:data:`QA_METRICS`) declare ``higher_is_better`` (all True) and their aggregation (the
mean over questions); plugins register more through the entry-point group ``lab.qa_metrics``.
"""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lab.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """The official SQuAD normalisation: lower, no punctuation, no articles, single spaces."""
    text = s.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _answers(answers: Sequence[str]) -> Sequence[str]:
    # the official script takes max() over the answers and fails on none; say why instead
    if isinstance(answers, str):
        raise TypeError(f"answers must be a sequence of strings, got one str {answers!r:.80}")
    if len(answers) == 0:
        raise ValueError("no accepted answer: EM and F1 are undefined (the official script fails on max([]))")
    return answers


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when ``normalize_answer(prediction)`` equals that of any accepted answer, else 0.0.

    Raises
    ------
    ValueError
        ``answers`` is empty. TypeError when it is a single string.
    """
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in _answers(answers)))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """The best token F1 of ``prediction`` over the accepted answers (official ``f1_score``).

    Raises
    ------
    ValueError
        ``answers`` is empty. TypeError when it is a single string.
    """
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(a).split()) for a in _answers(answers))


def answer_in_context(answers: Sequence[str], contexts: Sequence[str]) -> float:
    """1.0 when a normalised accepted answer occurs in a normalised context, on token boundaries.

    Token boundaries: answer ``"3"`` is not found in ``"1973"``, nor ``"us"`` in ``"usbased"``
    (plain substring search would find both). Answers that normalise to "" (``"the"``) are never
    found. No context gives 0.0.

    Raises
    ------
    ValueError
        ``answers`` is empty. TypeError when ``answers`` or ``contexts`` is a single string.
    """
    if isinstance(contexts, str):
        raise TypeError(f"contexts must be a sequence of strings, got one str {contexts!r:.80}")
    wanted = [f" {n} " for n in map(normalize_answer, _answers(answers)) if n]
    padded = [f" {normalize_answer(c)} " for c in contexts]
    return float(any(w in c for w in wanted for c in padded))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class QAMetric:
    """A per-question QA metric: ``compute(x, answers) -> float`` where ``x`` is the prediction
    (``input="prediction"``) or the list of context passages (``input="contexts"``)."""

    name: str
    compute: Callable[[object, Sequence[str]], float]
    input: str = "prediction"
    higher_is_better: bool = True
    aggregation: str = "mean"


#: QA metrics by name: ``exact_match``, ``f1``, ``answer_in_context``. Plugins: group ``lab.qa_metrics``.
QA_METRICS: Registry[QAMetric] = Registry("qa_metrics", item="QA metric")
QA_METRICS.add("exact_match", QAMetric("exact_match", exact_match))
QA_METRICS.add("f1", QAMetric("f1", token_f1))
QA_METRICS.add("answer_in_context", QAMetric("answer_in_context", lambda ctx, ans: answer_in_context(ans, ctx),
                                             input="contexts"))

#: How each declared ``aggregation`` reduces the per-question column.
AGGREGATIONS: dict[str, Callable[[np.ndarray], float]] = {"mean": lambda v: float(np.mean(v))}

DEFAULT_METRICS = ("exact_match", "f1")


def score_predictions(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], *,
                      contexts: Mapping[str, Sequence[str]] | None = None,
                      metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per question of ``references`` (index ``query_id``, references' order), one float
    column per metric; ``df.attrs`` holds ``means`` (:func:`aggregate`), ``n``, ``n_missing``
    (questions without a prediction, scored 0) and ``n_extra`` (predictions for unknown questions,
    ignored).

    ``metrics`` defaults to ``exact_match`` and ``f1``, plus ``answer_in_context`` when
    ``contexts`` (question id -> retrieved passages) is given; a question missing from
    ``contexts`` scores 0 on it.

    Raises
    ------
    RegistryError
        An unknown metric name (the message lists the metrics).
    ValueError
        ``references`` is empty, a question has no accepted answer, or a contexts metric is asked
        for without ``contexts``.
    """
    import pandas as pd

    if not references:
        raise ValueError("score_predictions: no reference question")
    names = list(dict.fromkeys(metrics or (*DEFAULT_METRICS, *(("answer_in_context",) if contexts else ()))))
    chosen = [QA_METRICS.get(n) for n in names]
    if contexts is None and any(m.input == "contexts" for m in chosen):
        raise ValueError(f"metrics {[m.name for m in chosen if m.input == 'contexts']} need contexts=")
    qids = list(references)
    missing = [q for q in qids if q not in predictions]
    if missing:
        log.warning("%d of %d questions have no prediction and score 0 (first: %s)",
                    len(missing), len(qids), missing[:3])
    cols: dict[str, list[float]] = {}
    for m in chosen:
        values = []
        for q in qids:
            answers = _answers(references[q])
            if m.input == "contexts":
                values.append(m.compute(list((contexts or {}).get(q, ())), answers))
            elif q in predictions:
                values.append(m.compute(predictions[q], answers))
            else:
                values.append(0.0)
        cols[m.name] = values
    df = pd.DataFrame(cols, index=pd.Index(qids, name="query_id", dtype=object), dtype=np.float64)
    df.attrs.update(means=aggregate(df), n=len(qids), n_missing=len(missing),
                    n_extra=sum(1 for q in predictions if q not in references))
    return df


def aggregate(df: pd.DataFrame) -> dict[str, float]:
    """Each column of a :func:`score_predictions` frame reduced by its metric's aggregation (the mean).

    Raises
    ------
    ValueError
        The frame has no rows. RegistryError when a column is not a QA metric.
    """
    if len(df) == 0:
        raise ValueError("aggregate: the per-question frame has no rows")
    return {c: AGGREGATIONS[QA_METRICS.get(c).aggregation](df[c].to_numpy(dtype=np.float64))
            for c in df.columns}
