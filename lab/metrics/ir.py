"""Retrieval metrics at a cutoff on TREC structures, equal to trec_eval / pytrec_eval to 1e-9.

Inputs are the standard TREC dictionaries:

- ``qrels: dict[str, dict[str, int]]``: query id -> doc id -> graded relevance (> 0 relevant);
- ``run: dict[str, dict[str, float]]``: query id -> doc id -> score.

Ranking rule (trec_eval's, checked against pytrec_eval-terrier 0.5.11 in the tests): score
descending, ties broken by doc id **descending** (``strcmp`` on the bytes; Python's ``str`` order
is the same on UTF-8). Of ``{"a": 1.0, "b": 1.0}``, ``b`` ranks first. Scores are never truncated
at 1,000 docs (pytrec_eval does not either). A NaN score raises ``ValueError``.

Which queries count:

- a query in ``qrels`` but missing from ``run`` (or with an empty ranking) scores 0 on every
  metric and is kept, as ``trec_eval -c`` does (pytrec_eval leaves it out instead, which flatters
  a system that skips hard queries);
- a query in ``run`` but not in ``qrels`` is ignored, as trec_eval does; so is a query whose
  ``qrels`` entry is an empty dict (it has no line in a TREC qrels file; pytrec_eval drops it too);
- a query whose judgements are all non-relevant (<= 0) scores 0 on every metric, as in trec_eval.

Metric families (``IR_METRICS``), named ``family@k`` (``"ndcg@10"``), each ``higher_is_better``
and aggregated by the mean over queries:

=============  ==============================================================  ===============
name           per query                                                       trec_eval
=============  ==============================================================  ===============
hit_rate@k     1 if a relevant doc is in the top k, else 0                     ``success_k``
recall@k       relevant in top k / relevant in qrels                           ``recall_k``
precision@k    relevant in top k / k (k even when fewer docs were retrieved)   ``P_k``
mrr@k          1 / rank of the first relevant doc within k, else 0             ``recip_rank``
                                                                               of the top k
ndcg@k         DCG@k / ideal DCG@k; gain = graded relevance (negative -> 0),   ``ndcg_cut_k``
               discount log2(rank + 1), ideal from the qrels' relevance
map@k          sum of precision@rank at each relevant rank <= k /              ``map_cut_k``
               relevant in qrels
=============  ==============================================================  ===============
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lab.errors import ConfigError, RegistryError
from lab.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

_NAME = re.compile(r"^([a-z_]+)@([1-9][0-9]*)$")


@dataclass(frozen=True)
class Judged:
    """The top of every query's ranking, judged against the qrels (one row per query).

    ``width`` is the largest cutoff asked for, or less when no ranking (nor the qrels) of any query
    is that long.

    Attributes
    ----------
    gains : (n, width) float array
        Relevance of the doc at each rank, negative clipped to 0; 0 past the end of the ranking.
    relevant : (n, width) bool array
        ``relevance > 0`` at each rank.
    num_rel : (n,) int array
        Relevant docs of the query in the qrels (retrieved or not).
    ideal : (n, width) float array
        The qrels' gains sorted descending (the ideal ranking of nDCG), 0-padded.
    """

    gains: np.ndarray
    relevant: np.ndarray
    num_rel: np.ndarray
    ideal: np.ndarray


@dataclass(frozen=True)
class IRMetric:
    """A family of cutoff metrics: ``compute(judged, k)`` gives one value per query."""

    name: str
    compute: Callable[[Judged, int], np.ndarray]
    trec_eval: str
    higher_is_better: bool = True
    aggregation: str = "mean"


#: Metric families by name; ``family@k`` selects one at cutoff k. Plugins: group ``lab.ir_metrics``.
IR_METRICS: Registry[IRMetric] = Registry("ir_metrics")

#: How each declared ``aggregation`` reduces the per-query column.
AGGREGATIONS: dict[str, Callable[[np.ndarray], float]] = {"mean": lambda v: float(np.mean(v))}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (a query without relevant docs scores 0)."""
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _discount(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _register(name: str, trec_eval: str) -> Callable[[Callable[[Judged, int], np.ndarray]], IRMetric]:
    def deco(fn: Callable[[Judged, int], np.ndarray]) -> IRMetric:
        metric = IRMetric(name=name, compute=fn, trec_eval=trec_eval)
        IR_METRICS.add(name, metric)
        return metric

    return deco


@_register("hit_rate", "success_k")
def hit_rate_at_k(j: Judged, k: int) -> np.ndarray:
    return j.relevant[:, :k].any(axis=1).astype(np.float64)


@_register("recall", "recall_k")
def recall_at_k(j: Judged, k: int) -> np.ndarray:
    return _ratio(j.relevant[:, :k].sum(axis=1), j.num_rel)


@_register("precision", "P_k")
def precision_at_k(j: Judged, k: int) -> np.ndarray:
    return j.relevant[:, :k].sum(axis=1) / k


@_register("mrr", "recip_rank on the top k")
def mrr_at_k(j: Judged, k: int) -> np.ndarray:
    rel = j.relevant[:, :k]
    first = rel.argmax(axis=1)  # 0 when nothing is relevant: masked below
    return np.where(rel.any(axis=1), 1.0 / (first + 1), 0.0)


@_register("ndcg", "ndcg_cut_k")
def ndcg_at_k(j: Judged, k: int) -> np.ndarray:
    disc = _discount(min(k, j.gains.shape[1]))
    dcg = j.gains[:, :k] @ disc
    idcg = j.ideal[:, :k] @ disc
    return _ratio(dcg, idcg)


@_register("map", "map_cut_k")
def map_at_k(j: Judged, k: int) -> np.ndarray:
    rel = j.relevant[:, :k]
    ranks = np.arange(1, rel.shape[1] + 1, dtype=np.float64)
    prec_at_rel = np.where(rel, np.cumsum(rel, axis=1) / ranks, 0.0)
    return _ratio(prec_at_rel.sum(axis=1), j.num_rel)


def parse_metric(name: str) -> tuple[IRMetric, int]:
    """Split ``"ndcg@10"`` into its family and cutoff.

    Raises
    ------
    ConfigError
        The name is not ``family@k`` with a positive integer k without leading zeros.
    RegistryError
        The family is unknown; the message lists the families.
    """
    m = _NAME.match(name) if isinstance(name, str) else None
    if m is None:
        raise ConfigError(
            f"IR metric {name!r} is not 'family@k' (e.g. 'ndcg@10'). "
            f"Families: {', '.join(IR_METRICS.names())}"
        )
    try:
        family = IR_METRICS.get(m.group(1))
    except RegistryError as e:
        raise RegistryError(f"{e} (write a metric as family@k, e.g. 'ndcg@10')") from None
    return family, int(m.group(2))


def judge(qrels: Qrels, run: Run, kmax: int) -> tuple[list[str], Judged]:
    """Rank every query of ``qrels`` (trec_eval's order) and judge its top ``kmax`` docs (at most).

    Returns the query ids (``qrels`` order, queries with no judgement left out) and the
    :class:`Judged` arrays, one row each.

    Raises
    ------
    ValueError
        A score is NaN (its rank would be undefined).
    """
    qids = [q for q, judged in qrels.items() if judged]
    n = len(qids)
    # no wider than the longest ranking or ideal ranking: past it every row is 0 (precision@k
    # still divides by k), so "ndcg@100000" does not allocate n x 100000
    longest = max((max(len(run.get(q) or ()), len(qrels[q])) for q in qids), default=0)
    width = max(1, min(kmax, longest))
    gains = np.zeros((n, width), dtype=np.float64)
    ideal = np.zeros((n, width), dtype=np.float64)
    num_rel = np.zeros(n, dtype=np.int64)
    isnan = math.isnan
    for i, q in enumerate(qids):
        judged = qrels[q]
        rels = sorted((r for r in judged.values() if r > 0), reverse=True)
        num_rel[i] = len(rels)
        if rels:
            ideal[i, : min(width, len(rels))] = rels[:width]
        scores = run.get(q)
        if not scores:
            continue
        if any(map(isnan, scores.values())):
            bad = next(d for d, s in scores.items() if isnan(s))
            raise ValueError(f"run: query {q!r}, doc {bad!r} has a NaN score")
        # (score, doc id) tuples sorted in reverse: score descending, then doc id descending,
        # which is trec_eval's tie rule. Only the top `width` are kept.
        top = sorted(zip(scores.values(), scores.keys()), reverse=True)[:width]
        get = judged.get
        gains[i, : len(top)] = [get(d, 0) for _, d in top]
    relevant = gains > 0
    np.maximum(gains, 0.0, out=gains)  # trec_eval's nDCG gives negative judgements no gain
    return qids, Judged(gains=gains, relevant=relevant, num_rel=num_rel, ideal=ideal)


def per_query(qrels: Qrels, run: Run, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per judged query of ``qrels`` (index ``query_id``), one float column per metric name.

    Queries missing from ``run`` score 0; queries only in ``run``, or with an empty ``qrels``
    entry, are left out (see the module docstring).

    Raises
    ------
    ConfigError, RegistryError
        A metric name is malformed or its family unknown (see :func:`parse_metric`).
    ValueError
        ``metrics`` is empty, or a score is NaN.
    """
    import pandas as pd

    names = list(dict.fromkeys(metrics))
    if not names:
        raise ValueError(f"no IR metric asked for; families: {', '.join(IR_METRICS.names())}")
    parsed = [parse_metric(n) for n in names]
    qids, judged = judge(qrels, run, max(k for _, k in parsed))
    cols = {name: fam.compute(judged, k) for name, (fam, k) in zip(names, parsed)}
    return pd.DataFrame(cols, index=pd.Index(qids, name="query_id", dtype=object))


def aggregate(df: pd.DataFrame) -> dict[str, float]:
    """Each column of a :func:`per_query` frame reduced by its metric's declared aggregation (the mean).

    Raises
    ------
    ValueError
        The frame has no rows.
    ConfigError, RegistryError
        A column is not an IR metric name.
    """
    if len(df) == 0:
        raise ValueError("aggregate: the per-query frame has no rows (no query in the qrels?)")
    out = {}
    for col in df.columns:
        family, _ = parse_metric(col)
        out[col] = AGGREGATIONS[family.aggregation](df[col].to_numpy(dtype=np.float64))
    return out
