"""The floors of the ``lab`` package and the rules between them.

Data flows one way (params -> config -> data and models -> chunks -> embeddings -> indexes ->
retrieval -> generation and fine-tuning -> sweeps -> studies -> export -> serving -> the red team ->
the runner and CLI); a module may import its own floor and the floors below, never one above, and no
study imports another study (:func:`violations`). The import graph has no circles
(:func:`import_circles`). A floor below the studies never names a stage's output folder: it receives
paths from config or the bundle, so no string in its code holds a ``results/`` path
(:func:`output_path_literals`). ``tests/test_layout.py`` checks every module of the package with
these, so the README's Layout table (generated from :data:`FLOORS`) cannot drift from the code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lab.imports import LAB_DIR, direct_imports, module_name

#: Bottom to top: (floor, what it holds, module prefixes).
FLOORS: list[tuple[str, str, tuple[str, ...]]] = [
    ("base", "errors, environment and telemetry switches, paths, registries, atomic IO, typed params, "
             "tokenizers, plots, report helpers, progress, MLflow tracking, Ray start-up, the import closure, "
             "child processes that stop with their owner, a coroutine run from plain code, the stage protocol, the versioned file header, the SQLite key-value store of the caches",
     ("lab", "lab.errors", "lab.env", "lab.paths", "lab.registry", "lab.io", "lab.config", "lab.tokens",
      "lab.viz", "lab.tracking", "lab.dvcparams", "lab.raycluster", "lab.imports", "lab.layout", "lab.progress",
      "lab.report", "lab.procs", "lab.aio", "lab.stage", "lab.versioned", "lab.kvstore")),
    ("metrics", "IR (hit/recall/precision/MRR/nDCG/MAP), chunk ranges (IoU, precision-Ω), QA (EM/F1), "
                "bootstrap CIs and paired tests; numpy only", ("lab.metrics",)),
    ("models", "the offline model store: built-in names, GGUF part packages, local dirs, hub ids, endpoints",
     ("lab.models", "lab.model_parts")),
    ("ingest", "your own documents (PDF, HTML, DOCX, Markdown, text) as a corpus folder: extractors per format, "
               "page and section maps, scanned pages and OCR, boilerplate removal, provenance manifest, "
               "incremental by content hash, provenance of a span (pages, section, citation)", ("lab.ingest",)),
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
    ("testset", "synthetic test sets over a corpus folder (passages chosen in code with exact offsets, "
                "questions by a generation backend, counted filters, the generation cache) and the team's "
                "own questions located in it, and the human review of a test set", ("lab.testset",)),
    ("sweep", "Ray Tune sweeps over any study function, resumable", ("lab.sweep",)),
    ("handoff", "the files stages hand each other (sweep winner, fine-tune arms manifest and predictions, "
                "judges' choice, serving bundle): one module each writes and reads one file, versioned",
     ("lab.handoff",)),
    ("studies", "one module per study; no study imports another", ("lab.studies",)),
    ("export", "the winner picked from the studies' results, written as a serving bundle (index built by "
               "the studies' code), the MLflow model registry and its promotion alias", ("lab.export",)),
    ("serve", "the RAG gateway (OpenAI-compatible, streaming, sources), vLLM process control, upstream "
              "retries and fallbacks, Prometheus metrics, feedback, the playground page, the labelling queue", ("lab.serve",)),
    ("monitor", "the served bundle's health report: the period's traces read back, rates with intervals, "
                "drift tests against the offline evaluation, the verdict a scheduler alerts on", ("lab.monitor",)),
    ("redteam", "the red team: attacks generated from seeds and strategies, sent to the served bundle through "
                "the gateway with its policy on and off, judged by rules and a calibrated judge, success rates "
                "with CIs and the policy's cost on benign traffic", ("lab.redteam",)),
    ("app", "the notebook runner and its interrupt handling, stage dependencies, doctor, the run "
            "explorer's tables, the stages found and run, the stages' output folders as CLI defaults, "
            "`lab init`'s project scaffold, the team stack's services (`lab team`: PostgreSQL, S3 API, "
            "MLflow server), and the CLI (parses and calls)",
     ("lab.runner", "lab.stopping", "lab.deps", "lab.doctor", "lab.explorer", "lab.stages", "lab.stage_outputs",
      "lab.scaffold", "lab.team", "lab.cli")),
]

#: The folder the stages write their outputs under (params.yaml's ``out_dir`` values).
RESULTS_DIR = "results"
#: The first floor allowed to name a stage's output path; every floor below it receives paths.
PATHS_FROM = "studies"
#: Modules below :data:`PATHS_FROM` allowed ``results/`` literals, and why.
PATH_LITERAL_EXEMPT = {
    # the typed params models: their defaults are the pipeline's configured paths, the same values
    # params.yaml sets (one definition per setting, checked by pydantic); this is where a path is
    # configured, and every floor reads it from the loaded config object, never from a literal
    "lab.config.sections": "the params models, where the pipeline's paths are configured",
    "lab.config.own_docs": "the params models of the own-documents stages (ingest, testset), as above",
    "lab.config.redteam": "the params model of the red team's stage, as above",
}
_RESULTS_PATH = re.compile(rf"(?<![\w.-]){RESULTS_DIR}[/\\]")


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


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of a module and of its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def literals_naming_outputs(source: str, where: str = "<source>") -> list[tuple[int, str]]:
    """``(line, text)`` of each string in the code of ``source`` that names a path under
    :data:`RESULTS_DIR`: a constant (f-string parts included) holding ``results/``, or ``"results"``
    joined as a path component (``root / "results"``, ``Path("results", ...)``). Docstrings and
    comments are prose and are not read."""
    tree = ast.parse(source, filename=where)
    skip = _docstrings(tree)
    parent: dict[int, ast.AST] = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in skip:
            continue
        up = parent.get(id(node))
        joined = node.value == RESULTS_DIR and (
            (isinstance(up, ast.BinOp) and isinstance(up.op, ast.Div))
            or (isinstance(up, ast.Call) and getattr(up.func, "id", getattr(up.func, "attr", "")) in
                ("Path", "PurePath", "joinpath", "join")))
        if joined or _RESULTS_PATH.search(node.value):
            found.append((node.lineno, node.value))
    return sorted(found)


def output_path_literals(lab_dir: Path = LAB_DIR) -> list[str]:
    """Every string literal naming a ``results/`` path in a module below :data:`PATHS_FROM`
    (except :data:`PATH_LITERAL_EXEMPT`), as ``"lab/x.py:LINE: 'text' ..."``."""
    top = next(i for i, (name, _, _) in enumerate(FLOORS) if name == PATHS_FROM)
    out = []
    for path in sorted(lab_dir.rglob("*.py")):
        module = module_name(path, lab_dir)
        try:
            floor = floor_of(module)
        except KeyError:
            continue   # :func:`violations` reports a module on no floor
        if module in PATH_LITERAL_EXEMPT or floor >= top:
            continue
        rel = path.relative_to(lab_dir.parent).as_posix()
        for line, text in literals_naming_outputs(path.read_text(encoding="utf-8"), rel):
            out.append(f"{rel}:{line}: {text!r} names a stage's output path on floor "
                       f"{FLOORS[floor][0]}; take the path as an argument (from config or the bundle)")
    return out


def import_graph(lab_dir: Path = LAB_DIR) -> dict[str, set[str]]:
    """Module -> the modules it imports (:func:`lab.imports.direct_imports`), without the edges
    from a module to itself or to a package holding it: Python runs a package's ``__init__`` before
    any of its modules and ``from . import x`` in an ``__init__`` names the package itself, so those
    edges are the package relation, not an import order the code chose."""
    graph = {}
    for path in sorted(lab_dir.rglob("*.py")):
        module = module_name(path, lab_dir)
        graph[module] = {m for m in direct_imports(path, lab_dir)
                         if m != module and not module.startswith(m + ".")}
    return graph


def import_circles(lab_dir: Path = LAB_DIR) -> list[list[str]]:
    """Every set of modules that import each other, directly or round a loop (the strongly
    connected components of :func:`import_graph` with more than one module), each sorted."""
    graph = import_graph(lab_dir)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:   # Tarjan's algorithm; the package's graph is a few hundred modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(circles)
