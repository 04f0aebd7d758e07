"""Where the stages' outputs are, for the user-facing defaults of the app floor (the CLI).

The floors below never name a stage's output folder: guardrail checks, judges and the server
receive folders and files as arguments (from params.yaml or the export bundle). A command-line
default that means "what a stage produced" (the guardrails stage's injection classifier, the judge
stage's default judge, the export stage's bundle) is derived here from that stage's ``out_dir`` in
params.yaml, so a changed ``out_dir`` keeps working; a folder that is not there yet is an error
naming the option to pass instead and the command that produces it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import ConfigError

#: Where ``lab serve`` appends feedback by default, against the project root. Serving is not a DVC
#: stage and has no params.yaml section, so this is the one place that names the file.
SERVE_FEEDBACK = Path("results") / "serve" / "feedback.jsonl"
#: Where ``lab label`` keeps the labelling queue's labels by default (as above: no stage owns it).
SERVE_LABELS = Path("results") / "serve" / "labels.jsonl"
#: The trained checks and the stage that trains each one's model.
TRAINED_CHECKS = {"injection": "guardrails_eval", "jailbreak": "guardrails_eval", "toxicity": "guardrails_eval",
                  "grounding": "judge_eval"}


def stage_dir(section: str, root: Path, params_file: str | Path = "params.yaml") -> Path:
    """The output folder of stage ``section``: its ``out_dir`` in ``root / params_file``.

    Raises
    ------
    ConfigError
        The params file or the section is missing or invalid (the message names file and key).
    """
    from lab.config import load_section

    cfg = load_section(section, root / params_file, check_paths=False)
    out = getattr(cfg, "out_dir", None)
    if not out:
        raise ConfigError(f"{root / params_file}: section {section!r} has no out_dir")
    return cfg.resolve(out, root)


def check_model_dir(check: str, root: Path, params_file: str | Path = "params.yaml") -> Path:
    """The folder the pipeline trains check ``check``'s model into (``--model-dir``'s default):
    ``<guardrails_eval out_dir>/models/<check>``, or for ``grounding`` the judge stage's trained
    faithfulness judge.

    Raises
    ------
    ConfigError
        ``check`` has no trained model, or the folder does not exist yet (the message says how to
        produce it, or to pass ``--model-dir``).
    """
    if check not in TRAINED_CHECKS:
        raise ConfigError(f"--check {check}: no trained model to default to; trained checks: "
                          f"{', '.join(TRAINED_CHECKS)}")
    section = TRAINED_CHECKS[check]
    if check == "grounding":
        from lab.handoff.judges import models_dir
        from lab.judge.catalog import TRAINED_NAME

        folder = models_dir(stage_dir(section, root, params_file)) / TRAINED_NAME["grounded"]
    else:
        # the layout lab.studies.guardrails writes: <out_dir>/models/<check>
        folder = stage_dir(section, root, params_file) / "models" / check
    if not folder.is_dir():
        how = "lab guardrails train" if check != "grounding" else "a trained judge's folder"
        raise ConfigError(f"--model-dir not given and the {section} stage's {check} model is not there ({folder}): "
                          f"`dvc repro {section}` produces it, or pass --model-dir DIR ({how})")
    return folder


def judges_dir(root: Path, params_file: str | Path = "params.yaml") -> Path | None:
    """``lab serve --judges``' default: the judge stage's output folder when it holds the judges'
    choice (:mod:`lab.handoff.judges`), else None (the online judges are then the rules only)."""
    from lab.handoff import judges

    try:
        out = stage_dir("judge_eval", root, params_file)
    except ConfigError:
        return None
    return out if judges.path(out).is_file() else None


def route_shares(pairs: list[str]) -> dict[str, float]:
    """``--judge-sample-route ROUTE=SHARE`` values as a mapping.

    Raises
    ------
    ConfigError
        A value that is not ``ROUTE=SHARE`` with a number for the share.
    """
    out: dict[str, float] = {}
    for pair in pairs:
        route, sep, share = pair.partition("=")
        try:
            out[route.strip()] = float(share)
        except ValueError:
            sep = ""
        if not sep or not route.strip():
            raise ConfigError(f"--judge-sample-route {pair!r}: expected ROUTE=SHARE, e.g. /v1/chat/completions=0.5")
    return out


def pii_ner_dir(root: Path, params_file: str | Path = "params.yaml") -> Path:
    """The guardrails stage's fine-tuned PII NER folder (it may not be trained yet)."""
    # the layout lab.studies.guardrails writes: <out_dir>/models/pii_ner
    return stage_dir("guardrails_eval", root, params_file) / "models" / "pii_ner"


def bundle_dir(root: Path, params_file: str | Path = "params.yaml") -> Path:
    """The export stage's serving bundle: ``<export out_dir>/bundle``."""
    return stage_dir("export", root, params_file) / "bundle"


def judge_by_name(name: str, task: str, root: Path, params_file: str | Path = "params.yaml") -> Any:
    """A judge by name over the judge stage's outputs: ``default`` (the stage's choice for ``task``,
    read from its ``judges.json`` by :mod:`lab.handoff.judges`), a trained judge in its models
    folder, a prompted judge at the threshold the stage chose, or any name
    :func:`lab.judge.catalog.make_judge` knows.

    Raises
    ------
    ConfigError
        Unknown name, or no default for ``task`` in the stage's choice.
    DataError
        The stage's ``judges.json`` is missing (for ``default``), old or foreign.
    """
    from lab.config import load_section
    from lab.handoff import judges
    from lab.judge.catalog import judge_names, make_judge

    cfg = load_section("judge_eval", root / params_file, check_paths=False)
    out = cfg.resolve(cfg.out_dir, root)
    models = judges.models_dir(out)
    thresholds: dict[str, dict[str, float]] = {}
    if name == "default":
        choice = judges.read(judges.path(out))
        picked = choice.default.get(task)
        if not picked:
            raise ConfigError(f"{choice.path}: no default {task} judge; `dvc repro judge_eval` chooses it, "
                              f"or name a judge: {', '.join(judge_names(cfg, models))}")
        name, thresholds = picked, choice.thresholds
    elif any(j.name == name for j in cfg.judges) and judges.path(out).is_file():
        thresholds = judges.read(judges.path(out)).thresholds   # the prompted judge's chosen cut
    return make_judge(name, task, cfg, root, models_dir=models, thresholds=thresholds)


def calibrate_labelled_file(path: str | Path, judge_name: str, root: Path, params_file: str | Path = "params.yaml",
                            **options: Any) -> dict[str, Any]:
    """``lab judge calibrate``: :func:`lab.judge.catalog.calibrate_file` with the judge
    :func:`judge_by_name` gives for the file's task (``options``: skip_bad, sample, seed), a labels
    file of the labelling queue read by :func:`lab.judge.production.read_production`, and the
    judge's offline figures (:func:`offline_agreement`) added as ``offline``."""
    from lab.config import load_section
    from lab.data.trace_labels import is_labels_file
    from lab.judge.catalog import calibrate_file

    cfg = load_section("judge_eval", root / params_file, check_paths=False)
    reader: Callable[..., Any] | None = None
    if is_labels_file(path):   # the labelling queue's labels: production keys beside the agreement
        from lab.judge.production import read_production

        reader = read_production
    report = calibrate_file(path, lambda task: judge_by_name(judge_name, task, root, params_file), cfg, root,
                            reader=reader, **options)
    report["offline"] = offline_agreement(cfg.resolve(cfg.out_dir, root), report["task"], report["judge"])
    return report


#: What :func:`offline_agreement` keeps of a judge's entry in the judge stage's calibration report.
OFFLINE_KEYS = ("n", "n_scored", "accuracy", "accuracy_ci", "f1", "kappa", "kappa_ci", "rubric", "below_bar")


def offline_agreement(judge_eval_dir: Path, task: str, judge: str) -> dict[str, Any] | None:
    """The judge's offline figures from the judge stage's ``calibration.json`` (its entries
    ``"<task>/<judge>"`` on the evaluation items and ``"<task>/<judge>/diagnostic"``): per split,
    :data:`OFFLINE_KEYS`, plus ``source``. None when the stage has not calibrated that judge on that
    task; ``{"error": ...}`` when the report is there but unreadable (the calibration goes on)."""
    import json

    report = judge_eval_dir / "calibration.json"
    if not report.is_file():
        return None
    try:
        entries = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {"error": f"{report}: unreadable ({exc}); `dvc repro judge_eval` rewrites it", "source": str(report)}
    out: dict[str, Any] = {}
    for split, key in (("evaluation", f"{task}/{judge}"), ("diagnostic", f"{task}/{judge}/diagnostic")):
        entry = entries.get(key) if isinstance(entries, dict) else None
        if isinstance(entry, dict):
            out[split] = {"split": split, **{k: entry[k] for k in OFFLINE_KEYS if k in entry}}
    return {**out, "source": str(report)} if out else None


def review_inputs(root: Path, params_file: str | Path = "params.yaml") -> tuple[Path, Path]:
    """``lab review``'s defaults: (the testset stage's ``testset.csv``, the ingest stage's ``docs``
    folder), from those stages' ``out_dir`` in params.yaml, or ``results/testset`` and
    ``results/ingest`` when params.yaml has no such section."""
    found = []
    for section, name in (("testset", "testset.csv"), ("ingest", "docs")):
        try:
            found.append(stage_dir(section, root, params_file) / name)
        except ConfigError:
            found.append(root / "results" / section / name)
    return found[0], found[1]
