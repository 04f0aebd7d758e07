"""Process environment defaults: telemetry off, hubs offline unless the user says otherwise.

Every value is set with ``setdefault``: a variable the user exported wins. Notebooks run by
papermill inherit these through the kernel's environment.
"""

from __future__ import annotations

import os

#: Variables that switch off usage statistics of the tools ``lab`` drives.
TELEMETRY_OFF: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAGAS_DO_NOT_TRACK": "true",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
}

#: Quieter, deterministic defaults for libraries that would otherwise warn or parallelise noisily.
QUIET: dict[str, str] = {
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}

#: Worker counts sized for the embedded MLflow store (sqlite: a pool of 5 connections plus 10
#: overflow). MLflow's defaults, 10 evaluation workers whose traces 10 async writers export, exhaust
#: that pool on a 2-core machine and traces are dropped ("QueuePool limit of size 5 overflow 10
#: reached" in judge_eval's log of a `lab init` project, 57 times). A team server takes more: export
#: larger values.
BOUNDED: dict[str, str] = {
    "MLFLOW_GENAI_EVAL_MAX_WORKERS": "2",
    "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS": "2",
}


def apply_defaults() -> None:
    """Set telemetry-off, quiet and bounded defaults without overriding anything already exported."""
    for key, value in {**TELEMETRY_OFF, **QUIET, **BOUNDED}.items():
        os.environ.setdefault(key, value)


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` set truthy)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
