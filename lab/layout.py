"""The floors of the ``lab`` package and the rule between them: a floor imports only floors below it.

Data flows one way (params -> config -> data and models -> chunks -> embeddings -> indexes ->
retrieval -> generation and fine-tuning -> sweeps -> studies -> the runner and CLI); a module may
import its own floor and the floors below, never one above, and no study imports another study.
``tests/test_layout.py`` checks every module of the package with :func:`violations`, so the README's
Layout table (generated from :data:`FLOORS`) cannot drift from the code.
"""

from __future__ import annotations

from pathlib import Path

from lab.imports import LAB_DIR, direct_imports, module_name

#: Bottom to top: (floor, what it holds, module prefixes).
FLOORS: list[tuple[str, str, tuple[str, ...]]] = [
    ("base", "errors, environment and telemetry switches, paths, registries, atomic IO, typed params, "
             "tokenizers, plots, report helpers, progress, MLflow tracking, Ray start-up, the import closure, "
             "child processes that stop with their owner",
     ("lab", "lab.errors", "lab.env", "lab.paths", "lab.registry", "lab.io", "lab.config", "lab.tokens",
      "lab.viz", "lab.tracking", "lab.dvcparams", "lab.raycluster", "lab.imports", "lab.layout", "lab.progress", "lab.report",
      "lab.procs")),
    ("metrics", "IR (hit/recall/precision/MRR/nDCG/MAP), chunk ranges (IoU, precision-Ω), QA (EM/F1), "
                "bootstrap CIs and paired tests; numpy only", ("lab.metrics",)),
    ("models", "the offline model store: built-in names, GGUF part packages, local dirs, hub ids, endpoints",
     ("lab.models", "lab.model_parts")),
    ("data", "loaders (corpus folders, QA sets, BEIR, SQuAD), the domain task split, data quality",
     ("lab.data",)),
    ("chunking", "chunkers with exact offsets", ("lab.chunking",)),
    ("embed", "embedders and the content-addressed embedding store", ("lab.embed",)),
    ("index", "FAISS vector indexes (flat/HNSW/IVF, CPU/GPU), save/load", ("lab.index",)),
    ("retrieval", "retriever families (dense, BM25, hybrid, rerank), chunk-level retrieval sets, "
                  "a sweep configuration realised", ("lab.retrieval",)),
    ("generate", "generation backends (transformers, vLLM, llama.cpp, OpenAI-compatible), prompts", ("lab.generate",)),
    ("finetune", "full / LoRA / QLoRA fine-tuning, checkpoints, Ray Train", ("lab.finetune",)),
    ("judge", "LLM-as-judge: versioned rubrics, parsing with one repair, the judgment cache, baselines, "
              "the trained cross-encoder judge, calibration against human labels", ("lab.judge",)),
    ("guardrails", "checks (limits, PII, secrets, JSON schema, refusal, injection, toxicity, grounding) "
                   "composed into policies with actions, "
                   "measured on labelled files", ("lab.guardrails",)),
    ("sweep", "Ray Tune sweeps over any study function, resumable", ("lab.sweep",)),
    ("handoff", "the files stages hand each other (sweep winner, fine-tune arms manifest and predictions, "
                "judges' choice, guardrail models, bundle): one module each writes and reads one file, versioned",
     ("lab.handoff",)),
    ("studies", "one module per study; no study imports another", ("lab.studies",)),
    ("export", "the winner picked from the studies' results, written as a serving bundle (index built by "
               "the studies' code), the MLflow model registry and its promotion alias", ("lab.export",)),
    ("serve", "the RAG gateway (OpenAI-compatible, streaming, sources), vLLM process control, upstream "
              "retries and fallbacks, Prometheus metrics, feedback, the playground page", ("lab.serve",)),
    ("app", "the notebook runner and its interrupt handling, stage dependencies, doctor, the run "
            "explorer's tables and the CLI (parses and calls)",
     ("lab.runner", "lab.stopping", "lab.deps", "lab.doctor", "lab.explorer", "lab.cli")),
]


def floor_of(module: str) -> int:
    """Index in :data:`FLOORS` of the floor holding ``module`` (longest matching prefix).

    Raises
    ------
    KeyError
        A module no floor holds: add it to :data:`FLOORS`.
    """
    best, depth = -1, -1
    for i, (_, _, prefixes) in enumerate(FLOORS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and p.count(".") > depth and (p != "lab" or module == "lab"):
                best, depth = i, p.count(".")
    if best < 0:
        raise KeyError(f"module {module!r} is on no floor; add it to lab.layout.FLOORS")
    return best


def _study(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["lab", "studies"] else None


def violations(lab_dir: Path = LAB_DIR) -> list[str]:
    """Every import that breaks the rule, as ``"lab.a imports lab.b (floor x above floor y)"``."""
    out = []
    for path in sorted(lab_dir.rglob("*.py")):
        importer = module_name(path, lab_dir)
        try:
            mine = floor_of(importer)
        except KeyError as exc:
            out.append(str(exc.args[0]))
            continue
        for imported in sorted(direct_imports(path, lab_dir)):
            theirs = floor_of(imported)
            if theirs > mine:
                out.append(f"{importer} (floor {FLOORS[mine][0]}) imports {imported} "
                           f"(floor {FLOORS[theirs][0]}, higher)")
            a, b = _study(importer), _study(imported)
            if a and b and a != b:
                out.append(f"{importer} imports another study, {imported}: move what they share to a lower floor")
    return out


def floors_table() -> str:
    """The floors as a Markdown table, top floor first (the README's Layout section)."""
    rows = ["| floor | modules | what |", "| --- | --- | --- |"]
    for name, what, prefixes in reversed(FLOORS):
        mods = ", ".join(f"`{p.replace('.', '/')}`" for p in prefixes if p != "lab")
        rows.append(f"| {name} | {mods} | {what} |")
    return "\n".join(rows)
