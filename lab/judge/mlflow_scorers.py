"""lab judges as MLflow GenAI scorers, and judgments in MLflow's evaluation views.

:func:`as_scorer` turns any lab judge into an ``mlflow.genai`` scorer: it reads ``inputs``
(``question``, ``context``), ``outputs`` (the answer) and ``expectations`` (``reference``) of an
evaluation record, judges it (the judgment cache makes a record already judged free) and returns an
MLflow ``Feedback`` whose value is the verdict (True = the judge's positive class: unfaithful,
hallucinated), with the rationale, the score and the rubric id as metadata; a judgment without a
verdict becomes a ``Feedback`` carrying the error, so MLflow shows the failure rather than a NaN.

:func:`evaluate_in_mlflow` runs ``mlflow.genai.evaluate`` over labelled items with those scorers in a
run nested under the stage's run (``LAB_PARENT_RUN_ID``): the per-item assessments appear in the
run's Traces tab, and the aggregate (``<scorer>/mean``) is returned for the side-by-side table.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.judge.base import Judge, JudgeInput


def as_scorer(judge: Judge, name: str | None = None) -> Any:
    """An ``mlflow.genai`` scorer that asks ``judge`` (see the module docstring)."""
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    label = (name or f"lab_{judge.name}").replace("/", "_")

    @scorer(name=label)
    def _judge(inputs: dict[str, Any], outputs: Any, expectations: dict[str, Any] | None = None) -> Feedback:
        item = JudgeInput(question=str(inputs.get("question", "")), answer=str(outputs or ""),
                          context=inputs.get("context"), reference=(expectations or {}).get("reference"))
        j = judge.judge([item])[0]
        meta = {"rubric": j.rubric, "judge": j.judge, "score": j.score, "cached": j.cached}
        if j.verdict is None:
            return Feedback(error=f"{j.error_kind}: {j.error}", metadata=meta)
        return Feedback(value=bool(j.verdict), rationale=j.reason or j.raw[:500], metadata=meta)

    return _judge


def evaluate_in_mlflow(judges: Sequence[Judge], items: Sequence[Any], *, run_name: str,
                       root: Path | None = None) -> dict[str, float]:
    """``mlflow.genai.evaluate`` of ``items`` (:class:`lab.data.halueval.JudgedItem`) with each judge as a
    scorer, the human label logged as an expectation; returns MLflow's aggregate metrics."""
    from lab.tracking import PARENT_RUN_ENV, setup

    mlflow = setup(root=root)
    data = [{"inputs": {"question": i.question, **({"context": i.context} if i.context else {})},
             "outputs": i.answer, "expectations": {"human_label": bool(i.label)}} for i in items]
    parent = os.environ.get(PARENT_RUN_ENV)
    tags = {"mlflow.parentRunId": parent} if parent else {"lab.parent": "none"}
    # mlflow.genai.evaluate prints a "✨ Evaluation completed ... open the Traces tab" banner (with
    # terminal colour codes) to stdout, which lands in the middle of a stage's HTML report; the run
    # it names is this one, logged under the stage's run, so the banner is dropped.
    with mlflow.start_run(run_name=run_name, tags={**tags, "lab.kind": "genai-evaluate"}), \
            contextlib.redirect_stdout(io.StringIO()):
        result = mlflow.genai.evaluate(data=data, scorers=[as_scorer(j) for j in judges])
    return {k: float(v) for k, v in (result.metrics or {}).items()}
