"""The judges the gateway runs online (:mod:`lab.serve.online_eval`): the judge stage's default
judges where this machine has them, and a rule for refusals. No model of its own: each is a judge
of :mod:`lab.judge` (or a rule of :mod:`lab.generate.refusal`) behind the :class:`OnlineJudge` face.

- ``grounded`` (:func:`grounding_judge`): the claim-level grounded judge
  (:class:`lab.judge.claim_judge.ClaimLevelJudge`, the judge the grounding guardrail runs): each
  claim of the answer against the passages the prompt held. Its pair scorer is a trained grounded
  judge: the folder the bundle's grounding guardrail carries, else the judge stage's default
  grounded judge (``judges.json`` ``default.grounded``, a folder in its models folder); without
  one, the lexical pair scorer (``claims:lexical``: a claim is unsupported when one of its content
  words is missing from every passage; a rule).
- ``refusal`` (:class:`RefusalJudge`, a rule): whether the answer declines
  (:func:`lab.generate.refusal.refusal_reason`) a question the index cannot answer (no passage, too
  few of its content words in the passages, or optionally a best retrieval score under a cut); it
  flags an answer given anyway.
- ``relevance`` (:class:`RelevanceJudge`, a rule): whether the answer is about its question: the
  passage the answer itself retrieves best (the bundle's retriever) is one the question retrieved,
  or the answer holds enough of the question's content words; it flags an answer with neither. The
  judge stage has no answer-relevance task, so this judge is a rule, uncalibrated.
- ``hallucination``: the stage's default general judge (``default.general``; a trained
  cross-encoder, the answer judged without context) when its folder is there. A prompted default
  (a generation model per verdict) is not run online.

Each verdict names its judge and version (the rubric id and the model's weights hash, or a hash of
the rule's settings) and carries the judge's calibrated agreement from the judge stage's files
(:func:`lab.handoff.judges.agreement`: kappa on the evaluation items); a claim-level judge over a
trained scorer carries the scorer's whole-answer agreement (``agreement.judge`` names the scorer),
and only when the calibrated weights are the ones it runs. Rules are uncalibrated (None).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.handoff import judges as handoff
from lab.handoff.judges import Agreement
from lab.serve.online_eval import Finding, OnlineJudge, Served, SourceType
from lab.serve.settings import Settings

log = logging.getLogger("lab.serve")

#: Judge kinds that are rules, not models (their verdicts are ``CODE`` assessments).
RULE_KINDS = frozenset({"lexical", "majority", "length"})


class JudgeFailed(RuntimeError):
    """A judge gave no verdict (its judgment's error); counted as the judge's error."""


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


def judge_version(judge: Any) -> str:
    """A lab judge's version: its rubric id (a trained judge's is ``name@<weights hash>``), plus its
    pair scorer's weights hash (or a hash of its identity) for a claim-level judge."""
    scorer = getattr(judge, "scorer", None)
    identity = getattr(scorer, "identity", None)
    if identity is None:
        return str(judge.rubric_id)
    ident = identity()
    return f"{judge.rubric_id}+{str(ident['weights'])[:8] if 'weights' in ident else _digest(ident)}"


def is_rule(judge: Any) -> bool:
    """Whether a lab judge is a rule (a baseline, or a claim-level judge over the lexical scorer)."""
    scorer = getattr(judge, "scorer", None)
    if scorer is not None:
        return getattr(scorer, "name", "") == "lexical"
    return getattr(judge, "kind", "") in RULE_KINDS


class LabJudge:
    """A :mod:`lab.judge` judge as an online judge of ``aspect``: the question and answer, with the
    passages as context when ``with_context`` (a response without passages is then not judged)."""

    def __init__(self, judge: Any, aspect: str, *, with_context: bool, agreement: Agreement | None = None) -> None:
        self.judge, self.aspect, self.with_context, self.agreement = judge, aspect, with_context, agreement
        self.name: str = judge.name
        self.version = judge_version(judge)
        self.source_type: SourceType = "CODE" if is_rule(judge) else "LLM_JUDGE"

    def assess(self, served: Served) -> Finding | None:
        from lab.judge import JudgeInput

        if self.with_context and not served.contexts:
            return None
        context = "\n\n".join(served.contexts) if self.with_context else None
        j = self.judge.judge([JudgeInput(question=served.question, answer=served.answer or "(empty)",
                                         context=context)])[0]
        if j.verdict is None:
            raise JudgeFailed(f"no verdict ({j.error_kind}): {j.error}")
        score = min(1.0, max(0.0, float(j.score))) if j.score is not None else float(j.verdict)
        claims = j.claim_spans or []
        details: dict[str, Any] = {}
        if j.n_windows is not None:
            details.update(claims_unsupported=len(claims), windows=j.n_windows,
                           unsupported=json.dumps([{k: c[k] for k in ("start", "end", "support")} for c in claims]))
        if claims:
            rationale = f"{j.reason}: " + "; ".join(repr(c["text"][:80]) for c in claims[:3])
        else:
            rationale = j.reason or (f"P(fail) {score:.2f}" if j.score is not None else f"verdict {j.verdict}")
        return Finding(bool(j.verdict), score, rationale, details)


class RefusalJudge:
    """Flags an answer to a question the index cannot answer (a rule; see the module docstring).

    The index cannot answer when no passage reached the prompt, when fewer than ``min_support`` of
    the question's content words are in the passages (:func:`lab.judge.baselines.lexical_support`),
    or, with ``min_score``, when the best retrieval score is below it. The finding's details say
    which (``answerable``, ``question_support``, ``top_score``) and whether the answer refused."""

    name = "refusal-rule"
    aspect = "refusal"
    source_type: SourceType = "CODE"
    agreement: Agreement | None = None

    def __init__(self, min_support: float = 0.3, min_score: float | None = None) -> None:
        from lab.generate.refusal import REFUSAL_PATTERNS, WINDOW, compile_patterns

        self.min_support, self.min_score = min_support, min_score
        self.patterns = compile_patterns()
        self.version = "refusal@" + _digest([REFUSAL_PATTERNS, WINDOW, min_support, min_score])

    def assess(self, served: Served) -> Finding:
        from lab.generate.refusal import refusal_reason
        from lab.judge.baselines import lexical_support

        support = lexical_support(served.question, "\n".join(served.contexts)) if served.contexts else 0.0
        top = max(served.scores) if served.scores else None
        why = []
        if not served.contexts:
            why.append("no passage reached the prompt")
        elif support < self.min_support:
            why.append(f"{support:.2f} of the question's content words are in the passages (< {self.min_support:g})")
        if self.min_score is not None and (top is None or top < self.min_score):
            why.append(f"best retrieval score {'none' if top is None else f'{top:.3f}'} < {self.min_score:g}")
        refused = refusal_reason(served.answer, patterns=self.patterns)
        flagged = bool(why) and refused is None
        if why:
            rationale = ("the index cannot answer (" + "; ".join(why) + ") and the answer "
                         + ("does not refuse" if refused is None else f"refuses ({refused})"))
        else:
            rationale = "the index holds the question's words" + (f"; the answer refuses ({refused})" if refused else "")
        return Finding(flagged, 1.0 if flagged else 0.0, rationale,
                       {"answerable": not why, "refused": refused is not None, "question_support": round(support, 4),
                        "top_score": top})


class RelevanceJudge:
    """Flags an answer that is not about its question (a rule; see the module docstring).

    Two signals in [0, 1]: ``top_passage_shared`` (1 when the passage that ``search`` finds best
    for the answer is one of the passages the question retrieved, ``Served.source_ids``; 0 without
    ``search``) and ``question_overlap`` (the share of the question's content words in the answer,
    :func:`lab.judge.baselines.lexical_support`). The answer's relevance is the larger; it is flagged
    below ``min_relevance`` (score: 1 - relevance). "Warsaw." to "What is the capital of Poland?"
    shares no word but retrieves the Warsaw passage; an answer about Tesla to that question has
    neither. A refusal (or an empty answer) is not judged here: the refusal judge's (None)."""

    name = "relevance-rule"
    aspect = "relevance"
    source_type: SourceType = "CODE"
    agreement: Agreement | None = None

    def __init__(self, search: Callable[[str], Sequence[str]] | None = None, min_relevance: float = 0.25,
                 retriever: Any = None) -> None:
        from lab.generate.refusal import compile_patterns

        self.search, self.min_relevance = search, min_relevance
        self.patterns = compile_patterns()
        # the version: the rule's settings and the retriever it asks (its config, not its index)
        self.version = "relevance@" + _digest([min_relevance, retriever if search is not None else None])

    def assess(self, served: Served) -> Finding | None:
        from lab.generate.refusal import refusal_reason
        from lab.judge.baselines import lexical_support

        if refusal_reason(served.answer, patterns=self.patterns) is not None:
            return None
        overlap = lexical_support(served.question, served.answer)
        top = None
        if self.search is not None:
            found = list(self.search(served.answer))
            top = found[0] if found else None
        shared = 1.0 if top is not None and top in served.source_ids else 0.0
        relevance = max(shared, overlap)
        flagged = relevance < self.min_relevance
        rationale = (f"the answer's best passage ({top or 'none'}) is {'' if shared else 'not '}one the question "
                     f"retrieved; {overlap:.2f} of the question's content words are in the answer")
        return Finding(flagged, round(1.0 - relevance, 4), rationale,
                       {"top_passage": top, "top_passage_shared": bool(shared), "question_overlap": round(overlap, 4)})


def _trained(folder: Path | None) -> bool:
    return folder is not None and (folder / "meta.json").is_file()


def _policy_grounding_dir(policy: Any) -> Path | None:
    """The trained judge folder the bundle policy's grounding rule names (its copy in the bundle)."""
    for rule in (policy.rules.get("output", []) if policy is not None else []):
        folder = getattr(rule.check, "model_dir", None) if getattr(rule.check, "name", "") == "grounding" else None
        if folder and _trained(Path(folder)):
            return Path(folder)
    return None


def _agreement(judges_dir: Path | None, task: str, name: str, rubric: str | None) -> Agreement | None:
    """The calibrated agreement of ``name`` when it was calibrated with the weights ``rubric`` names."""
    if judges_dir is None:
        return None
    found = handoff.agreement(judges_dir, task, name)
    if found is not None and rubric is not None and found.rubric not in (None, rubric):
        log.warning("online judge %s runs %s, but %s calibrated %s: its agreement is not carried",
                    name, rubric, found.source, found.rubric)
        return None
    return found


def grounding_judge(judges_dir: Path | None = None, policy: Any = None) -> LabJudge:
    """The online ``grounded`` judge (module docstring): the claim-level judge over the bundle's (or
    the judge stage's default) trained grounded judge, else over the lexical scorer."""
    from lab.judge.claim_judge import ClaimLevelJudge, CrossEncoderPairScorer, LexicalPairScorer

    folder = _policy_grounding_dir(policy)
    if folder is None and judges_dir is not None and handoff.path(judges_dir).is_file():
        name = handoff.read(handoff.path(judges_dir)).default.get("grounded")
        name = name.removeprefix("claims:") if name else name   # a claim-level default: its pair scorer's folder
        candidate = handoff.models_dir(judges_dir) / name if name else None
        folder = candidate if _trained(candidate) else None
    if folder is None:
        judge = ClaimLevelJudge(LexicalPairScorer(default_threshold=1.0), name="claims:lexical")
        return LabJudge(judge, "grounded", with_context=True,
                        agreement=_agreement(judges_dir, "grounded", judge.name, None))
    from lab.judge.trained import CrossEncoderJudge

    scorer = CrossEncoderJudge(folder)
    judge = ClaimLevelJudge(CrossEncoderPairScorer(scorer), name=f"claims:{scorer.name}")
    agreement = _agreement(judges_dir, "grounded", judge.name, None) \
        or _agreement(judges_dir, "grounded", scorer.name, scorer.rubric_id)
    return LabJudge(judge, "grounded", with_context=True, agreement=agreement)


def hallucination_judge(judges_dir: Path | None) -> LabJudge | None:
    """The judge stage's default general judge when it is a trained folder here (else None)."""
    if judges_dir is None or not handoff.path(judges_dir).is_file():
        return None
    name = handoff.read(handoff.path(judges_dir)).default.get("general")
    folder = handoff.models_dir(judges_dir) / name if name else None
    if not _trained(folder):
        if name:
            log.info("online evaluation: the default general judge %r is not a trained judge folder here; "
                     "not run", name)
        return None
    from lab.judge.trained import CrossEncoderJudge

    judge = CrossEncoderJudge(Path(str(folder)))
    return LabJudge(judge, "hallucination", with_context=False,
                    agreement=_agreement(judges_dir, "general", judge.name, judge.rubric_id))


def relevance_judge(settings: Settings, rag: Any = None) -> RelevanceJudge:
    """The online ``relevance`` judge over ``rag``'s retriever (its top passage for the answer)."""
    if rag is None:
        return RelevanceJudge(None, settings.relevance_min)

    def search(text: str) -> list[str]:
        return [d for d, _ in rag.search([text], 1)[0]]

    return RelevanceJudge(search, settings.relevance_min, retriever=rag.bundle["retrieval"]["config"])


def default_judges(settings: Settings, *, judges_dir: Path | None = None, policy: Any = None,
                   rag: Any = None) -> list[OnlineJudge]:
    """The online judges of ``lab serve``: grounding, refusal, relevance and, where there is one,
    hallucination.

    ``judges_dir``: the judge stage's output folder (``judges.json``, ``calibration.json``,
    ``models/``); None: the rules and the bundle policy's grounding model only, uncalibrated.
    ``rag``: the gateway's :class:`lab.serve.rag.RAG`, whose retriever the relevance judge asks
    (None: that judge uses the question's words only).

    Raises
    ------
    DataError
        ``judges_dir`` holds a choice or report that cannot be read (:mod:`lab.handoff.judges`).
    """
    out: list[OnlineJudge] = [grounding_judge(judges_dir, policy),
                              RefusalJudge(settings.refusal_min_support, settings.refusal_min_score),
                              relevance_judge(settings, rag)]
    general = hallucination_judge(judges_dir)
    if general is not None:
        out.append(general)
    return out


def describe(judges: Sequence[OnlineJudge]) -> str:
    """One line per judge for the start-up banner: name, version, source and agreement."""
    lines = []
    for j in judges:
        a = j.agreement
        agree = "uncalibrated" if a is None else (
            f"kappa {a.kappa:.2f} on {a.n or '?'} {a.split} items" + (f" (of {a.judge})" if a.judge != j.name else "")
            + (" BELOW the agreement bar" if a.below_bar else ""))
        lines.append(f"{j.aspect}: {j.name}@{j.version} [{j.source_type}], {agree}")
    return "\n".join(lines)
