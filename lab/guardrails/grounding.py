"""The grounding check: is a model's answer supported by the context it was given?

It reuses the judge layer (:mod:`lab.judge`) instead of a model of its own: a trained faithfulness
cross-encoder's folder (``model_dir``: the ``judge_eval`` stage trains one, with its threshold
chosen there on training data, into ``<its out_dir>/models/faithfulness-cross-encoder``; the
export bundle carries a copy), ``judge="lexical"`` (the lexical-support rule; no model), a trained
judge's folder as ``judge``, or a :class:`lab.judge.Judge` object. ``judge="claims"`` checks each
claim of the answer on its own (:class:`lab.judge.claim_judge.ClaimLevelJudge`, evidence windows over a
long context, nothing cut silently) with the trained cross-encoder of ``model_dir`` as the pair scorer,
``judge="claims:lexical"`` with the lexical rule: the decision's ``spans`` are then the unsupported
claims (label ``UNSUPPORTED_CLAIM``, offsets into the answer, score 1 - the claim's support). The check never looks for a
stage's output itself: whoever builds it (the policy in the bundle, the CLI) names the folder. The decision's score is the judge's P(unfaithful) (for a judge
without scores, its verdict as 0/1), and it fires at the judge's own threshold.

An answer with no context to check against is not judged: the check does not fire and says so
(grounding cannot be checked), so a policy can decide with another check. Judge failures (a parse
failure of a prompted judge) fire with the reason (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.guardrails.base import CHECKS, Decision, Span, safe_text

#: ``judge`` values that mean "the trained faithfulness judge in ``model_dir``".
TRAINED_ALIASES = (None, "", "default", "faithfulness-cross-encoder")
#: ``judge`` values of claim-level checking, with the pair scorer each uses.
CLAIM_JUDGES = ("claims", "claims:lexical")


@CHECKS.register("grounding")
class Grounding:
    """Fires when the answer is not supported by ``context`` (see the module docstring)."""

    name = "grounding"
    stages = frozenset({"output"})

    def __init__(self, judge: Any = None, model_dir: str | None = None, question: str = "") -> None:
        if (judge in TRAINED_ALIASES or judge == "claims") and not model_dir:
            # fail when the policy is built (``lab serve`` start-up), not on the first answer
            raise ConfigError("grounding check: no judge: set options.model_dir to a trained faithfulness judge's "
                              "folder (`dvc repro judge_eval` trains one into <judge_eval out_dir>/models/"
                              "faithfulness-cross-encoder), or options.judge to 'lexical' (no model)")
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
        claims = getattr(j, "claim_spans", None) or []
        spans = [Span(c["start"], c["end"], "UNSUPPORTED_CLAIM", round(1.0 - float(c["support"]), 6)) for c in claims]
        if j.verdict and claims:
            reason = (f"{j.judge} ({j.rubric}): {len(claims)} claim(s) not supported by the context: "
                      + "; ".join(repr(c["text"][:80]) for c in claims[:3]))
        else:
            reason = (f"{j.judge} ({j.rubric}): answer not supported by the context (P(unfaithful) {score:.2f})"
                      if j.verdict else "")
        return Decision(self.name, bool(j.verdict), score, threshold, reason, spans)


def _build(name: str | None, model_dir: str | None) -> Any:
    from lab.judge import CrossEncoderJudge
    from lab.judge.baselines import LexicalJudge

    if name == "lexical":
        return LexicalJudge(threshold=1e-9)   # the rule: fires when any content word of the answer is missing
    if name in CLAIM_JUDGES:
        from lab.judge.claim_judge import ClaimLevelJudge, CrossEncoderPairScorer, LexicalPairScorer

        if name == "claims:lexical":   # a claim is unsupported when one of its content words is missing
            return ClaimLevelJudge(LexicalPairScorer(default_threshold=1.0), name=name)
        return ClaimLevelJudge(CrossEncoderPairScorer(CrossEncoderJudge(Path(str(model_dir)))), name="claims")
    folder = model_dir if name in TRAINED_ALIASES else name   # __init__ made sure model_dir is set
    return CrossEncoderJudge(Path(str(folder)))
