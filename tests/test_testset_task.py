"""Your own documents end to end (issue 30): the fine-tune comparison on a test set's splits over a
corpus folder, the RAG corpus from that folder, and the judges measured on the review's decisions.

Fixtures are written here (a test set CSV in the CONTRACT's columns, a review decisions file, a corpus
folder laid out as the ingest stage writes it); generation is a deterministic fake backend."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from lab.config import FinetuneComparisonConfig, JudgeEvalConfig, format_validation
from lab.errors import DataError

DOCS = {
    "pdf/controls.pdf": "Access control. The organization reviews accounts every 90 days. Privileged accounts need "
                        "multi-factor authentication. Audit logs are kept for one year and reviewed weekly.",
    "html/boundary.html": "The authorization boundary covers the production cloud. Encryption at rest uses AES-256. "
                          "Backups run nightly and are tested each quarter by the operations team.",
    "guide.md": "Incident response. Incidents are reported to the agency within one hour. The response team "
                "meets after each incident to record lessons learned.",
}


def _ref(doc: str, phrase: str, own_doc: bool = False) -> dict:
    at = DOCS[doc].index(phrase)
    return {"content": phrase, "start_index": at, "end_index": at + len(phrase), **({"corpus_id": doc} if own_doc else {})}


#: (id, question, doc, excerpt, answer, type, split)
ROWS = [
    ("t1", "How often are accounts reviewed?", "pdf/controls.pdf", "reviews accounts every 90 days", "every 90 days", "single", "train"),
    ("t2", "What do privileged accounts need?", "pdf/controls.pdf", "multi-factor authentication", "multi-factor authentication", "single", "train"),
    ("t3", "How long are audit logs kept?", "pdf/controls.pdf", "kept for one year", "one year", "single", "train"),
    ("t4", "What does encryption at rest use?", "html/boundary.html", "AES-256", "AES-256", "single", "train"),
    ("t5", "When do backups run?", "html/boundary.html", "Backups run nightly", "nightly", "single", "train"),
    ("t6", "Within what time are incidents reported?", "guide.md", "within one hour", "one hour", "single", "train"),
    # repeats a held-out question's text (case and punctuation aside): kept out of train
    ("t7", "how often are BACKUPS tested", "html/boundary.html", "tested each quarter", "each quarter", "single", "train"),
    ("tu", "What colour is the server room?", "guide.md", None, "", "unanswerable", "train"),
    ("h1", "How often are backups tested?", "html/boundary.html", "tested each quarter", "each quarter", "single", "heldout"),
    ("h2", "How often are audit logs reviewed?", "pdf/controls.pdf", "reviewed weekly", "weekly", "single", "heldout"),
    ("h3", "What does the boundary cover?", "html/boundary.html", "the production cloud", "the production cloud", "single", "heldout"),
    ("h4", "Who meets after each incident?", "guide.md", "The response team", "The response team", "single", "heldout"),
    ("hu1", "Who owns the data centre?", "guide.md", None, "", "unanswerable", "heldout"),
    ("hu2", "What is the budget?", "pdf/controls.pdf", None, "", "unanswerable", "heldout"),
]


def _row(id_, question, doc, excerpt, answer, qtype, split) -> dict:
    refs = [] if excerpt is None else [_ref(doc, excerpt)]
    return {"question": question, "references": json.dumps(refs), "corpus_id": doc, "id": id_, "answer": answer,
            "question_type": qtype, "generator": "fake:test", "split": split}


def _multi() -> dict:
    refs = [_ref("pdf/controls.pdf", "Audit logs are kept for one year", own_doc=True),
            _ref("guide.md", "reported to the agency within one hour", own_doc=True)]
    return {"question": "How long are logs kept and when are incidents reported?", "references": json.dumps(refs),
            "corpus_id": "pdf/controls.pdf", "id": "m1", "answer": "one year; within one hour",
            "question_type": "multi", "generator": "fake:test", "split": "heldout"}


def write_project(root: Path, *, manifest: bool = True, rows: list[dict] | None = None) -> tuple[Path, Path]:
    """The ingest stage's folder (docs + manifest.json) and the testset stage's CSV under ``root``."""
    import manifest_fixture

    docs = root / "results" / "ingest" / "docs"
    for doc_id, text in DOCS.items():
        (docs / f"{doc_id}.txt").parent.mkdir(parents=True, exist_ok=True)
        (docs / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    if manifest:
        manifest_fixture.write(root / "results" / "ingest",
                               [manifest_fixture.record("pdf/controls.pdf", title="Security Controls"),
                                manifest_fixture.record("html/boundary.html", title="Authorization Boundary")])
    csv = root / "results" / "testset" / "testset.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows if rows is not None else [*(_row(*r) for r in ROWS), _multi()]).to_csv(csv, index=False)
    return docs, csv


def _cfg(**kw) -> FinetuneComparisonConfig:
    base = {"model": "tiny-random-llama", "arms": ["zero_shot"], "n_train": 50, "n_heldout": 50,
            "task": {"kind": "testset", "questions": "results/testset/testset.csv", "corpus_dir": "results/ingest/docs"}}
    return FinetuneComparisonConfig.model_validate({**base, **kw})


# --------------------------------------------------------------------------- the task


def test_a_testset_task_takes_the_splits_of_the_file_counts_unanswerable_and_never_leaks(tmp_path):
    from lab.metrics.qa import normalize_answer
    from lab.studies.finetune import domain_task

    write_project(tmp_path)
    task = domain_task(_cfg(), tmp_path)
    assert {e.id for e in task.heldout} == {"h1", "h2", "h3", "h4", "m1"}
    assert {e.id for e in task.train} == {"t1", "t2", "t3", "t4", "t5", "t6"}       # t7 repeats h1's text
    assert task.counts["train_duplicates_moved"] == 1
    assert task.counts["unanswerable_train"] == 1 and task.counts["unanswerable_heldout"] == 2
    assert [e.id for e in task.unanswerable] == ["hu1", "hu2"] and all(e.answers == () for e in task.unanswerable)
    assert task.counts["multi_passage"] == 1 and task.counts["reviewed"] == 0
    assert not {normalize_answer(e.question) for e in task.train} & {normalize_answer(e.question) for e in task.heldout}
    h1 = next(e for e in task.heldout if e.id == "h1")
    assert h1.answers == ("each quarter",) and h1.context == "tested each quarter"
    assert h1.paragraph_id == "html/boundary.html" and h1.title == "Authorization Boundary"   # the ingest manifest's
    m1 = next(e for e in task.heldout if e.id == "m1")
    assert m1.context == "Audit logs are kept for one year\n\nreported to the agency within one hour"
    assert next(e for e in task.train if e.id == "t6").title == "guide"    # no manifest title: the file name
    assert task.corpus_kind == "documents" and list(task.paragraphs) == sorted(DOCS)
    stats = task.stats()
    assert stats["n_train"] == 6 and stats["n_heldout"] == 5 and stats["paragraphs"] == 3
    # caps: seeded, the same seed the same sets, a smaller cap a subset of a larger one
    small = domain_task(_cfg(n_train=3, n_heldout=2), tmp_path)
    assert len(small.train) == 3 and len(small.heldout) == 2
    assert [e.id for e in small.heldout] == [e.id for e in task.heldout][:2]
    assert [e.id for e in domain_task(_cfg(n_train=3, n_heldout=2), tmp_path).train] == [e.id for e in small.train]
    other = domain_task(_cfg(n_train=3, n_heldout=2, seed=7), tmp_path)
    assert [e.id for e in other.heldout + other.train] != [e.id for e in small.heldout + small.train]


def test_references_are_checked_against_the_corpus_and_empty_splits_are_named(tmp_path):
    from lab.studies.finetune import domain_task

    bad = _row(*ROWS[0])
    bad["references"] = json.dumps([{"content": "every 90 days", "start_index": 0, "end_index": 13}])
    write_project(tmp_path, rows=[bad, _row(*ROWS[8])])
    with pytest.raises(DataError, match=r"testset.csv:row 1: references\[0\] offsets 0..13 do not match .*dvc repro testset"):
        domain_task(_cfg(), tmp_path)
    write_project(tmp_path, rows=[_row(*ROWS[0]), _row(*ROWS[-1])])    # no answerable held-out question
    with pytest.raises(DataError, match="1 train and 0 held-out questions .*2 unanswerable|1 train and 0 held-out"):
        domain_task(_cfg(), tmp_path)
    odd = _row(*ROWS[0])
    odd["split"] = "dev"
    write_project(tmp_path, rows=[odd])
    with pytest.raises(DataError, match="field 'split' is 'dev'; allowed values: train, heldout"):
        domain_task(_cfg(), tmp_path)


def test_a_missing_test_set_or_corpus_names_the_file_and_the_stage_that_writes_it(tmp_path):
    from lab.studies.finetune import domain_task

    with pytest.raises(DataError, match=r"results/testset/testset.csv: test set not found; the testset stage writes it "
                                        r"\(`dvc repro testset`"):
        domain_task(_cfg(), tmp_path)
    _, csv = write_project(tmp_path)
    with pytest.raises(DataError, match=r"results/other/docs: corpus folder not found .*`dvc repro ingest`"):
        domain_task(_cfg(task={"kind": "testset", "questions": str(csv), "corpus_dir": "results/other/docs"}), tmp_path)


# --------------------------------------------------------------------------- the review


def _review(csv: Path, decisions: list[dict]) -> Path:
    from lab.data.review_file import file_sha256, review_path
    from lab.versioned import write_versioned

    decisions = [{"decided_at": "2026-12-07T00:00:00+00:00", **d} for d in decisions]
    return write_versioned(review_path(csv), "lab.testset-review", 1,
                           {"testset_sha256": file_sha256(csv), "decisions": decisions})


def test_the_reviewed_set_is_what_the_task_trains_and_answers(tmp_path):
    from lab.studies.finetune import domain_task

    _, csv = write_project(tmp_path)
    _review(csv, [{"id": "h2", "decision": "reject", "reason": "unsupported"},
                  {"id": "h3", "decision": "edit", "reason": "wording", "answer": "production cloud"}])
    task = domain_task(_cfg(), tmp_path)
    assert task.counts["reviewed"] == 1
    assert {e.id for e in task.heldout} == {"h1", "h3", "h4", "m1"}
    assert next(e for e in task.heldout if e.id == "h3").answers == ("production cloud",)
    # a malformed decisions file is an error naming it, never the unreviewed set in silence
    _review(csv, [{"id": "h2", "decision": "maybe"}])
    with pytest.raises(DataError, match="testset.review.json: decisions.0"):
        domain_task(_cfg(), tmp_path)


def test_every_study_reads_the_test_set_reviewed(tmp_path):
    """The chunking study and the retrieval sweep read a test set through the Chroma loader: with a
    review beside it, rejected questions are gone, edits applied, a multi-passage item keeps the
    document of each reference; without one, every row as written."""
    from lab.data.qa import load_chroma
    from lab.testset.review import clear_decision, record_decision

    _, csv = write_project(tmp_path)
    before = load_chroma(csv)
    assert len(before) == len(ROWS) + 1 and before[0].id == "row1"
    record_decision(csv, "h2", "reject", reason="not answerable from the excerpt")
    record_decision(csv, "h3", "edit", question="Which environment does the boundary cover?")
    after = {q.id: q for q in load_chroma(csv)}
    assert "h2" not in after and len(after) == len(ROWS)
    assert after["h3"].question == "Which environment does the boundary cover?"
    assert [r.doc_id for r in after["m1"].references] == ["pdf/controls.pdf", "guide.md"]
    assert [r.content for r in after["h1"].references] == ["tested each quarter"]
    clear_decision(csv, "h2")
    assert "h2" in {q.id for q in load_chroma(csv)}


def test_the_review_app_s_grounding_reasons_are_unsupported_labels_for_the_judges():
    """A reviewer who rejects with the app's "not answerable from the excerpt" gives judge_eval an
    unsupported label (a mismatch of the two lists left every reject out of the agreement)."""
    from lab.config.sections import UNSUPPORTED_REASONS
    from lab.handoff.reviewed_set import reason_key
    from lab.testset.review import REASONS, UNSUPPORTED

    assert {reason_key(r) for r in UNSUPPORTED} <= set(UNSUPPORTED_REASONS)
    assert not {reason_key(r) for r in REASONS if r not in UNSUPPORTED} & set(UNSUPPORTED_REASONS)


# --------------------------------------------------------------------------- the RAG corpus


def test_the_rag_corpus_is_the_corpus_folder_chunked_as_the_winner_says(tmp_path):
    from lab.chunking import make_chunker
    from lab.handoff.arms import ARMS_FILE, manifest_from_study, read_arms, write_arms
    from lab.retrieval.configured import corpus_retriever
    from lab.retrieval.sets import rag_corpus
    from lab.studies.finetune import domain_task

    write_project(tmp_path)
    task = domain_task(_cfg(), tmp_path)
    config = {"retriever": "bm25", "chunker": "recursive", "size": 16, "overlap": 0}
    r = corpus_retriever(config, task.corpus_kind, task.paragraphs)
    chunker = make_chunker("recursive", size=16, overlap=0)
    want = {f"{d}#c{c.index}": c.text for d in sorted(DOCS) for c in chunker.chunk(DOCS[d], doc_id=d)}
    assert r.passages == want and len(want) > len(DOCS)
    top = r.search(["How often are backups tested?"], 1)[0][0][0]
    assert top.startswith("html/boundary.html#c") and "tested each quarter" in r.passages[top]
    whole = corpus_retriever({"retriever": "bm25", "chunker": "none"}, task.corpus_kind, task.paragraphs)
    assert whole.passages == DOCS
    # the arms manifest carries the kind, so export builds the same passages; a SQuAD manifest is unchanged
    m = manifest_from_study([], retrieval={"config": config, "k": 2}, paragraphs=task.paragraphs,
                            heldout=task.heldout, corpus_kind=task.corpus_kind)
    write_arms(tmp_path / ARMS_FILE, m, tmp_path)
    back = read_arms(tmp_path / ARMS_FILE, tmp_path)
    assert back.corpus_kind == "documents"
    assert {k: v["text"] for k, v in rag_corpus(back.corpus_kind, back.paragraphs(), chunker).items()} == want
    squad = manifest_from_study([], retrieval=None, paragraphs={"p": {"title": "T", "text": "x"}}, heldout=[])
    write_arms(tmp_path / "squad.json", squad, tmp_path)
    assert "corpus_kind" not in json.loads((tmp_path / "squad.json").read_text())
    assert read_arms(tmp_path / "squad.json", tmp_path).corpus_kind == "squad"
    with pytest.raises(ValueError, match="unknown corpus kind 'pages'; kinds: squad, documents"):
        rag_corpus("pages", task.paragraphs, None)


class _EchoBackend:
    """Deterministic fake generation: answers with the last passage's first three words (or "unknown")."""

    def generate(self, prompts, params):
        from lab.generate.base import Generation

        out = []
        for messages in prompts:
            user = messages[-1]["content"]
            text = user.split("] ", 1)[1].split()[:3] if "] " in user else ["unknown"]
            if "budget" in user:   # one unanswerable question is declined, the other answered anyway
                text = ["I", "don't", "know."]
            out.append(Generation(" ".join(text), len(user.split()), 3, 0.0, None, "stop", "fake"))
        return out

    def close(self):
        pass


def test_the_study_runs_on_a_testset_task_and_export_and_the_judge_read_it(tmp_path, monkeypatch):
    import lab.studies.finetune as study
    from lab.handoff.arms import ARMS_FILE, read_arms
    from lab.handoff.winner import write_winner
    from lab.stage import StagePaths
    from lab.studies.judge import answer_sources

    write_project(tmp_path)
    write_winner(tmp_path / "winner.json", {"config": {"retriever": "bm25", "chunker": "recursive", "size": 16,
                                                       "overlap": 0}})
    monkeypatch.setattr(study, "_backend", lambda cfg, model: _EchoBackend())
    cfg = _cfg(arms=["zero_shot", "few_shot", "rag"], few_shot_k=2, winner="winner.json", out_dir="out",
               generation={"backend": "openai", "base_url": "http://127.0.0.1:9/v1"}, n_resamples=200)
    res = study.run(cfg, StagePaths.for_config(cfg, tmp_path), progress=False)
    res.write(tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["task.unanswerable_heldout"] == 2 and metrics["task.n_heldout"] == 5 and "rag.f1" in metrics
    assert res.report_sections(tmp_path / "out")[0][0].startswith("The test set task")
    preds = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert {p["id"] for p in preds} == {"h1", "h2", "h3", "h4", "m1"}
    assert all(p["contexts"] for p in preds if p["arm"] == "rag")
    # the served (RAG) arm answers the held-out unanswerable questions; the gateway's refusal check decides
    assert metrics["rag.refusal_rate_unanswerable"] == 0.5 and metrics["rag.refusal_rate_answerable"] == 0.0
    assert "zero_shot.refusal_rate_unanswerable" not in metrics
    unans = [json.loads(x) for x in (tmp_path / "out" / "unanswerable.jsonl").read_text().splitlines()]
    assert [(u["arm"], u["id"], u["refused"]) for u in unans] == [("rag", "hu1", False), ("rag", "hu2", True)]
    assert any(title.startswith("Questions the corpus does not answer") for title, _ in res.report_sections(tmp_path / "out"))
    m = read_arms(tmp_path / "out" / ARMS_FILE, tmp_path)
    assert m.corpus_kind == "documents" and list(m.paragraphs()) == sorted(DOCS)
    # judge_eval pointed at the same test set judges each answer against its question's excerpts
    jcfg = JudgeEvalConfig.model_validate({"answers": "out/predictions.jsonl", "task": cfg.task.model_dump()})
    source_of = answer_sources(jcfg, tmp_path)
    assert source_of("h1") == "tested each quarter"
    with pytest.raises(DataError, match="question 'q9' is not in results/testset/testset.csv"):
        source_of("q9")


# --------------------------------------------------------------------------- config


def test_the_squad_section_keeps_its_shape_and_params_hash():
    """Hashes computed by the code before ``task`` existed (same literal sections)."""
    from lab.config.tasks import SquadSource, SquadTask

    ft = {"model": "smollm2-135m-instruct", "titles": ["Normans", "Nikola_Tesla"], "n_train": 40, "n_heldout": 10,
          "arms": ["zero_shot", "rag"], "qa": "data/x.qa.jsonl"}
    je = {"answers": "results/finetune_comparison/predictions.jsonl", "paragraphs": "p.jsonl", "n_resamples": 500}
    cfg = FinetuneComparisonConfig.model_validate(ft)
    assert cfg.params_hash() == "378ffd08a2757dd8"
    assert JudgeEvalConfig.model_validate(je).params_hash() == "4b884ce2debacf2f"
    assert JudgeEvalConfig().params_hash() == "5a4d987cf28fb058"
    assert isinstance(cfg.task, SquadTask) and cfg.task.titles == ["Normans", "Nikola_Tesla"]
    assert isinstance(JudgeEvalConfig().task, SquadSource)
    dumped = cfg.model_dump(mode="json")
    assert "task" not in dumped and dumped["titles"] == ["Normans", "Nikola_Tesla"] and dumped["qa"] == "data/x.qa.jsonl"
    assert FinetuneComparisonConfig.model_validate(dumped) == cfg
    # the same task written under task: the same config and hash
    nested = {k: v for k, v in ft.items() if k not in ("titles", "qa")}
    same = FinetuneComparisonConfig.model_validate({**nested, "task": {"kind": "squad", "titles": ft["titles"],
                                                                       "qa": ft["qa"]}})
    assert same == cfg and same.params_hash() == cfg.params_hash()
    assert cfg.paths() == {"paragraphs": cfg.task.paragraphs, "qa": "data/x.qa.jsonl", "winner": cfg.winner}
    testset = _cfg(arms=["rag"])
    assert testset.model_dump(mode="json")["task"]["kind"] == "testset" and "titles" not in testset.model_dump()
    assert testset.paths() == {"task.questions": "results/testset/testset.csv",
                               "task.corpus_dir": "results/ingest/docs", "winner": testset.winner}


def _error(model, data, section) -> str:
    with pytest.raises(ValidationError) as err:
        model.model_validate(data)
    return format_validation(err.value, section, model, "params.yaml")


def test_config_errors_name_the_key_and_what_is_allowed():
    msg = _error(FinetuneComparisonConfig, {"arms": ["rag"], "task": {"kind": "testst", "questions": "a.csv",
                                                                       "corpus_dir": "d"}}, "finetune_comparison")
    assert "finetune_comparison.task.kind: unknown value 'testst' (allowed values: squad, testset)" in msg
    msg = _error(FinetuneComparisonConfig, {"arms": ["rag"], "titles": ["x"],
                                            "task": {"kind": "testset", "questions": "a", "corpus_dir": "d"}},
                 "finetune_comparison")
    assert "titles and task are both set" in msg
    msg = _error(FinetuneComparisonConfig, {"arms": ["rag"]}, "finetune_comparison")
    assert "titles missing" in msg and "kind: testset" in msg
    msg = _error(FinetuneComparisonConfig, {"arms": ["rag"], "titels": ["x"], "titles": ["x"]}, "finetune_comparison")
    assert "finetune_comparison.titels: unknown key" in msg and "titles" in msg.split("allowed keys:")[1]
    msg = _error(JudgeEvalConfig, {"reviewed": {"questions": "a.csv"}}, "judge_eval")
    assert "judge_eval.reviewed.corpus_dir: required key is missing" in msg
    msg = _error(JudgeEvalConfig, {"task": {"kind": "testset", "questions": "a.csv", "corpus_dir": "d"},
                                   "paragraphs": "p.jsonl"}, "judge_eval")
    assert "paragraphs and task are both set" in msg


def test_a_missing_test_set_at_load_is_another_stage_s_output_or_a_named_path(tmp_path):
    import yaml

    from lab.config import load_section
    from lab.errors import ConfigError

    section = {"arms": ["zero_shot"], "task": {"kind": "testset", "questions": "mine/testset.csv", "corpus_dir": "docs"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"finetune_comparison": section}))
    with pytest.raises(ConfigError, match=r"finetune_comparison.task.questions: 'mine/testset.csv' does not exist"):
        load_section("finetune_comparison", tmp_path / "params.yaml")


# --------------------------------------------------------------------------- the judges on the review


def _reviewed_project(tmp_path: Path) -> Path:
    _, csv = write_project(tmp_path)
    _review(csv, [{"id": "t1", "decision": "accept", "reason": ""},
                  {"id": "t2", "decision": "accept", "reason": ""},
                  {"id": "t3", "decision": "edit", "reason": "wording", "question": "For how long are audit logs kept?"},
                  {"id": "h1", "decision": "reject", "reason": "Unsupported: the excerpt says nothing of it"},
                  {"id": "h2", "decision": "reject", "reason": "wrong answer"},
                  {"id": "h3", "decision": "reject", "reason": "not in excerpt"},
                  {"id": "h4", "decision": "reject", "reason": "bad wording"},
                  {"id": "m1", "decision": "reject", "reason": "duplicate"},
                  {"id": "hu1", "decision": "accept", "reason": ""},
                  {"id": "gone", "decision": "accept", "reason": ""}])
    return csv


def test_corpus_titles_come_from_the_typed_manifest_or_the_file_name(tmp_path):
    """corpus_documents reads the manifest with lab.ingest.manifest.read_manifest: no manifest, the
    file names; a malformed record (skipped before) is a DataError naming the file and the key."""
    from lab.data.benchmarks import corpus_documents

    docs, _ = write_project(tmp_path)
    titles = {d: v["title"] for d, v in corpus_documents(docs).items()}
    assert titles == {"guide.md": "guide", "html/boundary.html": "Authorization Boundary",
                      "pdf/controls.pdf": "Security Controls"}
    manifest = tmp_path / "results" / "ingest" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["documents"].append("pdf/other.pdf")
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=r"manifest\.json: documents\.2: Input should be a valid dictionary"):
        corpus_documents(docs)
    manifest.unlink()
    assert {v["title"] for v in corpus_documents(docs).values()} == {"guide", "boundary", "controls"}


def test_review_decisions_become_grounding_labels_and_the_rest_is_counted(tmp_path):
    from lab.config.sections import UNSUPPORTED_REASONS
    from lab.data.benchmarks import corpus_documents
    from lab.handoff.reviewed_set import review_labels

    csv = _reviewed_project(tmp_path)
    labels = review_labels(csv, corpus_documents(tmp_path / "results" / "ingest" / "docs"), UNSUPPORTED_REASONS)
    assert {i.id: i.label for i in labels.items} == {"t1": 0, "t2": 0, "t3": 0, "h1": 1, "h2": 1, "h3": 1}
    t3 = next(i for i in labels.items if i.id == "t3")
    assert t3.question == "For how long are audit logs kept?" and t3.answer == "one year" and t3.context == "kept for one year"
    assert labels.counts == {"items": 15, "decisions": 10, "supported": 3, "unsupported": 3, "unknown_ids": 1,
                             "excluded": {"reject:bad_wording": 1, "reject:duplicate": 1, "unanswerable": 3,
                                          "undecided": 4}}


class _ListJudge:
    """A judge whose verdicts are given (1 = unsupported), in the order of the items it is asked about."""

    name, rubric_id, task, kind = "listed", "-", "grounded", "fake"

    def __init__(self, verdicts: dict[str, int | None]):
        self.verdicts = verdicts

    def judge(self, items):
        from lab.judge.base import Judgment

        out = []
        for it in items:
            v = self.verdicts[it.question]
            out.append(Judgment(v, None, None if v is None else str(v), "raw", self.name, self.rubric_id,
                                error=None if v is not None else "no verdict", error_kind=None if v is not None else "parse"))
        return out

    def describe(self):
        return {"name": self.name}


def test_each_judge_s_agreement_with_the_reviewer_is_reported_with_kappa(tmp_path):
    from types import SimpleNamespace

    from lab.studies.judge import JudgeReport, _row, on_reviewed, reviewed_labels

    _reviewed_project(tmp_path)
    cfg = JudgeEvalConfig.model_validate({"reviewed": {"questions": "results/testset/testset.csv",
                                                       "corpus_dir": "results/ingest/docs"}, "n_resamples": 500})
    reviewed, note = reviewed_labels(cfg, tmp_path)
    assert note is None
    by_question = {i.question: i.label for i in reviewed.items}
    # agrees on 4 of 6 (one wrong each way): accuracy 2/3, chance agreement 1/2, kappa 1/3
    verdicts = dict(by_question)
    wrong = [next(q for q, y in by_question.items() if y == 0), next(q for q, y in by_question.items() if y == 1)]
    for q in wrong:
        verdicts[q] = 1 - verdicts[q]
    rep, got = on_reviewed(_ListJudge(verdicts), reviewed, cfg)
    assert rep["n"] == 6 and rep["accuracy"] == pytest.approx(2 / 3) and rep["kappa"] == pytest.approx(1 / 3, abs=1e-12)
    assert rep["f1"] == pytest.approx(2 / 3) and rep["kappa_ci"][0] <= 1 / 3 <= rep["kappa_ci"][1]
    assert rep["labels"]["supported"] == 3 and len(got) == 6
    # a parse failure is counted, never a silent agreement
    verdicts[wrong[0]] = None
    failed, _ = on_reviewed(_ListJudge(verdicts), reviewed, cfg)
    assert failed["n"] == 6 and failed["n_scored"] == 5 and failed["parse_failures"] == 1
    # in the stage's outputs: a `reviewed` row, `grounded_reviewed` metrics, a sentence in the finding
    judge = _ListJudge(verdicts)
    table = pd.DataFrame([_row("grounded", SimpleNamespace(name="listed", kind="fake", rubric_id="-"), "reviewed", rep,
                               False)])
    report = JudgeReport(table, choices={"default": {}}, reviewed=reviewed.counts)
    m = report.metrics()["grounded_reviewed"]
    assert m["listed"]["kappa"] == pytest.approx(1 / 3, abs=1e-12) and m["labels"] == {"supported": 3, "unsupported": 3,
                                                                             "excluded": 9}
    assert judge.name in m
    # no review labels configured: nothing new in the metrics
    assert "grounded_reviewed" not in JudgeReport(table.assign(split="validation"), choices={"default": {}}).metrics()


def test_no_review_yet_is_reported_as_not_measured_and_the_stage_goes_on(tmp_path):
    """A new project's first `dvc repro` runs before anyone reviewed: judge_eval says agreement with
    the review is not measured yet and how to review, in the finding and the report, and does not stop."""
    from lab.studies.judge import JudgeReport, reviewed_labels

    _, csv = write_project(tmp_path)
    cfg = JudgeEvalConfig.model_validate({"reviewed": {"questions": str(csv), "corpus_dir": "results/ingest/docs"}})
    labels, note = reviewed_labels(cfg, tmp_path)                     # no decisions file at all
    assert labels is None and "not measured yet" in note and "testset.review.json" in note and "lab review" in note
    _review(csv, [])                                                  # the empty file `lab init` writes
    labels, note = reviewed_labels(cfg, tmp_path)
    assert labels is None and "0 decision(s)" in note
    _review(csv, [{"id": "t1", "decision": "reject", "reason": "bad wording"}])   # decided, but no grounding label
    labels, note = reviewed_labels(cfg, tmp_path)
    assert labels is None and "reject:bad_wording" in note and "1 decision(s)" in note
    from lab.studies.judge import COLUMNS

    report = JudgeReport(pd.DataFrame(columns=list(COLUMNS)), choices={"default": {}}, reviewed_note=note)
    assert f"Agreement with your review: {note}." in report.finding()
    assert ("Agreement with your review", note) in report.report_sections(tmp_path)
    assert "grounded_reviewed" not in report.metrics()
    # a malformed review is still an error naming the file
    csv.with_name("testset.review.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="testset.review.json"):
        reviewed_labels(cfg, tmp_path)


def test_the_yaml_examples_of_the_stage_pages_validate():
    import re

    import yaml
    from conftest import REPO

    for page, section, model in (("finetune_comparison", "finetune_comparison", FinetuneComparisonConfig),
                                 ("judge_eval", "judge_eval", JudgeEvalConfig)):
        text = (REPO / "docs" / "stages" / f"{page}.md").read_text(encoding="utf-8")
        blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)]
        mine = [b[section] for b in blocks if isinstance(b, dict) and "task" in b.get(section, {})]
        assert mine, page
        for b in mine:
            cfg = model.model_validate(b)
            assert cfg.task.kind == "testset"
