"""The grounding check: is a model's answer supported by the context it was given?

It reuses the judge layer (:mod:`lab.judge`) instead of a model of its own: by default the trained
faithfulness cross-encoder of the ``judge_eval`` stage (``results/judge_eval/models/
faithfulness-cross-encoder``, with the threshold chosen there on training data), or any grounded
judge by name: ``lexical`` (the lexical-support rule; no model), a trained judge's folder, or a
:class:`lab.judge.Judge` object. The decision's score is the judge's P(unfaithful) (for a judge
without scores, its verdict as 0/1), and it fires at the judge's own threshold.

An answer with no context to check against is not judged: the check does not fire and says so
(grounding cannot be checked), so a policy can decide with another check. Judge failures (a parse
failure of a prompted judge) fire with the reason (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.guardrails.base import CHECKS, Decision, safe_text

DEFAULT_MODEL = Path("results/judge_eval/models/faithfulness-cross-encoder")


@CHECKS.register("grounding")
class Grounding:
    """Fires when the answer is not supported by ``context`` (see the module docstring)."""

    name = "grounding"
    stages = frozenset({"output"})

    def __init__(self, judge: Any = None, model_dir: str | None = None, question: str = "") -> None:
        self._judge = judge
        self.model_dir = model_dir
        self.question = question

    @property
    def judge(self) -> Any:
        if self._judge is None or isinstance(self._judge, str):
            self._judge = _build(self._judge, self.model_dir)
        return self._judge

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        from lab.judge import JudgeInput

        answer = safe_text(text)
        ctx = "\n\n".join(safe_text(c) for c in (context or []) if c)
        threshold = float(getattr(self.judge, "threshold", 0.5) or 0.5)
        if not ctx.strip():
            return Decision(self.name, False, 0.0, threshold, "no context given: grounding not checked")
        j = self.judge.judge([JudgeInput(question=self.question, answer=answer or "(empty)", context=ctx)])[0]
        if j.verdict is None:
            return Decision(self.name, True, 1.0, threshold, f"the grounding judge gave no verdict: {j.error}")
        score = float(j.score) if j.score is not None else float(j.verdict)
        score = min(1.0, max(0.0, score))
        reason = (f"{j.judge} ({j.rubric}): answer not supported by the context (P(unfaithful) {score:.2f})"
                  if j.verdict else "")
        return Decision(self.name, bool(j.verdict), score, threshold, reason)


def _build(name: str | None, model_dir: str | None) -> Any:
    from lab.judge import CrossEncoderJudge
    from lab.judge.baselines import LexicalJudge

    if name == "lexical":
        return LexicalJudge(threshold=1e-9)   # the rule: fires when any content word of the answer is missing
    folder = Path(model_dir) if model_dir else DEFAULT_MODEL
    if name not in (None, "", "default", "faithfulness-cross-encoder"):
        folder = Path(name)
    return CrossEncoderJudge(folder)
