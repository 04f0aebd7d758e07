"""Agreement on production labels: what ``lab judge calibrate`` makes of a labels file of the
labelling queue (:mod:`lab.data.trace_labels`).

**Which labels count.** The judges answer one question, "is the answer supported by its sources?",
so ``faithful`` is 0 and ``hallucinated`` is 1 (:data:`JUDGE_LABEL`). ``wrong`` (supported, or not
about the sources, but wrong) and ``unanswerable`` (the sources cannot answer the question) say
something else: those labels are left out of the agreement and counted (``excluded``), never mapped
onto 0 or 1. An item's grounding text is the passages its prompt held (a dropped passage is not
one); an answer given without passages has none, which makes the file's task ``general``.

**The judge re-run and the judges that were there.** :func:`read_production` gives the items the
judge named on the command line judges again (:func:`lab.judge.calibrate.calibrate`); beside it,
:func:`online_agreement` scores the verdicts the online judges had left on each trace when it was
labelled (recorded with the label): an assessment whose value is a boolean (``True`` = the answer
passes the judge's aspect, MLflow's convention and the online judges') is a flag (1) when False.
Each such judge is reported with the calibrated agreement its verdicts carried (their metadata's
``agreement_*``: its offline figure), so production and offline kappas sit side by side. A flag of
an aspect other than grounding (relevance, refusal) is scored against the same labels and says
how far that aspect tracks hallucination, no more.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from lab.data.halueval import JudgedItem, JudgedSet
from lab.data.trace_labels import LABELS, LabelsFile, TraceLabel, read_labels
from lab.errors import DataError
from lab.metrics.agreement import agreement_report

#: The format name a calibration report gives a labels file.
FORMAT_NAME = "trace-labels"
#: What the judges' 0/1 label is, per label; the others are left out and counted.
JUDGE_LABEL = {"faithful": 0, "hallucinated": 1}
EXCLUDED = tuple(x for x in LABELS if x not in JUDGE_LABEL)
_OFFLINE_KEYS = {"agreement_kappa": "kappa", "agreement_split": "split", "agreement_n": "n",
                 "agreement_kappa_ci": "kappa_ci", "agreement_judge": "judge", "agreement_bar": "bar"}


def judged_item(label: TraceLabel, line: int) -> JudgedItem | None:
    """The judged item of one label (None for a label left out: :data:`EXCLUDED`)."""
    y = JUDGE_LABEL.get(label.label)
    if y is None:
        return None
    context = "\n\n".join(label.contexts) or None
    group = hashlib.sha256(label.trace_id.encode("utf-8")).hexdigest()[:16]
    return JudgedItem(label.trace_id, label.question, label.answer, context, y, group, line)


def read_production(path: str | Path, *, skip_bad: bool = False, n_resamples: int = 2000,
                    seed: int = 0) -> tuple[JudgedSet, dict[str, Any]]:
    """(the labels as judged items, the report's production keys): ``labels`` (counts by label),
    ``excluded`` (the labels left out, by label, and why), ``online_judges``
    (:func:`online_agreement`).

    Raises
    ------
    DataError
        The file is not a readable labels file (:func:`lab.data.trace_labels.read_labels`), or no
        label is ``faithful`` or ``hallucinated`` (the message gives the counts).
    """
    f = read_labels(path, skip_bad=skip_bad)
    items = [it for tid, lab in f.labels.items() if (it := judged_item(lab, f.lines[tid])) is not None]
    counts = f.counts()
    if not items:
        raise DataError(f"{f.path}: no label to calibrate on: {_said(counts)}; only faithful (0) and "
                        f"hallucinated (1) answers are judged, {' and '.join(EXCLUDED)} are left out")
    data = JudgedSet(f.path, FORMAT_NAME, items, list(f.rejected), f.n_records)
    extra = {"labels": counts, "excluded": {
        **{k: counts[k] for k in EXCLUDED},
        "why": f"{' and '.join(EXCLUDED)} say nothing about support by the sources: left out, counted"},
        "online_judges": online_agreement(f, n_resamples=n_resamples, seed=seed)}
    return data, extra


def _said(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no labels"


def online_agreement(labels: LabelsFile, *, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Per assessment name (``online/grounding``, ...): the agreement of the boolean verdicts recorded
    with the faithful and hallucinated labels (a False value is a flag, 1), the judges that gave
    them (``source_id``), and ``offline``: the calibrated agreement the latest verdict carried (None
    when it carried none). People's own assessments (source ``HUMAN``) are not judges."""
    pairs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    judges: dict[str, set[str]] = defaultdict(set)
    offline: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for lab in labels.labels.values():
        y = JUDGE_LABEL.get(lab.label)
        if y is None:
            continue
        for v in lab.verdicts:
            if v.source_type == "HUMAN" or not isinstance(v.value, bool):
                continue
            pairs[v.name].append((y, 0 if v.value else 1))
            judges[v.name].add(v.source_id)
            if v.name not in offline or lab.labelled_at >= offline[v.name][0]:
                offline[v.name] = (lab.labelled_at, offline_of(v.metadata))
    out: dict[str, Any] = {}
    for name, got in sorted(pairs.items()):
        rep = agreement_report([y for y, _ in got], [p for _, p in got], n_resamples=n_resamples, seed=seed)
        out[name] = {"judges": sorted(judges[name]), **rep, "offline": offline[name][1]}
    return out


def offline_of(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The calibrated agreement in a verdict's metadata (``agreement_kappa``, ``agreement_split``,
    ...; MLflow keeps strings), typed; None for an uncalibrated judge or none recorded."""
    if "agreement_kappa" not in metadata:
        return None
    out: dict[str, Any] = {}
    for key, name in _OFFLINE_KEYS.items():
        raw = metadata.get(key)
        if raw is None:
            continue
        try:
            out[name] = json.loads(raw) if name in ("kappa", "n", "kappa_ci", "bar") else raw
        except json.JSONDecodeError:
            out[name] = raw   # kept as written: the figure is shown, not computed with
    return out


def _fmt(kappa: Any, ci: Any) -> str:
    if not isinstance(kappa, int | float):
        return "n/a"
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(c, int | float) for c in ci):
        return f"{kappa:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
    return f"{kappa:.2f}"


def production_table(report: dict[str, Any]) -> str:
    """The calibration report of a labels file as text: each judge's kappa on the production labels
    beside its offline kappa (the judge re-run: the judge stage's figure, ``report["offline"]``;
    the online judges: the figure their verdicts carried)."""
    labels, ex = report.get("labels") or {}, report.get("excluded") or {}
    used = sum(labels.get(k, 0) for k in JUDGE_LABEL)
    online = {name: f"{name} ({', '.join(rep['judges'])})" for name, rep in (report.get("online_judges") or {}).items()}
    w = max([40, len(str(report.get("judge", "?"))), *map(len, online.values())])   # the longest name sets the column
    lines = [f"agreement on production labels ({report.get('file')}): {used} judged "
             f"({labels.get('faithful', 0)} faithful, {labels.get('hallucinated', 0)} hallucinated); left out: "
             + ", ".join(f"{ex.get(k, 0)} {k}" for k in EXCLUDED),
             f"{'judge':<{w}} {'production kappa [95% CI]':<28} {'n':>5}   offline kappa [95% CI] (split, n)"]
    off = report.get("offline") or {}
    ev = off.get("evaluation") or {}
    where = f"({ev.get('split', 'evaluation')}, {ev.get('n')})" if ev else "(not calibrated offline)"
    lines.append(f"{report.get('judge', '?'):<{w}} {_fmt(report.get('kappa'), report.get('kappa_ci')):<28} "
                 f"{report.get('n_scored', 0):>5}   {_fmt(ev.get('kappa'), ev.get('kappa_ci')) if ev else 'n/a'} {where}")
    for name, rep in (report.get("online_judges") or {}).items():
        o = rep.get("offline") or {}
        where = f"({o.get('split')}, {o.get('n')})" if o else "(uncalibrated)"
        lines.append(f"{online[name]:<{w}} {_fmt(rep.get('kappa'), rep.get('kappa_ci')):<28} {rep['n']:>5}   "
                     f"{_fmt(o.get('kappa'), o.get('kappa_ci')) if o else 'n/a'} {where}")
    return "\n".join(lines)
