"""The context side of a policy: retrieved passages checked before they reach the prompt.

A RAG prompt carries documents the user did not write; an instruction planted in one of them
(indirect prompt injection) reaches the model unless the passages are checked too. The policy's
``context`` rules run on each passage (:meth:`lab.guardrails.policy.Policy.apply_context`) with
three actions: ``drop`` (removed), ``neutralise`` (:func:`neutralise`) and ``warn`` (kept, flagged).

Neutralising fences the passage rather than cutting sentences out of it. Cutting needs the
check to say where the instruction is, and a classifier only gives a window (and rules only their
own phrasings); a paraphrase it scored as a whole would stay behind while the passage looked clean.
A fence loses nothing the answer may need (a planted sentence often sits in an otherwise relevant
document), says plainly that what follows is quoted data from an untrusted document, and cannot be
closed from inside: runs of three or more ``<`` or ``>`` in the passage are shortened, so it cannot
write the end marker itself. It is the delimiting form of "spotlighting" (Hines et al., 2024); it
lowers the chance that a model follows the instruction but does not remove it, so ``drop`` is the
action for a policy that must not let the text through at all.

:func:`evaluate_context` measures a policy's context side on labelled passages, for a study. The
fence itself lives with the policy that applies it (:func:`lab.guardrails.policy.neutralise`);
``lab.guardrails`` does not import this module, so the guardrails stage's code deps do not grow
until a study calls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from lab.guardrails.policy import FENCE_CLOSE, FENCE_OPEN, neutralise  # noqa: F401  (the context side's fence, here for readers)


class ContextPolicy(Protocol):
    """What :func:`evaluate_context` needs of a policy (a :class:`lab.guardrails.policy.Policy`)."""

    id: str | None

    def apply_context(self, passages: Sequence[str], *, route: str | None = None) -> Any: ...


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def evaluate_context(policy: ContextPolicy, passages: Sequence[str], labels: Sequence[int]) -> dict[str, Any]:
    """The policy's context side on labelled passages (1: a planted instruction, 0: clean).

    Returns
    -------
    dict
        ``n``, ``planted``, ``clean``; ``caught`` (planted passages given any action: dropped,
        neutralised or flagged) and ``caught_share``; ``planted_dropped`` and its share;
        ``clean_dropped`` and ``clean_dropped_share`` (clean passages lost to the prompt);
        ``clean_flagged`` and its share (clean passages given any action); ``exempted`` (decisions
        an exception let through); ``actions`` (passages per action, by label). A share is None
        when its denominator is 0.

    Raises
    ------
    ValueError
        ``passages`` and ``labels`` differ in length, or a label is not 0 or 1.
    """
    if len(passages) != len(labels):
        raise ValueError(f"evaluate_context: {len(passages)} passages but {len(labels)} labels")
    if any(label not in (0, 1) for label in labels):
        raise ValueError("evaluate_context: labels must be 0 (clean) or 1 (planted)")
    result = policy.apply_context(list(passages))
    actions: dict[str, dict[str, int]] = {"planted": {}, "clean": {}}
    caught = planted_dropped = clean_dropped = clean_flagged = exempted = 0
    for p, label in zip(result.passages, labels, strict=True):
        kind = "planted" if label else "clean"
        actions[kind][p.action] = actions[kind].get(p.action, 0) + 1
        exempted += sum(o.action == "exempt" for o in p.outcomes)
        if label:
            caught += p.action != "keep"
            planted_dropped += p.action == "drop"
        else:
            clean_flagged += p.action != "keep"
            clean_dropped += p.action == "drop"
    planted = sum(labels)
    clean = len(labels) - planted
    return {"n": len(labels), "planted": planted, "clean": clean,
            "caught": caught, "caught_share": _share(caught, planted),
            "planted_dropped": planted_dropped, "planted_dropped_share": _share(planted_dropped, planted),
            "clean_dropped": clean_dropped, "clean_dropped_share": _share(clean_dropped, clean),
            "clean_flagged": clean_flagged, "clean_flagged_share": _share(clean_flagged, clean),
            "exempted": exempted, "actions": actions, "policy": policy.id}
