"""Typed configuration: one model per ``params.yaml`` section and per concept, validated loudly.

==========================  =====================================================================
:mod:`lab.config.loader`    the one YAML reader (YAML 1.2 floats and booleans), CLI values included
:mod:`lab.config.base`      the strict base model, the error messages, loading a section
:mod:`lab.config.sections`  one model per section (= the stage that reads it)
:mod:`lab.config.training`  fine-tuning (the study's knobs and one run's config), the trained judge
:mod:`lab.config.generation`  the generation backend spec and the generation defaults
:mod:`lab.config.guardrails`  the guardrail policy: a typed rule per check
:mod:`lab.config.datasets`  an experiment's retrieval dataset spec: a typed model per kind
:mod:`lab.config.own_docs`  the sections of the stages for your own documents (ingest, testset)
:mod:`lab.config.redteam`   the red team's section (attacks on the served bundle)
==========================  =====================================================================

Each stage reads its own section (``data_quality`` -> :class:`DataQualityConfig`). Validation is
strict: an unknown key, a value of the wrong type (YAML ``"5"`` is a string, not a number) or a
path that does not exist fails with a :class:`~lab.errors.ConfigError` naming ``params.yaml``, the
dotted key and what was expected. Relative paths are resolved against the folder that holds
``params.yaml``. The DVC side (``dvc.yaml``'s stages, ``-S`` arguments) is :mod:`lab.dvcparams`.
"""

from __future__ import annotations

from lab.config.base import (
    SECTIONS,
    StageConfig,
    StrictModel,
    format_validation,
    load_section,
    read_params,
    set_dotted,
)
from lab.config.datasets import DATASET_KINDS, RetrievalDatasetSpec
from lab.config.generation import (
    ANSWER_TIMEOUT_S,
    DEFAULT_MAX_NEW_TOKENS,
    BackendSpec,
    GenerationSpec,
    backend_spec,
)
from lab.config.guardrails import GuardrailClassifierSpec, GuardrailPolicySpec, LabelledPart, WindowModelSpec
from lab.config.loader import YAML12Loader, load_yaml, parse_value, read_yaml
from lab.config.own_docs import IngestConfig, TestsetConfig, TestsetFilters
from lab.config.redteam import RedteamConfig
from lab.config.sections import (
    Arm,
    BenchmarkSource,
    ChunkerSpec,
    ChunkingStudyConfig,
    CorpusSource,
    DataQualityConfig,
    ExportConfig,
    ExtractionChecks,
    FinetuneComparisonConfig,
    GuardrailExtraEval,
    GuardrailsEvalConfig,
    HaluEvalSets,
    JudgeEvalConfig,
    PiiNerSpec,
    PromptedJudgeSpec,
    QAFormat,
    QASetSource,
    RagasJudgeSpec,
    RetrievalSweepConfig,
)
from lab.config.training import ClaimSupportSpec, FinetuneConfig, TrainedJudgeSpec, TrainingSpec

__all__ = [
    "ANSWER_TIMEOUT_S", "DATASET_KINDS", "DEFAULT_MAX_NEW_TOKENS", "SECTIONS", "Arm", "BackendSpec", "BenchmarkSource", "ChunkerSpec",
    "ChunkingStudyConfig", "ClaimSupportSpec", "CorpusSource", "DataQualityConfig", "ExportConfig", "ExtractionChecks", "FinetuneComparisonConfig",
    "FinetuneConfig", "GenerationSpec", "GuardrailClassifierSpec", "GuardrailExtraEval", "GuardrailPolicySpec",
    "GuardrailsEvalConfig", "HaluEvalSets", "IngestConfig", "JudgeEvalConfig", "LabelledPart", "PiiNerSpec", "WindowModelSpec", "PromptedJudgeSpec",
    "QAFormat", "QASetSource", "RagasJudgeSpec", "RedteamConfig", "RetrievalDatasetSpec", "RetrievalSweepConfig", "StageConfig", "StrictModel", "TestsetConfig", "TestsetFilters",
    "TrainedJudgeSpec", "TrainingSpec", "YAML12Loader", "backend_spec", "format_validation",
    "load_section", "load_yaml", "parse_value", "read_params", "read_yaml", "set_dotted",
]
