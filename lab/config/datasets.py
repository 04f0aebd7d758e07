"""The dataset spec of a retrieval experiment (``dataset:`` in ``experiments/*.yaml``), one model per kind.

``kind`` picks the model (a pydantic discriminated union), so a misspelt kind lists the kinds that
exist and a missing or unknown key names the key, all when the experiment file is loaded
(``lab params check``, the sweep's start), not inside a Ray worker. :meth:`~_DatasetBase.paths` is
what a spec reads (the stage's DVC deps); :meth:`~_DatasetBase.as_written` is the spec as the file
wrote it (no defaults added), which is what the sweep hashes into its trial ids and records in
``winner.json``, so a spec that validates the same keeps the same identity.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag

from lab.config.base import TAG_PREFIX, StrictModel


class _DatasetBase(StrictModel):
    #: The fields that are paths (relative to the folder of params.yaml), in the order read.
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ()

    max_queries: int = Field(0, ge=0, description="evaluate a seeded sample of this many queries (0: all)")
    seed: int = Field(0, description="seed of the query sample")

    def paths(self) -> list[str]:
        """The path values this spec reads, as written (for stage dependencies)."""
        return [getattr(self, f) for f in self.PATH_FIELDS]

    def as_written(self) -> dict[str, Any]:
        """The spec with only the keys the file set (the dataset's identity)."""
        return self.model_dump(exclude_unset=True)


class _SquadFiles(_DatasetBase):
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("paragraphs", "qa")
    paragraphs: str
    qa: str
    titles: list[str] = Field(default_factory=list, description="articles to keep (empty: all)")


class SquadChunksDataset(_SquadFiles):
    """SQuAD-format paragraphs chunked by the configuration's chunker; relevance at chunk level."""

    kind: Literal["squad_chunks"]


class SquadParagraphsDataset(_SquadFiles):
    """SQuAD-format paragraphs as the retrieval units (no chunker)."""

    kind: Literal["squad_paragraphs"]


class ChromaExcerptsDataset(_DatasetBase):
    """A corpus folder and Chroma's ``questions_df.csv`` (excerpt offsets); relevance by chunk overlap."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("corpus_dir", "questions")
    kind: Literal["chroma_excerpts"]
    corpus_dir: str
    questions: str


class BeirDataset(_DatasetBase):
    """A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``)."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("folder",)
    kind: Literal["beir"]
    folder: str
    split: str = "test"


#: Kind -> its model (the kind read off each model's ``kind`` literal).
DATASET_KINDS: dict[str, type[_DatasetBase]] = {
    typing.get_args(m.model_fields["kind"].annotation)[0]: m
    for m in (SquadChunksDataset, SquadParagraphsDataset, ChromaExcerptsDataset, BeirDataset)
}


def _kind(value: Any) -> str | None:
    """The union tag of a spec (its ``kind``); an unknown kind is an error listing the kinds."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return None if kind is None else TAG_PREFIX + str(kind)


_kind.__name__ = "kind"   # pydantic names the discriminator by its function in errors: the key's name

#: One of the dataset kinds, chosen by ``kind`` (a tagged union: errors name the file's keys).
RetrievalDatasetSpec = Annotated[
    Union[tuple(Annotated[m, Tag(TAG_PREFIX + k)] for k, m in DATASET_KINDS.items())],  # noqa: UP007
    Discriminator(_kind),
]
#: Kinds whose queries are judged against chunks (the configuration must name a chunker).
CHUNKED_KINDS = ("squad_chunks", "chroma_excerpts")
