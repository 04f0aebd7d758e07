"""Everyday benign questions: how often the gateway's blocking checks fire on them (issue 32).

    python benchmarks/guardrails_benign.py [--questions FILE ...] [--per-source 300] [--seed 0] \\
        [--policy params.yaml#export.guardrails | FILE.yaml[#key]] [--models-root DIR] [--answer TEXT] \\
        [--training-files FILE ...] [--shared] [--out FILE]

The benign set. With no ``--questions``, questions from sources in the repository that no guardrail
classifier is trained on (params.yaml ``guardrails_eval``: deepset prompt injections, in-the-wild
jailbreaks, Davidson tweets): SQuAD v1.1 dev questions, HaluEval's QA questions (HotpotQA), HaluEval's
general user queries, Chroma's chunking-evaluation questions, and the demo's generated test set
(``results/testset/testset.csv``, skipped when absent). HaluEval's general queries are
Alpaca-style instructions ("Create a poem about autumn", "Imagine you are organising a birthday
party...") rather than questions; all 1000 were read (2026-12-06) and none is an attack, a
jailbreak or toxic. A few touch sensitive topics with an everyday intent ("What are the stereotypes
about people from India?", "Identify the different types of drugs that are categorized as
depressants", "Describe the behavior of a dog when it is about to attack"): a user may ask that,
so they stay. The queries are kept as their own source (``halueval_general``), so that the question
sources' figures stand without them.
``--questions FILE`` (any number) replaces them: CSV or JSON Lines with a ``question`` (or
``query``, ``user_query``, ``text``) column (a CSV may open with ``#`` lines: its header, saying
where the questions come from); each file is a source named by its stem.
Blank rows are skipped; questions are deduplicated (case and spacing ignored; a question in two
sources is kept in the first); a question that occurs in any classifier's training file
(``--training-files``, default those of ``guardrails_eval.classifiers`` and the prompts their
``generated`` parts make) is left out and counted.
Then at most ``--per-source`` per source (0: all), a seeded sample kept in file order.

What is measured:

1. Each blocking check (an input-side rule whose action is ``block``), on its own: the policy's
   input side is applied with every ``block`` turned into ``warn``, so each check decides on the
   text as it reaches it in the gateway (after the redactions before it; the policy's exceptions
   apply) and no earlier block hides a later check's decision. A check that fired (and was not
   exempted) on a benign question is a false positive: ``fpr`` = fired / n with a Wilson 95%
   interval, over all questions and per source, and up to 10 examples (highest score first).
   ``any_block`` is the same over "some blocking check fired".
2. The gateway, end to end: every question is a ``POST /v1/chat/completions`` to the FastAPI app
   of :mod:`lab.serve.gateway`, in process (Starlette's TestClient), served from a bundle written
   for the run by :func:`lab.handoff.bundle.write_bundle` (BM25 over a few built-in passages, k 2,
   the policy with copies of its models, as ``dvc repro export`` packs it) and read back as
   ``lab serve`` reads it (:func:`lab.handoff.bundle.bundle_policy`). The upstream model is a fake
   that answers every question with one fixed neutral sentence (``--answer``). Reported: the share
   blocked by the input side (``lab.blocked`` of the response) and the share whose answer the
   output side replaced with the fallback message, each with a Wilson 95% interval. Covered:
   request validation, the input side, retrieval, the context side, the prompt, the output side.
   Not covered: generation (the fixed answer). So the output side sees the same text for every
   question (its grounding check sees different passages): the fallback rate says whether the
   output side lets a neutral answer through, not how it treats real answers.
   ``gateway_mismatches`` counts questions where the gateway blocked and no blocking check
   fired in 1, or the reverse (0 when both paths agree).

JSON keys: ``sources`` (name -> ``path``, ``count`` and what was left out), ``n_benign``, ``checks``
(per blocking check: ``fpr``, ``fpr_ci``, ``fired``, ``n``, ``exempted``, ``threshold``,
``per_source`` (name -> ``fpr``, ``fpr_ci``, ``fired``, ``n``), ``signals`` (what fired, counted:
``classifier``, ``rule NAME``, ``other``), ``examples`` (``text``, ``source``, ``score``, ``reason``),
``examples_by_source`` (source -> up to 3: ``text``, ``score``)),
``any_block``, ``rows`` (the same as a flat table: ``check``, ``source``,
``n``, ``fired``, ``fpr``, ``fpr_ci``), ``input_redactions`` (check -> questions it redacted),
``gateway_block_rate``, ``gateway_block_ci``, ``gateway_blocked``, ``gateway_fallback_rate``,
``gateway_fallback_ci``, ``gateway_fallbacks``, ``gateway_n``, ``gateway_blocked_by``,
``gateway_fallback_by``, ``gateway_errors``, ``gateway_per_source``, ``gateway_mismatches``,
``gateway`` (what was served), ``policy`` (``id``, ``source``, its ``input`` and ``output`` rules,
``blocking``, ``models``: per rule naming a model folder, a sha256 of the copy served and, for a
trained classifier, its threshold and training data hash), ``settings``, ``seconds``
(``checks_seconds``, ``gateway_seconds``), ``cores_shared``, ``cpu_count``, ``command``.

Bad input (a file without a question column, a record without the field, a policy key that is not
there) is an error naming the file and the row or line, and what is present.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The columns a question file may hold its questions in, in order of preference.
QUESTION_COLUMNS = ("question", "query", "user_query", "text")
#: The fake upstream's answer to every question (neutral: no refusal phrase, nothing toxic).
ANSWER = "The documents describe this in their first section, with the dates and the places involved."
#: The served corpus (retrieval and the output side's grounding check see these passages).
CORPUS = {
    "p1": {"title": "Rivers", "text": "The Vistula is the longest river in Poland and flows through Warsaw and Krakow."},
    "p2": {"title": "Oil crisis", "text": "The 1973 oil crisis began in October 1973 when oil producers proclaimed an embargo."},
    "p3": {"title": "Cloud services", "text": "A cloud service provider documents significant changes and "
                                              "conducts a security impact analysis before it implements them."},
    "p4": {"title": "Magazines", "text": "Arthur's Magazine was an American literary periodical published "
                                         "in Philadelphia from 1844 to 1846."},
    "p5": {"title": "Poetry", "text": "An acrostic poem spells a word with the first letter of each line."},
}
CHAT = "/v1/chat/completions"


class Source(NamedTuple):
    """A file of benign questions in the repository (``path`` relative to its root)."""

    name: str
    path: str
    note: str
    required: bool = True


SOURCES = (
    Source("squad_dev", "data/squad_v1.1_dev/dev-v1.1.qa.jsonl",
           "SQuAD v1.1 dev: crowd-written questions about Wikipedia paragraphs"),
    Source("halueval_qa", "data/halueval/qa_grounded.dev250.jsonl",
           "HaluEval QA: HotpotQA multi-hop questions"),
    Source("halueval_general", "data/halueval/general_data.dev1000.jsonl",
           "HaluEval general user queries: Alpaca-style instructions (requests more than questions); "
           "all 1000 read, none an attack, a jailbreak or toxic (a few touch sensitive topics)"),
    Source("chroma", "data/chroma_chunking/questions_df.csv",
           "Chroma's chunking evaluation: GPT-4-generated questions over its corpora (State of the Union, "
           "chat logs, finance, PubMed, Wikipedia)"),
    Source("testset", "results/testset/testset.csv",
           "the demo's generated test set (lab.testset) over the ingested documents", required=False),
)


# --------------------------------------------------------------------------- the benign set
def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def read_questions(path: str | Path) -> tuple[list[str], int]:
    """The questions of a CSV or JSON Lines file (the first of :data:`QUESTION_COLUMNS` it has) and
    the number of blank ones skipped.

    Raises
    ------
    DataError
        The file is missing or of another type; it has no question column (the message lists the
        columns present); a record lacks the field or holds a non-string (the message names the
        line, or the CSV data row, 1-based, header not counted).
    """
    from lab.errors import DataError
    from lab.io import iter_jsonl

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (or not a file)")
    suffix = path.suffix.lower()
    out: list[str] = []
    blank = 0
    if suffix in (".jsonl", ".ndjson"):
        column = None
        for row in iter_jsonl(path):
            rec = row.record
            if column is None:
                column = next((c for c in QUESTION_COLUMNS if c in rec), None)
                if column is None:
                    raise DataError(f"{row.where}: no question field (expected one of {', '.join(QUESTION_COLUMNS)}); "
                                    f"fields present: {sorted(rec)}")
            if column not in rec:
                raise DataError(f"{row.where}: field {column!r} is missing (fields present: {sorted(rec)})")
            value = rec[column]
            if not isinstance(value, str):
                raise DataError(f"{row.where}: field {column!r} must be a string, got {type(value).__name__} "
                                f"({value!r:.80})")
            if value.strip():
                out.append(value)
            else:
                blank += 1
        return out, blank
    if suffix == ".csv":
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                lines = fh.readlines()
                header = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
                reader = csv.DictReader(lines[header:])   # lines starting with # at the top: the file's header
                columns = reader.fieldnames or []
                column = next((c for c in QUESTION_COLUMNS if c in columns), None)
                if column is None:
                    raise DataError(f"{path}: no question column (expected one of {', '.join(QUESTION_COLUMNS)}); "
                                    f"columns present: {list(columns)}")
                for i, rec in enumerate(reader, start=1):
                    value = rec.get(column)
                    if value is None:
                        raise DataError(f"{path}: row {i}: no {column!r} cell (the row has {len(rec)} cells "
                                        f"for {len(columns)} columns)")
                    if value.strip():
                        out.append(value)
                    else:
                        blank += 1
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
        except csv.Error as exc:
            raise DataError(f"{path}: not a readable CSV ({exc})") from None
        return out, blank
    raise DataError(f"{path}: expected a .csv or .jsonl question file, got {suffix or 'no extension'!r}")


def training_texts(files: Sequence[str | Path]) -> set[str]:
    """Every text of the given labelled files (:func:`lab.guardrails.evaluate.read_labelled`), normalised."""
    from lab.guardrails.evaluate import read_labelled

    return {_norm(t) for f in files for t in read_labelled(f).texts}


def classifier_training_files(params: Path) -> list[Path]:
    """The files the guardrail classifiers train on: ``guardrails_eval.classifiers`` of ``params``
    (each ``data`` and its ``extra`` parts), relative to the file's folder."""
    from lab.config import read_params
    from lab.paths import resolve_path

    section = read_params(params).get("guardrails_eval") or {}
    files: list[Path] = []
    for c in section.get("classifiers") or []:
        for part in [c, *(c.get("extra") or [])]:
            p = resolve_path(part["data"], params.parent)
            if p not in files:
                files.append(p)
    return files


def generated_training_texts(params: Path) -> set[str]:
    """The prompts :mod:`lab.guardrails.intent_data` makes for the classifiers of
    ``guardrails_eval.classifiers`` that name a ``generated`` part (with its questions files), normalised."""
    from lab.config import load_section
    from lab.guardrails.intent_data import from_spec
    from lab.paths import resolve_path

    out: set[str] = set()
    for spec in load_section("guardrails_eval", params, check_paths=False).classifiers:
        if spec.generated is not None:
            records = from_spec(spec.generated.kwargs(), lambda f: resolve_path(f, params.parent))
            out |= {_norm(r.text) for r in records}
    return out


class BenignSet:
    """The assembled questions, each with its source, and per source what was kept and left out.
    (A plain class: tests import this script by path, without a module entry dataclasses would need.)"""

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.source_of: list[str] = []
        self.sources: dict[str, dict[str, Any]] = {}


def assemble(sources: Sequence[tuple[str, Path, str]], *, per_source: int, seed: int,
             training: set[str] = frozenset()) -> BenignSet:
    """The benign set from ``(name, path, note)`` sources, in order: blanks skipped, duplicates
    (case and spacing ignored) kept once, texts in ``training`` left out, then at most
    ``per_source`` per source (0: all), a sample seeded by ``seed`` and the source's name, in file order."""
    out = BenignSet()
    seen: set[str] = set()
    for name, path, note in sources:
        texts, blank = read_questions(path)
        pool, dups, in_training = [], 0, 0
        for t in texts:
            key = _norm(t)
            if key in training:
                in_training += 1
            elif key in seen:
                dups += 1
            else:
                seen.add(key)
                pool.append(t)
        if per_source and len(pool) > per_source:
            picked = sorted(random.Random(f"{seed}:{name}").sample(range(len(pool)), per_source))
            chosen = [pool[i] for i in picked]
        else:
            chosen = pool
        out.questions += chosen
        out.source_of += [name] * len(chosen)
        out.sources[name] = {"path": str(path), "count": len(chosen), "available": len(pool), "rows": len(texts) + blank,
                             "blank": blank, "duplicates": dups, "in_training": in_training, "note": note}
    return out


# --------------------------------------------------------------------------- the policy
def load_policy(spec: str) -> tuple[dict[str, Any], Path, str]:
    """``FILE#dotted.key`` (or a YAML ``FILE`` that is the policy): the policy mapping, the file and
    the key. A relative ``FILE`` not found here is looked up in the repository root.

    Raises
    ------
    ConfigError
        The file is missing or malformed, or the key is not in it (the message names both and the
        keys that are there).
    """
    from lab.config import read_params
    from lab.errors import ConfigError

    file, _, key = spec.partition("#")
    path = Path(file)
    if not path.is_absolute() and not path.exists() and (ROOT / path).exists():
        path = ROOT / path
    if not path.is_file():
        raise ConfigError(f"{path}: policy file not found (--policy {spec})")
    node: Any = read_params(path)
    walked = []
    for part in filter(None, key.split(".")):
        if not isinstance(node, Mapping) or part not in node:
            have = ", ".join(map(str, node)) if isinstance(node, Mapping) else type(node).__name__
            raise ConfigError(f"{path}: no key {'.'.join([*walked, part])!r} (--policy {spec}); there: {have}")
        node = node[part]
        walked.append(part)
    if not isinstance(node, Mapping):
        raise ConfigError(f"{path}#{key}: expected a guardrails policy mapping, got {type(node).__name__}")
    return dict(node), path, key


def rule_names(rules: Sequence[Any]) -> list[str]:
    """A name per rule: the check's, with ``#i`` (its position) when the side holds that check twice."""
    counts = Counter(r.check.name for r in rules)
    return [r.check.name if counts[r.check.name] == 1 else f"{r.check.name}#{i}" for i, r in enumerate(rules)]


def _rate(k: int, n: int, name: str = "fpr") -> dict[str, Any]:
    from lab.metrics.proportions import wilson_ci

    if n == 0:
        return {name: None, f"{name}_ci": None, "fired": k, "n": 0}
    return {name: round(k / n, 6), f"{name}_ci": [round(x, 6) for x in wilson_ci(k, n)], "fired": k, "n": n}


# --------------------------------------------------------------------------- 1. each blocking check
def _signals(reason: str) -> list[str]:
    """What made a check fire, from its reason: ``classifier``, each ``rule NAME`` (the injection and
    jailbreak checks' floor), or ``other`` (a rule check's own words, such as the limits check's)."""
    out = []
    for part in filter(None, (p.strip() for p in reason.split(";"))):
        out.append("classifier" if part.startswith("classifier ") else part if part.startswith("rule ") else "other")
    return out or ["other"]


def measure_checks(policy: Any, benign: BenignSet, *, examples: int = 10, per_source_examples: int = 3,
                   progress: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Each blocking check's false positives on ``benign`` (module docstring, step 1)."""
    from lab.guardrails.policy import Policy, Rule

    rules = policy.rules["input"]
    names = rule_names(rules)
    blocking = [i for i, r in enumerate(rules) if r.action == "block"]
    measuring = Policy([Rule(r.check, "warn" if r.action == "block" else r.action, r.threshold) for r in rules],
                       fallback_message=policy.fallback_message)
    measuring.allowlist = policy.allowlist
    fired: dict[int, list[int]] = {i: [] for i in blocking}
    exempted: Counter[int] = Counter()
    found: dict[int, list[dict[str, Any]]] = {i: [] for i in blocking}
    thresholds: dict[int, float] = {}
    signals: dict[int, Counter[str]] = {i: Counter() for i in blocking}
    redactions: Counter[str] = Counter()
    any_block: list[int] = []
    items = list(enumerate(benign.questions))
    for q, text in (progress(items, desc="checks") if progress else items):
        res = measuring.apply(text, "input", route=CHAT)
        hit = False
        for i, o in enumerate(res.outcomes):
            if i in fired:
                thresholds.setdefault(i, float(o.decision.threshold))
                if o.action == "warn":
                    fired[i].append(q)
                    hit = True
                    found[i].append({"text": text, "source": benign.source_of[q], "score": round(o.decision.score, 4),
                                     "reason": o.decision.reason})
                    signals[i].update(_signals(o.decision.reason))
                elif o.action == "exempt":
                    exempted[i] += 1
            elif o.action in ("redact", "fallback", "repair"):
                redactions[names[i]] += 1
        if hit:
            any_block.append(q)
    n = len(benign.questions)
    by_source = Counter(benign.source_of)

    def summary(hits: list[int]) -> dict[str, Any]:
        per = Counter(benign.source_of[q] for q in hits)
        return {**_rate(len(hits), n), "per_source": {s: _rate(per[s], by_source[s]) for s in by_source}}

    checks = {}
    for i in blocking:
        ranked = sorted(found[i], key=lambda e: -e["score"])
        by_src = {s: [{k: e[k] for k in ("text", "score")} for e in ranked if e["source"] == s][:per_source_examples]
                  for s in by_source}
        checks[names[i]] = {**summary(fired[i]), "exempted": exempted[i], "threshold": thresholds.get(i),
                            "rule": i, "signals": dict(signals[i].most_common()), "examples": ranked[:examples],
                            "examples_by_source": {s: v for s, v in by_src.items() if v}}
    rows = []
    for name, c in [*checks.items(), ("any_block", summary(any_block))]:
        rows.append({"check": name, "source": "all", **{k: c[k] for k in ("n", "fired", "fpr", "fpr_ci")}})
        rows += [{"check": name, "source": s, **v} for s, v in c["per_source"].items()]
    return {"checks": checks, "any_block": summary(any_block), "any_block_ids": any_block, "rows": rows,
            "input_redactions": dict(redactions)}


# --------------------------------------------------------------------------- 2. the gateway
def write_gateway_bundle(out_dir: Path, policy: Mapping[str, Any], models_root: Path) -> Path:
    """The smallest bundle the gateway serves: BM25 over :data:`CORPUS` (k 2), this code's prompt,
    and ``policy`` with its models copied in (relative folders from ``models_root``)."""
    from lab.export.winner import ArmScore, choose_arm
    from lab.generate.domain_qa_prompt import PROMPT_VERSION
    from lab.handoff.bundle import ServedModel, write_bundle

    return write_bundle(out_dir, retrieval_config={"retriever": "bm25", "chunker": "none"}, corpus=CORPUS,
                        model=ServedModel("fixed-answer", spec="fixed-answer", base_revision="none"),
                        choice=choose_arm([ArmScore("rag", 0.5, 0.4, 0.6, 1, 1.0)]), k=2,
                        prompt_version=PROMPT_VERSION,
                        generation={"max_new_tokens": 64, "temperature": 0.0, "seed": 0, "stop": ["\n"]},
                        guardrails=dict(policy), provenance={"bundle_id": "guardrails-benign"}, root=models_root)


def model_versions(bundle: Path, written: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Which models the run served: per rule naming a model folder, the folder as the policy names
    it, a sha256 (12 hex digits) of the copy in the bundle (every file, by relative path and
    content), and from a trained classifier's ``meta.json`` its threshold and training data hash."""
    import hashlib

    from lab.config.guardrails import MODEL_OPTIONS, SIDES
    from lab.handoff.bundle import bundle_policy

    served = bundle_policy(bundle) or {}
    out: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        for i, (rule, as_written) in enumerate(zip(served.get(side) or [], written.get(side) or [], strict=True)):
            for key in MODEL_OPTIONS:
                folder = Path(str((rule.get("options") or {}).get(key, "")))
                if not (rule.get("options") or {}).get(key) or not folder.is_dir():
                    continue
                h = hashlib.sha256()
                for f in sorted(x for x in folder.rglob("*") if x.is_file()):
                    h.update(f.relative_to(folder).as_posix().encode() + b"\0")
                    with f.open("rb") as fh:
                        for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                            h.update(block)
                entry: dict[str, Any] = {key: as_written["options"][key], "sha256": h.hexdigest()[:12]}
                meta = folder / "meta.json"
                if meta.is_file():
                    m = json.loads(meta.read_text(encoding="utf-8"))
                    entry.update({k: m.get(k) for k in ("threshold", "train_data_sha256", "n_train", "oof_f1")
                                  if k in m})
                out[f"{side}[{i}] {rule['check']}"] = entry
    return out


def run_gateway(bundle: Path, benign: BenignSet, *, answer: str, work: Path,
                progress: Callable[..., Any] | None = None) -> tuple[dict[str, Any], list[int], Any]:
    """Every question through the gateway app (module docstring, step 2): the figures, the indexes
    of the blocked questions, and the served policy."""
    from fastapi.testclient import TestClient

    from lab.guardrails.policy import Policy
    from lab.handoff.bundle import bundle_policy
    from lab.serve.chat import RAG, ChatService, Settings
    from lab.serve.gateway import create_app
    from lab.serve.upstream import MessageUpstream

    cfg = bundle_policy(bundle)
    if cfg is None:
        raise SystemExit(f"{bundle}: the bundle holds no guardrail policy")
    policy = Policy.from_config(cfg)
    acted: list[tuple[str, Any]] = []
    policy.on_decision.append(lambda stage, o: acted.append((stage, o)))
    gw = ChatService(RAG(bundle), MessageUpstream(answer), fallback=None, policy=policy,
                     settings=Settings(feedback_path=work / "feedback.jsonl", mlflow_feedback=False, trace=False))
    client = TestClient(create_app(gw))
    blocked, fallbacks = [], []
    blocked_by: Counter[str] = Counter()
    fallback_by: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    error_examples: list[dict[str, Any]] = []
    items = list(enumerate(benign.questions))
    for q, text in (progress(items, desc="gateway") if progress else items):
        acted.clear()
        r = client.post(CHAT, json={"messages": [{"role": "user", "content": text}]})
        if r.status_code != 200:
            errors[str(r.status_code)] += 1
            if len(error_examples) < 10:
                error_examples.append({"text": text, "status": r.status_code, "body": r.text[:300]})
            continue
        body = r.json()
        content = body["choices"][0]["message"]["content"]
        if body["lab"]["blocked"]:
            blocked.append(q)
            blocked_by.update(o.decision.check for s, o in acted if s == "input" and o.action == "block")
        elif content == policy.fallback_message != answer:
            fallbacks.append(q)
            fallback_by.update(o.decision.check for s, o in acted if s == "output" and o.action == "fallback")
    n = len(benign.questions)
    by_source = Counter(benign.source_of)
    b_src, f_src = Counter(benign.source_of[q] for q in blocked), Counter(benign.source_of[q] for q in fallbacks)
    block, fall = _rate(len(blocked), n, "rate"), _rate(len(fallbacks), n, "rate")
    per_source = {}
    for s in by_source:
        b, f = _rate(b_src[s], by_source[s], "rate"), _rate(f_src[s], by_source[s], "rate")
        per_source[s] = {"n": by_source[s], "blocked": b_src[s], "block_rate": b["rate"], "block_ci": b["rate_ci"],
                         "fallbacks": f_src[s], "fallback_rate": f["rate"], "fallback_ci": f["rate_ci"]}
    figures = {
        "gateway_block_rate": block["rate"], "gateway_block_ci": block["rate_ci"], "gateway_blocked": len(blocked),
        "gateway_fallback_rate": fall["rate"], "gateway_fallback_ci": fall["rate_ci"],
        "gateway_fallbacks": len(fallbacks), "gateway_n": n,
        "gateway_blocked_by": dict(blocked_by), "gateway_fallback_by": dict(fallback_by),
        "gateway_errors": {"by_status": dict(errors), "examples": error_examples},
        "gateway_per_source": per_source,
    }
    return figures, blocked, policy


# --------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", nargs="+", type=Path, default=None,
                    help="CSV/JSONL question files (a question, query, user_query or text column); "
                         "default: the repository's benign sources")
    ap.add_argument("--per-source", type=int, default=300, help="at most this many questions per source (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policy", default="params.yaml#export.guardrails",
                    help="FILE#dotted.key of a guardrails policy, or a YAML file that is one")
    ap.add_argument("--models-root", type=Path, default=ROOT,
                    help="folder the policy's relative model paths resolve against (default: the repository root)")
    ap.add_argument("--training-files", nargs="*", type=Path, default=None,
                    help="labelled files whose texts are left out of the benign set (default: the guardrail "
                         "classifiers' training files of params.yaml guardrails_eval; none given: no exclusion)")
    ap.add_argument("--answer", default=ANSWER, help="the fake upstream's fixed answer")
    ap.add_argument("--examples", type=int, default=10, help="false positives kept per check")
    ap.add_argument("--shared", action="store_true", help="label the figures: other work shared the cores")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "guardrails_benign.json")
    args = ap.parse_args(argv)
    if args.per_source < 0:
        ap.error("--per-source must be >= 0 (0: all)")
    t0 = time.time()

    from lab.guardrails.policy import policy_spec
    from lab.io import write_json
    from lab.progress import bar

    raw, policy_file, policy_key = load_policy(args.policy)
    spec = policy_spec(raw)   # validated as `lab params check` would (ConfigError names the rule)
    training_files = (classifier_training_files(ROOT / "params.yaml") if args.training_files is None
                      else list(args.training_files))
    training = training_texts(training_files)
    if args.training_files is None:   # and the classifiers' generated training prompts
        training |= generated_training_texts(ROOT / "params.yaml")
    if args.questions:
        stems = Counter(p.stem for p in args.questions)
        sources = [(p.stem if stems[p.stem] == 1 else f"{p.stem}#{i}", p, "given with --questions")
                   for i, p in enumerate(args.questions)]
    else:
        sources, missing = [], []
        for s in SOURCES:
            p = ROOT / s.path
            if p.is_file():
                sources.append((s.name, p, s.note))
            elif s.required:
                missing.append(str(p))
        if missing:
            from lab.errors import DataError

            raise DataError(f"benign question source(s) missing: {', '.join(missing)} (run `dvc pull`, "
                            "or pass --questions FILE ...)")
    benign = assemble(sources, per_source=args.per_source, seed=args.seed, training=training)
    if not benign.questions:
        raise SystemExit("no benign questions: every source is empty")
    for v in benign.sources.values():   # repository paths as the repository names them
        path = Path(v["path"])
        v["path"] = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    print(f"{len(benign.questions)} benign questions: "
          + ", ".join(f"{k} {v['count']}" for k, v in benign.sources.items()), flush=True)

    with tempfile.TemporaryDirectory(prefix="guardrails-benign-") as tmp:
        work = Path(tmp)
        bundle = write_gateway_bundle(work / "bundle", raw, args.models_root.resolve())
        models = model_versions(bundle, raw)
        t_gw = time.time()
        gateway, blocked, policy = run_gateway(bundle, benign, answer=args.answer, work=work, progress=bar)
        gateway_seconds = time.time() - t_gw
        t_checks = time.time()
        measured = measure_checks(policy, benign, examples=args.examples, progress=bar)
        checks_seconds = time.time() - t_checks
    mismatches = len(set(blocked) ^ set(measured.pop("any_block_ids")))
    cfg = spec.to_config()
    result: dict[str, Any] = {
        "what": "false positives of the gateway's blocking checks on everyday benign questions, per check and "
                "end to end through the gateway",
        "sources": benign.sources, "n_benign": len(benign.questions),
        **measured,
        **gateway, "gateway_mismatches": mismatches,
        "gateway": {"route": CHAT, "upstream": "a fake answering every question with the fixed answer",
                    "answer": args.answer, "corpus": f"BM25 over {len(CORPUS)} built-in passages, k 2",
                    "covers": "request validation, input side, retrieval, context side, prompt, output side; "
                              "not generation"},
        "policy": {"id": spec.policy_id(), "source": f"{policy_file}#{policy_key}" if policy_key else str(policy_file),
                   "input": cfg.get("input") or [], "output": cfg.get("output") or [],
                   "context": cfg.get("context") or [], "exceptions": len(spec.exceptions),
                   "fallback_message": spec.fallback_message, "models": models,
                   "blocking": [n for n, r in zip(rule_names(policy.rules["input"]), policy.rules["input"], strict=True)
                                if r.action == "block"]},
        "settings": {"per_source": args.per_source, "seed": args.seed, "models_root": str(args.models_root),
                     "questions": [str(p) for p in args.questions] if args.questions else None,
                     "training_files": [str(p) for p in training_files], "examples": args.examples,
                     "confidence": 0.95, "interval": "Wilson score (lab.metrics.proportions.wilson_ci)"},
        "seconds": round(time.time() - t0, 1), "checks_seconds": round(checks_seconds, 1),
        "gateway_seconds": round(gateway_seconds, 1), "cores_shared": bool(args.shared), "cpu_count": os.cpu_count(),
        "command": shlex.join(["python", "benchmarks/guardrails_benign.py",
                               *(argv if argv is not None else sys.argv[1:])]),
    }
    write_json(args.out, result)
    for name, c in [*result["checks"].items(), ("any_block", result["any_block"])]:
        lo, hi = c["fpr_ci"] or (None, None)
        print(f"{name}: FPR {c['fpr']} [{lo}, {hi}] ({c['fired']}/{c['n']})")
    print(f"gateway: blocked {result['gateway_block_rate']} {result['gateway_block_ci']}, fallback "
          f"{result['gateway_fallback_rate']} {result['gateway_fallback_ci']}, mismatches {mismatches}; "
          f"{result['seconds']} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    from lab.errors import LabError

    try:
        sys.exit(main())
    except LabError as exc:  # bad input: the message names the file and row or line; no traceback
        sys.exit(f"error: {exc}")
