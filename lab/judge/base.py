"""What every judge shares: the input, the judgment, the protocol, the registry, the tally.

A judge maps :class:`JudgeInput` items to :class:`Judgment` s, one per item and in order. A judgment
always carries the judge's name, the rubric id (``name@vN``) and the raw output; a verdict that
could not be read is ``verdict=None`` with ``error`` set and counted by :func:`tally`, never a NaN.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from lab.registry import Registry


@dataclass(frozen=True)
class JudgeInput:
    """One thing to judge. Which fields a rubric needs is its task's (see :data:`lab.judge.rubric.TASK_INPUTS`)."""

    question: str = ""
    answer: str = ""
    context: str | None = None
    reference: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def digest(self) -> str:
        """sha256 (32 hex) of the canonical JSON of the fields: the input part of a cache key."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class Judgment:
    """One verdict.

    Attributes
    ----------
    verdict : int or None
        1 = the rubric's positive class (hallucinated, unfaithful, wrong); None = no verdict (see error).
    score : float or None
        Probability of the positive class where the judge gives one (choice log-probabilities,
        a classifier), else None.
    label : str or None
        The verdict word as the judge gave it.
    raw : str
        The judge's raw output (for a choice: the chosen word and the log-probabilities).
    judge, rubric : str
        The judge's name and the rubric id ``name@vN`` (``-`` for judges without a rubric).
    reason : str
    spans : list of str
        The offending phrases as text (a prompted judge's JSON ``spans``; the claim-level judge's
        unsupported claims).
    repaired : bool
        The verdict was read only after the repair attempt.
    error : str or None
        Why there is no verdict (parse failure, or the backend failed after its retries).
    error_kind : str or None
        ``"parse"`` or ``"generation"``.
    cached : bool
        Read from the judgment cache.
    latency_s : float
    claim_spans : list of dict
        Claim-level judges: the unsupported claims, each ``{"start", "end", "text", "support"}``
        with character offsets into the answer (:mod:`lab.judge.claim_judge`); empty otherwise.
    n_windows : int or None
        Claim-level judges: how many evidence windows the context was read in; None otherwise.
    """

    verdict: int | None
    score: float | None
    label: str | None
    raw: str
    judge: str
    rubric: str
    reason: str = ""
    spans: list[str] | None = None
    repaired: bool = False
    error: str | None = None
    error_kind: str | None = None
    cached: bool = False
    latency_s: float = 0.0
    claim_spans: list[dict[str, Any]] = field(default_factory=list)
    n_windows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; ``claim_spans`` and ``n_windows`` only where a claim-level judge set
        them, so the judgments (and cache entries) of every other judge keep their keys."""
        d = asdict(self)
        if not d["claim_spans"]:
            del d["claim_spans"]
        if d["n_windows"] is None:
            del d["n_windows"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Judgment:
        return cls(**d)


@runtime_checkable
class Judge(Protocol):
    """A judge: ``name``, ``rubric`` id, ``task``, and ``judge(items) -> judgments``."""

    name: str
    rubric_id: str
    task: str

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgment]: ...

    def describe(self) -> dict[str, Any]: ...


#: Judge kinds: ``prompted`` (a rubric through lab.generate), ``cross-encoder`` (trained locally),
#: ``lexical`` and ``majority`` (baselines). Plugins: entry-point group ``lab.judges``.
JUDGES: Registry[type] = Registry("judges", item="judge kind")


def tally(judgments: Sequence[Judgment]) -> dict[str, int]:
    """Counts for reports: ``n``, ``verdicts``, ``parse_failures``, ``generation_failures``,
    ``repaired``, ``cache_hits``."""
    return {"n": len(judgments),
            "verdicts": sum(j.verdict is not None for j in judgments),
            "parse_failures": sum(j.error_kind == "parse" for j in judgments),
            "generation_failures": sum(j.error_kind == "generation" for j in judgments),
            "repaired": sum(j.repaired for j in judgments),
            "cache_hits": sum(j.cached for j in judgments)}
