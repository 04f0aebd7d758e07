"""Judges by name, and the labelled sets of each task, as the ``judge_eval`` section defines them.

Tasks: ``grounded`` (an answer against its context: faithfulness) and ``general`` (a response with
no context: hallucination). :func:`task_sets` gives, for a task, the training items (the local judge
learns from them), the validation items (thresholds and the default judge are chosen on them), the
evaluation items (only reported), and for grounded tasks the length-balanced diagnostic sets built
from the validation and evaluation items (:mod:`lab.judge.counterfactual`). Grounded =
``grounded_train`` split by group into train and validation, ``grounded_eval`` for evaluation;
general = ``general`` split by the hash of each query into a training part and a held-out part
(``general_heldout_fraction``), the training part split again.

:func:`make_judge` builds a judge by name from explicit inputs: ``majority``, ``lexical``, ``length``
(the shortcut baseline), a trained judge (the folder ``<models_dir>/<name>``; the caller names
``models_dir``), a prompted judge of the section's ``judges`` list (at the threshold the caller
passes), ``prompted:MODEL`` for any model spec (a built-in name, a local directory,
``http://host/v1#model``) with the task's built-in rubric, ``ragas:MODEL`` (ragas' faithfulness
through that model; grounded files only), or ``claims:SCORER`` (claim-level judging,
:mod:`lab.judge.claim_judge`; grounded files only) with ``lexical`` or a trained grounded judge as
the pair scorer (:func:`claim_judge`). "The default judge" is the judge stage's choice, an output
of that stage: its file is read by :mod:`lab.handoff.judges`, and the lookup by name over
the stage's outputs lives above this floor (:func:`lab.stage_outputs.judge_by_name`).
:func:`calibrate_file` reports any judge on any labelled file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from lab.config import JudgeEvalConfig
from lab.data.halueval import JudgedItem, read_judged, split_by_group
from lab.errors import ConfigError
from lab.judge.base import Judge
from lab.judge.baselines import LengthJudge, LexicalJudge, MajorityJudge
from lab.judge.calibrate import as_input, calibrate

TASKS = ("grounded", "general")
RUBRIC_OF_TASK = {"grounded": "faithfulness", "general": "hallucination"}
TRAINED_NAME = {"grounded": "faithfulness-cross-encoder", "general": "hallucination-cross-encoder"}


@dataclass
class TaskSets:
    task: str
    train: list[JudgedItem]
    validation: list[JudgedItem]
    evaluation: list[JudgedItem]
    sources: dict[str, str]
    seed: int = 0

    @cached_property
    def diagnostic_validation(self) -> list[JudgedItem]:
        """Grounded: the validation items with their counterfactual answers (length-balanced;
        :func:`lab.judge.counterfactual.diagnostic_set`); empty for tasks without context."""
        return self._diagnostic(self.validation)

    @cached_property
    def diagnostic(self) -> list[JudgedItem]:
        """Grounded: the evaluation items with their counterfactual answers (only reported)."""
        return self._diagnostic(self.evaluation)

    def _diagnostic(self, items: list[JudgedItem]) -> list[JudgedItem]:
        if self.task != "grounded":
            return []
        from lab.judge.counterfactual import diagnostic_set

        return diagnostic_set(items, seed=self.seed)


def task_sets(cfg: JudgeEvalConfig, root: Path, task: str) -> TaskSets:
    """The train / validation / evaluation items of ``task`` (see the module docstring)."""
    if task not in TASKS:
        raise ConfigError(f"unknown judge task {task!r}; known: {', '.join(TASKS)}")
    if task == "grounded":
        train = read_judged(cfg.resolve(cfg.data.grounded_train, root)).items
        evaluation = read_judged(cfg.resolve(cfg.data.grounded_eval, root)).items
        sources = {"train": cfg.data.grounded_train, "evaluation": cfg.data.grounded_eval}
    else:
        items = read_judged(cfg.resolve(cfg.data.general, root)).items
        train, evaluation = split_by_group(items, cfg.data.general_heldout_fraction, seed=cfg.seed)
        sources = {"train": f"{cfg.data.general} (training part)", "evaluation": f"{cfg.data.general} (held-out part)"}
    fit, validation = split_by_group(train, cfg.validation_fraction, seed=cfg.seed + 1)
    return TaskSets(task, fit, validation, evaluation, sources, seed=cfg.seed)


def task_of(items: list[JudgedItem]) -> str:
    """``grounded`` when every item has a context, else ``general``."""
    return "grounded" if all(i.context for i in items) else "general"


def judge_names(cfg: JudgeEvalConfig, models_dir: Path | None = None) -> list[str]:
    """The names :func:`make_judge` knows: baselines, the trained judges in ``models_dir`` (a folder
    each, with ``meta.json``), the section's prompted judges and the two spec forms."""
    trained = sorted(p.name for p in models_dir.iterdir() if (p / "meta.json").is_file()) \
        if models_dir is not None and models_dir.is_dir() else []
    return ["majority", "lexical", "length", *trained, *(j.name for j in cfg.judges), "prompted:MODEL", "ragas:MODEL",
            *(f"claims:{s}" for s in claim_scorer_names(models_dir))]


def claim_scorer_names(models_dir: Path | None = None) -> list[str]:
    """The pair scorers ``claims:NAME`` takes: ``lexical`` and the grounded trained judges in ``models_dir``."""
    trained = sorted(p.name for p in models_dir.iterdir() if (p / "meta.json").is_file()
                     and json.loads((p / "meta.json").read_text(encoding="utf-8")).get("task") == "grounded") \
        if models_dir is not None and models_dir.is_dir() else []
    return ["lexical", *trained]


def fitted_lexical(cfg: JudgeEvalConfig, root: Path) -> LexicalJudge:
    """The lexical baseline with its threshold fitted on the grounded training items."""
    sets = task_sets(cfg, root, "grounded")
    return LexicalJudge().fit([as_input(i) for i in sets.train], [i.label for i in sets.train])


def make_judge(name: str, task: str, cfg: JudgeEvalConfig, root: Path, *, models_dir: Path | None = None,
               thresholds: Mapping[str, Mapping[str, float]] | None = None) -> Judge:
    """The judge ``name`` for ``task`` (see the module docstring).

    Parameters
    ----------
    cfg, root : the ``judge_eval`` section and the project root (baselines fit on its training data).
    models_dir : the folder of trained judges (``<models_dir>/<name>/meta.json``); None: none.
    thresholds : judge name -> task -> threshold for the prompted judges (chosen on validation items).

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones) or a trained judge not built yet.
    """
    from lab.judge.prompted import PromptedJudge
    from lab.judge.trained import CrossEncoderJudge

    if name == "majority":
        sets = task_sets(cfg, root, task)
        return MajorityJudge().fit([as_input(i) for i in sets.train], [i.label for i in sets.train])
    if name == "lexical":
        return fitted_lexical(cfg, root)
    if name == "length":
        sets = task_sets(cfg, root, task)
        return LengthJudge().fit([as_input(i) for i in sets.train], [i.label for i in sets.train])
    folder = models_dir / name if models_dir is not None else None
    if folder is not None and (folder / "meta.json").is_file():
        return CrossEncoderJudge(folder)
    threshold = (thresholds or {}).get(name, {}).get(task)
    for spec in cfg.judges:
        if spec.name == name:
            return PromptedJudge(name, RUBRIC_OF_TASK[task], spec.backend, threshold=threshold)
    if name.startswith("prompted:") and len(name) > len("prompted:"):
        return PromptedJudge(name, RUBRIC_OF_TASK[task], {"model": name.split(":", 1)[1]})
    if name.startswith("ragas:") and len(name) > len("ragas:"):
        if task != "grounded":
            raise ConfigError(f"{name}: ragas' faithfulness needs grounding text; this file has none")
        from lab.judge.ragas_bridge import RagasFaithfulnessJudge

        return RagasFaithfulnessJudge(name, {"model": name.split(":", 1)[1]})
    if name.startswith("claims:"):
        return claim_judge(name, task, cfg, root, models_dir=models_dir)
    if name in TRAINED_NAME.values():
        raise ConfigError(f"trained judge {name!r} is not built yet ({folder or 'no models folder given'} "
                          f"missing): `dvc repro judge_eval` trains it")
    raise ConfigError(f"unknown judge {name!r}; known: {', '.join(judge_names(cfg, models_dir))}")


def claim_judge(name: str, task: str, cfg: JudgeEvalConfig, root: Path, *, models_dir: Path | None = None) -> Judge:
    """``claims:SCORER``: a :class:`lab.judge.claim_judge.ClaimLevelJudge` over the pair scorer
    ``SCORER`` (:func:`claim_scorer_names`). ``lexical``: support = the claim's share of content words
    in the window, threshold 1 - the lexical baseline's (fitted on the grounded training items); a
    trained judge: :class:`lab.judge.claim_judge.CrossEncoderPairScorer`, its judgments cached.

    Raises
    ------
    ConfigError
        A task without grounding text, or an unknown scorer (the message lists the known ones).
    """
    from lab.judge.claim_judge import ClaimLevelJudge, LexicalPairScorer, over_trained

    scorer_name = name.split(":", 1)[1]
    if task != "grounded":
        raise ConfigError(f"{name}: claim-level judging checks claims against grounding text; this file has none")
    if scorer_name == "lexical":
        threshold = fitted_lexical(cfg, root).threshold
        return ClaimLevelJudge(LexicalPairScorer(1.0 - float(threshold if threshold is not None else 0.5)),
                               name=name)
    folder = models_dir / scorer_name if models_dir is not None and scorer_name else None
    if folder is not None and scorer_name in claim_scorer_names(models_dir):
        return over_trained(folder, name)
    if scorer_name in TRAINED_NAME.values():
        raise ConfigError(f"{name}: trained judge {scorer_name!r} is not built yet ({folder or 'no models folder given'} "
                          f"missing): `dvc repro judge_eval` trains it")
    raise ConfigError(f"unknown claim scorer {scorer_name!r} in {name!r}; known: "
                      f"{', '.join('claims:' + s for s in claim_scorer_names(models_dir))} "
                      f"(a trained grounded judge is a folder with meta.json in {models_dir or 'the models folder'})")


def calibrate_file(path: str | Path, judge_for: Callable[[str], Judge], cfg: JudgeEvalConfig, root: Path, *,
                   skip_bad: bool = False, sample: int | None = None, seed: int = 0,
                   reader: Callable[..., tuple[Any, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """``lab judge calibrate``: read any labelled judgment file, judge it with ``judge_for(task)``
    (the file's task: :func:`task_of`), report (:func:`lab.judge.calibrate.calibrate`).
    ``reader(path, skip_bad=, n_resamples=, seed=)`` reads a file of another kind into (a
    :class:`~lab.data.halueval.JudgedSet`, keys added to the report): the labelling queue's labels
    file (:func:`lab.judge.production.read_production`); default :func:`lab.data.halueval.read_judged`.

    The lexical baseline's threshold is fitted on the project's grounded TRAINING items
    (``judge_eval.data.grounded_train``), never on the file. ``sample`` judges a seeded sample of
    the items (its size is in ``n``, the file's size in ``n_file_items``)."""
    import random

    from lab.data.halueval import read_judged

    extra: dict[str, Any] = {}
    if reader is not None:
        data, extra = reader(path, skip_bad=skip_bad, n_resamples=cfg.n_resamples, seed=seed)
    else:
        data = read_judged(path, skip_bad=skip_bad)
    items = list(data.items)
    if sample is not None and sample < len(items):
        items = random.Random(seed).sample(items, sample)
    task = task_of(items)
    judge = judge_for(task)
    lexical = fitted_lexical(cfg, root) if task == "grounded" else None
    report = calibrate(judge, items, lexical=lexical, bar=cfg.agreement_bar, n_resamples=cfg.n_resamples,
                       seed=seed)
    report.update({"file": str(path), "format": data.format, "task": task, "n_file_items": len(data.items),
                   "records": data.n_records, "skipped": len(data.skipped), "skipped_records": data.skipped[:50],
                   "sampled": sample is not None and sample < len(data.items), **extra})
    return report
