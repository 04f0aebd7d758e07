"""Claim-level grounded judging: each claim of an answer checked against windows of its context.

A whole-answer judge reads a long answer and a long context at once, through a model that keeps
only its first ``max_length`` tokens. :class:`ClaimLevelJudge` instead

1. splits the answer into claims (:func:`lab.judge.claims.split_claims`, exact offsets);
2. cuts the context into evidence windows that fit the pair scorer's input together with the
   claim, the question and the special tokens, measured with the scorer's own tokenizer
   (:func:`lab.judge.windows.evidence_windows`); each claim gets windows as large as ITS length
   allows (claims of equal budget share one windowing), so one long claim does not shrink the
   evidence every other claim sees; no input is cut silently: every claim is scored against EVERY
   window of its windowing, and an input that still exceeds ``max_tokens`` (a claim too long for
   the model on its own) is counted (``truncated_inputs``), per judgment and in :meth:`describe`;
3. takes a claim's support as the MAX over windows of the pair scorer's support probability (one
   window holding the evidence is enough), and calls the answer hallucinated (verdict 1) when any
   claim's support is below ``threshold``. The unsupported claims come back as spans
   (:attr:`Judgment.claim_spans`: ``start``, ``end``, ``text``, ``support``, offsets into the answer).

A pair scorer (:class:`PairScorer`) returns the probability that the hypothesis (a claim) is
SUPPORTED by the premise (a window): high = supported. It may also give ``score_many`` (a batch of
``(question, premise, hypothesis)``), ``count_tokens`` and ``max_tokens`` (its input limit),
``reserved_tokens(question, hypothesis)`` (the tokens of everything but the window),
``default_threshold`` and ``identity()`` (what the cache key holds). Two come with lab:
:class:`LexicalPairScorer` (the share of the claim's content words in the window; no length
limit) and :class:`CrossEncoderPairScorer` (the trained judge of :mod:`lab.judge.trained`,
support = 1 - its hallucination probability, on the inputs it was trained on).

Counters (:attr:`ClaimLevelJudge.counts`, in :meth:`describe`): ``answers`` judged,
``multi_window_answers`` (answers whose context needed more than one window), ``windows``,
``pairs_scored`` and ``truncated_inputs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from lab.errors import ConfigError
from lab.judge.base import JUDGES, JudgeInput, Judgment
from lab.judge.cache import JudgmentCache, cache_key
from lab.judge.claims import split_claims
from lab.judge.windows import Window, evidence_windows

#: Bumped when claim splitting, windowing or aggregation change what a judgment says (cache keys).
VERSION = 2   # 2: windows sized per claim (1: one size for all, set by the longest claim)
#: The smallest window budget: a claim longer than the model's input leaves at least this much context.
MIN_WINDOW_TOKENS = 16


def _distinct(windows: list[list[Window]]) -> list[tuple[int, int]]:
    """The ``(start, end)`` of every window any claim was scored against, in context order."""
    return sorted({(w.start, w.end) for ws in windows for w in ws})


@runtime_checkable
class PairScorer(Protocol):
    """``score(premise, hypothesis)``: the probability that ``hypothesis`` is supported by ``premise``."""

    name: str

    def score(self, premise: str, hypothesis: str) -> float: ...


@JUDGES.register("claims")
class ClaimLevelJudge:
    """A grounded judge from any pair scorer (see the module docstring).

    Parameters
    ----------
    scorer : a :class:`PairScorer` (support probability; the optional methods are used when present).
    name : the judge's name; default ``claims:<scorer name>``.
    threshold : a claim with support below it is unsupported; default the scorer's
        ``default_threshold``, else 0.5.
    count_tokens, max_tokens : the scorer's token count and input limit (default its own attributes);
        neither: the scorer has no limit and the whole context is one window.
    overlap_tokens : tokens of whole sentences repeated between consecutive windows.
    min_claim_words : claims of fewer words merge into a neighbour.
    cache : a :class:`JudgmentCache` (keyed by the scorer's ``identity()`` and every setting); None: off.
    """

    kind = "claims"
    task = "grounded"

    def __init__(self, scorer: Any, *, name: str | None = None, threshold: float | None = None,
                 count_tokens: Callable[[str], int] | None = None, max_tokens: int | None = None,
                 overlap_tokens: int = 32, min_claim_words: int = 3, cache: JudgmentCache | None = None) -> None:
        self.scorer = scorer
        self.name = name or f"claims:{getattr(scorer, 'name', type(scorer).__name__)}"
        self.threshold = float(threshold if threshold is not None else getattr(scorer, "default_threshold", 0.5))
        self._count_tokens = count_tokens
        self._max_tokens = max_tokens
        if overlap_tokens < 0:
            raise ConfigError(f"{self.name}: overlap_tokens must be >= 0, got {overlap_tokens}")
        self.overlap_tokens = overlap_tokens
        self.min_claim_words = min_claim_words
        self.cache = cache
        self.rubric_id = f"claim-support@v{VERSION}"
        self.counts = {"answers": 0, "multi_window_answers": 0, "windows": 0, "pairs_scored": 0,
                       "truncated_inputs": 0, "cache_hits": 0}

    # the scorer's limit is read lazily: the cross-encoder's tokenizer loads with the model
    def _limit(self) -> tuple[Callable[[str], int] | None, int | None]:
        count = self._count_tokens or getattr(self.scorer, "count_tokens", None)
        limit = self._max_tokens or getattr(self.scorer, "max_tokens", None)
        if (count is None) != (limit is None):
            raise ConfigError(f"{self.name}: give both count_tokens and max_tokens (the scorer's tokenizer and "
                              f"its input limit), or neither (no limit: the whole context is one window)")
        return count, limit

    def _reserved(self, count: Callable[[str], int], question: str, claim: str) -> int:
        reserved = getattr(self.scorer, "reserved_tokens", None)
        return int(reserved(question, claim)) if reserved is not None else count(claim)

    def _score(self, triples: list[tuple[str, str, str]]) -> list[float]:
        if not triples:
            return []
        many = getattr(self.scorer, "score_many", None)
        if many is not None:
            return [float(s) for s in many(triples)]
        score = self.scorer.score if hasattr(self.scorer, "score") else self.scorer
        return [float(score(p, h)) for _, p, h in triples]

    def plan(self, item: JudgeInput) -> tuple[list[Any], list[list[Window]], int] | str:
        """(claims, each claim's windows, truncated inputs) of an item, or why it cannot be judged."""
        if not item.context or not item.context.strip():
            return "no context: claim-level judging needs grounding text"
        claims = split_claims(item.answer, min_words=self.min_claim_words)
        if not claims:
            return "no claim: the answer is blank"
        count, limit = self._limit()
        if count is None or limit is None:
            text = item.context.strip()
            lead = len(item.context) - len(item.context.lstrip())
            return claims, [[Window(lead, lead + len(text), text)]] * len(claims), 0
        by_budget: dict[int, tuple[list[Window], list[int]]] = {}
        windows: list[list[Window]] = []
        truncated = 0
        for c in claims:
            reserved = self._reserved(count, item.question, c.text)
            budget = max(MIN_WINDOW_TOKENS, limit - reserved)
            if budget not in by_budget:
                ws = evidence_windows(item.context, count_tokens=count, max_tokens=budget,
                                      overlap_tokens=min(self.overlap_tokens, budget // 2))
                by_budget[budget] = (ws, [count(w.text) for w in ws])
            ws, sizes = by_budget[budget]
            windows.append(ws)
            truncated += sum(reserved + size > limit for size in sizes)
        return claims, windows, truncated

    def _key(self, item: JudgeInput) -> str:
        identity = getattr(self.scorer, "identity", None)
        ident = identity() if identity is not None else {"scorer": self.name}
        return cache_key({"kind": self.kind, **ident}, self.rubric_id, str(VERSION), item.digest(),
                         {"threshold": self.threshold, "overlap_tokens": self.overlap_tokens,
                          "min_claim_words": self.min_claim_words, "max_tokens": self._limit()[1]})

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgment]:
        keys = [self._key(i) for i in items] if self.cache is not None else []
        found = self.cache.get_many(keys) if self.cache is not None else {}
        self.counts["cache_hits"] += len(found)
        plans: dict[int, Any] = {}
        triples: list[tuple[str, str, str]] = []
        for n, item in enumerate(items):
            if keys and keys[n] in found:
                continue
            plan = self.plan(item)
            plans[n] = plan
            if isinstance(plan, str):
                continue
            claims, windows, truncated = plan
            distinct = _distinct(windows)
            self.counts["answers"] += 1
            self.counts["windows"] += len(distinct)
            self.counts["multi_window_answers"] += any(len(ws) > 1 for ws in windows)
            self.counts["truncated_inputs"] += truncated
            triples += [(item.question, w.text, c.text) for c, ws in zip(claims, windows, strict=True) for w in ws]
        scores = iter(self._score(triples))
        self.counts["pairs_scored"] += len(triples)
        out: list[Judgment] = []
        fresh: dict[str, Judgment] = {}
        for n, item in enumerate(items):
            if keys and keys[n] in found:
                out.append(found[keys[n]])
                continue
            plan = plans[n]
            if isinstance(plan, str):
                out.append(Judgment(None, None, None, "", self.name, self.rubric_id, error=plan, error_kind="n/a"))
                continue
            claims, windows, truncated = plan
            j = self._aggregate(claims, windows, [[next(scores) for _ in ws] for ws in windows], truncated)
            out.append(j)
            if keys:
                fresh[keys[n]] = j
        if self.cache is not None and fresh:
            self.cache.put_many(fresh)
        return out

    def _aggregate(self, claims: list[Any], windows: list[list[Window]], by_claim: list[list[float]],
                   truncated: int) -> Judgment:
        support = [max(row) for row in by_claim]
        best = [ws[row.index(s)] for ws, row, s in zip(windows, by_claim, support, strict=True)]
        bad = [{"start": c.start, "end": c.end, "text": c.text, "support": round(s, 6)}
               for c, s in zip(claims, support, strict=True) if s < self.threshold]
        distinct = _distinct(windows)
        raw = json.dumps({"claims": [{"start": c.start, "end": c.end, "support": round(s, 6),
                                      "window": distinct.index((w.start, w.end))}
                                     for c, s, w in zip(claims, support, best, strict=True)],
                          "windows": [list(w) for w in distinct], "truncated_inputs": truncated})
        reason = (f"{len(bad)} of {len(claims)} claim(s) below support {self.threshold:g}" if bad
                  else f"all {len(claims)} claim(s) supported")
        return Judgment(int(bool(bad)), 1.0 - min(support), None, raw, self.name, self.rubric_id, reason=reason,
                        spans=[b["text"] for b in bad] or None, claim_spans=bad, n_windows=len(distinct))

    def describe(self) -> dict[str, Any]:
        identity = getattr(self.scorer, "identity", None)
        return {"name": self.name, "kind": self.kind, "task": self.task, "threshold": self.threshold,
                "rubric": self.rubric_id, "scorer": identity() if identity is not None else
                {"name": getattr(self.scorer, "name", type(self.scorer).__name__)},
                "max_tokens": self._limit()[1],
                "overlap_tokens": self.overlap_tokens, "min_claim_words": self.min_claim_words,
                "counts": dict(self.counts)}


class LexicalPairScorer:
    """Support = the share of the claim's content words found in the window
    (:func:`lab.judge.baselines.lexical_support`); no token limit, so one window per context."""

    name = "lexical"

    def __init__(self, default_threshold: float = 1.0) -> None:
        self.default_threshold = default_threshold

    def score(self, premise: str, hypothesis: str) -> float:
        from lab.judge.baselines import lexical_support

        return lexical_support(hypothesis, premise)

    def identity(self) -> dict[str, Any]:
        return {"scorer": "lexical-support"}


class TokenBudget:
    """What the windowing needs of a cross-encoder's input: its limit, its token count, and the tokens
    of everything but the window (the question, the claim, the lexical hints at their longest (every
    content word of the claim missing) and the special tokens), so question + window + claim fit
    ``max_tokens``. Given a tokenizer and a limit (training plans pairs before a model exists), or
    taken from a loaded model by :class:`CrossEncoderPairScorer`."""

    def __init__(self, tokenizer: Any = None, max_tokens: int | None = None, *, hints: bool = False) -> None:
        self._tok, self._max, self.hints = tokenizer, max_tokens, hints

    def tokenizer(self) -> Any:
        return self._tok

    @property
    def max_tokens(self) -> int:
        return int(self._max) if self._max is not None else int(self.tokenizer().model_max_length)

    def count_tokens(self, text: str) -> int:
        # verbose=False: counting a whole context is not feeding it to the model (no "longer than max" warning)
        return len(self.tokenizer()(text, add_special_tokens=False, verbose=False)["input_ids"])

    def reserved_tokens(self, question: str, hypothesis: str) -> int:
        first = f"question: {question}\ncontext: "
        second = hypothesis
        if self.hints:
            from lab.judge.baselines import content_words

            words = ", ".join(sorted(content_words(hypothesis))) or "(none)"
            second += f"\nnot in context: {words}\nnot in its best sentence: {words}"
        special = self.tokenizer().num_special_tokens_to_add(pair=True)
        return self.count_tokens(first) + self.count_tokens(second) + special


class CrossEncoderPairScorer(TokenBudget):
    """The trained cross-encoder (:class:`lab.judge.trained.CrossEncoderJudge`) as a pair scorer.

    Inputs are the ones it was trained on (:func:`lab.judge.trained.pair_text`: the question and the
    window as context, the claim as answer, with the lexical hints when the model was trained with
    them); support = 1 - its hallucination probability, so its own threshold ``t`` becomes
    ``default_threshold = 1 - t``. A whole-answer judge's threshold was chosen on whole answers; a
    claim-support model's (:mod:`lab.judge.claim_training`) on the answers of its validation part,
    through this judge. The token budget is :class:`TokenBudget`'s, with the model's tokenizer.
    """

    def __init__(self, judge: Any) -> None:
        super().__init__(hints=bool(judge.meta.get("settings", {}).get("lexical_hints")))
        self.judge = judge
        self.name = judge.name
        self.default_threshold = 1.0 - float(judge.threshold)

    def _model(self) -> Any:
        return self.judge._load()   # the judge loads its model once; the pair scorer shares it

    def tokenizer(self) -> Any:
        return self._model().tokenizer

    @property
    def max_tokens(self) -> int:
        """The model's input limit (sentence-transformers' ``max_seq_length``: the trained judge's
        ``max_length`` setting), else its tokenizer's."""
        model = self._model()
        return int(getattr(model, "max_seq_length", None) or model.tokenizer.model_max_length)

    def score_many(self, triples: Sequence[tuple[str, str, str]]) -> list[float]:
        items = [JudgeInput(question=q, answer=h, context=p) for q, p, h in triples]
        return [1.0 - s for s in self.judge.scores(items)]

    def score(self, premise: str, hypothesis: str) -> float:
        return self.score_many([("", premise, hypothesis)])[0]

    def identity(self) -> dict[str, Any]:
        return {"scorer": "cross-encoder", "weights": self.judge.weights, "task": self.judge.task}


def over_trained(folder: Any, name: str) -> ClaimLevelJudge:
    """The claim-level judge over the trained cross-encoder in ``folder`` (its pair scorer), its
    judgments in lab's judgment cache: what ``claims:<trained judge>`` names."""
    from lab.judge.cache import JudgmentCache
    from lab.judge.trained import CrossEncoderJudge

    return ClaimLevelJudge(CrossEncoderPairScorer(CrossEncoderJudge(folder, cache=False)), name=name,
                           cache=JudgmentCache())
