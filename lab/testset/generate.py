"""Generate a test set over a corpus folder: passages chosen in code, questions by a model, filters.

:func:`generate_testset` is the one entry point (the CLI, the ``testset`` stage and the agreement
benchmark call it). Per question type, in rounds: take the next passages of the type's seeded order
(:mod:`lab.testset.excerpts`), ask the generator (:mod:`lab.testset.prompts`, through the
generation cache, :mod:`lab.testset.cache`), read each reply (one retry when it does not parse),
run the filters (:mod:`lab.testset.filters`) and keep survivors until the type's share of ``n`` is
reached or ``max_candidates_factor`` x that share of passages has been tried.

A multi-passage question is, by default (``multi_style: compose``), two single-passage questions
on two related passages of different documents or sections, joined ("Q1, and q2?", answers "A1; A2"):
each half passes the single-passage filters against its own passage, so the whole needs both
references. ``multi_style: model`` asks the model for one question needing both passages instead:
for a model strong enough (Qwen2.5-Coder-0.5B copied passage 1 as its "question" in 3 of 3 probes).

An answer is snapped to the passage's own text where it occurs there (exactly, or ignoring case
and whitespace: :func:`lab.testset.text.locate`), so token-level answer metrics compare spans of
the document; the meta counts how many were snapped.

Deterministic for a seed: the passages' order is a seeded hash order, decoding is greedy unless
``temperature`` > 0 (then sampled with the seed), and a round's size depends only on what was kept.
Ctrl-C loses at most the batch in flight: every batch's replies are cached as they return, and
nothing is written until the end (atomically, :meth:`TestsetResult.write`).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.config import BackendSpec, TestsetConfig, backend_spec
from lab.errors import ConfigError, DataError
from lab.generate import Backend, GenParams
from lab.testset import prompts
from lab.testset.cache import FILE_NAME, CachedGenerator, GenerationCache, generator_name
from lab.testset.excerpts import Passage, all_passages, load_corpus, pairs, seeded_order
from lab.testset.filters import FILTERS, CorpusSentences, GroundedJudge, is_near_duplicate, prefilter
from lab.testset.io import TestsetResult, assign_splits, make_row
from lab.testset.text import locate, words

#: The question types, in the order they are generated.
TYPES = ("single", "multi", "unanswerable")


@dataclass(frozen=True)
class _Part:
    """One prompt of a task and the passages its reply is checked against."""

    prompt: list[dict[str, str]]
    passages: tuple[Passage, ...]
    kind: str            # the filters' kind for this part (a composed multi's parts are "single")


@dataclass(frozen=True)
class _Task:
    kind: str
    passages: tuple[Passage, ...]
    parts: tuple[_Part, ...]


def targets(n: int, types: Sequence[str], mix: Mapping[str, float]) -> dict[str, int]:
    """``n`` shared over ``types`` in proportion to ``mix`` (largest remainder; ties to the earlier type)."""
    unknown = [t for t in types if t not in TYPES]
    if unknown or not types:
        raise ConfigError(f"question types {unknown or list(types)} unknown (types: {', '.join(TYPES)})")
    weights = {t: float(mix.get(t, 0.0)) for t in types}
    if any(w <= 0 for w in weights.values()):
        raise ConfigError(f"every type needs a positive share in mix; got {weights}")
    total = sum(weights.values())
    exact = {t: n * w / total for t, w in weights.items()}
    out = {t: math.floor(v) for t, v in exact.items()}
    for t in sorted(types, key=lambda t: (-(exact[t] - out[t]), list(types).index(t)))[: n - sum(out.values())]:
        out[t] += 1
    return out


def _tasks(kind: str, by_doc: Mapping[str, Sequence[Passage]], seed: int, multi_style: str) -> Iterator[_Task]:
    order = seeded_order(by_doc, seed, kind)
    if kind == "single":
        for p in order:
            yield _Task(kind, (p,), (_Part(prompts.single(p), (p,), "single"),))
    elif kind == "multi":
        for a, b in pairs(order):
            if multi_style == "compose":
                parts = (_Part(prompts.single(a), (a,), "single"), _Part(prompts.single(b), (b,), "single"))
            else:
                parts = (_Part(prompts.multi(a, b), (a, b), "multi"),)
            yield _Task(kind, (a, b), parts)
    else:
        for p in order:
            yield _Task(kind, (p,), (_Part(prompts.unanswerable(p), (p,), "unanswerable"),))


def _compose(parts: Sequence[prompts.Parsed]) -> prompts.Parsed:
    """Two questions (and answers) as one that needs both: "Q1, and q2?" / "A1; A2"."""
    qs = [p.question.rstrip("?").rstrip() for p in parts]
    tail = [q if q[:2].isupper() else q[:1].lower() + q[1:] for q in qs[1:]]
    return prompts.Parsed(question=", and ".join([qs[0], *tail]) + "?", answer="; ".join(p.answer for p in parts))


def _snap(answer: str, passages: Sequence[Passage], documents: Mapping[str, str]) -> tuple[str, str]:
    """The answer as the document's own text where it occurs in a passage, and how it was found
    (``exact``, ``normalised`` or ``free``: not a span of the passages)."""
    for p in passages:
        hit = locate(documents[p.doc_id], answer, start=p.start, end=p.end)
        if hit is not None:
            return documents[p.doc_id][hit[0]:hit[1]], hit[2]
    return answer, "free"


class _Progress:
    """A bar over the kept questions, and a plain line to stderr every ``every`` kept (what
    ``dvc repro``'s log shows)."""

    def __init__(self, n: int, enable: bool) -> None:
        from lab.progress import bar, enabled

        self.on = enable and enabled()
        self.bar = bar(total=n, desc="testset", enable=enable, unit="q")
        self.every = max(1, n // 10)
        self.n = n
        self.kept = 0
        self.started = time.perf_counter()

    def step(self, counts: Mapping[str, int], gen: CachedGenerator) -> None:
        self.kept += 1
        self.bar.update(1)
        self.bar.set_postfix(generated=gen.generated, cached=gen.cached, refresh=False)
        if self.on and (self.kept % self.every == 0 or self.kept == self.n):
            per = (time.perf_counter() - self.started) / self.kept
            detail = ", ".join(f"{k} {v}" for k, v in counts.items())
            print(f"testset: {self.kept}/{self.n} kept ({detail}); {gen.generated} generated, "
                  f"{gen.cached} from cache; {per:.1f} s per kept", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


class _Run:
    """The state of one generation: what was kept, tried and filtered, and why."""

    def __init__(self, cfg: TestsetConfig, gen: CachedGenerator, judge: GroundedJudge | None,
                 sentences: CorpusSentences | None, documents: Mapping[str, str], name: str,
                 goal: Mapping[str, int], progress: _Progress) -> None:
        self.cfg, self.gen, self.judge, self.sentences = cfg, gen, judge, sentences
        self.docs, self.name, self.goal, self.progress = documents, name, goal, progress
        self.rows: list[dict[str, str]] = []
        self.split_keys: list[str] = []
        self.kept_words: list[frozenset[str]] = []
        self.kept = dict.fromkeys(goal, 0)
        self.tried = dict.fromkeys(goal, 0)
        self.filtered: dict[str, Counter[str]] = {t: Counter() for t in goal}
        self.answers: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.judge_errors: list[str] = []
        self.shortfall: dict[str, dict[str, Any]] = {}

    def replies(self, parts: Sequence[_Part], with_answer: bool, kind: str) -> list[prompts.Parsed]:
        """Each part's reply read; a reply that does not parse is asked once more."""
        replies = self.gen.replies([part.prompt for part in parts])
        got = [prompts.parse(r, with_answer=with_answer) for r in replies]
        bad = [i for i, g in enumerate(got) if g.error]
        if bad:
            self.retries[kind] += len(bad)
            again = self.gen.replies([prompts.retry(parts[i].prompt, replies[i], with_answer=with_answer)
                                      for i in bad])
            for i, r in zip(bad, again, strict=True):
                got[i] = prompts.parse(r, with_answer=with_answer)
        return got

    def part_reasons(self, parts: Sequence[_Part], got: Sequence[prompts.Parsed], with_answer: bool) -> list[str | None]:
        """Why each part fails (None: it passes): the filters before the judge, then the judge on
        the survivors in one call."""
        limits = self.cfg.filters
        reasons = [("unparseable" if g.error else prefilter(part.kind, g.question, g.answer, part.passages,
                                                            self.docs, limits))
                   for part, g in zip(parts, got, strict=True)]
        if with_answer and self.judge is not None:
            from lab.judge.base import JudgeInput

            todo = [i for i, r in enumerate(reasons) if r is None]
            items = [JudgeInput(question=got[i].question, answer=got[i].answer,
                                context="\n\n".join(q.text for q in parts[i].passages)) for i in todo]
            for i, j in zip(todo, self.judge.judge(items), strict=True):
                if j.verdict is None:
                    reasons[i] = "judge_failed"
                    self.judge_errors.append(f"{j.error} (raw: {str(j.raw)[:80]!r})")
                elif j.verdict == 1:
                    reasons[i] = "not_grounded"
        return reasons

    def round(self, kind: str, batch: Sequence[_Task]) -> None:
        """Generate, filter and keep one round of tasks of one type."""
        with_answer = kind != "unanswerable"
        parts = [part for t in batch for part in t.parts]
        got = self.replies(parts, with_answer, kind)
        reasons = self.part_reasons(parts, got, with_answer)
        at = 0
        for task in batch:
            mine = list(range(at, at + len(task.parts)))
            at += len(task.parts)
            if self.kept[kind] >= self.goal[kind]:
                continue    # the rest of the round is surplus: neither kept nor filtered
            reason = next((reasons[k] for k in mine if reasons[k] is not None), None)
            pieces = [got[k] for k in mine]
            whole = pieces[0] if len(pieces) == 1 else _compose(pieces)
            if reason is None and kind == "unanswerable" and self.sentences is not None \
                    and self.sentences.best_support(whole.question) >= self.cfg.filters.max_unanswerable_support:
                reason = "answered_by_corpus"
            if reason is None and is_near_duplicate(whole.question, self.kept_words, self.cfg.filters.near_duplicate):
                reason = "near_duplicate"
            if reason is not None:
                self.filtered[kind][reason] += 1
                continue
            self.keep(task, whole, pieces)

    def keep(self, task: _Task, whole: prompts.Parsed, pieces: Sequence[prompts.Parsed]) -> None:
        kind = task.kind
        refs: list[dict[str, Any]] = []
        answer = ""
        if kind != "unanswerable":
            refs = [q.reference() for q in task.passages]
            if len(task.parts) > 1:   # composed: each half's answer in its own passage
                snapped = [_snap(piece.answer, part.passages, self.docs)
                           for piece, part in zip(pieces, task.parts, strict=True)]
            else:
                snapped = [_snap(whole.answer, task.passages, self.docs)]
            answer = "; ".join(a for a, _ in snapped)
            hows = {h for _, h in snapped}
            self.answers["free" if "free" in hows else "normalised" if "normalised" in hows else "exact"] += 1
        self.rows.append(make_row(question=whole.question, references=refs,
                                  corpus_id=refs[0]["corpus_id"] if refs else "", answer=answer,
                                  question_type=kind, generator=self.name))
        self.split_keys.append(task.passages[0].doc_id)
        self.kept_words.append(frozenset(words(whole.question)))
        self.kept[kind] += 1
        self.progress.step(self.kept, self.gen)

    def run_type(self, kind: str, stream: Iterator[_Task]) -> None:
        """Rounds of the type until its goal is kept, its passages run out or its limit is tried."""
        goal = self.goal[kind]
        limit = math.ceil(self.cfg.max_candidates_factor * goal)
        exhausted = False
        while self.kept[kind] < goal and self.tried[kind] < limit and not exhausted:
            need = goal - self.kept[kind]
            size = min(limit - self.tried[kind], max(self.gen.spec.batch_size, math.ceil(need * 1.5)))
            batch = [t for _, t in zip(range(size), stream, strict=False)]
            exhausted = len(batch) < size
            if batch:
                self.tried[kind] += len(batch)
                self.round(kind, batch)
        if self.kept[kind] < goal:
            why = "passages ran out" if exhausted else f"{self.tried[kind]} passages tried (max_candidates_factor)"
            self.shortfall[kind] = {"wanted": goal, "kept": self.kept[kind], "why": why}
            print(f"testset: only {self.kept[kind]} of {goal} {kind} questions kept: {why}",
                  file=sys.stderr, flush=True)


def generate_testset(corpus_dir: Path, n: int, *, backend: BackendSpec | Mapping[str, Any] | None = None,
                     seed: int = 0, types: Sequence[str] = TYPES, cache_dir: Path | None = None,
                     progress: bool = True, settings: TestsetConfig | None = None,
                     client: Backend | None = None, identity: Mapping[str, Any] | None = None,
                     root: Path | None = None) -> TestsetResult:
    """``n`` questions over the corpus folder ``corpus_dir`` (see the module docstring).

    Parameters
    ----------
    corpus_dir
        One document per file (``lab ingest``'s ``docs/``); the ingest ``manifest.json`` beside it,
        when there, puts page and section into each reference.
    n
        Questions to keep, shared over ``types`` by ``settings.mix``.
    backend
        The generator (:class:`lab.config.BackendSpec` or its plain form, e.g.
        ``{"model": "http://host/v1#name"}``); None: ``settings.backend``.
    seed
        Orders the passages (and seeds sampling when ``temperature`` > 0) and the split.
    types
        Any of ``single``, ``multi``, ``unanswerable``.
    cache_dir
        Folder of the generation cache; None: the lab cache (``LAB_CACHE_DIR``).
    progress
        A bar, and a line on stderr at every tenth of ``n``.
    settings
        The ``testset`` section (filters' thresholds, passage lengths, mix, judge, split); None: its
        defaults.
    client, identity
        An already built backend and the identity that names it in the cache and the ``generator``
        column (``identity["name"]``; tests).
    root
        Folder a relative ``settings.grounded_judge`` path is resolved against.

    Returns
    -------
    TestsetResult
        ``rows`` (fewer than ``n`` when the passages run out: ``meta["shortfall"]`` says so) and ``meta``.

    Raises
    ------
    DataError
        No usable corpus folder, or no passage in it long enough and prose-like enough.
    ConfigError
        Unknown question type, or an unusable grounded judge.
    """
    cfg = settings or TestsetConfig()
    started = time.perf_counter()
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        raise ConfigError(f"question types {unknown} unknown (types: {', '.join(TYPES)})")
    kinds = [t for t in TYPES if t in set(types)]
    goal = targets(n, kinds, cfg.mix)
    spec = backend_spec(backend) if backend is not None else cfg.backend
    params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=seed)
    corpus = load_corpus(corpus_dir)
    by_doc = all_passages(corpus, min_chars=cfg.excerpt_min_chars, max_chars=cfg.excerpt_max_chars)
    n_passages = sum(len(v) for v in by_doc.values())
    if not n_passages:
        raise DataError(f"{corpus_dir}: no passage of {cfg.excerpt_min_chars}-{cfg.excerpt_max_chars} characters "
                        f"that reads as prose in {len(corpus.documents)} document(s); lower "
                        f"testset.excerpt_min_chars or check the extracted text")
    judge = GroundedJudge(cfg.grounded_judge, cfg.filters, root=root) if set(kinds) - {"unanswerable"} else None
    sentences = CorpusSentences(corpus.documents) if "unanswerable" in kinds else None
    cache = GenerationCache(Path(cache_dir) / FILE_NAME) if cache_dir is not None else GenerationCache()
    gen = CachedGenerator(spec, params, prompts.PROMPT_VERSION, cache=cache, backend=client, identity=identity)
    name = generator_name(spec) if identity is None else \
        str(identity.get("name") or f"{identity.get('backend')}:{identity.get('model')}")
    bar = _Progress(n, progress)
    run = _Run(cfg, gen, judge, sentences, corpus.documents, name, goal, bar)
    try:
        for kind in kinds:
            run.run_type(kind, _tasks(kind, by_doc, seed, cfg.multi_style))
    finally:
        bar.close()
        gen.close()
        cache.close()

    split = assign_splits(run.rows, seed=seed, heldout_fraction=cfg.heldout_fraction, by=cfg.split_by,
                          keys=run.split_keys)
    kept = len(run.rows)
    total: Counter[str] = Counter()
    for c in run.filtered.values():
        total.update(c)
    meta: dict[str, Any] = {
        "generator": name,
        "generator_identity": gen.identity,
        "prompt_version": prompts.PROMPT_VERSION,
        "multi_style": cfg.multi_style,
        "gen_params": params.to_dict(),
        "seed": seed,
        "n": n,
        "types": kinds,
        "targets": goal,
        "counts": run.kept,
        "kept": kept,
        "candidates": run.tried,
        "filtered": {f: total.get(f, 0) for f in FILTERS},
        "filtered_by_type": {t: {f: c.get(f, 0) for f in FILTERS} for t, c in run.filtered.items()},
        "filters": cfg.filters.model_dump(),
        "judge": judge.describe() if judge is not None else None,
        "judge_errors": run.judge_errors[:20],
        "retries": dict(run.retries),
        "answer_spans": {k: run.answers.get(k, 0) for k in ("exact", "normalised", "free")},
        "generations": {"generated": gen.generated, "cached": gen.cached, "backend_calls": gen.calls},
        "timings": {"seconds_total": round(time.perf_counter() - started, 3),
                    "seconds_generating": round(gen.seconds, 3),
                    "seconds_per_kept": round(gen.seconds / kept, 3) if kept else None},
        "corpus": {**corpus.identity(), "passages": n_passages},
        "passages": {"min_chars": cfg.excerpt_min_chars, "max_chars": cfg.excerpt_max_chars},
        "split": {"by": cfg.split_by, "heldout_fraction": cfg.heldout_fraction, **split},
        "shortfall": run.shortfall,
    }
    return TestsetResult(run.rows, meta)
