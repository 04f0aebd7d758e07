"""lab.testset: exact offsets, every filter counted, determinism, the generation cache, resume after
Ctrl-C, the readers of the chunking study and the sweep, and the stage; a deterministic fake backend."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from lab import config as lab_config
from lab.errors import DataError
from lab.generate import Generation
from lab.testset import generate_testset, read_meta, read_rows
from lab.testset.excerpts import Passage, all_passages, load_corpus, pairs, seeded_order
from lab.testset.filters import prefilter
from lab.testset.generate import targets
from lab.testset.text import copy_ratio, locate

IDENTITY = {"backend": "fake", "model": "scripted", "name": "fake:scripted"}
GOOD = ("good",)   # every reply a good question: the full count is kept

_TOPICS = [
    ("storage", ["encryption keys rotate every ninety days", "backups replicate to a second region nightly",
                 "object buckets log every read request", "snapshots expire after thirty five days",
                 "archive tiers restore within twelve hours", "quota alerts reach the owner by email"]),
    ("identity", ["administrators sign in with hardware tokens", "passwords expire after sixty days",
                  "service accounts use short lived certificates", "access reviews happen every quarter",
                  "dormant accounts lock after forty five days", "single sign on covers every console"]),
    ("network", ["traffic between zones passes a stateful firewall", "public endpoints terminate TLS version twelve",
                 "private links connect the tenant to the provider", "flow logs stay for one full year",
                 "denial of service protection filters volumetric floods", "bastion hosts record every session"]),
    ("monitoring", ["alerts page the on call engineer within minutes", "vulnerability scans run every month",
                    "the security team reviews audit logs weekly", "incident tickets close within five days",
                    "dashboards show patch status per host", "configuration drift triggers a ticket"]),
]
BOILERPLATE = "Copyright 2024 Example Agency. All rights reserved. This notice appears on every page of the file."


def _corpus(folder: Path) -> Path:
    """Four documents of prose paragraphs about cloud services, with a heading, a table row and a
    boilerplate paragraph repeated in every document (both must never become passages)."""
    folder.mkdir(parents=True, exist_ok=True)
    for topic, facts in _TOPICS:
        paras = [f"# The {topic} controls of cloud services", "| control | owner |", BOILERPLATE]
        for i, fact in enumerate(facts):
            paras.append(f"For cloud services in the {topic} area, {fact}. The provider documents how "
                         f"{fact.split()[0]} {fact.split()[1]} are handled in section {i + 1} of the plan. "
                         f"Auditors check this {topic} rule during every annual assessment of the system.")
        (folder / f"{topic}.txt").write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return folder


def _passage_of(prompt: list[dict]) -> list[str]:
    text = prompt[-1]["content"] if prompt[-1]["role"] == "user" else ""
    if text.startswith("That is not in the format"):
        text = prompt[-3]["content"]
    return re.findall(r"Passage(?: \d)?: (.*)", text)


class FakeBackend:
    """Scripted replies chosen by the passage's hash, so each filter fires on some passages:
    good, copies, unparseable (also on retry), unsupported answer, off topic, duplicate, too short,
    too long an answer; unanswerable ones are good or answered by the corpus. ``interrupt_after``
    raises KeyboardInterrupt on that call (Ctrl-C mid-run)."""

    name = "fake"
    supports = frozenset()

    def __init__(self, *, interrupt_after: int | None = None, modes: tuple[str, ...] | None = None) -> None:
        self.answered = modes is None     # a scripted good backend writes no answerable "unanswerable" question
        self.calls = 0
        self.prompts = 0
        self.interrupt_after = interrupt_after
        self.modes = modes or ("good", "good", "good", "copy", "unparseable", "unsupported", "off_topic",
                               "duplicate", "short", "long")

    def reply(self, prompt: list[dict]) -> str:
        passage = _passage_of(prompt)[0]
        h = int(hashlib.sha256(passage.encode()).hexdigest(), 16)
        ws = re.findall(r"[A-Za-z]+", passage)
        unanswerable = "Reply with one line" in prompt[-1]["content"] or "'Question: ...'. Nothing" in prompt[-1]["content"]
        # the mode of a passage follows its place in the corpus (topic, paragraph), so each mode is met
        m = re.search(r"the (\w+) area.*section (\d)", passage)
        place = [t for t, _ in _TOPICS].index(m.group(1)) * 6 + int(m.group(2)) if m else h
        if unanswerable:
            if self.answered and h % 3 != 0:   # the words of one sentence, reordered: the corpus answers it
                return f"Question: Is {ws[8]} {ws[7]} {ws[6]} {ws[5]} {ws[2]}?"
            return f"Question: How much will {ws[7].lower()} {ws[8].lower()} cost the cloud services team in 2031?"
        mode = self.modes[place % len(self.modes)]
        span = " ".join(passage.split()[6:9]).rstrip(".,")
        if mode == "good":
            return f"Question: Which rule covers {' '.join(ws[8:12]).lower()} in the plan?\nAnswer: {span}"
        if mode == "copy":
            return f"Question: {' '.join(passage.split()[:12])}?\nAnswer: {span}"
        if mode == "unparseable":
            return "I am sorry, I cannot write questions."
        if mode == "unsupported":
            return f"Question: What does the plan say about {ws[6].lower()} {ws[7].lower()}?\nAnswer: zanzibar teapots"
        if mode == "off_topic":
            return "Question: In what year was the Eiffel Tower completed?\nAnswer: 1889"
        if mode == "duplicate":
            return "Question: What does the plan say about cloud services?\nAnswer: cloud services"
        if mode == "short":
            return "Question: Why?\nAnswer: cloud services"
        return f"Question: What does the plan say about {ws[6].lower()}?\nAnswer: {' '.join((passage.split() * 2)[:40])}"

    def generate(self, prompts, params):
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt
        self.prompts += len(prompts)
        return [Generation(self.reply(p), 10, 10, 0.0, None, "stop", self.name) for p in prompts]

    def close(self):
        pass


def _settings(**kw) -> lab_config.TestsetConfig:
    base = {"backend": {"backend": "transformers", "model": "scripted", "batch_size": 4}, "excerpt_min_chars": 120,
            "excerpt_max_chars": 400, "max_candidates_factor": 4.0}
    return lab_config.TestsetConfig.model_validate({**base, **kw})


def _generate(corpus: Path, cache: Path, n: int = 10, *, backend=None, seed: int = 0, **kw):
    backend = backend or FakeBackend()
    result = generate_testset(corpus, n, seed=seed, cache_dir=cache, progress=False,
                              settings=_settings(**kw), client=backend, identity=IDENTITY)
    return result, backend


# ----------------------------------------------------------------------------- passages and text


def test_passages_are_exact_prose_spans_spread_over_documents(tmp_path):
    corpus = load_corpus(_corpus(tmp_path / "docs"))
    by_doc = all_passages(corpus, min_chars=120, max_chars=400)
    assert set(by_doc) == {"storage", "identity", "network", "monitoring"}
    for doc, ps in by_doc.items():
        assert len(ps) == 6
        for p in ps:
            assert corpus.documents[doc][p.start:p.end] == p.text
            assert "Copyright" not in p.text and not p.text.startswith(("#", "|"))
            assert 120 <= len(p.text) <= 400
    order = seeded_order(by_doc, 0, "single")
    assert len({p.doc_id for p in order[:4]}) == 4          # round-robin: the first four are four documents
    assert order == seeded_order(by_doc, 0, "single") != seeded_order(by_doc, 1, "single")
    for a, b in pairs(order):
        assert a.doc_id != b.doc_id


def test_manifest_beside_the_corpus_gives_page_and_section(tmp_path):
    import manifest_fixture

    docs = _corpus(tmp_path / "ingest" / "docs")
    text = (docs / "storage.txt").read_text()
    cut = len(text) // 2
    manifest_fixture.write(tmp_path / "ingest", [manifest_fixture.record(
        "storage", chars=len(text),
        pages=[{"page": 1, "start": 0, "end": cut}, {"page": 2, "start": cut, "end": len(text)}],
        sections=[{"title": "Storage", "level": 1, "start": 0, "end": len(text)}])])
    corpus = load_corpus(docs)
    assert corpus.manifest_sha256 and corpus.place("storage", cut + 1) == (2, "Storage")
    ps = all_passages(corpus, min_chars=120, max_chars=400)
    assert {p.page for p in ps["storage"]} == {1, 2} and {p.section for p in ps["storage"]} == {"Storage"}
    assert ps["identity"][0].page is None
    ref = ps["storage"][0].reference()
    assert ref["page"] == 1 and ref["section"] == "Storage" and ref["corpus_id"] == "storage"
    # the manifest is read by the typed reader: a malformed record is named, not skipped
    manifest = tmp_path / "ingest" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    del data["documents"][0]["title"]
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=r"manifest\.json: documents\.0\.title: Field required \(document 'storage'"):
        load_corpus(docs)
    manifest.unlink()
    assert load_corpus(docs).manifest is None and load_corpus(docs).place("storage", cut + 1) == (None, None)


def test_locate_exact_then_normalised():
    text = "The Board approved the  New\nProcess in 2024."
    assert locate(text, "approved") == (10, 18, "exact")
    assert locate(text, '"approved."') == (10, 18, "exact")     # quotes and a period trimmed
    s, e, how = locate(text, "new process")
    assert how == "normalised" and text[s:e] == "New\nProcess"
    assert locate(text, "absent words") is None and locate(text, "  ") is None


def test_copy_ratio_is_the_longest_copied_run_over_the_question():
    excerpt = "The program was established in 2011 by the Office of Management and Budget."
    assert copy_ratio("The program was established in what year?", excerpt) == pytest.approx(5 / 7)
    assert copy_ratio("When did it start?", excerpt) == 0.0


def test_a_question_leaning_on_its_excerpt_or_on_the_prompts_example_is_dropped(tmp_path):
    corpus = load_corpus(_corpus(tmp_path / "docs"))
    p = all_passages(corpus, min_chars=120, max_chars=400)["storage"][0]
    limits = lab_config.TestsetFilters()
    assert prefilter("single", "How often do the storage encryption keys rotate?", "every ninety days", [p],
                     corpus.documents, limits) is None
    assert prefilter("single", "How often do this area's encryption keys rotate?", "every ninety days", [p],
                     corpus.documents, limits) == "not_standalone"
    assert prefilter("unanswerable", "How tall is the Eiffel Tower next to cloud services storage?", "", [p],
                     corpus.documents, limits) == "off_topic"


def test_targets_share_n_by_the_mix():
    assert targets(10, ["single", "multi", "unanswerable"], {"single": 0.6, "multi": 0.2, "unanswerable": 0.2}) == \
        {"single": 6, "multi": 2, "unanswerable": 2}
    assert sum(targets(7, ["single", "unanswerable"], {"single": 0.6, "unanswerable": 0.2}).values()) == 7


# ----------------------------------------------------------------------------- generation


def test_every_kept_item_has_exact_offsets_and_the_contract_columns(tmp_path):
    corpus = _corpus(tmp_path / "docs")
    result, _ = _generate(corpus, tmp_path / "cache", n=10, backend=FakeBackend(modes=GOOD))
    documents = load_corpus(corpus).documents
    assert result.meta["kept"] == len(result.rows) == 10 and result.meta["counts"] == {"single": 6, "multi": 2,
                                                                                       "unanswerable": 2}
    for row in result.rows:
        refs = json.loads(row["references"])
        assert row["generator"] == "fake:scripted" and row["split"] in ("train", "heldout") and len(row["id"]) == 16
        if row["question_type"] == "unanswerable":
            assert refs == [] and row["corpus_id"] == "" and row["answer"] == ""
            continue
        assert row["corpus_id"] == refs[0]["corpus_id"]
        for ref in refs:
            assert documents[ref["corpus_id"]][ref["start_index"]:ref["end_index"]] == ref["content"]
        if row["question_type"] == "multi":
            assert len(refs) == 2 and refs[0]["corpus_id"] != refs[1]["corpus_id"]
            assert row["question"].count("?") == 1 and ", and " in row["question"]
        # the answer is a span of its passage(s): "; " joins a composed question's two answers
        for part, ref in zip(row["answer"].split("; "), refs, strict=False):
            assert part in ref["content"]
    assert result.meta["answer_spans"]["free"] == 0


def test_each_filter_is_counted(tmp_path):
    result, _ = _generate(_corpus(tmp_path / "docs"), tmp_path / "cache", n=10)
    f = result.meta["filtered"]
    for name in ("unparseable", "copies_excerpt", "not_grounded", "off_topic", "near_duplicate", "question_length",
                 "answer_length", "answered_by_corpus"):
        assert f[name] > 0, (name, f)
    assert f["excerpt_not_verbatim"] == 0 and f["judge_failed"] == 0
    assert sum(result.meta["retries"].values()) >= f["unparseable"]  # every unparseable reply was asked again
    tried = sum(result.meta["candidates"].values())
    assert sum(f.values()) + result.meta["kept"] <= tried
    assert result.meta["judge"]["spec"] == "lexical"


def test_the_filters_that_the_fake_cannot_reach(tmp_path):
    corpus = load_corpus(_corpus(tmp_path / "docs"))
    docs, limits = corpus.documents, lab_config.TestsetFilters()
    a = all_passages(corpus, min_chars=120, max_chars=400)["storage"][0]
    moved = Passage(a.doc_id, a.start + 1, a.end + 1, a.text, a.paragraph)
    assert prefilter("single", "What does the plan say about backups?", "x", [moved], docs, limits) == "excerpt_not_verbatim"
    other = all_passages(corpus, min_chars=120, max_chars=400)["network"][0]
    # a multi-passage question about one passage only
    q = "How often do encryption keys rotate for cloud services in the storage area?"
    assert prefilter("multi", q, "every ninety days", [a, other], docs, limits) == "multi_not_both"


def test_a_judge_without_a_verdict_is_counted_not_passed(tmp_path, monkeypatch):
    from lab.judge.base import Judgment
    from lab.testset.filters import GroundedJudge

    def broken(self, items):
        return [Judgment(None, None, None, "garbage", "broken", "-", error="could not parse", error_kind="parse")
                for _ in items]

    monkeypatch.setattr(GroundedJudge, "judge", broken)
    result, _ = _generate(_corpus(tmp_path / "docs"), tmp_path / "cache", n=4)
    assert result.meta["filtered"]["judge_failed"] > 0
    assert result.meta["counts"]["single"] == 0 and "could not parse" in result.meta["judge_errors"][0]


def test_deterministic_for_a_seed(tmp_path):
    corpus = _corpus(tmp_path / "docs")
    one, _ = _generate(corpus, tmp_path / "c1", n=8)
    two, _ = _generate(corpus, tmp_path / "c2", n=8)
    other, _ = _generate(corpus, tmp_path / "c3", n=8, seed=1)
    assert one.rows == two.rows
    assert {k: v for k, v in one.meta.items() if k not in ("timings", "corpus")} == \
        {k: v for k, v in two.meta.items() if k not in ("timings", "corpus")}
    assert [r["question"] for r in other.rows] != [r["question"] for r in one.rows]


def test_a_rerun_hits_the_cache_and_calls_no_backend(tmp_path):
    corpus = _corpus(tmp_path / "docs")
    first, b1 = _generate(corpus, tmp_path / "cache", n=8)
    second, b2 = _generate(corpus, tmp_path / "cache", n=8)
    assert b1.calls > 0 and b2.calls == 0
    assert second.rows == first.rows
    assert second.meta["generations"]["generated"] == 0 and second.meta["generations"]["cached"] > 0


def test_the_cache_key_holds_the_model_and_the_prompt_version(tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "docs")
    _generate(corpus, tmp_path / "cache", n=4)
    b = FakeBackend()
    generate_testset(corpus, 4, cache_dir=tmp_path / "cache", progress=False, settings=_settings(), client=b,
                     identity={**IDENTITY, "model": "another"})
    assert b.calls > 0
    from lab.testset import prompts

    monkeypatch.setattr(prompts, "PROMPT_VERSION", "testset/999")
    b = FakeBackend()
    _generate(corpus, tmp_path / "cache", n=4, backend=b)
    assert b.calls > 0


def test_resume_after_ctrl_c_repeats_no_cached_call_and_leaves_the_output_alone(tmp_path):
    corpus = _corpus(tmp_path / "docs")
    full, fresh = _generate(corpus, tmp_path / "reference-cache", n=10)
    out = tmp_path / "testset.csv"
    out.write_text("previous\n")
    with pytest.raises(KeyboardInterrupt):
        result, _ = _generate(corpus, tmp_path / "cache", n=10, backend=FakeBackend(interrupt_after=3))
        result.write(out)
    assert out.read_text() == "previous\n" and not (tmp_path / "testset.csv.meta.json").exists()
    resumed, b = _generate(corpus, tmp_path / "cache", n=10)
    assert b.calls == fresh.calls - 3          # the three batches answered before Ctrl-C came from the cache
    assert resumed.rows == full.rows
    resumed.write(out)
    assert read_rows(out) == full.rows and read_meta(out)["kept"] == full.meta["kept"] > 0


def test_write_is_atomic_and_the_meta_names_the_csv(tmp_path):
    result, _ = _generate(_corpus(tmp_path / "docs"), tmp_path / "cache", n=6)
    out = result.write(tmp_path / "sets" / "t.csv")
    meta = read_meta(out)
    assert meta["format"] == "lab.testset" and meta["csv_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert meta["corpus"]["documents"] == 4 and meta["seed"] == 0 and meta["generator"] == "fake:scripted"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]   # no temp file left


def test_split_by_document_keeps_a_document_on_one_side(tmp_path):
    result, _ = _generate(_corpus(tmp_path / "docs"), tmp_path / "cache", n=10, heldout_fraction=0.5,
                          backend=FakeBackend(modes=GOOD))
    sides: dict[str, set[str]] = {}
    for r in result.rows:
        if r["question_type"] == "single":
            sides.setdefault(r["corpus_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert result.meta["split"]["train"] + result.meta["split"]["heldout"] == 10


def test_progress_lines_reach_stderr(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAB_PROGRESS", "1")
    generate_testset(_corpus(tmp_path / "docs"), 4, cache_dir=tmp_path / "cache", progress=True,
                     settings=_settings(), client=FakeBackend(modes=GOOD), identity=IDENTITY)
    assert "testset: 4/4 kept" in capsys.readouterr().err


def test_too_few_passages_is_a_shortfall_not_a_loop(tmp_path):
    corpus = _corpus(tmp_path / "docs")
    result, _ = _generate(corpus, tmp_path / "cache", n=60, types=["single"])
    assert result.meta["kept"] < 60 and result.meta["shortfall"]["single"]["why"]


def test_an_unknown_type_and_an_empty_corpus_are_errors(tmp_path):
    from lab.errors import ConfigError, DataError

    corpus = _corpus(tmp_path / "docs")
    with pytest.raises(ConfigError, match="question types"):
        generate_testset(corpus, 2, types=["trick"], cache_dir=tmp_path / "c", client=FakeBackend(), identity=IDENTITY)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("# Only a heading\n")
    with pytest.raises(DataError, match="no passage"):
        generate_testset(tmp_path / "empty", 2, cache_dir=tmp_path / "c", client=FakeBackend(), identity=IDENTITY)


# ----------------------------------------------------------------------------- the readers


def test_the_chunking_study_and_the_sweep_read_a_generated_file(tmp_path):
    import numpy as np

    from lab.chunking import make_chunker
    from lab.config import BenchmarkSource
    from lab.data.benchmarks import load_benchmark, load_chroma_benchmark
    from lab.retrieval.sets import chroma_excerpts
    from lab.studies.chunking import evaluate

    corpus = _corpus(tmp_path / "docs")
    result, _ = _generate(corpus, tmp_path / "cache", n=10, backend=FakeBackend(modes=GOOD))
    out = result.write(tmp_path / "testset.csv")
    counts = result.meta["counts"]
    answerable = counts["single"] + counts["multi"]

    bench = load_chroma_benchmark(corpus, out)
    assert len(bench.questions) == answerable and bench.notes == {"unanswerable": counts["unanswerable"]}
    multi = [q for q in bench.questions if len(q.references) == 2]
    assert len(multi) == counts["multi"] and all(q.references[1].doc_id != q.doc_id for q in multi)

    src = BenchmarkSource(name="own", corpus_dir=str(corpus), questions=str(out))
    bench = load_benchmark(src, tmp_path)
    assert len(bench.questions) == answerable and bench.notes["unanswerable"] == counts["unanswerable"]

    def embed(texts):   # bag of words hashed into 64 dimensions: a deterministic stand-in embedder
        rows = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                rows[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)

    chunker = make_chunker("recursive", size=60, overlap=0)
    res = evaluate(chunker, bench, embed, ks=(5,))
    assert len(res.per_question) == answerable and res.per_question["recall"].between(0, 1).all()

    ds = chroma_excerpts(corpus, out, chunker)
    assert len(ds.queries) == answerable and ds.counts["questions_unanswerable"] == counts["unanswerable"]
    for qid, rels in ds.qrels.items():
        q = next(x for x in bench.questions if x.id == qid)
        assert {r.split("#c")[0] for r in rels} == {r.doc_id or q.doc_id for r in q.references}


# ----------------------------------------------------------------------------- the stage


def test_the_stage_writes_its_outputs_on_a_tiny_corpus(tmp_path):
    import yaml

    from lab.stages import run_stage

    _corpus(tmp_path / "results" / "ingest" / "docs")
    (tmp_path / "own.csv").write_text("question,answer,source\nHow often do keys rotate?,every ninety days,storage\n"
                                      "Who pays for it?,nobody knows,storage\n")
    section = {"n": 6, "backend": {"backend": "transformers", "model": "scripted", "batch_size": 4},
               "excerpt_min_chars": 120, "excerpt_max_chars": 400, "questions": "own.csv"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"testset": section}))
    run = run_stage("testset", tmp_path / "params.yaml", client=FakeBackend(modes=GOOD), identity=IDENTITY,
                    cache_dir=tmp_path / "cache")
    out = tmp_path / "results" / "testset"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == run.result.metrics() and metrics["kept"] == 6 and metrics["kept.single"] == 4
    assert metrics["filtered.copies_excerpt"] >= 0 and metrics["human.questions"] == 2 and metrics["human.not_found"] == 1
    assert len(read_rows(out / "testset.csv")) == 6 and len(read_rows(out / "human.csv")) == 2
    assert "timings.seconds_per_kept" in json.loads((out / "run_stats.json").read_text())
    finding = run.result.finding()
    assert finding.startswith("**6 of 6 questions kept**") and "own questions" in finding
    assert next(t for t, _ in run.result.report_sections(out)).startswith("Filtered")


@pytest.mark.slow
def test_the_copy_threshold_default_is_the_fit_on_human_squad_questions():
    """benchmarks/testset_copy_threshold.py fitted it; a change of the rule or the data shows here."""
    from conftest import require_data

    from lab.testset.filters import fit_copy_threshold

    data = require_data() / "squad_v1.1_dev"
    titles = ["Super_Bowl_50", "Warsaw", "Normans", "Nikola_Tesla", "Computational_complexity_theory", "Teacher"]
    fit = fit_copy_threshold(data / "dev-v1.1.paragraphs.jsonl", data / "dev-v1.1.qa.jsonl", exclude_titles=titles)
    assert fit.threshold == lab_config.TestsetFilters().max_copy_ratio and fit.n_articles == 42
