"""Judge training data without the shortcuts: faithful long answers and the same answers with one error.

For each training :class:`~lab.judge.faithful_sources.Source` (question + passages):

1. the local generator writes a 60-150 word answer from the passages (:data:`ANSWER_PROMPT`); an
   answer is DROPPED, with its reason counted, when generation fails, it is blank, outside
   ``[min_words, max_words]`` (an answer cut by ``max_new_tokens`` is first cut back to its last
   whole sentence), has fewer than 3 claims, is a list or markup, holds a number, year or named
   entity that the passages do not, or a claim with under ``min_claim_support`` (0.5) of its content
   words in the passages (:func:`check_answer`): its label "faithful" would be a guess. (The last
   check caught Qwen2.5-Coder 0.5B mixing up two organisations and adding "a non-profit organization
   that provides information about education"; it also means faithful answers stay lexically close to
   their passages, while paraphrases, checked for facts only, need not);
2. a second faithful version in other words (paraphrase is not evidence): with ``paraphrase="generator"``
   the generator rewrites the answer (:data:`PARAPHRASE_PROMPT`), checked the same way and required to
   keep the answer's numbers, stay within 30% of its length and reuse at most half of its word trigrams
   (:func:`copied_share`); where that fails (counted in the drops), or with ``paraphrase="rules"``,
   :func:`lab.judge.paraphrase.rule_paraphrase` rewords it (record key ``paraphrased_by``);
3. each faithful version gets ``per_version`` planted errors (:mod:`lab.judge.perturb`), the kinds
   taken in turn (each source starts at another kind, so the kinds are balanced), a kind that does not
   apply passed over (counted); the addition's extra detail is written by the generator
   (:data:`ADD_PROMPT`).

So every source gives as many hallucinated answers as faithful ones (``per_version=1``), each
hallucinated answer of about its faithful twin's length and in its style. Records are the
labelled-answers format (:mod:`lab.data.halueval` ``answers``: ``question``, ``contexts``, ``answer``,
``label``, ``spans``) plus ``id``, ``source_id``, ``kind`` (``faithful``, ``paraphrase`` or the error's),
``base`` (the id of the faithful version it was made from), ``claims`` (every claim's offsets with
its label by construction: 1 only for the planted one), ``detail``, ``words``, ``source_records``,
``generator`` and ``seed``.

:func:`make_data` APPENDS each source's records as one block and skips the sources already in the
file or in its drops file (``<out>.drops.jsonl``): an interrupted run resumes where it stopped; a
source whose block was cut short is rewritten. ``<out>.stats.json`` holds the counts, lengths per
class and the runs' seconds per source.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from lab.errors import DataError
from lab.judge.faithful_sources import Source
from lab.judge.paraphrase import rule_paraphrase
from lab.judge.perturb import ENTITY_LABELS, KINDS, NUMBER, Perturber, words

ANSWER_SYSTEM = "You are a helpful assistant who writes detailed answers grounded in the passages you are given."
ANSWER_PROMPT = """Read the passages and answer the question.

Passages:
{passages}

Question: {question}

Write the answer as one paragraph of 5 to 7 full sentences (60 to 150 words). First answer the question \
directly, then explain the background around it with more facts from the passages. Use only information \
stated in the passages; no lists, no headings, no passage numbers."""
PARAPHRASE_PROMPT = """Rewrite the text below in your own words, with different wording and a different \
sentence order. Keep every fact, number, name and date exactly as it is; add nothing and leave nothing out. \
Write one paragraph of about the same length, and nothing but the rewritten text.

Text:
{answer}"""
ADD_PROMPT = """Passages:
{passages}

Sentence: {claim}

Rewrite the sentence so that it also states one specific extra detail (a name, a number, a date or a place) \
that the passages do NOT mention. Keep the rest of the sentence as it is. Write only the one rewritten sentence."""

#: ``paraphrase`` modes: the generator (rules where its paraphrase fails the checks), rules only, none.
PARAPHRASE = ("generator", "rules", "off")
_CITATION = re.compile(r"\s*\[\d+(?:\s*[,-]\s*\d+)*\]")
_PREFIX = re.compile(r"^\s*(?:answer|rewritten text|rewritten sentence|sentence)\s*:\s*", re.IGNORECASE)
_MARKUP = re.compile(r"^\s*(?:[-*+•#]|\d{1,2}[.)]|```)", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s|$)")


class Writer(Protocol):
    """What writes the text: faithful answers and their paraphrases (a batch at a time, each as
    ``(text, finish_reason)``; :class:`~lab.generate.base.GenerationError` fails the batch), and a
    claim with one detail added."""

    name: str

    def answers(self, sources: Sequence[Source]) -> list[tuple[str, str]]: ...

    def paraphrases(self, answers: Sequence[str]) -> list[tuple[str, str]]: ...

    def add_detail(self, claim: str, passages: Sequence[str]) -> str | None: ...


def _numbered(passages: Sequence[str]) -> str:
    return "\n\n".join(f"[{n}] {p.strip()}" for n, p in enumerate(passages, 1))


class GeneratorWriter:
    """A :class:`Writer` on any :mod:`lab.generate` backend (greedy decoding: the same text every run
    with the same batch size).

    ``backend`` has ``generate(prompts, params)``; ``name`` is recorded in each record (``generator``)."""

    def __init__(self, backend: Any, *, name: str | None = None, max_new_tokens: int = 320, seed: int = 0) -> None:
        from lab.generate.base import GenParams

        self.backend = backend
        self.name = name or getattr(backend, "model_name", None) or getattr(backend, "name", "generator")
        self.long = GenParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)
        self.short = GenParams(max_new_tokens=96, temperature=0.0, seed=seed, stop=("\n\n",))

    def _chat(self, users: Sequence[str], params: Any, system: str | None = None) -> list[tuple[str, str]]:
        head = [{"role": "system", "content": system}] if system else []
        got = self.backend.generate([[*head, {"role": "user", "content": u}] for u in users], params)
        return [(g.text, g.finish_reason) for g in got]

    def answers(self, sources: Sequence[Source]) -> list[tuple[str, str]]:
        return self._chat([ANSWER_PROMPT.format(passages=_numbered(s.passages), question=s.question.strip())
                           for s in sources], self.long, ANSWER_SYSTEM)

    def paraphrases(self, answers: Sequence[str]) -> list[tuple[str, str]]:
        return self._chat([PARAPHRASE_PROMPT.format(answer=a) for a in answers], self.long)

    def add_detail(self, claim: str, passages: Sequence[str]) -> str | None:
        """``claim`` with one unsupported detail added (the first sentence of the generator's text);
        None where generation fails (the ``addition`` then does not apply to this claim)."""
        from lab.generate.base import GenerationError
        from lab.judge.claims import split_claims

        try:
            text, _ = self._chat([ADD_PROMPT.format(passages=_numbered(passages), claim=claim)], self.short)[0]
        except GenerationError:
            return None
        claims = split_claims(clean(text), min_words=1)
        return claims[0].text.strip("\"' ") if claims else None


def clean(text: str) -> str:
    """Generated text tidied: a leading "Answer:" and citation marks ("[1]", "[1, 2]") removed,
    spaces collapsed (paragraph breaks kept), surrounding quotes and whitespace stripped."""
    text = _CITATION.sub("", _PREFIX.sub("", text.strip()))
    text = "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip())
    return text.strip().strip('"').strip()


def cut_to_sentence(text: str) -> str:
    """``text`` up to its last sentence end (what is left of an answer that ran out of tokens)."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[:ends[-1].end()] if ends else ""


def _number_tokens(text: str) -> set[str]:
    return {m.group().replace(",", "") for m in NUMBER.finditer(text)}


def unsupported_facts(answer: str, passages: Sequence[str], nlp: Any) -> list[str]:
    """The answer's numbers (years included) and named entities that the passages do not hold."""
    from lab.judge.baselines import content_words

    context = "\n\n".join(passages)
    missing = sorted(_number_tokens(answer) - _number_tokens(context))
    have, low = content_words(context), " ".join(re.findall(r"\w+", context.lower()))
    for e in nlp(answer).ents:
        name = " ".join(re.findall(r"\w+", e.text.lower()))
        if e.label_ in ENTITY_LABELS and name and name not in low and not content_words(e.text) <= have:
            missing.append(e.text)
    return missing


def check_answer(text: str, passages: Sequence[str], nlp: Any, *, min_words: int = 50, max_words: int = 170,
                 min_claims: int = 3, min_claim_support: float = 0.0) -> str | None:
    """Why ``text`` (cleaned) cannot be a faithful answer, or None (see the module docstring);
    ``min_claim_support``: every claim needs at least that share of its content words in the passages
    (:func:`lab.judge.baselines.lexical_support`; 0: not checked)."""
    from lab.judge.baselines import lexical_support
    from lab.judge.claims import split_claims

    if not text.strip():
        return "empty"
    if _MARKUP.search(text):
        return "list_or_markup"
    n = words(text)
    if n < min_words:
        return "too_short"
    if n > max_words:
        return "too_long"
    if len(split_claims(text)) < min_claims:
        return "few_claims"
    if unsupported_facts(text, passages, nlp):
        return "unsupported_fact"
    context = "\n\n".join(passages)
    if min_claim_support and any(lexical_support(c.text, context) < min_claim_support for c in split_claims(text)):
        return "unsupported_claim"
    return None


def _stable(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def _record(source: Source, rid: str, kind: str, answer: str, label: int, spans: list[dict[str, int]],
            claims: list[dict[str, int]], **extra: Any) -> dict[str, Any]:
    return {"id": rid, "source_id": source.id, "kind": kind, "question": source.question,
            "contexts": list(source.passages), "answer": answer, "label": "hallucinated" if label else "faithful",
            "spans": spans, "claims": claims, "words": words(answer), **extra}


def source_records(source: Source, versions: Sequence[tuple[str, str]], perturber: Perturber, *,
                   kinds: Sequence[str] = KINDS, per_version: int = 1, seed: int = 0) -> tuple[list[dict[str, Any]],
                                                                                              list[str]]:
    """The records of one source: each faithful version (``(kind, answer)``: ``faithful`` first, then
    ``paraphrase``) and its ``per_version`` planted errors; and the kinds that did not apply."""
    out: list[dict[str, Any]] = []
    skipped: list[str] = []
    turn = _stable(f"{seed}:{source.id}") % len(kinds)
    base_id = f"{source.id}/faithful"
    for version, answer in versions:
        vid = f"{source.id}/{version}"
        claims = [{"start": c.start, "end": c.end, "label": 0} for c in perturber.claims(answer)]
        out.append(_record(source, vid, version, answer, 0, [], claims,
                           **({"base": base_id} if version != "faithful" else {})))
        used: set[str] = set()
        for _ in range(per_version):
            for step in range(len(kinds)):
                kind = kinds[(turn + step) % len(kinds)]
                if kind in used:
                    continue
                got = perturber.perturb(answer, kind, passages=source.passages, others=source.others,
                                        rng=random.Random(f"{seed}/{source.id}/{version}/{kind}"))
                if got is None:
                    skipped.append(kind)
                    continue
                used.add(kind)
                turn = (turn + step + 1) % len(kinds)
                labelled = [{"start": c.start, "end": c.end, "label": int(c.start == got.start)}
                            for c in perturber.claims(got.answer)]
                out.append(_record(source, f"{vid}/{kind}", kind, got.answer, 1, [got.span()], labelled,
                                   base=vid, detail={"before": got.before, **got.detail}))
                break
    return out, skipped


# ---------------------------------------------------------------------------------------- files
def sidecars(out: Path) -> tuple[Path, Path]:
    """``(<out>.drops.jsonl, <out>.stats.json)`` beside the records file."""
    stem = out.name.removesuffix(".jsonl")
    return out.with_name(f"{stem}.drops.jsonl"), out.with_name(f"{stem}.stats.json")


def _read_lines(path: Path) -> list[tuple[int, dict[str, Any] | None]]:
    """``(line, record)`` of a JSON-lines file; ``None`` for a last line cut short (a torn append).

    Raises
    ------
    DataError
        A line other than the last is not a JSON object: the file was edited, not torn."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[tuple[int, dict[str, Any] | None]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(lines):
                out.append((n, None))
                continue
            raise DataError(f"{path}: line {n} is not valid JSON ({exc.msg}); only the last line of an "
                            f"interrupted run can be cut short: fix or delete the line") from exc
        if not isinstance(rec, dict) or "source_id" not in rec:
            raise DataError(f"{path}: line {n} is not a record of lab judge make-data (no 'source_id')")
        out.append((n, rec))
    return out


def resume_state(out: Path) -> tuple[set[str], int, int]:
    """``(done source ids, faithful answers kept, records rewritten away)``: the sources in the records
    file with all their records, and those whose answer was dropped. A source with fewer records than its
    ``source_records`` (an append cut short) is removed from the file (rewritten atomically), to be
    made again."""
    from lab.io import write_lines

    drops, _ = sidecars(out)
    rows = _read_lines(out)
    count = Counter(r["source_id"] for _, r in rows if r is not None)
    whole = {r["source_id"] for _, r in rows if r is not None and count[r["source_id"]] == r.get("source_records")}
    bad = len(rows) - sum(1 for _, r in rows if r is not None and r["source_id"] in whole)
    if bad:
        write_lines(out, [json.dumps(r, ensure_ascii=False) + "\n" for _, r in rows
                          if r is not None and r["source_id"] in whole])
    done = whole | {r["source_id"] for _, r in _read_lines(drops) if r is not None and r.get("what") == "answer"}
    return done, len(whole), bad


def _append(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """One block of lines appended and synced (a crash leaves at most a torn last block)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        fh.flush()
        os.fsync(fh.fileno())


def summarize(out: Path) -> dict[str, Any]:
    """Counts of the records file and its drops: records per kind and label, words per label (mean,
    median), the mean |words| difference between a planted-error answer and its faithful version,
    drops by reason, the kinds that did not apply."""
    import statistics

    drops_path, _ = sidecars(out)
    recs = [r for _, r in _read_lines(out) if r is not None]
    # one drop per source and step (a source redone after a stop may have been counted twice)
    drops = list({(r["source_id"], r.get("what")): r for _, r in _read_lines(drops_path) if r is not None}.values())
    by_id = {r["id"]: r for r in recs}
    length = {lab: [r["words"] for r in recs if r["label"] == lab] for lab in ("faithful", "hallucinated")}
    gaps = [abs(r["words"] - by_id[r["base"]]["words"]) for r in recs if r["label"] == "hallucinated"
            and r.get("base") in by_id]
    return {"records": len(recs), "sources": len({r["source_id"] for r in recs}),
            "by_kind": dict(sorted(Counter(r["kind"] for r in recs).items())),
            "by_label": dict(sorted(Counter(r["label"] for r in recs).items())),
            "words": {lab: {"mean": statistics.fmean(v), "median": statistics.median(v)} if v else None
                      for lab, v in length.items()},
            "mean_abs_words_vs_base": statistics.fmean(gaps) if gaps else None,
            "paraphrased_by": dict(sorted(Counter(r["paraphrased_by"] for r in recs if r["kind"] == "paraphrase"
                                              and r.get("paraphrased_by")).items())),
            "dropped": dict(sorted(Counter(r["reason"] for r in drops if r.get("what") == "answer").items())),
            "paraphrases_dropped": dict(sorted(Counter(r["reason"] for r in drops
                                                       if r.get("what") == "paraphrase").items())),
            "not_applicable": dict(sorted(Counter(k for r in recs for k in r.get("not_applicable", [])).items()))}


def make_data(sources: Sequence[Source], writer: Writer, out: str | Path, *, n: int, seed: int = 0,
              kinds: Sequence[str] = KINDS, per_version: int = 1, paraphrase: str = "generator",
              perturber: Perturber | None = None, min_words: int = 50, max_words: int = 170,
              min_claim_support: float = 0.5, batch: int = 1, progress: bool = True) -> dict[str, Any]:
    """Append the records of sources (seeded order; ``batch`` answers generated at once) to ``out``
    until it holds ``n`` faithful answers or the sources run out; return (and write to
    ``<out>.stats.json``) :func:`summarize` plus this run's counts and seconds per source (see the
    module docstring). A ``perturber`` without ``add`` gets the writer's :meth:`~Writer.add_detail`.

    Raises
    ------
    DataError
        ``n`` or ``batch`` < 1, an unknown kind, or a records file that is not this builder's."""
    from lab.errors import ConfigError
    from lab.io import write_json
    from lab.progress import bar

    if n < 1 or batch < 1:
        raise DataError(f"n and batch must be >= 1, got n={n}, batch={batch}")
    if paraphrase not in PARAPHRASE:
        raise ConfigError(f"paraphrase must be one of {', '.join(PARAPHRASE)}, got {paraphrase!r}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ConfigError(f"unknown perturbation kind(s) {unknown or '(none given)'}; known: {', '.join(KINDS)}")
    out = Path(out)
    drops_path, stats_path = sidecars(out)
    done, kept, rewritten = resume_state(out)
    perturber = perturber or Perturber()
    perturber.add = perturber.add or writer.add_detail
    order = list(sources)
    random.Random(seed).shuffle(order)   # then the done ones out: a resumed run goes on in the same order
    order = [s for s in order if s.id not in done]
    run = Counter(tried=0, kept=0, dropped=0, paraphrases=0)
    started = time.perf_counter()
    meta = {"generator": writer.name, "seed": seed}
    check = {"nlp": perturber.nlp, "min_words": min_words, "max_words": max_words}
    finished = started   # when the last whole chunk was written: an interrupted chunk is not timed
    complete = False
    try:
        with bar(total=n, initial=min(kept, n), desc="faithful answers", enable=progress) as pbar:
            while kept < n and order:
                chunk, order = order[:min(batch, n - kept)], order[min(batch, n - kept):]
                kept += _one_chunk(chunk, writer, perturber, out, drops_path, run, check, meta,
                                   paraphrase=paraphrase, kinds=kinds, per_version=per_version, seed=seed,
                                   min_claim_support=min_claim_support, pbar=pbar)
                finished = time.perf_counter()
        complete = True
    finally:   # written also when the run is stopped: what it did is counted
        stats = summarize(out)
        previous = json.loads(stats_path.read_text(encoding="utf-8")).get("runs", []) if stats_path.is_file() else []
        seconds = finished - started
        stats["runs"] = [*previous, {**dict(run), "seconds": round(seconds, 1), "rewritten_records": rewritten,
                                     "batch": batch, "completed": complete, "seconds_per_source_tried":
                                     round(seconds / run["tried"], 2) if run["tried"] else None, **meta}]
        stats["sources_exhausted"] = complete and kept < n
        write_json(stats_path, stats)
    return stats


def _one_chunk(chunk: Sequence[Source], writer: Writer, perturber: Perturber, out: Path, drops_path: Path,
               run: Counter[str], check: dict[str, Any], meta: dict[str, Any], *, paraphrase: str,
               kinds: Sequence[str], per_version: int, seed: int, min_claim_support: float, pbar: Any) -> int:
    """One batch of sources: answers, checks, paraphrases, planted errors, appended; how many were kept."""
    firsts = _checked(chunk, [None] * len(chunk), writer.answers, {**check, "min_claim_support": min_claim_support})
    good = [(s, text) for s, (why, text) in zip(chunk, firsts, strict=True) if why is None]
    bad = [{"source_id": s.id, "what": "answer", "reason": why, "text": text[:2000], **meta}
           for s, (why, text) in zip(chunk, firsts, strict=True) if why is not None]
    paras = _checked([s for s, _ in good], [t for _, t in good], writer.paraphrases, check) \
        if paraphrase == "generator" and good else [("off", "")] * len(good)
    bad += [{"source_id": s.id, "what": "paraphrase", "reason": why, "text": text[:2000], **meta}
            for (s, _), (why, text) in zip(good, paras, strict=True) if why not in (None, "off")]
    blocks = []
    for (source, text), (why, para) in zip(good, paras, strict=True):
        by = "generator" if why is None else None
        if by is None and paraphrase != "off":
            para = rule_paraphrase(text, random.Random(f"{seed}/{source.id}/paraphrase")) or ""
            by = "rules" if para and check_answer(para, source.passages, **check) is None else None
        versions = [("faithful", text)] + ([("paraphrase", para)] if by else [])
        records, skipped = source_records(source, versions, perturber, kinds=kinds, per_version=per_version, seed=seed)
        records[0]["not_applicable"] = skipped
        for r in records:
            r.update(meta, source_records=len(records))
            if r["kind"] == "paraphrase":
                r["paraphrased_by"] = by
        blocks.append(records)
        run["paraphrases"] += by is not None
    if bad:
        _append(drops_path, bad)
    for records in blocks:
        _append(out, records)
        pbar.update(1)
    run.update(tried=len(chunk), kept=len(good), dropped=len(chunk) - len(good))
    pbar.set_postfix(dropped=run["dropped"], refresh=False)
    return len(good)


def _checked(sources: Sequence[Source], originals: Sequence[str | None], write: Any, check: dict[str, Any]
             ) -> list[tuple[str | None, str]]:
    """``(why not, text)`` per source: ``write`` (the writer's ``answers`` of the sources, or its
    ``paraphrases`` of ``originals``) cleaned, cut back to a whole sentence where it ran out of tokens,
    and checked (:func:`check_answer`; a paraphrase also against its original, :func:`paraphrase_problem`)."""
    from lab.generate.base import GenerationError

    try:
        got = write(sources if originals[0] is None else originals)
    except GenerationError as exc:
        return [("generation_error", str(exc))] * len(sources)
    out: list[tuple[str | None, str]] = []
    for source, original, (raw, finish) in zip(sources, originals, got, strict=True):
        text = clean(raw)
        if finish == "length":
            text = cut_to_sentence(text)
        why = check_answer(text, source.passages, **check)
        if why is None and original is not None:
            why = paraphrase_problem(text, original)
        out.append((why, text or raw))
    return out


def paraphrase_problem(text: str, answer: str, *, max_copied: float = 0.5) -> str | None:
    """Why ``text`` is not a faithful paraphrase of ``answer`` (it passed :func:`check_answer`), or None:
    ``length_changed`` (over 30%), ``numbers_changed``, ``not_reworded`` (:func:`copied_share` above
    ``max_copied``)."""
    if abs(words(text) - words(answer)) > 0.3 * words(answer):
        return "length_changed"
    if _number_tokens(text) != _number_tokens(answer):
        return "numbers_changed"
    if copied_share(text, answer) > max_copied:
        return "not_reworded"
    return None


def copied_share(text: str, original: str) -> float:
    """The share of ``text``'s word trigrams (lower-cased) that ``original`` has too (1.0: a copy)."""
    def grams(t: str) -> list[tuple[str, ...]]:
        w = re.findall(r"\w+", t.lower())
        return [tuple(w[i:i + 3]) for i in range(len(w) - 2)]

    mine, theirs = grams(text), set(grams(original))
    return sum(g in theirs for g in mine) / len(mine) if mine else 1.0


def writer_for(generator: str, *, backend: str = "transformers", threads: int | None = None,
               max_new_tokens: int = 320, seed: int = 0, batch: int = 1) -> Writer:
    """A :class:`GeneratorWriter` on ``backend`` (``transformers``, ``llama-cpp``, ``openai``...) with
    model ``generator`` (a name, folder, endpoint); ``extractive``: :class:`~lab.judge.extractive_writer.ExtractiveWriter`."""
    from lab.generate.base import make_backend
    from lab.judge.extractive_writer import ExtractiveWriter

    if generator == "extractive":
        return ExtractiveWriter(seed=seed)

    spec: dict[str, Any] = {"backend": backend, "model": generator}
    if threads is not None:
        spec["threads"] = threads
    if backend == "transformers":
        spec["batch_size"] = batch
    return GeneratorWriter(make_backend(spec), name=generator, max_new_tokens=max_new_tokens, seed=seed)
