"""The model judge of the red team, and its calibrated agreement as the judge stage stated it.

Where no rule sees exact evidence (an off-topic task done), a grounded judge of :mod:`lab.judge`
decides whether the answer is supported by the passages the gateway retrieved for it: the domain
assistant answers from its documents, so an answer they do not support was made beyond them
(verdict 1, "unfaithful"). The judge is named by the ``redteam`` section: ``default`` (the judge
stage's grounded choice in ``<judge_dir>/judges.json``, :mod:`lab.handoff.judges`), the name of a
trained judge in ``<judge_dir>/models``, or a trained judge's folder.

The judge's agreement with human labels is read from the same file: its Cohen's kappa on the judge
stage's validation items (``validation_kappa``) and the stage's ``agreement_bar``. A judge the file
does not hold is reported "not calibrated".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import ConfigError

#: The categories a judge decides with the rules, and what its verdict 1 means there.
JUDGED: dict[str, str] = {"off_topic": "the answer is not supported by the passages the gateway retrieved"}
#: The judge task the red team uses (an answer against its context).
TASK = "grounded"


@dataclass(frozen=True)
class JudgeInfo:
    """What the report says about the judge: its name, its calibrated agreement, and where that came from."""

    name: str | None
    kappa: float | None = None
    bar: float | None = None
    source: str = ""

    @property
    def calibrated(self) -> bool:
        return self.kappa is not None

    def agreement(self) -> str:
        """The agreement in words (``"not calibrated"`` when the judge stage did not measure it)."""
        if self.name is None:
            return "no judge (rules only)" + (f": {self.source}" if self.source else "")
        if self.kappa is None:
            return f"{self.name}: not calibrated"
        below = self.bar is not None and self.kappa < self.bar
        bar = f", {'below' if below else 'at or above'} the agreement bar {self.bar:g}" if self.bar is not None else ""
        return f"{self.name}: Cohen's kappa {self.kappa:.3f} with human labels on {self.source}{bar}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kappa": self.kappa, "bar": self.bar, "source": self.source,
                "agreement": self.agreement()}


def _trained(folder: Path) -> bool:
    return (folder / "meta.json").is_file()


def load_judge(spec: str | None, judge_dir: Path | None) -> tuple[Any, JudgeInfo]:
    """The judge ``spec`` names and what is known of its agreement (see the module docstring);
    ``(None, JudgeInfo(None))`` for no judge.

    Raises
    ------
    ConfigError
        ``default`` without the judge stage's ``judges.json``, or a name that is neither a trained
        judge in ``<judge_dir>/models`` nor a trained judge's folder (the message lists the trained
        judges there).
    DataError
        ``judges.json`` is unreadable, old or foreign (:func:`lab.handoff.judges.read`).
    """
    if spec is None:
        return None, JudgeInfo(None)
    from lab.handoff import judges

    choice = None
    if judge_dir is not None and judges.path(judge_dir).is_file():
        choice = judges.read(judges.path(judge_dir))
    name = spec
    if spec == "default":
        if choice is None:
            raise ConfigError(f"redteam.judge 'default': {judges.path(judge_dir or Path('.'))} is missing; "
                              f"`{judges.REGENERATE}` writes it; for rules only set redteam.judge to null "
                              "(lab redteam: --judge none)")
        name = choice.default.get(TASK) or ""
        if not name:
            raise ConfigError(f"{choice.path}: no default {TASK} judge; `{judges.REGENERATE}` chooses it")
    claim_level = name.startswith("claims:")   # the claim-level form of a trained judge: its pair scorer's folder
    name = name.removeprefix("claims:")
    models = judges.models_dir(judge_dir) if judge_dir is not None else None
    if spec == "default" and not _trained(models / name if models is not None else Path(name)):
        # the stage chose a rule (e.g. lexical, its threshold fitted inside the stage) over the
        # trained judges: the red team's rules already judge by exact evidence, so it says so
        return None, JudgeInfo(None, source=f"the judge stage's default {TASK} judge is {name!r}, not a trained "
                                            f"model ({choice.path.name}); the rules decide alone")
    folder = Path(name)
    if not _trained(folder) and models is not None:
        folder = models / name
    if not _trained(folder):
        known = sorted(p.name for p in models.iterdir() if _trained(p)) if models is not None and models.is_dir() else []
        raise ConfigError(f"redteam.judge {spec!r}: no trained judge {name!r} (a folder with meta.json, or one of "
                          f"{', '.join(known) or 'none yet'} in {models}); `{judges.REGENERATE}` trains them")
    from lab.judge.trained import CrossEncoderJudge

    judge = CrossEncoderJudge(folder)
    if judge.task != TASK:
        raise ConfigError(f"redteam.judge {spec!r}: {folder} judges the {judge.task!r} task; the red team needs a "
                          f"{TASK!r} judge (an answer against its passages)")
    if claim_level:
        from lab.judge.claim_judge import over_trained

        claims = over_trained(folder, f"claims:{judge.name}")
        return claims, info_from_choice(claims.name, choice)
    return judge, info_from_choice(judge.name, choice)


def info_from_choice(name: str, choice: Any) -> JudgeInfo:
    """The agreement of judge ``name`` as the judges' choice (:class:`lab.handoff.judges.JudgesChoice`,
    or None) states it: its validation kappa on the grounded task, and the stage's bar."""
    if choice is None:
        return JudgeInfo(name)
    kappa = (choice.data.get("validation_kappa") or {}).get(TASK, {}).get(name)
    bar = choice.data.get("agreement_bar")
    return JudgeInfo(name, float(kappa) if kappa is not None else None, float(bar) if bar is not None else None,
                     f"the judge stage's validation items ({choice.path.name})")


def judge_answers(judge: Any, items: Sequence[tuple[str, str, str]]) -> list[int | None]:
    """The judge's verdict on each ``(question, answer, context)`` (1: not supported by the context;
    None: no verdict, e.g. an empty context)."""
    if judge is None or not items:
        return [None] * len(items)
    from lab.judge.base import JudgeInput

    todo = [i for i, (_, a, c) in enumerate(items) if a.strip() and c.strip()]
    out: list[int | None] = [None] * len(items)
    if todo:
        got = judge.judge([JudgeInput(question=items[i][0], answer=items[i][1], context=items[i][2]) for i in todo])
        for i, j in zip(todo, got, strict=True):
            out[i] = j.verdict
    return out
