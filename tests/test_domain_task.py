"""The domain task (lab.data.domain), its prompts (lab.generate.domain_qa_prompt) and its RAG contexts
(lab.retrieval.configured) on real SQuAD articles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DATA, REPO

from lab.data.domain import DomainTask, QAExample, build_domain_task, pick_shots
from lab.errors import ConfigError, DataError
from lab.generate.domain_qa_prompt import (
    SYSTEM,
    clean_prediction,
    few_shot,
    training_example,
    with_context,
    zero_shot,
)
from lab.handoff.winner import read_winner_config
from lab.metrics.qa import answer_in_context, normalize_answer
from lab.retrieval.configured import ConfiguredRetriever, squad_retriever

PARAGRAPHS = DATA / "squad_v1.1_dev" / "dev-v1.1.paragraphs.jsonl"
QA = DATA / "squad_v1.1_dev" / "dev-v1.1.qa.jsonl"
#: Three small articles (112 + 197 + 268 = 577 questions).
TITLES = ["Normans", "Computational_complexity_theory", "Teacher"]


def build(titles=TITLES, **kw) -> DomainTask:
    kw = {"n_train": 300, "n_heldout": 100, "seed": 0, **kw}
    return build_domain_task(PARAGRAPHS, QA, titles, **kw)


@pytest.fixture(scope="module")
def task() -> DomainTask:
    return build()


# --------------------------------------------------------------------------- the split


def test_split_sizes_titles_and_disjointness(task):
    assert len(task.train) == 300 and len(task.heldout) == 100
    assert task.titles == TITLES
    train_ids, held_ids = {e.id for e in task.train}, {e.id for e in task.heldout}
    assert len(train_ids) == 300 and len(held_ids) == 100 and not train_ids & held_ids
    assert not {normalize_answer(e.question) for e in task.train} & {normalize_answer(e.question) for e in task.heldout}
    for e in task.train + task.heldout:
        assert e.title in TITLES and e.answers and e.paragraph_id in task.paragraphs
        assert task.paragraphs[e.paragraph_id] == {"title": e.title, "text": e.context}
    assert {p["title"] for p in task.paragraphs.values()} == set(TITLES)
    stats = task.stats()
    # the point of the task: held-out questions ask about paragraphs the train set covers
    assert stats["heldout_paragraph_in_train"] > 50
    assert sum(v["train"] for v in stats["per_title"].values()) == 300
    assert stats["questions_available"] == 577 and "prompt_version" not in stats  # a data split, not a prompt


def test_split_is_deterministic_nested_and_seeded(task):
    again = build()
    assert [e.id for e in again.train] == [e.id for e in task.train]
    assert [e.id for e in again.heldout] == [e.id for e in task.heldout]
    assert again.stats()["heldout_hash"] == task.stats()["heldout_hash"]
    bigger = build(n_heldout=200)
    assert [e.id for e in bigger.heldout[:100]] == [e.id for e in task.heldout]
    other = build(seed=1)
    assert {e.id for e in other.heldout} != {e.id for e in task.heldout}
    spaced = build(titles=["Computational complexity theory", "Normans", "Teacher"])
    assert {e.id for e in spaced.heldout} == {e.id for e in task.heldout}


def test_duplicate_question_texts_are_moved_out_of_train():
    # Super_Bowl_50 has questions written twice for the same paragraph ("Who won Super Bowl 50?")
    only_held = build(["Super_Bowl_50"], n_heldout=400, n_train=0)
    held = {normalize_answer(e.question) for e in only_held.heldout}
    held_ids = {e.id for e in only_held.heldout}
    everything = build(["Super_Bowl_50"], n_heldout=810, n_train=0).heldout
    moved = sum(1 for e in everything if e.id not in held_ids and normalize_answer(e.question) in held)
    assert moved > 0
    task = build(["Super_Bowl_50"], n_heldout=400, n_train=410 - moved)  # every usable question
    assert task.counts["train_duplicates_moved"] == moved
    assert not any(normalize_answer(e.question) in held for e in task.train)
    assert [e.id for e in task.heldout] == [e.id for e in only_held.heldout]
    with pytest.raises(DataError, match=f"810 questions with an answer, {moved} of which repeat"):
        build(["Super_Bowl_50"], n_heldout=400, n_train=411 - moved)


def test_split_errors():
    with pytest.raises(DataError, match=r"577 questions.*n_heldout=500 leaves .* n_train=100 asked"):
        build(n_train=100, n_heldout=500)
    with pytest.raises(DataError, match="no article titled \\['Atlantis'\\]"):
        build(["Normans", "Atlantis"])
    with pytest.raises(ValueError, match="n_heldout must be an integer >= 1"):
        build(n_heldout=0)
    with pytest.raises(ValueError, match="n_train must be"):
        build(n_train=-1)
    with pytest.raises(ValueError, match="non-empty list"):
        build([])
    with pytest.raises(ValueError, match="non-empty list"):
        build("Normans")


# --------------------------------------------------------------------------- prompts


def test_prompts_render(task):
    ex = task.heldout[0]
    msgs = zero_shot(ex)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == SYSTEM and ex.question.strip() in msgs[1]["content"]
    assert ex.title.replace("_", " ") in msgs[1]["content"]

    shots = pick_shots(task.train, 3, seed=0)
    fs = few_shot(ex, shots)
    assert [m["role"] for m in fs] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert [m["content"] for m in fs[2:-1:2]] == [s.answers[0] for s in shots]
    assert fs[-1] == msgs[-1]
    with pytest.raises(ValueError, match="among its own shots"):
        few_shot(ex, [ex])

    rag = with_context(ex, ["first passage\n", "second passage"])
    assert [m["role"] for m in rag] == ["system", "user"]
    body = rag[1]["content"]
    assert "[1] first passage\n\n[2] second passage" in body
    assert body.index("[2]") < body.index(ex.question.strip())
    for bad in ([], "one string"):
        with pytest.raises(ValueError, match="non-empty list"):
            with_context(ex, bad)


def test_training_example_answer_is_the_first_accepted(task):
    ex = next(e for e in task.train if len(set(e.answers)) > 1)
    t = training_example(ex)
    assert t == {"messages": zero_shot(ex), "answer": ex.answers[0]}
    r = training_example(ex, contexts=[ex.context])
    assert r["messages"] == with_context(ex, [ex.context]) and r["answer"] == ex.answers[0]


def test_pick_shots(task):
    a, b = pick_shots(task.train, 5, seed=0), pick_shots(task.train, 5, seed=0)
    assert a == b and len(a) == 5 and all(s in task.train for s in a)
    assert pick_shots(task.train, 8, seed=0)[:5] == a
    assert pick_shots(task.train, 5, seed=1) != a
    assert pick_shots(task.train, 0, seed=0) == []
    with pytest.raises(ValueError, match=r"\[0, 300\]"):
        pick_shots(task.train, 301, seed=0)


@pytest.mark.parametrize("raw, clean", [
    ("Denver Broncos", "Denver Broncos"),
    ("Answer: Denver Broncos.", "Denver Broncos"),
    ('"Denver Broncos".', "Denver Broncos"),
    ("'Denver Broncos.'", "Denver Broncos"),
    ("**Answer:** Santa Clara", "Santa Clara"),
    ("Final answer: 1973", "1973"),
    ("A: **Tesla**", "Tesla"),
    ("The answer is 1943.", "1943"),
    ("Answer:\n  Paris\nBecause it is the capital.", "Paris"),
    ("<think>The question asks who.</think>\nNikola Tesla", "Nikola Tesla"),
    ("\n\n  Warsaw \n second line", "Warsaw"),
    ("“golden anniversary”", "golden anniversary"),
    ("Washington, D.C.", "Washington, D.C"),
    ("Anna: a name", "Anna: a name"),
    ("", ""),
    ("   ", ""),
])
def test_clean_prediction(raw, clean):
    assert clean_prediction(raw) == clean


def test_clean_prediction_caps_length_at_a_word():
    out = clean_prediction("word " * 100, max_chars=23)
    assert out == "word word word word" and len(out) <= 23
    assert clean_prediction("x" * 50, max_chars=10) == "x" * 10


# --------------------------------------------------------------------------- RAG contexts


def _answer_in_context_rate(task: DomainTask, retriever: ConfiguredRetriever, k: int) -> float:
    ctx = retriever.contexts([e.question for e in task.heldout], k)
    assert all(len(c) == k for c in ctx)
    return float(np.mean([answer_in_context(e.answers, c) for e, c in zip(task.heldout, ctx)]))


def test_task_retriever_bm25_finds_the_answers(task):
    r = squad_retriever({"chunker": "recursive", "size": 256, "overlap": 32, "retriever": "bm25",
                         "embedder": "all-minilm-l6-v2"}, task.paragraphs)
    assert r.embed is None  # bm25 needs no model
    articles = {t: "\n\n".join(p["text"] for p in task.paragraphs.values() if p["title"] == t) for t in TITLES}
    assert all(r.passages[d] in articles[d.split("#c")[0]] for d in r.passages)
    assert all(d.split("#c")[0] in TITLES for d in r.passages)
    # the very docs (ids, order, titled texts) the retrieval sweep indexed for this chunking
    from lab.chunking import make_chunker
    from lab.retrieval.sets import squad_chunks

    ids, texts = squad_chunks(PARAGRAPHS, QA, make_chunker("recursive", size=256, overlap=32),
                              titles=TITLES).doc_texts()
    assert ids == list(r.passages)
    assert texts == [f"{d.split('#c')[0].replace('_', ' ')}\n\n{r.passages[d]}" for d in ids]
    rate1, rate3 = _answer_in_context_rate(task, r, 1), _answer_in_context_rate(task, r, 3)
    print(f"answer in bm25 top-1 / top-3 chunks: {rate1:.2f} / {rate3:.2f}")  # 0.75 / 0.90 when written
    assert rate3 >= 0.8 and rate3 >= rate1
    assert r.params()["docs"] == len(r.passages) and r.params()["retriever"]["retriever"] == "bm25"


def test_task_retriever_paragraphs_and_winner_config(task, tmp_path):
    whole = squad_retriever({"chunker": "none", "retriever": "bm25"}, task.paragraphs)
    assert set(whole.passages) == set(task.paragraphs)
    hits = whole.search([task.heldout[0].question], 5)[0]
    assert len(hits) == 5 and all(d in task.paragraphs for d, _ in hits)
    # its own paragraph is among the top 5 for most held-out questions
    top5 = whole.search([e.question for e in task.heldout], 5)
    assert np.mean([e.paragraph_id in {d for d, _ in h} for e, h in zip(task.heldout, top5)]) >= 0.8

    # the retrieval sweep's winner (hybrid: dense + bm25), with the model-free embedder
    winner = REPO / "results" / "retrieval_sweep" / "winner.json"
    r = squad_retriever(read_winner_config(winner), task.paragraphs, embed="hashed-256", store_dir=tmp_path / "store")
    assert r.params()["embedder"] == "hashed-256" and r.params()["retriever"]["retriever"] == "hybrid"
    assert r.params()["chunker"] == json.loads(winner.read_text())["config"]["chunker"]
    assert _answer_in_context_rate(task, r, 3) >= 0.7
    assert r.embed.store.stats.misses > 0  # vectors went through the store

    from lab.embed import make_embedder
    dense = squad_retriever({"chunker": "none", "retriever": "dense", "embedder": "hashed-256"}, task.paragraphs,
                            embed=make_embedder("hashed-256"), store_dir=tmp_path / "store")
    assert len(dense.contexts(["Who were the Normans?"], 2)[0]) == 2


def test_task_retriever_errors(task, tmp_path):
    with pytest.raises(ConfigError, match="needs an embedder"):
        squad_retriever({"chunker": "none", "retriever": "dense"}, task.paragraphs)
    with pytest.raises(ValueError, match="no documents"):
        ConfiguredRetriever({"chunker": "none", "retriever": "bm25"}, {})


@pytest.mark.parametrize("content, key", [
    ("{not json", "not valid JSON"),
    ('{"config": {"retriever": "bm25"}}', "not a lab.retrieval_sweep.winner file"),
    ('{"format": "lab.retrieval_sweep.winner", "version": 0, "config": {}}', r"an older lab.retrieval_sweep.winner file \(version 0; this code reads version 1\)"),
    ('{"format": "lab.retrieval_sweep.winner", "version": 1, "metric": "hit_rate@5"}', "key 'config' is missing"),
    ('{"format": "lab.retrieval_sweep.winner", "version": 1, "config": {"chunker": "token"}}',
     "config.retriever is None"),
    ('{"format": "lab.retrieval_sweep.winner", "version": 1, "config": {"retriever": "dense", "chunker": "token"}}',
     "config.embedder is missing"),
])
def test_malformed_winner_names_file_and_key(tmp_path, content, key):
    from lab.errors import DataError

    path = tmp_path / "winner.json"
    path.write_text(content)
    with pytest.raises(DataError, match=key) as err:
        read_winner_config(path)
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match="not found; `dvc repro retrieval_sweep` writes it"):
        read_winner_config(tmp_path / "absent.json")


def test_the_winner_file_round_trips(tmp_path):
    from lab.handoff.winner import read_winner, write_winner

    path = write_winner(tmp_path / "w.json", {"metric": "hit_rate@5", "config": {"retriever": "bm25", "chunker": "none"}})
    got = read_winner(path)
    assert got["config"] == {"retriever": "bm25", "chunker": "none"} and got["version"] == 1


def test_qaexample_is_frozen(task):
    with pytest.raises(AttributeError):
        task.train[0].question = "x"  # type: ignore[misc]
    assert isinstance(task.train[0], QAExample) and isinstance(task.train[0].answers, tuple)
