"""Judges by name, and the labelled sets of each task, as the ``judge_eval`` section defines them.

Tasks: ``grounded`` (an answer against its context: faithfulness) and ``general`` (a response with
no context: hallucination). :func:`task_sets` gives, for a task, the training items (the local judge
learns from them), the validation items (thresholds and the default judge are chosen on them), the
evaluation items (only reported), and for grounded tasks the length-balanced diagnostic sets built
from the validation and evaluation items (:mod:`lab.judge.counterfactual`). Grounded =
``grounded_train`` split by group into train and validation, ``grounded_eval`` for evaluation;
general = ``general`` split by the hash of each query into a training part and a held-out part
(``general_heldout_fraction``), the training part split again.

:func:`make_judge` names: ``default`` (the stage's choice per task, in ``<out_dir>/judges.json``),
``majority``, ``lexical``, ``length`` (the shortcut baseline), a trained judge
(``<out_dir>/models/<name>``), a prompted judge of the section's ``judges`` list, ``prompted:MODEL``
for any model spec (a built-in name, a local directory, ``http://host/v1#model``) with the task's
built-in rubric, or ``ragas:MODEL`` (ragas' faithfulness through that model; grounded files only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from lab.config import JudgeEvalConfig, load_section
from lab.data.halueval import JudgedItem, read_judged, split_by_group
from lab.errors import ConfigError
from lab.judge.base import Judge
from lab.judge.baselines import LengthJudge, LexicalJudge, MajorityJudge

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


def _choices(cfg: JudgeEvalConfig, root: Path) -> dict[str, Any]:
    p = root / cfg.out_dir / "judges.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def judge_names(cfg: JudgeEvalConfig, root: Path) -> list[str]:
    models = root / cfg.out_dir / "models"
    trained = sorted(p.name for p in models.iterdir() if (p / "meta.json").is_file()) if models.is_dir() else []
    return ["default", "majority", "lexical", "length", *trained, *(j.name for j in cfg.judges), "prompted:MODEL", "ragas:MODEL"]


def fitted_lexical(cfg: JudgeEvalConfig, root: Path) -> LexicalJudge:
    """The lexical baseline with its threshold fitted on the grounded training items."""
    sets = task_sets(cfg, root, "grounded")
    from lab.judge.calibrate import as_input

    return LexicalJudge().fit([as_input(i) for i in sets.train], [i.label for i in sets.train])


def make_judge(name: str, task: str, *, root: Path | None = None, params_file: str | Path = "params.yaml",
               cfg: JudgeEvalConfig | None = None) -> Judge:
    """The judge ``name`` for ``task`` (see the module docstring).

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones) or no stage output for ``default``.
    """
    from lab.judge.calibrate import as_input
    from lab.judge.prompted import PromptedJudge
    from lab.judge.trained import CrossEncoderJudge
    from lab.paths import project_root

    root = root or project_root()
    cfg = cfg or load_section("judge_eval", root / params_file, check_paths=False)
    chosen = _choices(cfg, root)
    if name == "default":
        picked = chosen.get("default", {}).get(task)
        if not picked:
            raise ConfigError(f"no default {task} judge yet: `dvc repro judge_eval` chooses it "
                              f"(it writes {cfg.out_dir}/judges.json); or name a judge: "
                              f"{', '.join(judge_names(cfg, root)[1:])}")
        return make_judge(picked, task, root=root, cfg=cfg)
    if name == "majority":
        sets = task_sets(cfg, root, task)
        return MajorityJudge().fit([as_input(i) for i in sets.train], [i.label for i in sets.train])
    if name == "lexical":
        return fitted_lexical(cfg, root)
    if name == "length":
        sets = task_sets(cfg, root, task)
        return LengthJudge().fit([as_input(i) for i in sets.train], [i.label for i in sets.train])
    folder = root / cfg.out_dir / "models" / name
    if (folder / "meta.json").is_file():
        return CrossEncoderJudge(folder)
    threshold = chosen.get("thresholds", {}).get(name, {}).get(task)
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
    if name in TRAINED_NAME.values():
        raise ConfigError(f"trained judge {name!r} is not built yet ({folder} missing): `dvc repro judge_eval` trains it")
    raise ConfigError(f"unknown judge {name!r}; known: {', '.join(judge_names(cfg, root))}")
