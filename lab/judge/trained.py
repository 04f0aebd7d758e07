"""The trained local judge: a cross-encoder fine-tuned on labelled judgments, offline.

A prompted 135M model is useless as a judge (``../shared/NOTES.md``): this trains one instead.
An embedding model from the model store (default all-MiniLM-L6-v2) gets a one-logit head and is
fine-tuned with sentence-transformers' :class:`CrossEncoderTrainer` (binary cross-entropy) on
pairs ``("question: … context: …", answer)`` (``context`` left out for ungrounded tasks), label 1 =
hallucinated / unfaithful. The decision threshold is chosen on a VALIDATION part of the training
items (split by group, so a seed's pair of answers never straddles it; kappa-optimal), and stored
with the model in ``meta.json`` together with the validation agreement, the training data's
sha256, the base model's revision and the library versions. The folder is written atomically.

Scores are cached in the judgment cache keyed by the weights' content digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.config import TrainedJudgeSpec
from lab.errors import LabError, ModelNotAvailableError
from lab.judge.base import JUDGES, JudgeInput, Judgment
from lab.judge.cache import JudgmentCache, cache_key

log = logging.getLogger(__name__)
META = "meta.json"
_DEFAULT_SETTINGS = TrainedJudgeSpec()   # frozen: safe to share as a default


def settings_record(settings: TrainedJudgeSpec, seed: int) -> dict[str, Any]:
    """What ``meta.json`` records as the model's settings (and a rerun compares to reuse the model):
    the params model of ``judge_eval.trained`` (:class:`lab.config.TrainedJudgeSpec`, the one
    definition of these settings) and the stage's seed."""
    return {**settings.model_dump(mode="json"), "seed": seed}


def pair_text(item: JudgeInput, task: str, *, lexical_hints: bool = False) -> tuple[str, str]:
    """The cross-encoder's two inputs for an item (the same at training and at judging).

    With ``lexical_hints`` (grounded items), the answer is followed by the content words of the
    answer that the context does not contain (:func:`lab.judge.baselines.content_words`), then by
    those that the context sentence holding most of them does not contain
    (:func:`lab.judge.baselines.missing_from_best_sentence`): the model sees the lexical-support
    evidence, at the level of the context and of one sentence, and learns when it matters, instead
    of having to find word overlap itself from a few hundred examples. The sentence line is what
    catches a wrong entity of the context put next to the question's words (measured on the
    HaluEval training items' validation part: +0.019 accuracy over the context line alone, 2026-12-05)."""
    first = f"question: {item.question}"
    second = item.answer
    if task != "general" and item.context:
        first += f"\ncontext: {item.context}"
        if lexical_hints:
            from lab.judge.baselines import content_words, missing_from_best_sentence

            missing = sorted(content_words(item.answer) - content_words(item.context))
            second += f"\nnot in context: {', '.join(missing) if missing else '(none)'}"
            apart = missing_from_best_sentence(item.answer, item.context)
            second += f"\nnot in its best sentence: {', '.join(apart) if apart else '(none)'}"
    return first, second


def _digest(pairs: Sequence[tuple[str, str]], labels: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps([list(map(list, pairs)), list(labels)]).encode()).hexdigest()[:16]


def train_cross_encoder(train: Sequence[JudgeInput], train_labels: Sequence[int],
                        validation: Sequence[JudgeInput], validation_labels: Sequence[int], *,
                        task: str, out_dir: str | Path, name: str, settings: TrainedJudgeSpec = _DEFAULT_SETTINGS,
                        seed: int = 0,
                        sources: Sequence[str] = (), augmented: Sequence[JudgeInput] = (),
                        augmented_labels: Sequence[int] = ()) -> CrossEncoderJudge:
    """Fine-tune, choose the threshold on ``validation``, save to ``out_dir``; return the judge.

    ``seed`` seeds the head, the data order and the trainer. ``augmented`` items (counterfactual answers, :mod:`lab.judge.counterfactual`, named in
    ``settings.augment``) are trained on with ``train``; the recorded data digest is of ``train``."""
    import sentence_transformers
    import torch
    import transformers
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers.trainer_callback import PrinterCallback

    from lab.io import remove_dir, replace_dir
    from lab.metrics.agreement import agreement, best_threshold
    from lab.models import resolve

    if len(set(train_labels)) != 2 or len(set(validation_labels)) != 2:
        raise LabError(f"{name}: training and validation items need both labels")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    ref = resolve(settings.model)
    transformers.set_seed(seed)
    model = CrossEncoder(str(ref.path), num_labels=1, max_length=settings.max_length, device="cpu"
                         if not torch.cuda.is_available() else "cuda")
    train, train_labels = list(train), list(train_labels)
    hints = settings.lexical_hints
    data_digest = _digest([pair_text(i, task) for i in train], train_labels)   # before augmentation
    n_given = len(train)
    train, train_labels = train + list(augmented), train_labels + list(augmented_labels)
    pairs = [pair_text(i, task, lexical_hints=hints) for i in train]
    data = Dataset.from_dict({"first": [a for a, _ in pairs], "second": [b for _, b in pairs],
                              "label": [float(y) for y in train_labels]})
    out = Path(out_dir)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    remove_dir(tmp)
    args = CrossEncoderTrainingArguments(
        output_dir=str(tmp / "trainer"), num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size, learning_rate=settings.learning_rate,
        warmup_steps=max(1, int(0.1 * settings.epochs * len(pairs) / settings.batch_size)),
        seed=seed, data_seed=seed, save_strategy="no", report_to="none", disable_tqdm=True,
        logging_steps=max(1, len(pairs) // settings.batch_size // 4), use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=BinaryCrossEntropyLoss(model),
                                  callbacks=[_progress_callback(name)])
    # with its tqdm bar off the Trainer prints every log dict to stdout (PrinterCallback), which
    # lands in the stage's notebook and report; the loss is on lab's bar instead
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    remove_dir(tmp / "trainer")
    val_scores = [float(s) for s in model.predict([pair_text(i, task, lexical_hints=hints) for i in validation],
                                                  batch_size=32, show_progress_bar=False)]
    threshold = best_threshold(validation_labels, val_scores)
    val = agreement(validation_labels, [int(s >= threshold) for s in val_scores])
    model.save(str(tmp / "model"))
    meta = {"name": name, "kind": "cross-encoder", "task": task, "threshold": threshold,
            "threshold_rule": "kappa-optimal on the validation part of the training items",
            "validation": {k: val[k] for k in ("n", "accuracy", "f1", "kappa")},
            "n_train": n_given, "n_augmented": len(pairs) - n_given, "train_positives": int(sum(train_labels)),
            "train_data_sha256": data_digest, "sources": list(sources),
            "base_model": {"spec": settings.model, "revision": ref.revision},
            "settings": settings_record(settings, seed), "code": training_code_id(), "versions": {"sentence_transformers": sentence_transformers.__version__,
                                                        "transformers": transformers.__version__,
                                                        "torch": torch.__version__}}
    (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    replace_dir(tmp, out)
    return CrossEncoderJudge(out)


def _progress_callback(name: str) -> Any:
    """Training steps and loss on lab's progress bar (the terminal of ``dvc repro``, the stage log):
    inside a notebook kernel the Trainer's own bar is an HTML widget that nobody watching the
    pipeline sees, so it is switched off (``disable_tqdm``) and this one drives lab's."""
    from transformers import TrainerCallback

    from lab.progress import bar

    class _Progress(TrainerCallback):
        def __init__(self) -> None:
            self.bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.bar = bar(total=state.max_steps, desc=f"train {name}", unit="step")

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.update(1)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.close()

    return _Progress()


def training_code_id() -> str:
    """Hash of the code that trains and feeds the model: this module, the content-word rule of the
    lexical hints (:mod:`lab.judge.baselines`) and the counterfactual answers (:mod:`lab.judge.counterfactual`). Not the import closure: that holds the whole
    judge package and the generation backends, whose edits do not change a cross-encoder."""
    from lab.judge import baselines, counterfactual

    h = hashlib.sha256()
    for f in (Path(__file__), Path(baselines.__file__), Path(counterfactual.__file__)):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


@JUDGES.register("cross-encoder")
class CrossEncoderJudge:
    """A trained cross-encoder judge loaded from its folder (see :func:`train_cross_encoder`)."""

    kind = "cross-encoder"

    def __init__(self, folder: str | Path, *, name: str | None = None, threshold: float | None = None,
                 cache: JudgmentCache | None | bool = None, batch_size: int = 32) -> None:
        self.folder = Path(folder)
        meta_file = self.folder / META
        if not meta_file.is_file():
            raise ModelNotAvailableError(
                f"no trained judge at {self.folder} ({META} missing): train it with `dvc repro judge_eval` "
                f"(or `lab run judge_eval`)")
        self.meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        self.name = name or self.meta["name"]
        self.task = self.meta["task"]
        self.threshold = float(self.meta["threshold"] if threshold is None else threshold)
        from lab.models import weights_digest

        self.weights = weights_digest(self.folder / "model")
        self.rubric_id = f"{self.meta['name']}@{self.weights[:8]}"
        self.cache = JudgmentCache() if cache is None or cache is True else (cache or None)
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            import torch
            from sentence_transformers.cross_encoder import CrossEncoder

            self._model = CrossEncoder(str(self.folder / "model"), device="cuda" if torch.cuda.is_available() else "cpu")
        return self._model

    def scores(self, items: Sequence[JudgeInput]) -> list[float]:
        hints = bool(self.meta.get("settings", {}).get("lexical_hints"))
        return [float(s) for s in self._load().predict([pair_text(i, self.task, lexical_hints=hints) for i in items],
                                                      batch_size=self.batch_size, show_progress_bar=False)]

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgment]:
        keys = [cache_key({"kind": self.kind, "weights": self.weights}, self.rubric_id, self.weights,
                          i.digest(), {"task": self.task}) for i in items]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        todo = [n for n, k in enumerate(keys) if k not in found]
        fresh: dict[str, Judgment] = {}
        if todo:
            for n, s in zip(todo, self.scores([items[n] for n in todo]), strict=True):
                fresh[keys[n]] = Judgment(int(s >= self.threshold), s, None, f"{s:.6f}", self.name, self.rubric_id)
            if self.cache is not None:
                self.cache.put_many(fresh)
        out = [found.get(k) or fresh[k] for k in keys]
        for j in out:   # the threshold may differ from the one a cached score was judged with
            j.verdict = int(j.score >= self.threshold) if j.score is not None else j.verdict
        return out

    def describe(self) -> dict[str, Any]:
        """What a report records about this judge: the folder by name only (its path is this
        machine's; the weights' digest pins the model), so committed reports match across machines."""
        return {"name": self.name, "kind": self.kind, "task": self.task, "threshold": self.threshold,
                "weights": self.weights, "folder": self.folder.name, "validation": self.meta.get("validation"),
                "base_model": self.meta.get("base_model")}
