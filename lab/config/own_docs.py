"""The sections of the stages for your own documents: ``ingest`` (:mod:`lab.ingest`) and
``testset`` (:mod:`lab.testset`), registered like the others in :mod:`lab.config.sections`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lab.config.base import SECTIONS, StageConfig, StrictModel
from lab.config.generation import BackendSpec

#: Question types of a generated test set (:mod:`lab.testset`).
QuestionType = Literal["single", "multi", "unanswerable"]

@SECTIONS.register("ingest")
class IngestConfig(StageConfig):
    """Section ``ingest``: your own documents (folders and files of PDF, HTML, DOCX, Markdown, text)
    as a corpus folder ``<out_dir>/docs`` and its ``<out_dir>/manifest.json`` (:mod:`lab.ingest`)."""

    sources: list[str] = Field(min_length=1)   # folders (walked recursively) and single files
    include: list[str] = []                    # globs; a file must match one (empty: every known suffix)
    exclude: list[str] = []                    # globs; a file matching one is skipped (and listed)
    ocr: bool = False                          # read scanned PDF pages with Tesseract (apt-get install tesseract-ocr)
    ocr_lang: str = Field("eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")
    ocr_dpi: int = Field(300, ge=72, le=600)
    out_dir: str = "results/ingest"

    def paths(self) -> dict[str, str]:
        return {f"sources[{i}]": s for i, s in enumerate(self.sources)}


class TestsetFilters(StrictModel):
    """Thresholds of the test-set filters (:mod:`lab.testset.filters`); each filter's drops are counted."""

    # Longest run of question words copied verbatim from the excerpt, as a share of the question's
    # words, above which a question "copies its excerpt": the 95th percentile of 8,425 human SQuAD v1.1
    # dev questions against the sentence holding their answer, on the 42 articles the sweep and the
    # fine-tune study do not use (benchmarks/testset_copy_threshold.py fits it; median 0.25, 2026-12-06).
    max_copy_ratio: float = Field(0.625, gt=0, le=1)
    near_duplicate: float = Field(0.8, gt=0, le=1)      # Jaccard of two questions' word sets at or above: a duplicate
    min_question_words: int = Field(4, ge=1)
    max_question_words: int = Field(40, ge=1)
    max_answer_words: int = Field(30, ge=1)
    # share of the question's content words found in its excerpt(s) below which it is not about them
    min_question_support: float = Field(0.3, ge=0, le=1)
    # lexical grounded judge: share of the answer's content words found in the excerpt(s) below which
    # the excerpt does not support the answer (1.0: every content word must be there)
    min_answer_support: float = Field(1.0, ge=0, le=1)
    # unanswerable: share of the question's content words (first 6 letters) found in one corpus sentence
    # at or above which the corpus may answer it (0.75: "What is the purpose of the FedRAMP Readiness
    # Assessment?" holds 3 of its 4 in one sentence; read on the first benchmark run's samples, 2026-12-06)
    max_unanswerable_support: float = Field(0.75, gt=0, le=1)


@SECTIONS.register("testset")
class TestsetConfig(StageConfig):
    """Section ``testset``: synthetic questions with exact reference offsets over a corpus folder
    (:mod:`lab.testset`), plus the team's own questions located in it."""

    corpus_dir: str = "results/ingest/docs"        # one document per file (the ingest stage's docs/)
    n: int = Field(100, ge=1)                       # questions kept, over the types below
    types: list[QuestionType] = Field(["single", "multi", "unanswerable"], min_length=1)
    mix: dict[QuestionType, float] = {"single": 0.6, "multi": 0.2, "unanswerable": 0.2}   # shares of n (renormalised over types)
    # compose: a multi-passage question is two single ones on related passages joined ("Q1, and q2?");
    # model: one question asked of both passages (Qwen2.5-Coder-0.5B copied passage 1 as its question in
    # 3 of 3 probes, 2026-12-06: for stronger generators)
    multi_style: Literal["compose", "model"] = "compose"
    # the generator: Qwen2.5-Coder-0.5B kept 3x more of its questions than SmolLM2-135M on the same
    # excerpts (benchmarks/results/testset_generation.json); any OpenAI-compatible endpoint works too
    backend: BackendSpec = BackendSpec(model="qwen2.5-coder-0.5b-instruct", batch_size=8, threads=1)
    max_new_tokens: int = Field(64, ge=8)
    temperature: float = Field(0.0, ge=0)         # 0 = greedy (the seed then only orders the excerpts)
    seed: int = 0
    excerpt_min_chars: int = Field(150, ge=20)     # an excerpt's length range, in characters
    excerpt_max_chars: int = Field(600, ge=40)
    heldout_fraction: float = Field(0.3, gt=0, lt=1)
    split_by: Literal["document", "item"] = "document"
    grounded_judge: str = "lexical"   # lexical (support rule, no model) or a trained faithfulness judge's folder
    filters: TestsetFilters = TestsetFilters()
    max_candidates_factor: float = Field(4.0, ge=1)   # at most this many x n excerpts tried per type
    questions: str | None = None      # the team's own questions (CSV/JSONL: question, answer, source...)
    out_dir: str = "results/testset"

    @model_validator(mode="after")
    def _check(self) -> "TestsetConfig":
        if self.excerpt_min_chars >= self.excerpt_max_chars:
            raise ValueError(f"excerpt_min_chars ({self.excerpt_min_chars}) must be below excerpt_max_chars "
                             f"({self.excerpt_max_chars})")
        if len(set(self.types)) != len(self.types):
            raise ValueError(f"types must be unique, got {self.types}")
        if any(self.mix.get(t, 0) <= 0 for t in self.types):
            raise ValueError(f"mix must give every type of {self.types} a positive share, got {dict(self.mix)}")
        return self

    def paths(self) -> dict[str, str]:
        out = {"corpus_dir": self.corpus_dir}
        if self.questions:
            out["questions"] = self.questions
        if self.grounded_judge != "lexical":
            out["grounded_judge"] = self.grounded_judge
        return out
