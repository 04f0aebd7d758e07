"""Where the questions of the fine-tune comparison (and the judge stage's view of its answers) come
from: ``task:`` in ``params.yaml``, one model per kind, chosen by ``kind``.

- ``squad`` (the default): a few SQuAD v1.1 articles, questions split into train and held-out by
  hash (:func:`lab.data.domain.build_domain_task`); the RAG corpus is their paragraphs.
- ``testset``: a test set CSV (the ``testset`` stage's, reviewed where a review file sits beside it)
  over a corpus folder (the ``ingest`` stage's ``docs``): train = its ``train`` rows, held-out = its
  ``heldout`` rows (:func:`lab.data.domain.build_testset_task`); the RAG corpus is the folder's documents.

A SQuAD task may be written the way the sections always wrote it, its keys at the top of the section
(``paragraphs``, ``qa``, ``titles``) with no ``task`` key, and it is dumped that way too: a section
that names SQuAD articles keeps the params hash it had before ``task`` existed
(:func:`fold_squad_keys`, :func:`unfold_squad_task`).

::

    finetune_comparison:
      task: {kind: testset, questions: results/testset/testset.csv, corpus_dir: results/ingest/docs}
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag

from lab.config.base import TAG_PREFIX, StrictModel

SQUAD_PARAGRAPHS = "data/squad_v1.1_dev/dev-v1.1.paragraphs.jsonl"
SQUAD_QA = "data/squad_v1.1_dev/dev-v1.1.qa.jsonl"


class SquadSource(StrictModel):
    """SQuAD v1.1 in lab's JSONL layout: paragraphs and questions (the judge stage reads the
    paragraph an answer's question was written from)."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("paragraphs", "qa")
    kind: Literal["squad"] = "squad"
    paragraphs: str = SQUAD_PARAGRAPHS
    qa: str = SQUAD_QA


class SquadTask(SquadSource):
    """A few SQuAD articles as the domain (:func:`lab.data.domain.build_domain_task`)."""

    titles: list[str] = Field(min_length=1)


class TestsetTask(StrictModel):
    """A test set CSV (CONTRACT: Chroma's ``questions_df.csv`` columns plus ``id``, ``answer``,
    ``question_type``, ``split``...) over the corpus folder its references point into."""

    __test__: ClassVar[bool] = False   # not a pytest test class
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("questions", "corpus_dir")
    kind: Literal["testset"]
    questions: str = Field(min_length=1)
    corpus_dir: str = Field(min_length=1)


#: The keys a SQuAD task may be written with at the top of its section (no ``task`` key).
SQUAD_KEYS = ("paragraphs", "qa", "titles")


def _kind(value: Any) -> str | None:
    kind = value.get("kind", "squad") if isinstance(value, dict) else getattr(value, "kind", None)
    return None if kind is None else TAG_PREFIX + str(kind)


_kind.__name__ = "kind"   # pydantic names the discriminator by its function in errors: the key's name


def _union(*models: type[StrictModel]) -> Any:
    kinds = {typing.get_args(m.model_fields["kind"].annotation)[0]: m for m in models}
    return Annotated[Union[tuple(Annotated[m, Tag(TAG_PREFIX + k)] for k, m in kinds.items())],  # noqa: UP007
                     Discriminator(_kind)]


#: The fine-tune comparison's task: SQuAD articles (default) or a test set.
FinetuneTask = _union(SquadTask, TestsetTask)
#: Where the judge stage finds the context of each fine-tune answer: SQuAD files (default) or the test set.
AnswersSource = _union(SquadSource, TestsetTask)
TASK_KINDS = ("squad", "testset")


def fold_squad_keys(data: Any, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> Any:
    """A section's raw mapping with its top-level SQuAD ``keys`` moved into ``task`` (kind squad);
    unchanged when it has a ``task`` and none of them.

    Raises
    ------
    ValueError
        Both ``task`` and a top-level SQuAD key, or neither ``task`` nor a ``required`` key (the
        message names them and the other kind).
    """
    if not isinstance(data, dict):
        return data
    flat = [k for k in keys if k in data]
    if "task" in data:
        if flat:
            raise ValueError(f"{', '.join(flat)} and task are both set: write the SQuAD keys inside task "
                             f"({{kind: squad, {', '.join(f'{k}: ...' for k in flat)}}}) or drop task")
        return data
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing: name the SQuAD articles ({missing[0]}: [...]) or set "
                         "task: {kind: testset, questions: FILE.csv, corpus_dir: FOLDER} (task kinds: "
                         f"{', '.join(TASK_KINDS)})")
    return {**{k: v for k, v in data.items() if k not in flat}, "task": {"kind": "squad", **{k: data[k] for k in flat}}}


def unfold_squad_task(dumped: dict[str, Any]) -> dict[str, Any]:
    """A dumped section with a SQuAD ``task`` written back as top-level keys (its params hash is the
    one it had before ``task`` existed); another kind stays under ``task``."""
    task = dumped.get("task")
    if isinstance(task, dict) and task.get("kind") == "squad":
        dumped = {k: v for k, v in dumped.items() if k != "task"}
        dumped.update({k: v for k, v in task.items() if k != "kind"})
    return dumped


def task_paths(task: Any, prefix: str = "task") -> dict[str, str]:
    """Dotted key -> path of a task's files: SQuAD's under their top-level names (as the sections
    always named them), a test set's under ``task.``."""
    if task.kind == "squad":
        return {f: getattr(task, f) for f in task.PATH_FIELDS}
    return {f"{prefix}.{f}": getattr(task, f) for f in task.PATH_FIELDS}
